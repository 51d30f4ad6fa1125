/* hutchinson.c: Hutchinson's trace estimator, E[v^T H v] = Tr(H) for Rademacher v,
 * per diagonal block: one v over all parameters per iteration, and for block i
 * the sample v_i^T (H v)_i, whose mean is Tr(H_ii) (the cross-block terms have
 * mean zero). Each block keeps a running mean and standard error (GSL rstat)
 * and stops when its mean moves by at most tol relative (PyHessian's rule, per
 * block) once it has min_iter samples.
 * Not here: how H v is computed (hvp.c, or any shrink_hvp_fn). */
#include <gsl/gsl_rng.h>
#include <gsl/gsl_rstat.h>
#include <math.h>
#include <stdlib.h>

#include "sense_impl.h"

/* v[i] = +-1, one bit each from 32-bit draws of mt19937, in order. */
static void rademacher(gsl_rng *r, float *v, int64_t n)
{
	for (int64_t i = 0; i < n; i += 32) {
		unsigned long bits = gsl_rng_get(r);
		int64_t m = n - i < 32 ? n - i : 32;
		for (int64_t b = 0; b < m; b++)
			v[i + b] = (bits >> b) & 1 ? 1.0f : -1.0f;
	}
}

typedef struct {
	gsl_rstat_workspace **stat;
	double *prev;
	bool *done, *converged;
	double *sample;
} block_state;

static void blocks_free(block_state *b, int n_blocks)
{
	for (int i = 0; b->stat && i < n_blocks; i++)
		if (b->stat[i])
			gsl_rstat_free(b->stat[i]);
	free(b->stat), free(b->prev), free(b->done), free(b->converged), free(b->sample);
}

static bool blocks_alloc(block_state *b, int n_blocks)
{
	b->stat = calloc((size_t)n_blocks, sizeof *b->stat);
	b->prev = calloc((size_t)n_blocks, sizeof *b->prev);
	b->done = calloc((size_t)n_blocks, sizeof *b->done);
	b->converged = calloc((size_t)n_blocks, sizeof *b->converged);
	b->sample = calloc((size_t)n_blocks, sizeof *b->sample);
	if (!b->stat || !b->prev || !b->done || !b->converged || !b->sample)
		return false;
	for (int i = 0; i < n_blocks; i++)
		if (!(b->stat[i] = gsl_rstat_alloc()))
			return false;
	return true;
}

/* Add this iteration's samples; returns the number of blocks still running. */
static int blocks_update(block_state *b, int n_blocks, int k, const shrink_hutch_params *p)
{
	int running = 0;
	for (int i = 0; i < n_blocks; i++) {
		if (b->done[i])
			continue;
		gsl_rstat_add(b->sample[i], b->stat[i]);
		double m = gsl_rstat_mean(b->stat[i]);
		if (k >= 2 && k >= p->min_iter && fabs(m - b->prev[i]) <= p->tol * fabs(b->prev[i]))
			b->done[i] = b->converged[i] = true;
		b->prev[i] = m;
		running += !b->done[i];
	}
	return running;
}

static shrink_status check(int64_t n, int n_blocks, const int64_t *start, const shrink_hutch_params *p,
			   shrink_error *err)
{
	if (p->min_iter < 1 || p->max_iter < p->min_iter || !(p->tol >= 0))
		return shrink_fail(err, SHRINK_EUSAGE, "Hutchinson: iterations %d..%d, tolerance %g", p->min_iter,
				   p->max_iter, p->tol);
	for (int i = 0; i < n_blocks; i++)
		if (start[i] < 0 || start[i + 1] < start[i] || start[i + 1] > n)
			return shrink_fail(err, SHRINK_EUSAGE,
					   "Hutchinson: block %d [%lld, %lld) outside %lld parameters", i,
					   (long long)start[i], (long long)start[i + 1], (long long)n);
	return SHRINK_OK;
}

static shrink_status block_samples(block_state *b, int n_blocks, const int64_t *start, const float *v, const float *hv,
				   shrink_error *err)
{
#pragma omp parallel for schedule(dynamic, 1) if (start[n_blocks] - start[0] > 65536)
	for (int i = 0; i < n_blocks; i++) {
		double s = 0;
		for (int64_t j = start[i]; j < start[i + 1]; j++)
			s += (double)v[j] * hv[j];
		b->sample[i] = s;
	}
	for (int i = 0; i < n_blocks; i++)
		if (!isfinite(b->sample[i]))
			return shrink_fail(err, SHRINK_EINPUT, "Hessian-vector product is not finite (block %d)", i);
	return SHRINK_OK;
}

static void results(const block_state *b, int n_blocks, shrink_trace *traces)
{
	for (int i = 0; i < n_blocks; i++) {
		size_t k = gsl_rstat_n(b->stat[i]);
		traces[i].trace = gsl_rstat_mean(b->stat[i]);
		traces[i].se = k >= 2 ? gsl_rstat_sd_mean(b->stat[i]) : NAN;
		traces[i].iterations = (int)k;
		traces[i].converged = b->converged[i];
	}
}

shrink_status shrink_hutchinson(int64_t n, int n_blocks, const int64_t *start, shrink_hvp_fn hvp, void *user,
				const shrink_hutch_params *p, shrink_trace *traces, int *n_iter, shrink_error *err)
{
	*n_iter = 0;
	shrink_status st = check(n, n_blocks, start, p, err);
	if (st)
		return st;
	block_state b = {0};
	float *v = malloc((size_t)n * sizeof *v), *hv = malloc((size_t)n * sizeof *hv);
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	if (!v || !hv || !r || !blocks_alloc(&b, n_blocks))
		st = shrink_fail(err, SHRINK_EIO, "out of memory for Hutchinson's estimator (%lld parameters)",
				 (long long)n);
	if (r)
		gsl_rng_set(r, (unsigned long)p->seed);
	for (int k = 1; !st && k <= p->max_iter; k++) {
		rademacher(r, v, n);
		if ((st = hvp(user, v, hv, err)) || (st = block_samples(&b, n_blocks, start, v, hv, err)))
			break;
		*n_iter = k;
		int running = blocks_update(&b, n_blocks, k, p);
		if (p->progress)
			p->progress(p->user, running ? k : p->max_iter, p->max_iter);
		if (!running)
			break;
	}
	if (!st)
		results(&b, n_blocks, traces);
	blocks_free(&b, n_blocks);
	if (r)
		gsl_rng_free(r);
	free(v), free(hv);
	return st;
}
