/* knapsack_dp.c: the independent check of the integer programme: the exact
 * Pareto frontier of size against cost by dynamic programming over sizes
 * (shrink_pareto, lib/sense/pareto.c), then its cheapest point within the
 * budget. A banned choice is replaced by a copy of the item's smallest allowed
 * one, which leaves the optimum unchanged. Extra budgets are not supported.
 * Not here: the integer programme (knapsack_ilp.c). */
#include <stdlib.h>
#include <string.h>

#include "alloc_impl.h"

static bool allowed(const shrink_knapsack *k, int i, int j)
{
	return !k->allowed || k->allowed[i * k->n_choices + j];
}

/* the item's smallest allowed choice, -1 if none */
static int smallest(const shrink_knapsack *k, int i)
{
	int lo = -1, nc = k->n_choices;
	for (int j = 0; j < nc; j++)
		if (allowed(k, i, j) && (lo < 0 || k->size[i * nc + j] < k->size[i * nc + lo]))
			lo = j;
	return lo;
}

/* sizes and costs with every banned choice turned into the item's smallest allowed one */
static bool unban(const shrink_knapsack *k, int64_t *size, double *cost)
{
	int nc = k->n_choices;
	for (int i = 0; i < k->n_items; i++) {
		int lo = smallest(k, i);
		if (lo < 0)
			return false;
		for (int j = 0; j < nc; j++) {
			bool ok = allowed(k, i, j);
			size[i * nc + j] = k->size[i * nc + (ok ? j : lo)];
			cost[i * nc + j] = k->cost[i * nc + (ok ? j : lo)];
		}
	}
	return true;
}

static shrink_status pick(const shrink_knapsack *k, const shrink_pareto_front *f, shrink_knapsack_solution *s,
			  shrink_error *err)
{
	s->min_size = f->n ? f->size_bytes[0] : -1;
	size_t best = f->n;
	for (size_t p = 0; p < f->n; p++)
		if (f->size_bytes[p] <= k->budget)
			best = p; /* sizes increase and costs fall along the frontier */
	if (best == f->n)
		return shrink_fail(err, SHRINK_EINPUT,
				   "no allocation fits in %lld bytes: the smallest feasible budget is %lld bytes",
				   (long long)k->budget, (long long)s->min_size);
	for (int i = 0; i < k->n_items; i++) {
		int j = f->choice[best * (size_t)k->n_items + i];
		s->choice[i] = allowed(k, i, j) ? j : smallest(k, i);
	}
	alloc_sum_choice(k, s);
	return SHRINK_OK;
}

shrink_status shrink_knapsack_dp(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err)
{
	shrink_status st = alloc_solution_init(k, s, err);
	if (st)
		return st;
	if (k->n_extra)
		return shrink_fail(err, SHRINK_EUSAGE, "the dynamic programme handles the size budget only");
	double t0 = shrink_now();
	size_t n = (size_t)k->n_items * k->n_choices;
	int64_t *size = malloc(n * sizeof *size);
	double *cost = malloc(n * sizeof *cost);
	shrink_pareto_front f = {0};
	if (!size || !cost)
		st = shrink_fail(err, SHRINK_EIO, "out of memory");
	else if (!unban(k, size, cost))
		st = shrink_fail(err, SHRINK_EINPUT, "an item has no allowed choice");
	if (!st)
		st = shrink_pareto(k->n_items, k->n_choices, size, cost, &f, err);
	if (!st)
		st = pick(k, &f, s, err);
	if (!st) {
		s->exact = f.exact, s->optimal = f.exact, s->gap = 0, s->lp_bound = s->cost;
		snprintf(s->status, sizeof s->status, "%s", f.exact ? "optimal" : "sizes rounded up");
	}
	s->seconds = shrink_now() - t0;
	shrink_pareto_free(&f);
	free(size), free(cost);
	return st;
}
