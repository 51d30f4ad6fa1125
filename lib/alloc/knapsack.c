/* knapsack.c: what both knapsack solvers share: checking a problem, summing
 * a configuration, and the smallest feasible size (for the message that
 * names the smallest budget that would do).
 * Not here: the solvers (knapsack_ilp.c, knapsack_dp.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_impl.h"

static shrink_status check(const shrink_knapsack *k, shrink_error *err)
{
	if (k->n_items < 1 || k->n_choices < 1 || k->n_choices > 255 || k->n_items > (1 << 24) / k->n_choices)
		return shrink_fail(err, SHRINK_EUSAGE, "knapsack: %d items with %d choices", k->n_items, k->n_choices);
	if (k->n_extra < 0 || k->n_extra > SHRINK_ALLOC_MAX_EXTRA || k->budget < 0)
		return shrink_fail(err, SHRINK_EUSAGE, "knapsack: %d extra budgets, budget %lld", k->n_extra,
				   (long long)k->budget);
	for (int64_t x = 0; x < (int64_t)k->n_items * k->n_choices; x++) {
		bool extra_ok = true;
		for (int e = 0; e < k->n_extra; e++)
			extra_ok &= isfinite(k->extra[e][x]) != 0;
		if (k->size[x] < 1 || k->size[x] > ((int64_t)1 << 52) || !isfinite(k->cost[x]) || !extra_ok)
			return shrink_fail(err, SHRINK_EINPUT, "knapsack: item %lld choice %lld: size %lld, cost %g",
					   (long long)(x / k->n_choices), (long long)(x % k->n_choices),
					   (long long)k->size[x], k->cost[x]);
	}
	for (int e = 0; e < k->n_extra; e++)
		if (!isfinite(k->extra_cap[e]))
			return shrink_fail(err, SHRINK_EUSAGE, "knapsack: extra budget %d is %g", e, k->extra_cap[e]);
	return SHRINK_OK;
}

shrink_status alloc_solution_init(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err)
{
	memset(s, 0, sizeof *s);
	s->min_size = -1;
	shrink_status st = check(k, err);
	if (st)
		return st;
	if (!(s->choice = calloc((size_t)k->n_items, sizeof *s->choice)))
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	return SHRINK_OK;
}

void alloc_sum_choice(const shrink_knapsack *k, shrink_knapsack_solution *s)
{
	s->size = 0, s->cost = 0;
	for (int e = 0; e < SHRINK_ALLOC_MAX_EXTRA; e++)
		s->extra[e] = 0;
	for (int i = 0; i < k->n_items; i++) {
		int64_t x = (int64_t)i * k->n_choices + s->choice[i];
		s->size += k->size[x];
		s->cost += k->cost[x];
		for (int e = 0; e < k->n_extra; e++)
			s->extra[e] += k->extra[e][x];
	}
}

int64_t alloc_min_size(const shrink_knapsack *k)
{
	if (k->n_extra > 0)
		return alloc_min_size_ilp(k);
	int64_t total = 0;
	for (int i = 0; i < k->n_items; i++) {
		int64_t lo = -1;
		for (int j = 0; j < k->n_choices; j++) {
			int64_t x = (int64_t)i * k->n_choices + j;
			if ((!k->allowed || k->allowed[x]) && (lo < 0 || k->size[x] < lo))
				lo = k->size[x];
		}
		if (lo < 0)
			return -1;
		total += lo;
	}
	return total;
}

void shrink_knapsack_solution_free(shrink_knapsack_solution *s)
{
	free(s->choice);
	memset(s, 0, sizeof *s);
}
