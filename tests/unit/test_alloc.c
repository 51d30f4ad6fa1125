/* test_alloc.c: lib/alloc and the calibration reader.
 * The integer programme against the dynamic programme and against brute-force
 * enumeration on random instances of up to 8 items (with bans and an extra
 * budget, where only enumeration can check it); infeasible budgets and the
 * smallest feasible budget they report; a Llama-3-8B-shaped problem (224
 * tensors x 12 schemes; the time is printed, not asserted). Allocation over a
 * plan: fixed bytes, minimum bits, the budget met, objectives and the
 * decoupled cap checked by enumeration. The calibration file: the writer's
 * output read back field for field, and malformed files (truncated at every
 * byte, wrong types, out-of-range and non-finite numbers, inconsistent counts)
 * rejected as bad input without crashing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

static uint64_t rng_state;

static double urand(void) /* [0, 1) */
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (rng_state >> 11) / (double)(1ull << 53);
}

/* ---- brute force ---- */

typedef struct {
	double cost;
	int64_t size, min_size;
	bool found;
} brute;

/* Every configuration: the cheapest within the budget and extra caps, and the smallest size meeting the caps. */
static brute enumerate(const shrink_knapsack *k)
{
	brute r = {INFINITY, 0, -1, false};
	int n = k->n_items, nc = k->n_choices, pick[8] = {0};
	for (;;) {
		int64_t size = 0;
		double cost = 0, extra[SHRINK_ALLOC_MAX_EXTRA] = {0};
		bool ok = true;
		for (int i = 0; i < n; i++) {
			int x = i * nc + pick[i];
			ok &= !k->allowed || k->allowed[x];
			size += k->size[x], cost += k->cost[x];
			for (int e = 0; e < k->n_extra; e++)
				extra[e] += k->extra[e][x];
		}
		for (int e = 0; e < k->n_extra; e++)
			ok &= extra[e] <= k->extra_cap[e] * (1 + 1e-12);
		if (ok && (r.min_size < 0 || size < r.min_size))
			r.min_size = size;
		if (ok && size <= k->budget && cost < r.cost)
			r.cost = cost, r.size = size, r.found = true;
		int i = 0;
		while (i < n && ++pick[i] == nc)
			pick[i++] = 0;
		if (i == n)
			return r;
	}
}

typedef struct {
	int64_t size[8 * 5];
	double cost[8 * 5], extra[8 * 5];
	uint8_t allowed[8 * 5];
	shrink_knapsack k;
} instance;

/* Sizes like real schemes: wider choices cost more bytes and (mostly) less error. */
static void random_instance(instance *in, int n, int nc, bool bans, bool extra)
{
	memset(in, 0, sizeof *in);
	for (int i = 0; i < n; i++) {
		int64_t base = 16 + (int64_t)(urand() * 200);
		double weight = pow(10, 4 * urand() - 2);
		for (int j = 0; j < nc; j++) {
			int x = i * nc + j;
			in->size[x] = base * (j + 2) + (int64_t)(urand() * 7);
			in->cost[x] = weight * pow(4, -j) * (0.5 + urand());
			in->extra[x] = (double)in->size[x] * (0.5 + urand());
			in->allowed[x] = !bans || j > 0 || urand() < 0.5;
		}
	}
	in->k = (shrink_knapsack){
	    .n_items = n, .n_choices = nc, .size = in->size, .cost = in->cost, .allowed = bans ? in->allowed : NULL};
	if (extra) {
		in->k.n_extra = 1;
		in->k.extra[0] = in->extra;
	}
}

static int64_t total(const instance *in, bool largest)
{
	int64_t t = 0;
	for (int i = 0; i < in->k.n_items; i++) {
		int64_t v = in->size[i * in->k.n_choices];
		for (int j = 1; j < in->k.n_choices; j++) {
			int64_t s = in->size[i * in->k.n_choices + j];
			v = largest ? (s > v ? s : v) : (s < v ? s : v);
		}
		t += v;
	}
	return t;
}

static void check_solution(const shrink_knapsack *k, const shrink_knapsack_solution *s)
{
	int64_t size = 0;
	double cost = 0;
	for (int i = 0; i < k->n_items; i++) {
		int x = i * k->n_choices + s->choice[i];
		cr_assert(s->choice[i] >= 0 && s->choice[i] < k->n_choices);
		cr_assert(!k->allowed || k->allowed[x], "item %d took a banned choice", i);
		size += k->size[x], cost += k->cost[x];
	}
	cr_assert_eq(size, s->size);
	cr_assert_leq(size, k->budget);
	cr_assert(fabs(cost - s->cost) <= 1e-12 * fabs(cost));
}

static void compare_all(int n, int nc, bool bans, bool extra, int trials)
{
	shrink_error err;
	for (int t = 0; t < trials; t++) {
		instance in;
		random_instance(&in, n, nc, bans, extra);
		int64_t lo = total(&in, false), hi = total(&in, true);
		in.k.budget = lo + (int64_t)(urand() * 1.1 * (double)(hi - lo)) - (t % 7 == 0 ? lo / 10 : 0);
		if (extra)
			in.k.extra_cap[0] = (0.7 + 0.5 * urand()) * (double)in.k.budget;
		brute b = enumerate(&in.k);
		shrink_knapsack_solution ilp, dp;
		shrink_status st = shrink_knapsack_ilp(&in.k, &ilp, &err);
		cr_assert_eq(st == SHRINK_OK, b.found, "trial %d: ILP %d (%s), brute force found %d", t, st, err.msg,
			     b.found);
		if (b.found) {
			check_solution(&in.k, &ilp);
			cr_assert(ilp.optimal && ilp.gap == 0 && strcmp(ilp.status, "optimal") == 0);
			cr_assert(fabs(ilp.cost - b.cost) <= 1e-9 * b.cost, "trial %d: ILP %.12g, brute force %.12g", t,
				  ilp.cost, b.cost);
			cr_assert_leq(ilp.lp_bound, ilp.cost * (1 + 1e-9), "the LP relaxation bounds the optimum");
		} else {
			cr_assert_eq(st, SHRINK_EINPUT);
			cr_assert_eq(ilp.min_size, b.min_size, "trial %d: smallest feasible %lld, brute force %lld", t,
				     (long long)ilp.min_size, (long long)b.min_size);
			char want[64];
			snprintf(want, sizeof want, "smallest feasible budget is %lld bytes", (long long)b.min_size);
			if (b.min_size >= 0)
				cr_assert(strstr(err.msg, want), "message '%s'", err.msg);
		}
		shrink_knapsack_solution_free(&ilp);
		if (extra)
			continue;
		st = shrink_knapsack_dp(&in.k, &dp, &err);
		cr_assert_eq(st == SHRINK_OK, b.found, "trial %d: DP %d (%s)", t, st, err.msg);
		if (b.found) {
			check_solution(&in.k, &dp);
			cr_assert(dp.exact);
			cr_assert(fabs(dp.cost - b.cost) <= 1e-9 * b.cost, "trial %d: DP %.12g, brute force %.12g", t,
				  dp.cost, b.cost);
		} else {
			cr_assert_eq(dp.min_size, b.min_size);
		}
		shrink_knapsack_solution_free(&dp);
	}
}

Test(knapsack, ilp_equals_dp_equals_brute_force)
{
	rng_state = 1;
	for (int n = 1; n <= 8; n++)
		compare_all(n, n <= 6 ? 4 : 3, false, false, 12);
}

Test(knapsack, bans_equal_brute_force)
{
	rng_state = 2;
	for (int n = 1; n <= 7; n++)
		compare_all(n, 4, true, false, 10);
}

Test(knapsack, extra_budget_equals_brute_force)
{
	rng_state = 3;
	for (int n = 1; n <= 7; n++)
		compare_all(n, 4, n % 2 == 0, true, 10);
}

Test(knapsack, infeasible_budget_names_the_smallest)
{
	rng_state = 4;
	instance in;
	random_instance(&in, 5, 3, false, false);
	int64_t lo = total(&in, false);
	shrink_knapsack_solution s;
	shrink_error err;
	in.k.budget = lo - 1;
	cr_assert_eq(shrink_knapsack_ilp(&in.k, &s, &err), SHRINK_EINPUT);
	cr_assert_eq(s.min_size, lo);
	shrink_knapsack_solution_free(&s);
	in.k.budget = lo; /* exactly the smallest: feasible, every item at its smallest choice */
	cr_assert_eq(shrink_knapsack_ilp(&in.k, &s, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(s.size, lo);
	shrink_knapsack_solution_free(&s);
	in.allowed[0] = in.allowed[1] = in.allowed[2] = 0; /* item 0 can take nothing */
	in.k.allowed = in.allowed;
	in.k.budget = total(&in, true);
	cr_assert_eq(shrink_knapsack_ilp(&in.k, &s, &err), SHRINK_EINPUT);
	cr_assert_eq(s.min_size, -1);
	shrink_knapsack_solution_free(&s);
	cr_assert_eq(shrink_knapsack_dp(&in.k, &s, &err), SHRINK_EINPUT);
	shrink_knapsack_solution_free(&s);
	in.cost[3] = NAN;
	cr_assert_eq(shrink_knapsack_ilp(&in.k, &s, &err), SHRINK_EINPUT);
	shrink_knapsack_solution_free(&s);
}

/* ---- a Llama-3-8B-shaped problem ---- */

Test(knapsack, llama3_8b_shape)
{
	static const int64_t shapes[7][2] = {{4096, 4096},  {1024, 4096},  {1024, 4096}, {4096, 4096},
					     {14336, 4096}, {14336, 4096}, {4096, 14336}};
	static const int bits[6] = {2, 3, 4, 5, 6, 8}, groups[2] = {32, 128};
	enum { N = 224, NC = 12 };
	int64_t *size = malloc(N * NC * sizeof *size);
	double *cost = malloc(N * NC * sizeof *cost);
	rng_state = 8;
	int64_t lo = 0, hi = 0, n_params = 0;
	for (int i = 0; i < N; i++) {
		const int64_t *sh = shapes[i % 7];
		double trace = pow(10, 3 * urand() - 1) / (double)(sh[0] * sh[1]);
		n_params += sh[0] * sh[1];
		for (int c = 0; c < NC; c++) {
			shrink_qscheme s = {bits[c / 2], groups[c % 2], true};
			size[i * NC + c] = (int64_t)shrink_qmatrix_bytes(&s, sh[0], sh[1]);
			/* ||dW||^2 of uniform rounding: n * step^2 / 12, the step halving per bit, smaller groups finer
			 */
			double step = pow(2, -s.bits) * (s.group_size == 32 ? 0.8 : 1.0) * (0.9 + 0.2 * urand());
			cost[i * NC + c] = trace * (double)(sh[0] * sh[1]) * (double)(sh[0] * sh[1]) * step * step / 12;
		}
		lo += size[i * NC + 0] < size[i * NC + 1] ? size[i * NC + 0] : size[i * NC + 1];
		hi += size[i * NC + 10] > size[i * NC + 11] ? size[i * NC + 10] : size[i * NC + 11];
	}
	shrink_knapsack k = {.n_items = N, .n_choices = NC, .size = size, .cost = cost};
	for (int t = 0; t < 3; t++) {
		double bpw = t == 0 ? 3.0 : t == 1 ? 4.25 : 5.5;
		k.budget = (int64_t)(bpw * (double)n_params / 8);
		cr_assert(k.budget > lo && k.budget < hi);
		shrink_knapsack_solution ilp, dp;
		shrink_error err;
		cr_assert_eq(shrink_knapsack_ilp(&k, &ilp, &err), SHRINK_OK, "%s", err.msg);
		check_solution(&k, &ilp);
		cr_assert_eq(shrink_knapsack_dp(&k, &dp, &err), SHRINK_OK, "%s", err.msg);
		check_solution(&k, &dp);
		/* the DP is exact when no rounding was needed, else it can only do worse */
		if (dp.exact)
			cr_assert(fabs(dp.cost - ilp.cost) <= 1e-9 * ilp.cost, "ILP %.12g DP %.12g", ilp.cost, dp.cost);
		else
			cr_assert_leq(ilp.cost, dp.cost * (1 + 1e-9));
		cr_log_info(
		    "llama3-8b shape, 224 x 12, %.2f bpw: ILP %s, %.3f s, gap %g; DP %s, %.3f s, cost ratio %.9f", bpw,
		    ilp.status, ilp.seconds, ilp.gap, dp.exact ? "exact" : "rounded", dp.seconds, dp.cost / ilp.cost);
		fprintf(stderr, "llama3-8b shape, 224 x 12, %.2f bpw: ILP %s in %.3f s (gap %g); DP %s in %.3f s\n",
			bpw, ilp.status, ilp.seconds, ilp.gap, dp.exact ? "exact" : "rounded", dp.seconds);
		shrink_knapsack_solution_free(&ilp);
		shrink_knapsack_solution_free(&dp);
	}
	free(size), free(cost);
}

/* ---- a synthetic calibration and plan ---- */

enum { NT = 5 };

/* Tensors: a vector, then matrices; schemes bits {2, 4, 8} x groups {16, 32}. */
static void fake_calibration(shrink_calibration *c, bool with_kl)
{
	static const int64_t shape[NT][2] = {{32, 0}, {16, 64}, {32, 64}, {64, 32}, {8, 48}};
	memset(c, 0, sizeof *c);
	shrink_calib_defaults(&c->params);
	shrink_calib_params *p = &c->params;
	p->n_bits = 3, p->bits[0] = 2, p->bits[1] = 4, p->bits[2] = 8;
	p->n_groups = 2, p->groups[0] = 16, p->groups[1] = 32, p->group_size = 16;
	p->measure_kl = with_kl;
	c->n_tensors = NT;
	c->tensors = calloc(NT, sizeof *c->tensors);
	c->loss = 2.5;
	c->n_text_tokens = 1000;
	for (int i = 0; i < NT; i++) {
		shrink_tensor_sense *t = &c->tensors[i];
		snprintf(t->name, sizeof t->name, "model.layers.%d.w.weight", i);
		t->rows = shape[i][0], t->cols = shape[i][1];
		t->n_params = t->rows * (t->cols ? t->cols : 1);
		c->n_params += t->n_params;
		t->trace = i == 3 ? -0.5 : 1.0 + i, t->trace_se = 0.1, t->iterations = 10 + i, t->converged = i % 2;
		if (!t->cols)
			continue;
		t->schemes = calloc(6, sizeof *t->schemes);
		for (int b = 0; b < 6; b++) {
			shrink_qscheme s = shrink_calib_scheme(p, b);
			shrink_scheme_sense *e = &t->schemes[b];
			e->bits = s.bits, e->group_size = s.group_size;
			e->size_bits = (int64_t)shrink_qmatrix_bytes(&s, t->rows, t->cols) * 8;
			e->dw_sq = t->n_params * pow(4, -s.bits) * (s.group_size == 16 ? 0.7 : 1) * (1 + 0.1 * i);
			e->omega = t->trace / t->n_params * e->dw_sq;
			e->proxy = 3 * e->dw_sq;
			e->kl = with_kl ? 1e-3 * e->dw_sq * (NT - i) : NAN;
		}
	}
}

/* fixed bytes + frac of the way from the smallest to the largest allocation */
static int64_t budget_at(const shrink_calibration *c, const shrink_quant_plan *plan, double frac)
{
	int64_t lo = 4 * 32 + (int64_t)plan->e[NT].n_bytes, hi = lo;
	for (int i = 1; i < NT; i++) {
		int64_t a = INT64_MAX, b = 0;
		for (int s = 0; s < 6; s++) {
			int64_t n = c->tensors[i].schemes[s].size_bits / 8;
			a = n < a ? n : a, b = n > b ? n : b;
		}
		lo += a, hi += b;
	}
	return lo + (int64_t)(frac * (double)(hi - lo));
}

static void fake_plan(const shrink_calibration *c, shrink_quant_plan *plan)
{
	memset(plan, 0, sizeof *plan);
	plan->n = NT + 1;
	plan->e = calloc(plan->n, sizeof *plan->e);
	for (int i = 0; i < NT; i++) {
		shrink_plan_entry *e = &plan->e[i];
		const shrink_tensor_sense *t = &c->tensors[i];
		snprintf(e->name, sizeof e->name, "%s", t->name);
		e->rows = t->rows, e->cols = t->cols ? t->cols : 1, e->n_params = t->n_params;
		e->quantized = t->cols > 0;
		e->scheme = (shrink_qscheme){4, 128, false};
		e->dtype = SHRINK_F32;
		e->n_bytes =
		    e->quantized ? shrink_qmatrix_bytes(&e->scheme, e->rows, e->cols) : 4 * (size_t)e->n_params;
	}
	shrink_plan_entry *x = &plan->e[NT]; /* a matrix the calibration does not cover: fixed */
	snprintf(x->name, sizeof x->name, "extra.weight");
	x->rows = 8, x->cols = 16, x->n_params = 128, x->quantized = true;
	x->scheme = (shrink_qscheme){8, 16, true};
	x->n_bytes = shrink_qmatrix_bytes(&x->scheme, 8, 16);
	for (size_t i = 0; i < plan->n; i++)
		plan->total_bytes += plan->e[i].n_bytes, plan->n_params += plan->e[i].n_params;
}

/* The objective's optimum over the 4 matrices by enumeration (6^4 configurations). */
static double brute_objective(const shrink_calibration *c, const shrink_quant_plan *plan, int64_t budget,
			      int min_bits_item, int min_bits,
			      double (*metric)(const shrink_tensor_sense *, const shrink_scheme_sense *))
{
	int64_t fixed = 4 * 32 + (int64_t)plan->e[NT].n_bytes;
	double best = INFINITY;
	for (int code = 0; code < 6 * 6 * 6 * 6; code++) {
		int64_t size = fixed;
		double cost = 0;
		bool ok = true;
		for (int i = 1, r = code; i < NT; i++, r /= 6) {
			const shrink_scheme_sense *e = &c->tensors[i].schemes[r % 6];
			size += e->size_bits / 8;
			cost += metric(&c->tensors[i], e);
			ok &= i != min_bits_item || e->bits >= min_bits;
		}
		if (ok && size <= budget && cost < best)
			best = cost;
	}
	return best;
}

/* Omega with the trace raised to its standard error when below it (tensor 3's trace is -0.5 +- 0.1) */
static double omega_se(const shrink_tensor_sense *t, const shrink_scheme_sense *e)
{
	return fmax(t->trace, t->trace_se) / t->n_params * e->dw_sq;
}
static double kl_of(const shrink_tensor_sense *t, const shrink_scheme_sense *e)
{
	(void)t;
	return e->kl;
}

Test(allocate, plan_rewritten_within_budget)
{
	shrink_calibration c;
	shrink_quant_plan plan;
	fake_calibration(&c, true);
	fake_plan(&c, &plan);
	int64_t budget = budget_at(&c, &plan, 0.4);
	shrink_tensor_rule rule = {"layers\\.2\\.", 8};
	shrink_alloc_params p = {
	    .objective = SHRINK_OBJ_HAWQ, .budget_bytes = budget, .min_bits = &rule, .n_min_bits = 1};
	shrink_allocation a;
	shrink_error err;
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(a.n, 4);
	cr_assert_eq(a.fixed_bytes, 4 * 32 + (int64_t)plan.e[NT].n_bytes);
	cr_assert_leq((int64_t)plan.total_bytes, budget);
	size_t sum = 0;
	for (size_t i = 0; i < plan.n; i++)
		sum += plan.e[i].n_bytes;
	cr_assert_eq(sum, plan.total_bytes);
	cr_assert_eq(plan.e[2].scheme.bits, 8, "the minimum-bits rule holds");
	cr_assert(plan.e[2].scheme.symmetric, "the calibration's schemes are symmetric");
	cr_assert_eq(plan.e[NT].scheme.bits, 8, "the uncovered matrix keeps its scheme");
	double want = brute_objective(&c, &plan, budget, 2, 8, omega_se), got = 0;
	for (int i = 0; i < a.n; i++)
		got += a.cost[i];
	cr_assert(fabs(got - want) <= 1e-9 * want, "allocation %.12g, enumeration %.12g", got, want);
	cr_assert(fabs(a.solution.cost - want) <= 1e-9 * want);
	shrink_allocation_free(&a);

	p.objective = SHRINK_OBJ_KL, p.n_min_bits = 0;
	shrink_quant_plan_free(&plan);
	fake_plan(&c, &plan);
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_OK, "%s", err.msg);
	want = brute_objective(&c, &plan, budget, -1, 0, kl_of);
	cr_assert(fabs(a.solution.cost - want) <= 1e-9 * want);
	shrink_allocation_free(&a);

	p.budget_bytes = 100; /* too small: the message names the smallest feasible budget */
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_EINPUT);
	cr_assert(strstr(err.msg, "smallest feasible budget"), "%s", err.msg);
	shrink_quant_plan_free(&plan);
	shrink_calibration_free(&c);
}

Test(allocate, decoupled_and_missing_metrics)
{
	shrink_calibration c;
	shrink_quant_plan plan;
	fake_calibration(&c, false);
	fake_plan(&c, &plan);
	shrink_alloc_params p = {
	    .objective = SHRINK_OBJ_DECOUPLED, .weight = {1, 1}, .budget_bytes = budget_at(&c, &plan, 0.5)};
	shrink_allocation a;
	shrink_error err;
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_EINPUT, "no KL measured");
	cr_assert(strstr(err.msg, "--measure kl"), "%s", err.msg);
	shrink_calibration_free(&c);
	fake_calibration(&c, true);
	/* weights 1,0 with a cap on KL: enumerate the same */
	p.weight[1] = 0, p.cap = 0.05;
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_OK, "%s", err.msg);
	double n0 = 0, n1 = 0;
	for (int i = 1; i < NT; i++) {
		double h0 = 0, h1 = 0;
		for (int b = 0; b < 6; b++)
			h0 = fmax(h0, omega_se(&c.tensors[i], &c.tensors[i].schemes[b])), h1 = fmax(h1, c.tensors[i].schemes[b].kl);
		n0 += h0, n1 += h1;
	}
	cr_assert(fabs(a.norm[0] - n0) <= 1e-12 * n0 && fabs(a.norm[1] - n1) <= 1e-12 * n1);
	double kl = 0, om = 0;
	for (int i = 0; i < a.n; i++) {
		kl += c.tensors[a.tensor[i]].schemes[a.scheme[i]].kl / n1;
		om += omega_se(&c.tensors[a.tensor[i]], &c.tensors[a.tensor[i]].schemes[a.scheme[i]]) / n0;
	}
	cr_assert_leq(kl, 0.05 * (1 + 1e-9));
	double best = INFINITY; /* enumeration of the capped problem */
	for (int code = 0; code < 6 * 6 * 6 * 6; code++) {
		int64_t size = a.fixed_bytes;
		double k2 = 0, o2 = 0;
		for (int i = 1, r = code; i < NT; i++, r /= 6) {
			const shrink_scheme_sense *e = &c.tensors[i].schemes[r % 6];
			size += e->size_bits / 8, k2 += e->kl / n1, o2 += omega_se(&c.tensors[i], e) / n0;
		}
		if (size <= p.budget_bytes && k2 <= 0.05 && o2 < best)
			best = o2;
	}
	cr_assert(fabs(om - best) <= 1e-9 * best, "capped: %.12g, enumeration %.12g", om, best);
	shrink_allocation_free(&a);
	p.weight[0] = 1, p.weight[1] = 1; /* a cap with both weights set is a usage error */
	cr_assert_eq(shrink_allocate(&c, &plan, &p, &a, &err), SHRINK_EUSAGE);
	shrink_quant_plan_free(&plan);
	shrink_calibration_free(&c);
}

/* ---- the calibration file ---- */

static bool close(double a, double b)
{
	return fabs(a - b) <= 1e-14 * fabs(a);
}

static void same_calibration(const shrink_calibration *a, const shrink_calibration *b)
{
	cr_assert_eq(a->n_tensors, b->n_tensors);
	cr_assert_eq(a->n_params, b->n_params);
	cr_assert_eq(shrink_calib_n_schemes(&a->params), shrink_calib_n_schemes(&b->params));
	cr_assert_eq(a->params.n_groups, b->params.n_groups);
	cr_assert_eq(a->params.symmetric, b->params.symmetric);
	cr_assert_eq(a->params.measure_kl, b->params.measure_kl);
	cr_assert(close(a->loss, b->loss));
	for (int i = 0; i < a->n_tensors; i++) {
		const shrink_tensor_sense *s = &a->tensors[i], *t = &b->tensors[i];
		cr_assert_str_eq(s->name, t->name);
		cr_assert(s->rows == t->rows && s->cols == t->cols && s->n_params == t->n_params);
		cr_assert(close(s->trace, t->trace) && s->iterations == t->iterations && s->converged == t->converged);
		cr_assert_eq(s->schemes == NULL, t->schemes == NULL);
		for (int b = 0; s->schemes && b < shrink_calib_n_schemes(&a->params); b++) {
			const shrink_scheme_sense *x = &s->schemes[b], *y = &t->schemes[b];
			cr_assert(x->bits == y->bits && x->group_size == y->group_size && x->size_bits == y->size_bits);
			/* cJSON prints 15 significant digits when they read back within about an ulp, else 17 */
			cr_assert(close(x->omega, y->omega) && close(x->dw_sq, y->dw_sq) && close(x->proxy, y->proxy));
			cr_assert((isnan(x->kl) && isnan(y->kl)) || close(x->kl, y->kl));
		}
	}
}

Test(calibration_file, round_trip)
{
	for (int kl = 0; kl < 2; kl++) {
		shrink_calibration c, d;
		fake_calibration(&c, kl);
		char *json = shrink_calibration_json(&c, "model", "text");
		shrink_error err;
		cr_assert_eq(shrink_calibration_parse(json, strlen(json), "calib.json", &d, &err), SHRINK_OK, "%s",
			     err.msg);
		same_calibration(&c, &d);
		shrink_calibration_free(&d);
		free(json);
		shrink_calibration_free(&c);
	}
}

Test(calibration_file, truncated_at_every_byte)
{
	shrink_calibration c, d;
	fake_calibration(&c, true);
	char *json = shrink_calibration_json(&c, "model", "text");
	size_t n = strlen(json);
	shrink_error err;
	for (size_t len = 0; len < n; len++) {
		shrink_status st = shrink_calibration_parse(json, len, "cut.json", &d, &err);
		cr_assert_eq(st, SHRINK_EINPUT, "cut at %zu of %zu", len, n);
		cr_assert(strstr(err.msg, "cut.json"));
	}
	free(json);
	shrink_calibration_free(&c);
}

/* Replace the first occurrence of from by to, parse, expect bad input mentioning want. */
static void expect_bad(const char *json, const char *from, const char *to, const char *want)
{
	const char *at = strstr(json, from);
	cr_assert(at, "'%s' not in the file", from);
	size_t n = strlen(json) + strlen(to) + 1;
	char *bad = malloc(n);
	snprintf(bad, n, "%.*s%s%s", (int)(at - json), json, to, at + strlen(from));
	shrink_calibration d;
	shrink_error err = {0};
	shrink_status st = shrink_calibration_parse(bad, strlen(bad), "bad.json", &d, &err);
	cr_assert_eq(st, SHRINK_EINPUT, "'%s' -> '%s' accepted", from, to);
	cr_assert(strstr(err.msg, want), "'%s' -> '%s': message '%s' lacks '%s'", from, to, err.msg, want);
	free(bad);
}

Test(calibration_file, malformed_fields)
{
	shrink_calibration c;
	fake_calibration(&c, true);
	char *j = shrink_calibration_json(&c, "model", "text");
	expect_bad(j, "\"shrink-calibration\"", "\"other\"", "format");
	expect_bad(j, "\"version\":\t1", "\"version\":\t\"1\"", "version");
	expect_bad(j, "\"version\":\t1", "\"version\":\t1.5", "version");
	expect_bad(j, "\"samples\":\t16", "\"samples\":\t0", "samples");
	expect_bad(j, "\"loss\":\t2.5", "\"loss\":\t1e999", "loss");
	expect_bad(j, "\"method\":\t\"hutchinson\"", "\"method\":\t\"magic\"", "magic");
	expect_bad(j, "\"bits\":\t2", "\"bits\":\t7", "bits");
	expect_bad(j, "\"group_size\":\t16", "\"group_size\":\t17", "group");
	expect_bad(j, "\"symmetric\":\ttrue", "\"symmetric\":\t1", "symmetric");
	expect_bad(j, "\"shape\":\t[32]", "\"shape\":\t[32, 0]", "shape");
	expect_bad(j, "\"shape\":\t[32]", "\"shape\":\t[]", "shape");
	expect_bad(j, "\"shape\":\t[16, 64]", "\"shape\":\t[16, 65]", "n_params");
	expect_bad(j, "\"n_params\":\t1024", "\"n_params\":\t1e300", "n_params");
	expect_bad(j, "\"trace\":\t2", "\"trace\":\t\"2\"", "trace");
	expect_bad(j, "\"iterations\":\t11", "\"iterations\":\t-1", "iterations");
	expect_bad(j, "\"converged\":\ttrue", "\"converged\":\tnull", "converged");
	expect_bad(j, "\"size_bits\":\t", "\"size_bits\":\t1", "size_bits");
	expect_bad(j, "\"name\":\t\"model.layers.2.w.weight\"", "\"name\":\t\"model.layers.1.w.weight\"", "twice");
	expect_bad(j, "\"name\":\t\"model.layers.2.w.weight\"", "\"name\":\t\"\"", "name");
	/* a name with conversions in it reaches the message as text */
	expect_bad(j, "\"name\":\t\"model.layers.2.w.weight\"", "\"name\":\t\"%n%s%n\", \"shape\": 5, \"old\": 0",
		   "tensor '%n%s%n'");
	expect_bad(j, "\"tensors\":\t[", "\"tensors\":\t{}, \"x\": [", "tensors");
	expect_bad(j, "\"schemes\":\t[]", "\"schemes\":\t[{}]", "schemes");
	expect_bad(j, "\"kl\":\t", "\"kl\":\t[1],\"y\":", "kl");
	free(j);
	shrink_calibration d;
	shrink_error err;
	cr_assert_eq(shrink_calibration_parse("[1, 2]", 6, "x", &d, &err), SHRINK_EINPUT);
	cr_assert_eq(shrink_calibration_parse("", 0, "x", &d, &err), SHRINK_EINPUT);
	cr_assert_eq(shrink_calibration_parse(NULL, 0, "x", &d, &err), SHRINK_EINPUT);
	cr_assert_neq(shrink_calibration_read("/nonexistent/calib.json", &d, &err), SHRINK_OK);
	cr_assert(strstr(err.msg, "/nonexistent/calib.json"), "%s", err.msg);
	shrink_calibration_free(&c);
}
