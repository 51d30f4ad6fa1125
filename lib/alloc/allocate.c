/* allocate.c: from a calibration and a quantization plan to one scheme per
 * tensor. The items are the plan's quantized tensors that the calibration
 * covers; everything else in the plan (floats, tensors without calibration)
 * is fixed and counted against the budget first. Choices are the calibration's
 * candidate schemes; minimum-bit rules ban the narrower ones, a cost table
 * adds a second budget, a decoupled cap a third. The integer programme picks,
 * and the plan's entries and totals are rewritten.
 * Not here: the solvers (knapsack_*.c), the costs (objective.c). */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_impl.h"

typedef struct {
	int nc;
	int64_t *size;
	double *cost, *capped, *extra_cost;
	uint8_t *allowed;
} items;

static void items_free(items *it)
{
	free(it->size), free(it->cost), free(it->capped), free(it->extra_cost), free(it->allowed);
}

static int find_tensor(const shrink_calibration *c, const char *name)
{
	for (int i = 0; i < c->n_tensors; i++)
		if (strcmp(c->tensors[i].name, name) == 0)
			return i;
	return -1;
}

/* The plan entries the calibration covers, and what is fixed. */
static shrink_status match(const shrink_calibration *c, const shrink_quant_plan *plan, shrink_allocation *a,
			   shrink_error *err)
{
	a->tensor = malloc((plan->n + 1) * sizeof *a->tensor);
	a->entry = malloc((plan->n + 1) * sizeof *a->entry);
	if (!a->tensor || !a->entry)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	a->fixed_bytes = 0;
	for (size_t e = 0; e < plan->n; e++) {
		const shrink_plan_entry *pe = &plan->e[e];
		int t = pe->quantized ? find_tensor(c, pe->name) : -1;
		if (t >= 0 && c->tensors[t].schemes &&
		    (c->tensors[t].rows != pe->rows || c->tensors[t].cols != pe->cols))
			return shrink_fail(
			    err, SHRINK_EINPUT,
			    "tensor '%s': the calibration has shape [%lld, %lld], the model [%lld, %lld]", pe->name,
			    (long long)c->tensors[t].rows, (long long)c->tensors[t].cols, (long long)pe->rows,
			    (long long)pe->cols);
		if (t < 0 || !c->tensors[t].schemes) {
			a->fixed_bytes += (int64_t)pe->n_bytes;
			continue;
		}
		a->tensor[a->n] = t, a->entry[a->n] = (int)e, a->n++;
	}
	if (a->n == 0)
		return shrink_fail(err, SHRINK_EINPUT, "the calibration covers none of the model's quantized tensors");
	return SHRINK_OK;
}

static shrink_status min_bits(const shrink_alloc_params *p, const char *name, int *bits, shrink_error *err)
{
	*bits = 0;
	for (int r = 0; r < p->n_min_bits; r++) {
		regex_t re;
		if (regcomp(&re, p->min_bits[r].regex, REG_EXTENDED | REG_NOSUB) != 0)
			return shrink_fail(err, SHRINK_EUSAGE, "bad regular expression '%s'", p->min_bits[r].regex);
		if (regexec(&re, name, 0, NULL, 0) == 0)
			*bits = p->min_bits[r].bits;
		regfree(&re);
	}
	return SHRINK_OK;
}

static shrink_status per_param(const shrink_alloc_params *p, shrink_qscheme s, double *out, shrink_error *err)
{
	for (int i = p->n_cost - 1; i >= 0; i--) {
		const shrink_cost_entry *e = &p->cost_table[i];
		if (e->bits == s.bits && (e->group_size < 0 || e->group_size == s.group_size)) {
			*out = e->per_param;
			return SHRINK_OK;
		}
	}
	return shrink_fail(err, SHRINK_EINPUT, "the cost table has no entry for %d bits, group %d", s.bits,
			   s.group_size);
}

/* Sizes, bans and the cost-table budget's coefficients. */
static shrink_status fill_items(const shrink_calibration *c, const shrink_quant_plan *plan,
				const shrink_alloc_params *p, const shrink_allocation *a, items *it, shrink_error *err)
{
	for (int i = 0; i < a->n; i++) {
		const shrink_plan_entry *pe = &plan->e[a->entry[i]];
		int lo;
		shrink_status st = min_bits(p, pe->name, &lo, err);
		if (st)
			return st;
		for (int b = 0; b < it->nc; b++) {
			shrink_qscheme s = shrink_calib_scheme(&c->params, b);
			int x = i * it->nc + b;
			if ((st = shrink_qscheme_check(&s, pe->cols, err)))
				return shrink_fail_prefix(err, "tensor '%s': ", pe->name);
			it->size[x] = (int64_t)shrink_qmatrix_bytes(&s, pe->rows, pe->cols);
			it->allowed[x] = s.bits >= lo;
			if (it->extra_cost && (st = per_param(p, s, &it->extra_cost[x], err)))
				return st;
			if (it->extra_cost)
				it->extra_cost[x] *= (double)pe->n_params;
		}
	}
	return SHRINK_OK;
}

static shrink_status build_items(const shrink_calibration *c, const shrink_quant_plan *plan,
				 const shrink_alloc_params *p, shrink_allocation *a, items *it, bool *use_cap,
				 shrink_error *err)
{
	size_t n = (size_t)a->n * it->nc;
	bool table = p->n_cost > 0 && p->cost_budget > 0;
	it->size = malloc(n * sizeof *it->size);
	it->cost = malloc(n * sizeof *it->cost);
	it->capped = malloc(n * sizeof *it->capped);
	it->allowed = malloc(n);
	it->extra_cost = table ? malloc(n * sizeof *it->extra_cost) : NULL;
	if (!it->size || !it->cost || !it->capped || !it->allowed || (table && !it->extra_cost))
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	shrink_status st = alloc_costs(c, a->tensor, a->n, p, it->cost, it->capped, use_cap, a->norm, err);
	return st ? st : fill_items(c, plan, p, a, it, err);
}

static shrink_status too_small(const shrink_quant_plan *plan, const shrink_allocation *a, int64_t budget,
			       int64_t min_size, shrink_error *err)
{
	if (min_size < 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "no allocation meets the cost or metric budget whatever the size");
	int64_t need = a->fixed_bytes + min_size;
	double n = plan->n_params > 0 ? (double)plan->n_params : 1;
	return shrink_fail(
	    err, SHRINK_EINPUT,
	    "budget %lld bytes (%.4f bits per weight) is infeasible: the smallest feasible budget is %lld "
	    "bytes (%.4f bits per weight)",
	    (long long)budget, 8.0 * (double)budget / n, (long long)need, 8.0 * (double)need / n);
}

static void apply(const shrink_calibration *c, shrink_quant_plan *plan, shrink_allocation *a, const items *it)
{
	for (int i = 0; i < a->n; i++) {
		shrink_plan_entry *pe = &plan->e[a->entry[i]];
		int b = a->solution.choice[i];
		pe->scheme = shrink_calib_scheme(&c->params, b);
		pe->n_bytes = (size_t)it->size[i * it->nc + b];
		a->scheme[i] = b;
		a->cost[i] = it->cost[i * it->nc + b];
	}
	plan->total_bytes = 0;
	for (size_t e = 0; e < plan->n; e++)
		plan->total_bytes += plan->e[e].n_bytes;
	plan->bpw = plan->n_params ? 8.0 * (double)plan->total_bytes / (double)plan->n_params : 0;
}

static shrink_status solve(const shrink_calibration *c, shrink_quant_plan *plan, const shrink_alloc_params *p,
			   shrink_allocation *a, items *it, shrink_error *err)
{
	bool use_cap = false;
	shrink_status st = build_items(c, plan, p, a, it, &use_cap, err);
	if (st)
		return st;
	shrink_knapsack k = {.n_items = a->n,
			     .n_choices = it->nc,
			     .size = it->size,
			     .cost = it->cost,
			     .allowed = it->allowed,
			     .budget = p->budget_bytes - a->fixed_bytes,
			     .time_limit = p->time_limit};
	if (it->extra_cost)
		k.extra[k.n_extra] = it->extra_cost, k.extra_cap[k.n_extra++] = p->cost_budget;
	if (use_cap)
		k.extra[k.n_extra] = it->capped, k.extra_cap[k.n_extra++] = p->cap;
	if (k.budget < 0) {
		k.budget = 0; /* infeasible anyway: find the smallest size for the message */
		shrink_knapsack_solution s;
		if ((st = alloc_solution_init(&k, &s, err)))
			return st;
		int64_t min_size = alloc_min_size(&k);
		shrink_knapsack_solution_free(&s);
		return too_small(plan, a, p->budget_bytes, min_size, err);
	}
	if ((st = shrink_knapsack_ilp(&k, &a->solution, err)))
		return st == SHRINK_EINPUT ? too_small(plan, a, p->budget_bytes, a->solution.min_size, err) : st;
	a->scheme = malloc((size_t)a->n * sizeof *a->scheme);
	a->cost = malloc((size_t)a->n * sizeof *a->cost);
	if (!a->scheme || !a->cost)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	apply(c, plan, a, it);
	return SHRINK_OK;
}

shrink_status shrink_allocate(const shrink_calibration *c, shrink_quant_plan *plan, const shrink_alloc_params *p,
			      shrink_allocation *a, shrink_error *err)
{
	memset(a, 0, sizeof *a);
	items it = {shrink_calib_n_schemes(&c->params), NULL, NULL, NULL, NULL, NULL};
	shrink_status st = match(c, plan, a, err);
	if (!st)
		st = solve(c, plan, p, a, &it, err);
	items_free(&it);
	if (st)
		shrink_allocation_free(a);
	return st;
}

void shrink_allocation_free(shrink_allocation *a)
{
	free(a->tensor), free(a->entry), free(a->scheme), free(a->cost);
	shrink_knapsack_solution_free(&a->solution);
	memset(a, 0, sizeof *a);
}
