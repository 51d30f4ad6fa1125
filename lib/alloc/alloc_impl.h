/* alloc_impl.h: what the parts of lib/alloc share (internal). */
#ifndef SHRINK_ALLOC_IMPL_H
#define SHRINK_ALLOC_IMPL_H

#include <stdio.h>

#include "shrink/alloc.h"

/* Check the problem and allocate s->choice. */
shrink_status alloc_solution_init(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err);
/* s->size, s->cost and s->extra from s->choice. */
void alloc_sum_choice(const shrink_knapsack *k, shrink_knapsack_solution *s);
/* The smallest total size of an allowed configuration meeting the extra budgets; -1 when none. */
int64_t alloc_min_size(const shrink_knapsack *k);
/* The same with extra budgets, by the integer programme (knapsack_ilp.c). */
int64_t alloc_min_size_ilp(const shrink_knapsack *k);

/* cost[i * n_schemes + b] for the calibration tensors tensor[0..n) under the
 * objective (objective.c). Decoupled with a cap: *use_cap, and capped[] holds
 * the capped metric, normalised; capped has room for n * n_schemes values. */
shrink_status alloc_costs(const shrink_calibration *c, const int *tensor, int n, const shrink_alloc_params *p,
			  double *cost, double *capped, bool *use_cap, double norm[2], shrink_error *err);
/* The hawq cost of scheme e of tensor t: Omega with the trace taken as at
 * least its standard error (objective.c says why); NAN without a trace. */
double alloc_omega(const shrink_tensor_sense *t, const shrink_scheme_sense *e);

#endif
