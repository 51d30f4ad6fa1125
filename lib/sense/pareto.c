/* pareto.c: the HAWQ-V2 Pareto frontier of total size against summed
 * sensitivity, exactly, as a multiple-choice knapsack solved by dynamic
 * programming over the total size. Each item's sizes are counted as the excess
 * over its smallest choice, in units of the gcd of all sizes, so the table
 * spans only the sizes a configuration can add; when that table would exceed
 * MAX_CELLS the unit grows and sizes round up (the result says so).
 * Not here: picking one point for a budget (lib/alloc), writing files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"

#define MAX_CELLS ((int64_t)1 << 28)

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

typedef struct {
	int n_items, n_choices;
	const int64_t *size;
	const double *cost;
	int64_t quantum, span;
	int64_t *excess; /* n_items x n_choices, units over the item's smallest choice */
	uint8_t *choice; /* n_items x span */
	double *best;    /* span */
} dp;

static shrink_status check(int n_items, int n_choices, const int64_t *size, const double *cost, shrink_error *err)
{
	if (n_items < 1 || n_choices < 1 || n_choices > 255)
		return shrink_fail(err, SHRINK_EUSAGE, "Pareto: %d items with %d choices", n_items, n_choices);
	for (int64_t i = 0; i < (int64_t)n_items * n_choices; i++) {
		if (size[i] < 1)
			return shrink_fail(err, SHRINK_EUSAGE, "Pareto: item %lld has size %lld",
					   (long long)(i / n_choices), (long long)size[i]);
		if (!isfinite(cost[i]))
			return shrink_fail(err, SHRINK_EINPUT, "Pareto: item %lld choice %lld has no finite cost",
					   (long long)(i / n_choices), (long long)(i % n_choices));
	}
	return SHRINK_OK;
}

static int64_t units(const dp *d, int64_t bytes)
{
	return (bytes + d->quantum - 1) / d->quantum;
}

/* Choose the unit (the gcd of all sizes, doubled until the table fits) and each choice's excess. */
static void plan(dp *d, bool *exact)
{
	int64_t g = 0, span = 1;
	for (int64_t i = 0; i < (int64_t)d->n_items * d->n_choices; i++)
		g = gcd64(d->size[i], g);
	d->quantum = g;
	for (int it = 0; it < 64; it++) {
		span = 1;
		for (int i = 0; i < d->n_items; i++) {
			int64_t lo = INT64_MAX, hi = 0;
			for (int b = 0; b < d->n_choices; b++) {
				int64_t u = units(d, d->size[i * d->n_choices + b]);
				lo = u < lo ? u : lo;
				hi = u > hi ? u : hi;
			}
			for (int b = 0; b < d->n_choices; b++)
				d->excess[i * d->n_choices + b] = units(d, d->size[i * d->n_choices + b]) - lo;
			span += hi - lo;
		}
		if (span * d->n_items <= MAX_CELLS)
			break;
		d->quantum *= 2;
	}
	d->span = span;
	*exact = d->quantum == g;
}

static void run(dp *d, double *next)
{
	for (int64_t s = 0; s < d->span; s++)
		d->best[s] = s == 0 ? 0 : INFINITY;
	for (int i = 0; i < d->n_items; i++) {
		uint8_t *ch = d->choice + (size_t)i * d->span;
#pragma omp parallel for if (d->span > 65536)
		for (int64_t s = 0; s < d->span; s++) {
			double bv = INFINITY;
			int bb = 0;
			for (int b = 0; b < d->n_choices; b++) {
				int64_t e = d->excess[i * d->n_choices + b];
				double c = s >= e ? d->best[s - e] + d->cost[i * d->n_choices + b] : INFINITY;
				if (c < bv) {
					bv = c;
					bb = b;
				}
			}
			next[s] = bv;
			ch[s] = (uint8_t)bb;
		}
		memcpy(d->best, next, (size_t)d->span * sizeof *next);
	}
}

static void trace_back(const dp *d, int64_t s, uint8_t *choice, int64_t *size, double *cost)
{
	*size = 0;
	*cost = d->best[s];
	for (int i = d->n_items - 1; i >= 0; i--) {
		int b = d->choice[(size_t)i * d->span + s];
		choice[i] = (uint8_t)b;
		*size += d->size[i * d->n_choices + b];
		s -= d->excess[i * d->n_choices + b];
	}
}

static shrink_status collect(const dp *d, shrink_pareto_front *f, shrink_error *err)
{
	size_t n = 0;
	double low = INFINITY;
	for (int64_t s = 0; s < d->span; s++)
		if (d->best[s] < low) {
			low = d->best[s];
			n++;
		}
	f->size_bytes = malloc(n * sizeof *f->size_bytes);
	f->cost = malloc(n * sizeof *f->cost);
	f->choice = malloc(n * (size_t)d->n_items);
	if (!f->size_bytes || !f->cost || !f->choice)
		return shrink_fail(err, SHRINK_EIO, "out of memory for the Pareto frontier (%zu points)", n);
	low = INFINITY;
	for (int64_t s = 0; s < d->span; s++)
		if (d->best[s] < low) {
			low = d->best[s];
			trace_back(d, s, f->choice + f->n * d->n_items, &f->size_bytes[f->n], &f->cost[f->n]);
			f->n++;
		}
	return SHRINK_OK;
}

shrink_status shrink_pareto(int n_items, int n_choices, const int64_t *size_bytes, const double *cost,
			    shrink_pareto_front *out, shrink_error *err)
{
	memset(out, 0, sizeof *out);
	shrink_status st = check(n_items, n_choices, size_bytes, cost, err);
	if (st)
		return st;
	dp d = {n_items, n_choices, size_bytes, cost, 0, 0, NULL, NULL, NULL};
	d.excess = malloc((size_t)n_items * n_choices * sizeof *d.excess);
	if (!d.excess)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	plan(&d, &out->exact);
	d.choice = malloc((size_t)n_items * (size_t)d.span);
	d.best = malloc((size_t)d.span * sizeof *d.best);
	double *next = malloc((size_t)d.span * sizeof *next);
	if (!d.choice || !d.best || !next || d.span * n_items > MAX_CELLS)
		st = shrink_fail(err, SHRINK_EIO, "Pareto: a table of %lld x %d cells does not fit", (long long)d.span,
				 n_items);
	if (!st) {
		run(&d, next);
		out->n_items = n_items;
		out->quantum = d.quantum;
		st = collect(&d, out, err);
	}
	free(d.excess), free(d.choice), free(d.best), free(next);
	if (st)
		shrink_pareto_free(out);
	return st;
}

void shrink_pareto_free(shrink_pareto_front *f)
{
	free(f->size_bytes), free(f->cost), free(f->choice);
	memset(f, 0, sizeof *f);
}
