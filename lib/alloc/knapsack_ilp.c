/* knapsack_ilp.c: the multiple-choice knapsack as a 0-1 integer programme,
 * solved exactly by GLPK's branch and cut.
 *
 * Formulation: for each item, its usable choices (allowed, and not dominated
 * by another that is no larger, no costlier and no heavier in any extra
 * budget; dropping those cannot change the optimum's cost) are sorted by size,
 * c_0 < c_1 < ... < c_m; binary y_t (t = 1..m) says "choice c_t or a later
 * one", with y_1 >= y_2 >= ... >= y_m. The item's size is
 * size(c_0) + sum_t (size(c_t) - size(c_t-1)) y_t, and likewise its cost and
 * extra weights. This is the same polytope as the one-hot x_ij form, but a
 * branch on y_t splits the choices into "below t" and "t or above", which
 * prunes far better than fixing one x_ij.
 *   minimise   sum costs   subject to   sum sizes <= budget,
 *              sum extra_k <= cap_k,    y_t - y_t+1 >= 0,   y binary.
 * Sizes are integers counted in units of their greatest common divisor, so
 * the budget becomes floor(budget / unit) with no loss; costs are divided by
 * their largest magnitude. Before branching, the root relaxation is rounded
 * (down, then improved greedily) into a configuration whose cost u lets
 * reduced-cost fixing settle most variables; the same rounding is offered as
 * an incumbent at every node. Afterwards the choices' sizes are re-added in
 * integers, and should the solver's tolerance have let a total slip past the
 * budget, the row is tightened by the excess and the programme solved again.
 * Not here: the dynamic programme (knapsack_dp.c), objectives (objective.c). */
#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_impl.h"

#define MAX_RESOLVES 4

typedef struct {
	const shrink_knapsack *k;
	int64_t unit, budget_units;
	int *m;	    /* n_items: usable choices - 1 (the item's y variables) */
	int *col0;  /* n_items: the item's first y column (1-based) */
	int *order; /* n_items x n_choices: usable choices by size */
	int n_cols;
	int *pick;  /* n_items: a configuration, as positions in order */
	double *y;  /* 1 + n_cols: the same as column values */
	double gap; /* the solver's last relative gap */
} ladder;

static bool allowed(const shrink_knapsack *k, int64_t x)
{
	return !k->allowed || k->allowed[x];
}

static bool dominated(const shrink_knapsack *k, int64_t x)
{
	int64_t i0 = x - x % k->n_choices;
	for (int64_t y = i0; y < i0 + k->n_choices; y++) {
		if (y == x || !allowed(k, y) || k->size[y] > k->size[x] || k->cost[y] > k->cost[x])
			continue;
		bool le = true, strict = k->size[y] < k->size[x] || k->cost[y] < k->cost[x];
		for (int e = 0; e < k->n_extra; e++) {
			le &= k->extra[e][y] <= k->extra[e][x];
			strict |= k->extra[e][y] < k->extra[e][x];
		}
		if (le && (strict || y < x))
			return true;
	}
	return false;
}

/* Item i's choices o[0..n) by size, then index (insertion sort: n <= 255). */
static void sort_by_size(const shrink_knapsack *k, int i, int *o, int n)
{
	const int64_t *size = k->size + (int64_t)i * k->n_choices;
	for (int a = 1; a < n; a++) {
		int v = o[a], b = a;
		for (; b > 0 && (size[o[b - 1]] > size[v] || (size[o[b - 1]] == size[v] && o[b - 1] > v)); b--)
			o[b] = o[b - 1];
		o[b] = v;
	}
}

/* Usable choices by size; false when an item has none. */
static bool ladder_init(ladder *L, const shrink_knapsack *k)
{
	int n = k->n_items, nc = k->n_choices;
	L->k = k;
	L->m = malloc((size_t)n * sizeof *L->m);
	L->col0 = malloc((size_t)n * sizeof *L->col0);
	L->order = malloc((size_t)n * nc * sizeof *L->order);
	L->pick = malloc((size_t)n * sizeof *L->pick);
	L->n_cols = 0;
	for (int i = 0; L->order && i < n; i++) {
		int *o = L->order + (size_t)i * nc, cnt = 0;
		for (int j = 0; j < nc; j++)
			if (allowed(k, (int64_t)i * nc + j) && !dominated(k, (int64_t)i * nc + j))
				o[cnt++] = j;
		if (cnt == 0)
			return false;
		sort_by_size(k, i, o, cnt);
		L->m[i] = cnt - 1;
		L->col0[i] = L->n_cols + 1;
		L->n_cols += cnt - 1;
	}
	L->y = malloc(((size_t)L->n_cols + 1) * sizeof *L->y);
	return L->m && L->col0 && L->order && L->pick && L->y;
}

static void ladder_free(ladder *L)
{
	free(L->m), free(L->col0), free(L->order), free(L->pick), free(L->y);
}

/* the knapsack index of item i's choice at position t of its order */
static int64_t at(const ladder *L, int i, int t)
{
	return (int64_t)i * L->k->n_choices + L->order[(size_t)i * L->k->n_choices + t];
}

/* The configuration's total size (in units) and extra weights. */
static void totals(const ladder *L, int64_t *size, double *extra)
{
	const shrink_knapsack *k = L->k;
	*size = 0;
	for (int e = 0; e < k->n_extra; e++)
		extra[e] = 0;
	for (int i = 0; i < k->n_items; i++) {
		int64_t x = at(L, i, L->pick[i]);
		*size += k->size[x] / L->unit;
		for (int e = 0; e < k->n_extra; e++)
			extra[e] += k->extra[e][x];
	}
}

/* Whether totals changed by moving item i from choice x to y fit. */
static bool move_fits(const ladder *L, int64_t size, const double *extra, int64_t x, int64_t y)
{
	const shrink_knapsack *k = L->k;
	if (size + (k->size[y] - k->size[x]) / L->unit > L->budget_units)
		return false;
	for (int e = 0; e < k->n_extra; e++)
		if (extra[e] + k->extra[e][y] - k->extra[e][x] > k->extra_cap[e])
			return false;
	return true;
}

static bool fits(const ladder *L)
{
	int64_t size;
	double extra[SHRINK_ALLOC_MAX_EXTRA];
	totals(L, &size, extra);
	for (int e = 0; e < L->k->n_extra; e++)
		if (extra[e] > L->k->extra_cap[e])
			return false;
	return size <= L->budget_units;
}

/* Spend what is left of the budgets: repeatedly make the single change of one
 * item's choice that lowers the cost most and still fits. */
static void improve(ladder *L)
{
	const shrink_knapsack *k = L->k;
	int64_t size;
	double extra[SHRINK_ALLOC_MAX_EXTRA];
	totals(L, &size, extra);
	for (int round = 0; round < 4 * k->n_items; round++) {
		int bi = -1, bt = -1;
		double best = 0;
		for (int i = 0; i < k->n_items; i++) {
			int64_t x = at(L, i, L->pick[i]);
			for (int t = 0; t <= L->m[i]; t++) {
				int64_t y = at(L, i, t);
				double gain = k->cost[x] - k->cost[y];
				if (gain > best && move_fits(L, size, extra, x, y))
					best = gain, bi = i, bt = t;
			}
		}
		if (bi < 0)
			return;
		int64_t x = at(L, bi, L->pick[bi]), y = at(L, bi, bt);
		size += (k->size[y] - k->size[x]) / L->unit;
		for (int e = 0; e < k->n_extra; e++)
			extra[e] += k->extra[e][y] - k->extra[e][x];
		L->pick[bi] = bt;
	}
}

/* Round a relaxation down (each item to the last y at 1) and improve it. */
static bool round_lp(glp_prob *lp, ladder *L)
{
	for (int i = 0; i < L->k->n_items; i++) {
		int t = 0;
		while (t < L->m[i] && glp_get_col_prim(lp, L->col0[i] + t) > 1 - 1e-7)
			t++;
		L->pick[i] = t;
	}
	if (!fits(L))
		return false;
	improve(L);
	return fits(L); /* the extra weights were summed incrementally: check afresh */
}

static double pick_cost(glp_prob *lp, const ladder *L)
{
	double u = glp_get_obj_coef(lp, 0);
	for (int i = 0; i < L->k->n_items; i++)
		for (int t = 0; t < L->pick[i]; t++)
			u += glp_get_obj_coef(lp, L->col0[i] + t);
	return u;
}

static void watch_cb(glp_tree *t, void *info)
{
	ladder *L = info;
	int r = glp_ios_reason(t);
	if (r == GLP_IHEUR && round_lp(glp_ios_get_prob(t), L)) {
		for (int i = 0; i < L->k->n_items; i++)
			for (int s = 0; s < L->m[i]; s++)
				L->y[L->col0[i] + s] = s < L->pick[i];
		glp_ios_heur_sol(t, L->y);
	}
	if (r == GLP_ISELECT || r == GLP_IBINGO)
		L->gap = glp_ios_mip_gap(t);
}

/* Reduced-cost fixing at the root: with the relaxation's optimum z and a
 * configuration of cost u, a variable at its lower bound whose reduced cost d
 * has z + d > u is 0 in every configuration cheaper than u (at its upper
 * bound, z - d > u: it is 1). The margin keeps round-off from fixing the
 * optimum's values. */
static void fix_by_reduced_cost(glp_prob *lp, ladder *L, double z)
{
	if (!round_lp(lp, L))
		return;
	double u = pick_cost(lp, L), margin = 1e-9 * (fabs(u) + fabs(z)) + 1e-12;
	for (int c = 1; c <= L->n_cols; c++) {
		int st = glp_get_col_stat(lp, c);
		double d = glp_get_col_dual(lp, c);
		if (st == GLP_NL && z + d > u + margin)
			glp_set_col_bnds(lp, c, GLP_FX, 0, 0);
		else if (st == GLP_NU && z - d > u + margin)
			glp_set_col_bnds(lp, c, GLP_FX, 1, 1);
	}
}

static double max_abs(const double *v, int64_t n)
{
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m = fabs(v[i]) > m ? fabs(v[i]) : m;
	return m > 0 ? m : 1;
}

typedef struct {
	int n, cap;
	int *ia, *ja;
	double *ar;
} triplets;

static void put(triplets *t, int row, int col, double v)
{
	++t->n, t->ia[t->n] = row, t->ja[t->n] = col, t->ar[t->n] = v;
}

/* Row 1: size; 2..: extra budgets; then the ladder's order rows. */
static glp_prob *build(const ladder *L, const double *cost, double cost_scale)
{
	const shrink_knapsack *k = L->k;
	int n_order = L->n_cols - k->n_items; /* m_i - 1 per item, where m_i >= 1 */
	for (int i = 0; i < k->n_items; i++)
		n_order += L->m[i] == 0;
	triplets t = {0, 3 * L->n_cols + k->n_extra * L->n_cols + 1, NULL, NULL, NULL};
	t.ia = malloc((size_t)t.cap * sizeof *t.ia), t.ja = malloc((size_t)t.cap * sizeof *t.ja);
	t.ar = malloc((size_t)t.cap * sizeof *t.ar);
	glp_prob *lp = t.ia && t.ja && t.ar ? glp_create_prob() : NULL;
	if (!lp) {
		free(t.ia), free(t.ja), free(t.ar);
		return NULL;
	}
	glp_set_obj_dir(lp, GLP_MIN);
	glp_add_rows(lp, 1 + k->n_extra + n_order);
	glp_add_cols(lp, L->n_cols > 0 ? L->n_cols : 1);
	double base_size = 0, base_cost = 0, base_extra[SHRINK_ALLOC_MAX_EXTRA] = {0};
	int row = 1 + k->n_extra;
	for (int i = 0; i < k->n_items; i++) {
		int64_t x0 = at(L, i, 0);
		base_size += (double)(k->size[x0] / L->unit), base_cost += cost[x0] / cost_scale;
		for (int e = 0; e < k->n_extra; e++)
			base_extra[e] += k->extra[e][x0];
		for (int s = 1; s <= L->m[i]; s++) {
			int c = L->col0[i] + s - 1;
			int64_t x = at(L, i, s), xp = at(L, i, s - 1);
			glp_set_col_kind(lp, c, GLP_BV);
			glp_set_obj_coef(lp, c, (cost[x] - cost[xp]) / cost_scale);
			put(&t, 1, c, (double)((k->size[x] - k->size[xp]) / L->unit));
			for (int e = 0; e < k->n_extra; e++)
				put(&t, 2 + e, c, k->extra[e][x] - k->extra[e][xp]);
			if (s > 1) { /* y_{s-1} - y_s >= 0 */
				++row;
				put(&t, row, c - 1, 1), put(&t, row, c, -1);
				glp_set_row_bnds(lp, row, GLP_LO, 0, 0);
			}
		}
	}
	glp_set_obj_coef(lp, 0, base_cost);
	glp_set_row_bnds(lp, 1, GLP_UP, 0, (double)L->budget_units - base_size);
	for (int e = 0; e < k->n_extra; e++)
		glp_set_row_bnds(lp, 2 + e, GLP_UP, 0, k->extra_cap[e] - base_extra[e]);
	if (L->n_cols == 0) /* every item has one usable choice: a dummy column keeps GLPK happy */
		glp_set_col_bnds(lp, 1, GLP_FX, 0, 0);
	glp_load_matrix(lp, t.n, t.ia, t.ja, t.ar);
	free(t.ia), free(t.ja), free(t.ar);
	return lp;
}

/* The relaxation, reduced-cost fixing, then branch and cut from the root basis. */
static bool solve(glp_prob *lp, ladder *L, double *lp_obj, int *ret)
{
	glp_smcp sp;
	glp_init_smcp(&sp);
	sp.msg_lev = GLP_MSG_OFF;
	if (glp_simplex(lp, &sp) != 0 || glp_get_status(lp) != GLP_OPT)
		return false;
	*lp_obj = glp_get_obj_val(lp);
	fix_by_reduced_cost(lp, L, *lp_obj);
	if (glp_simplex(lp, &sp) != 0 || glp_get_status(lp) != GLP_OPT)
		return false;
	glp_iocp ip;
	glp_init_iocp(&ip);
	ip.msg_lev = GLP_MSG_OFF;
	ip.tol_obj = 1e-10;
	ip.cb_func = watch_cb;
	ip.cb_info = L;
	ip.presolve = GLP_OFF; /* the basis above is the root */
	if (L->k->time_limit > 0)
		ip.tm_lim = L->k->time_limit * 1000 < 2e9 ? (int)(L->k->time_limit * 1000) : 2000000000;
	*ret = glp_intopt(lp, &ip);
	int st = glp_mip_status(lp);
	return st == GLP_OPT || st == GLP_FEAS;
}

static void read_choice(glp_prob *lp, const ladder *L, shrink_knapsack_solution *s)
{
	for (int i = 0; i < L->k->n_items; i++) {
		int t = 0;
		while (t < L->m[i] && glp_mip_col_val(lp, L->col0[i] + t) > 0.5)
			t++;
		s->choice[i] = L->order[(size_t)i * L->k->n_choices + t];
	}
	alloc_sum_choice(L->k, s);
}

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static int64_t size_unit(const shrink_knapsack *k)
{
	int64_t unit = 0;
	for (int64_t x = 0; x < (int64_t)k->n_items * k->n_choices; x++)
		unit = gcd64(k->size[x], unit);
	return unit;
}

static shrink_status infeasible(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err)
{
	s->min_size = alloc_min_size(k);
	if (s->min_size < 0)
		return shrink_fail(err, SHRINK_EINPUT, "no allocation meets the extra budgets whatever the size");
	return shrink_fail(err, SHRINK_EINPUT,
			   "no allocation fits in %lld bytes: the smallest feasible budget is %lld bytes",
			   (long long)k->budget, (long long)s->min_size);
}

/* One solve; *found false when infeasible. */
static shrink_status attempt(ladder *L, const double *cost, double cost_scale, shrink_knapsack_solution *s, bool *found,
			     shrink_error *err)
{
	glp_prob *lp = build(L, cost, cost_scale);
	if (!lp)
		return shrink_fail(err, SHRINK_EIO, "out of memory for the integer programme");
	L->gap = INFINITY;
	int ret = 0;
	double lp_obj = NAN;
	*found = solve(lp, L, &lp_obj, &ret);
	if (*found) {
		read_choice(lp, L, s);
		s->optimal = glp_mip_status(lp) == GLP_OPT;
		s->lp_bound = lp_obj * cost_scale;
		s->gap = s->optimal ? 0 : L->gap;
		snprintf(s->status, sizeof s->status, "%s",
			 s->optimal	     ? "optimal"
			 : ret == GLP_ETMLIM ? "feasible (time limit)"
					     : "feasible");
	}
	glp_delete_prob(lp);
	return SHRINK_OK;
}

static shrink_status run(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err)
{
	ladder L = {.k = k, .unit = size_unit(k)};
	L.budget_units = k->budget / L.unit;
	shrink_status st = SHRINK_OK;
	bool found = false;
	if (!ladder_init(&L, k))
		st = L.order && L.m && L.col0 && L.pick ? infeasible(k, s, err)
							: shrink_fail(err, SHRINK_EIO, "out of memory");
	double cost_scale = max_abs(k->cost, (int64_t)k->n_items * k->n_choices);
	for (int a = 0; !st && a <= MAX_RESOLVES; a++) {
		if ((st = attempt(&L, k->cost, cost_scale, s, &found, err)))
			break;
		if (!found) {
			st = infeasible(k, s, err);
			break;
		}
		if (s->size <= k->budget)
			break;
		L.budget_units -= (s->size - k->budget + L.unit - 1) / L.unit; /* a tolerance let it past */
		if (a == MAX_RESOLVES)
			st = shrink_fail(err, SHRINK_EINTERNAL,
					 "integer programme: the size budget kept being exceeded");
	}
	ladder_free(&L);
	return st;
}

shrink_status shrink_knapsack_ilp(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err)
{
	shrink_status st = alloc_solution_init(k, s, err);
	if (st)
		return st;
	double t0 = shrink_now();
	glp_term_out(GLP_OFF); /* the library never prints */
	st = run(k, s, err);
	s->exact = true;
	s->seconds = shrink_now() - t0;
	return st;
}

/* The smallest total size meeting the extra budgets: the same programme with
 * sizes as costs and no size budget. */
int64_t alloc_min_size_ilp(const shrink_knapsack *k)
{
	int64_t n = (int64_t)k->n_items * k->n_choices;
	double *size = malloc((size_t)n * sizeof *size);
	if (!size)
		return -1;
	for (int64_t x = 0; x < n; x++)
		size[x] = (double)k->size[x];
	shrink_knapsack k2 = *k;
	k2.cost = size;
	ladder L = {.k = &k2, .unit = size_unit(k), .budget_units = INT64_MAX / 4};
	int64_t total = -1;
	shrink_knapsack_solution s = {0};
	bool found = false;
	s.choice = malloc((size_t)k->n_items * sizeof *s.choice);
	shrink_error err;
	if (s.choice && ladder_init(&L, &k2) && !attempt(&L, size, max_abs(size, n), &s, &found, &err) && found)
		total = s.size;
	ladder_free(&L);
	free(s.choice), free(size);
	return total;
}
