/* test_sense.c: lib/sense against closed forms and brute force.
 * Hutchinson on a single linear layer with squared-error loss, whose trace is
 * 2 * rows * ||X||_F^2 / N (exact, central- and forward-difference products):
 * within 3 standard errors, standard errors shrinking as 1/sqrt(iterations),
 * stopping rules, seeds. The Pareto dynamic programme against enumeration.
 * Windows. A whole calibration of a random in-memory model: Omega's formula,
 * the proxy against (2/N) ||dW X||^2 computed here, KL and error ordering,
 * byte-identical JSON whatever the thread count, and the side files.
 * The exact Hessian of a real (tiny) model is tests/ref/test_hessian_ref.py. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shrink/shrink.h"
#include "shrink/sense.h"

static uint64_t rng_state;

static double drand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((rng_state >> 11) / (double)(1ull << 53)) * 2 - 1;
}

/* ---- a single linear layer, L(W) = 1/N sum_n ||W x_n - y_n||^2 ---- */

enum { ROWS = 6, COLS = 10, NS = 20 };

typedef struct {
	double X[COLS][NS], Y[ROWS][NS];
} linear;

static void linear_init(linear *p)
{
	rng_state = 5;
	for (int c = 0; c < COLS; c++)
		for (int n = 0; n < NS; n++)
			p->X[c][n] = drand() * (1 + c % 3);
	for (int r = 0; r < ROWS; r++)
		for (int n = 0; n < NS; n++)
			p->Y[r][n] = drand();
}

static double linear_trace(const linear *p)
{
	double fro = 0;
	for (int c = 0; c < COLS; c++)
		for (int n = 0; n < NS; n++)
			fro += p->X[c][n] * p->X[c][n];
	return 2.0 * ROWS * fro / NS;
}

/* grad += scale * (2/N) (W X - Y) X^T */
static shrink_status linear_grad(void *user, const float *w, float scale, float *grad, shrink_error *err)
{
	const linear *p = user;
	for (int r = 0; r < ROWS; r++) {
		double res[NS];
		for (int n = 0; n < NS; n++) {
			res[n] = -p->Y[r][n];
			for (int c = 0; c < COLS; c++)
				res[n] += w[r * COLS + c] * p->X[c][n];
		}
		for (int c = 0; c < COLS; c++) {
			double g = 0;
			for (int n = 0; n < NS; n++)
				g += res[n] * p->X[c][n];
			grad[r * COLS + c] += (float)(scale * 2.0 * g / NS);
		}
	}
	return SHRINK_OK;
}

/* hv = (2/N) V X X^T */
static shrink_status linear_hvp(void *user, const float *v, float *hv, shrink_error *err)
{
	const linear *p = user;
	for (int r = 0; r < ROWS; r++)
		for (int c = 0; c < COLS; c++) {
			double s = 0;
			for (int n = 0; n < NS; n++) {
				double vx = 0;
				for (int k = 0; k < COLS; k++)
					vx += v[r * COLS + k] * p->X[k][n];
				s += vx * p->X[c][n];
			}
			hv[r * COLS + c] = (float)(2.0 * s / NS);
		}
	return SHRINK_OK;
}

static const int64_t WHOLE[] = {0, ROWS * COLS};

static shrink_trace run_hutch(shrink_hvp_fn fn, void *user, int min_iter, int max_iter, double tol, uint64_t seed,
			      int *iters)
{
	shrink_error err = {0};
	shrink_trace tr;
	shrink_hutch_params hp = {min_iter, max_iter, tol, seed, NULL, NULL};
	cr_assert_eq(shrink_hutchinson(ROWS * COLS, 1, WHOLE, fn, user, &hp, &tr, iters, &err), SHRINK_OK, "%s",
		     err.msg);
	return tr;
}

Test(hutchinson, linear_layer_exact_product_within_3se)
{
	linear p;
	linear_init(&p);
	int iters;
	shrink_trace tr = run_hutch(linear_hvp, &p, 300, 300, 0, 1, &iters);
	double want = linear_trace(&p);
	cr_assert_eq(iters, 300);
	cr_assert_eq(tr.iterations, 300);
	cr_assert(!tr.converged);
	cr_assert(fabs(tr.trace - want) <= 3 * tr.se, "trace %g +- %g, closed form %g", tr.trace, tr.se, want);
	cr_assert_gt(tr.se, 0);
}

Test(hutchinson, per_block_traces)
{
	linear p;
	linear_init(&p);
	shrink_error err = {0};
	int64_t start[] = {0, 2 * COLS, ROWS * COLS}; /* rows 0-1 and rows 2-5 */
	shrink_trace tr[2];
	shrink_hutch_params hp = {400, 400, 0, 3, NULL, NULL};
	int iters;
	cr_assert_eq(shrink_hutchinson(ROWS * COLS, 2, start, linear_hvp, &p, &hp, tr, &iters, &err), SHRINK_OK);
	double per_row = linear_trace(&p) / ROWS;
	cr_assert(fabs(tr[0].trace - 2 * per_row) <= 3 * tr[0].se, "%g +- %g vs %g", tr[0].trace, tr[0].se,
		  2 * per_row);
	cr_assert(fabs(tr[1].trace - 4 * per_row) <= 3 * tr[1].se, "%g +- %g vs %g", tr[1].trace, tr[1].se,
		  4 * per_row);
}

static void check_fd(shrink_hvp_method method)
{
	linear p;
	linear_init(&p);
	shrink_error err = {0};
	float w[ROWS * COLS], v[ROWS * COLS], hv[ROWS * COLS], exact[ROWS * COLS];
	rng_state = 8;
	for (int i = 0; i < ROWS * COLS; i++) {
		w[i] = (float)drand();
		v[i] = drand() > 0 ? 1.0f : -1.0f;
	}
	shrink_fd_hvp h;
	double eps = shrink_hvp_step(w, ROWS * COLS, 1e-2);
	cr_assert_eq(shrink_fd_hvp_init(&h, linear_grad, &p, w, ROWS * COLS, method, eps, &err), SHRINK_OK);
	cr_assert_eq(shrink_fd_hvp_apply(&h, v, hv, &err), SHRINK_OK);
	linear_hvp(&p, v, exact, &err);
	double num = 0, den = 0;
	for (int i = 0; i < ROWS * COLS; i++) {
		num += (hv[i] - exact[i]) * (hv[i] - exact[i]);
		den += exact[i] * exact[i];
	}
	cr_assert(sqrt(num / den) < 1e-3, "differences of a quadratic's gradient: relative error %g", sqrt(num / den));
	int iters;
	shrink_trace tr = run_hutch(shrink_fd_hvp_apply, &h, 200, 200, 0, 2, &iters);
	double want = linear_trace(&p);
	cr_assert(fabs(tr.trace - want) <= 3 * tr.se, "trace %g +- %g, closed form %g", tr.trace, tr.se, want);
	shrink_fd_hvp_free(&h);
}

Test(hutchinson, linear_layer_central_differences)
{
	check_fd(SHRINK_HVP_CENTRAL);
}

Test(hutchinson, linear_layer_forward_differences)
{
	check_fd(SHRINK_HVP_FORWARD);
}

Test(hutchinson, standard_error_shrinks_as_inverse_sqrt)
{
	linear p;
	linear_init(&p);
	int iters;
	double ratio_sum = 0;
	for (uint64_t seed = 10; seed < 14; seed++) {
		shrink_trace a = run_hutch(linear_hvp, &p, 50, 50, 0, seed, &iters);
		shrink_trace b = run_hutch(linear_hvp, &p, 200, 200, 0, seed, &iters);
		ratio_sum += a.se / b.se;
	}
	double ratio = ratio_sum / 4; /* sqrt(200 / 50) = 2 */
	cr_assert(ratio > 1.7 && ratio < 2.3, "se(50) / se(200) = %g, expected about 2", ratio);
}

static shrink_status diag_hvp(void *user, const float *v, float *hv, shrink_error *err)
{
	for (int i = 0; i < ROWS * COLS; i++)
		hv[i] = (float)(i % 7) * v[i];
	return SHRINK_OK;
}

Test(hutchinson, diagonal_hessian_is_exact_and_stops)
{
	int iters;
	shrink_trace tr = run_hutch(diag_hvp, NULL, 5, 100, 1e-3, 4, &iters);
	double want = 0;
	for (int i = 0; i < ROWS * COLS; i++)
		want += i % 7;
	cr_assert_eq(tr.trace, want);
	cr_assert_eq(tr.se, 0);
	cr_assert(tr.converged);
	cr_assert_eq(iters, 5, "stops at --min-iter when the mean does not move");
}

Test(hutchinson, tolerance_seed_and_errors)
{
	linear p;
	linear_init(&p);
	int i1, i2, i3;
	shrink_trace a = run_hutch(linear_hvp, &p, 3, 500, 0.2, 9, &i1);
	shrink_trace b = run_hutch(linear_hvp, &p, 3, 500, 0.2, 9, &i2);
	shrink_trace c = run_hutch(linear_hvp, &p, 3, 500, 0.2, 10, &i3);
	cr_assert(a.converged && i1 >= 3 && i1 < 500, "a loose tolerance stops early (%d iterations)", i1);
	cr_assert(a.trace == b.trace && a.se == b.se && i1 == i2, "same seed, same estimate");
	cr_assert(a.trace != c.trace, "another seed, another estimate");
	shrink_error err = {0};
	shrink_trace tr;
	shrink_hutch_params bad = {0, 10, 1e-3, 0, NULL, NULL};
	cr_assert_eq(shrink_hutchinson(ROWS * COLS, 1, WHOLE, linear_hvp, &p, &bad, &tr, &i1, &err), SHRINK_EUSAGE);
	int64_t outside[] = {0, ROWS * COLS + 1};
	shrink_hutch_params ok = {1, 10, 1e-3, 0, NULL, NULL};
	cr_assert_eq(shrink_hutchinson(ROWS * COLS, 1, outside, linear_hvp, &p, &ok, &tr, &i1, &err), SHRINK_EUSAGE);
}

static shrink_status nan_hvp(void *user, const float *v, float *hv, shrink_error *err)
{
	for (int i = 0; i < ROWS * COLS; i++)
		hv[i] = NAN;
	return SHRINK_OK;
}

Test(hutchinson, non_finite_products_are_bad_input)
{
	shrink_error err = {0};
	shrink_trace tr;
	int iters;
	shrink_hutch_params hp = {1, 10, 1e-3, 0, NULL, NULL};
	cr_assert_eq(shrink_hutchinson(ROWS * COLS, 1, WHOLE, nan_hvp, NULL, &hp, &tr, &iters, &err), SHRINK_EINPUT);
}

/* ---- Pareto ---- */

Test(pareto, matches_enumeration)
{
	enum { ITEMS = 5, CHOICES = 3 };
	shrink_error err = {0};
	for (int trial = 0; trial < 20; trial++) {
		int64_t size[ITEMS * CHOICES];
		double cost[ITEMS * CHOICES];
		rng_state = 100 + trial;
		for (int i = 0; i < ITEMS; i++)
			for (int b = 0; b < CHOICES; b++) {
				size[i * CHOICES + b] = 24 * (1 + b) * (1 + i % 3) + 8 * (int)(3 * fabs(drand()));
				cost[i * CHOICES + b] = (3 - b) * (1 + fabs(drand()));
			}
		shrink_pareto_front f;
		cr_assert_eq(shrink_pareto(ITEMS, CHOICES, size, cost, &f, &err), SHRINK_OK, "%s", err.msg);
		cr_assert(f.exact);
		/* every point: its cost is the least over configurations no larger, and beats all smaller points */
		for (size_t k = 0; k < f.n; k++) {
			double best = INFINITY;
			for (int cfg = 0; cfg < 243; cfg++) { /* 3^5 */
				int64_t s = 0;
				double c = 0;
				for (int i = 0, x = cfg; i < ITEMS; i++, x /= 3)
					s += size[i * CHOICES + x % 3], c += cost[i * CHOICES + x % 3];
				if (s <= f.size_bytes[k])
					best = fmin(best, c);
			}
			cr_assert(fabs(f.cost[k] - best) < 1e-9, "point %zu: cost %g, enumeration %g", k, f.cost[k],
				  best);
			int64_t s = 0;
			for (int i = 0; i < ITEMS; i++)
				s += size[i * CHOICES + f.choice[k * ITEMS + i]];
			cr_assert_eq(s, f.size_bytes[k]);
			if (k > 0)
				cr_assert(f.size_bytes[k] > f.size_bytes[k - 1] && f.cost[k] < f.cost[k - 1]);
		}
		shrink_pareto_free(&f);
	}
	double nan_cost[] = {1, NAN};
	int64_t sizes[] = {1, 2};
	shrink_pareto_front f;
	cr_assert_eq(shrink_pareto(1, 2, sizes, nan_cost, &f, &err), SHRINK_EINPUT);
}

/* ---- windows ---- */

Test(windows, seeded_with_bos)
{
	int text[50], a[3 * 8], b[3 * 8], c[3 * 8];
	for (int i = 0; i < 50; i++)
		text[i] = 100 + i;
	shrink_error err = {0};
	cr_assert_eq(shrink_calib_windows(text, 50, 3, 8, 1, 42, a, &err), SHRINK_OK);
	cr_assert_eq(shrink_calib_windows(text, 50, 3, 8, 1, 42, b, &err), SHRINK_OK);
	cr_assert_eq(shrink_calib_windows(text, 50, 3, 8, 1, 43, c, &err), SHRINK_OK);
	cr_assert_eq(memcmp(a, b, sizeof a), 0);
	cr_assert_neq(memcmp(a, c, sizeof a), 0);
	for (int s = 0; s < 3; s++) {
		cr_assert_eq(a[s * 8], 1, "window %d starts with BOS", s);
		for (int i = 2; i < 8; i++)
			cr_assert_eq(a[s * 8 + i], a[s * 8 + i - 1] + 1, "consecutive text");
	}
	int big[60];
	cr_assert_eq(shrink_calib_windows(text, 50, 1, 51, 1, 0, big, &err), SHRINK_OK, "50 text tokens + BOS fit");
	cr_assert_eq(shrink_calib_windows(text, 50, 1, 52, 1, 0, big, &err), SHRINK_EINPUT);
}

/* ---- a whole calibration ---- */

static float frand(void)
{
	return (float)drand();
}

static void add_tensor(shrink_model *m, const char *name, int64_t rows, int64_t cols, float base, float amp)
{
	shrink_error err = {0};
	shrink_tensor *t = shrink_tensor_set_add(&m->file.weights, &err);
	cr_assert_not_null(t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->dtype = SHRINK_F32;
	t->n_dims = cols ? 2 : 1;
	t->shape[0] = rows;
	t->shape[1] = cols;
	int64_t n = rows * (cols ? cols : 1);
	float *d = malloc((size_t)n * 4);
	for (int64_t i = 0; i < n; i++)
		d[i] = base + amp * frand();
	t->data = t->owned = d;
	t->n_bytes = (size_t)n * 4;
}

/* dim 32, 2 layers of 4 heads / 2 KV heads of 8, ffn 48, vocab 40, Q/K/V biases, tied embeddings */
static shrink_model *tiny_model(void)
{
	shrink_model *m = calloc(1, sizeof *m);
	shrink_config *c = &m->file.config;
	rng_state = 21;
	snprintf(c->arch, sizeof c->arch, "qwen2");
	c->dim = 32, c->n_layers = 2, c->head_dim = 8, c->vocab_size = 40, c->max_seq = 64;
	c->norm_eps = 1e-5f, c->rope_theta = 10000, c->qkv_bias = true, c->tied_embeddings = true;
	c->bos_id = 1, c->eos_id = 2;
	shrink_config_set_uniform(c, 4, 2, 48);
	add_tensor(m, "model.embed_tokens.weight", 40, 32, 0, 0.5f);
	add_tensor(m, "model.norm.weight", 32, 0, 1, 0.1f);
	const char *mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
			      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
	int64_t shapes[][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32}, {48, 32}, {48, 32}, {32, 48}};
	char name[128];
	for (int l = 0; l < 2; l++) {
		for (int i = 0; i < 7; i++) {
			snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, mats[i]);
			add_tensor(m, name, shapes[i][0], shapes[i][1], 0, 0.3f);
			if (i < 3) {
				snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, mats[i]);
				add_tensor(m, name, shapes[i][0], 0, 0, 0.2f);
			}
		}
		snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
		add_tensor(m, name, 32, 0, 1, 0.1f);
		snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
		add_tensor(m, name, 32, 0, 1, 0.1f);
	}
	snprintf(m->path, sizeof m->path, "tiny");
	shrink_error err = {0};
	cr_assert_eq(shrink_model_bind(m, &err), SHRINK_OK, "%s", err.msg);
	return m;
}

static void free_model(shrink_model *m)
{
	free(m->layers);
	shrink_tensor_set_free(&m->file.weights);
	free(m);
}

enum { TEXT = 300 };

static void text_tokens(int *t)
{
	rng_state = 77;
	for (int i = 0; i < TEXT; i++)
		t[i] = 3 + (int)(fabs(drand()) * 36.999);
}

static void calib_params(shrink_calib_params *p)
{
	shrink_calib_defaults(p);
	p->n_samples = 3;
	p->ctx = 12;
	p->seed = 5;
	p->min_iter = 20;
	p->max_iter = 60;
	p->n_bits = 3;
	p->bits[0] = 2, p->bits[1] = 4, p->bits[2] = 8;
	p->group_size = 16;
	p->measure_kl = true;
}

static char *calibrate_json(shrink_model *m, const shrink_calib_params *p, shrink_calibration *c)
{
	shrink_error err = {0};
	int text[TEXT];
	text_tokens(text);
	cr_assert_eq(shrink_calibrate(m, text, TEXT, p, c, &err), SHRINK_OK, "%s", err.msg);
	return shrink_calibration_json(c, "tiny", "text");
}

Test(calibrate, fields_and_formulas)
{
	shrink_model *m = tiny_model();
	shrink_calib_params p;
	calib_params(&p);
	shrink_calibration c;
	char *json = calibrate_json(m, &p, &c);
	cr_assert_eq(c.n_tensors, (int)m->file.weights.n);
	cr_assert(isfinite(c.loss) && c.loss > 0);
	cr_assert(c.hutch_iterations >= 20 && c.hutch_iterations <= 60);
	for (int i = 0; i < c.n_tensors; i++) {
		const shrink_tensor_sense *t = &c.tensors[i];
		cr_assert(isfinite(t->trace) && isfinite(t->trace_se), "%s: trace %g +- %g", t->name, t->trace,
			  t->trace_se);
		cr_assert(t->iterations >= 20 && t->iterations <= c.hutch_iterations);
		cr_assert_eq(t->schemes == NULL, t->cols == 0, "%s: schemes exactly for matrices", t->name);
		for (int b = 0; t->schemes && b < 3; b++) {
			const shrink_scheme_sense *e = &t->schemes[b];
			cr_assert_eq(e->bits, p.bits[b]);
			cr_assert(fabs(e->omega - t->trace / t->n_params * e->dw_sq) <= 1e-12 * fabs(e->omega));
			cr_assert(e->proxy > 0 && e->kl >= 0, "%s b%d: proxy %g, kl %g", t->name, e->bits, e->proxy,
				  e->kl);
			if (b > 0) {
				cr_assert_lt(e->dw_sq, t->schemes[b - 1].dw_sq, "%s: more bits, less error", t->name);
				cr_assert_lt(e->proxy, t->schemes[b - 1].proxy, "%s: more bits, less proxy", t->name);
				cr_assert_gt(e->size_bits, t->schemes[b - 1].size_bits);
			}
		}
		cr_assert_eq(t->act_sq_mean != NULL, t->cols > 0, "%s: activation statistics for every matrix",
			     t->name);
	}
	cr_assert_lt(c.tensors[0].schemes[2].kl, c.tensors[0].schemes[0].kl, "8 bits diverge less than 2");
	cJSON *j = cJSON_Parse(json);
	cr_assert_not_null(j);
	cr_assert_eq(cJSON_GetObjectItem(j, "version")->valueint, 1);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tensors")), c.n_tensors);
	cJSON_Delete(j);
	free(json);
	shrink_calibration_free(&c);
	free_model(m);
}

typedef struct {
	shrink_site site;
	int width;
	double *H; /* width x width: sum x x^T */
	double *sq;
	int64_t rows;
} input_acc;

static void collect(void *user, int layer, shrink_site site, const float *x, int n, int width)
{
	input_acc *a = user;
	if (layer != 0 || site != a->site)
		return;
	for (int t = 0; t < n; t++)
		for (int i = 0; i < width; i++) {
			a->sq[i] += (double)x[t * width + i] * x[t * width + i];
			for (int j = 0; j < width; j++)
				a->H[i * width + j] += (double)x[t * width + i] * x[t * width + j];
		}
	a->rows += n;
}

/* (2/N) sum_n ||dW x_n||^2 for the RTN error dW of w (rows, a->width) */
static double direct_proxy(const float *w, int64_t rows, const input_acc *a, const shrink_qscheme *s)
{
	shrink_error err = {0};
	int cols = a->width, groups = (int)shrink_qscheme_groups(s, cols);
	uint8_t *qw = malloc((size_t)rows * shrink_qrow_bytes(s->bits, cols));
	uint16_t *scales = malloc((size_t)rows * groups * 2);
	float *dq = malloc((size_t)cols * 4);
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, s, false, qw, scales, NULL, &err), SHRINK_OK);
	shrink_qmatrix qm = {*s, rows, cols, qw, scales, NULL};
	double want = 0;
	for (int64_t r = 0; r < rows; r++) {
		shrink_qmatrix_row(&qm, r, dq);
		for (int i = 0; i < cols; i++)
			for (int j = 0; j < cols; j++)
				want += (dq[i] - w[r * cols + i]) * a->H[i * cols + j] * (dq[j] - w[r * cols + j]);
	}
	free(qw), free(scales), free(dq);
	return want * 2.0 / a->rows;
}

/* Layer 0: q_proj (32 input channels, 36 tokens: the proxy goes through H) and down_proj
 * (48 channels: from the inputs themselves) against (2/N) sum_n ||dW x_n||^2 computed here,
 * and their activation mean squares. */
static void check_site(const shrink_calibration *c, const shrink_calib_params *p, shrink_site site,
		       shrink_param_kind kind, int width)
{
	shrink_model *m = tiny_model();
	shrink_error err = {0};
	shrink_param_layout lay;
	shrink_train *t;
	cr_assert_eq(shrink_param_layout_init(m, &lay, &err), SHRINK_OK);
	float *theta = malloc((size_t)lay.n_params * 4), x[12 * 32];
	cr_assert_eq(shrink_param_gather(&lay, theta, &err), SHRINK_OK);
	cr_assert_eq(shrink_train_new(&lay, 12, false, &t, &err), SHRINK_OK);
	input_acc a = {site, width, calloc((size_t)width * width, sizeof(double)), calloc((size_t)width, 8), 0};
	shrink_train_observe(t, collect, &a);
	int text[TEXT], win[3 * 12];
	text_tokens(text);
	cr_assert_eq(shrink_calib_windows(text, TEXT, 3, 12, 1, p->seed, win, &err), SHRINK_OK);
	for (int s = 0; s < 3; s++) {
		cr_assert_eq(shrink_train_embed(t, theta, win + s * 12, 12, x, &err), SHRINK_OK);
		cr_assert_eq(shrink_train_block(t, theta, 0, x, 12, &err), SHRINK_OK);
	}
	const shrink_param *q = shrink_param_get(&lay, kind, 0);
	const shrink_tensor_sense *ts = &c->tensors[q - lay.params];
	cr_assert(isnan(ts->trace), "no traces in proxy mode");
	cr_assert_eq(ts->act_rows, a.rows);
	for (int i = 0; i < width; i++)
		cr_assert(fabs(ts->act_sq_mean[i] - a.sq[i] / a.rows) <= 1e-5 * a.sq[i] / a.rows);
	for (int b = 0; b < p->n_bits; b++) {
		shrink_qscheme s = {p->bits[b], p->group_size, true};
		double want = direct_proxy(theta + q->offset, q->rows, &a, &s);
		cr_assert(fabs(ts->schemes[b].proxy - want) <= 1e-5 * want, "%s, %d bits: proxy %.9g, direct %.9g",
			  q->name, p->bits[b], ts->schemes[b].proxy, want);
	}
	free(a.H), free(a.sq), free(theta);
	shrink_train_free(t);
	shrink_param_layout_free(&lay);
	free_model(m);
}

Test(calibrate, proxy_and_imatrix_against_direct_sums)
{
	shrink_model *m = tiny_model();
	shrink_calib_params p;
	calib_params(&p);
	p.hessian = SHRINK_HESSIAN_PROXY;
	p.measure_kl = false;
	shrink_calibration c;
	free(calibrate_json(m, &p, &c));
	check_site(&c, &p, SHRINK_SITE_ATTN_IN, SHRINK_PARAM_WQ, 32);
	check_site(&c, &p, SHRINK_SITE_FFN_MID, SHRINK_PARAM_DOWN, 48);
	shrink_calibration_free(&c);
	free_model(m);
}

Test(calibrate, same_bytes_whatever_the_thread_count)
{
	shrink_model *m = tiny_model();
	shrink_calib_params p;
	calib_params(&p);
	p.max_iter = 25;
	shrink_calibration c1, c3;
	int before = shrink_get_threads();
	shrink_set_threads(1);
	char *j1 = calibrate_json(m, &p, &c1);
	shrink_set_threads(3);
	char *j3 = calibrate_json(m, &p, &c3);
	shrink_set_threads(before);
	cr_assert_str_eq(j1, j3);
	free(j1), free(j3);
	shrink_calibration_free(&c1);
	shrink_calibration_free(&c3);
	free_model(m);
}

Test(calibrate, side_files)
{
	shrink_model *m = tiny_model();
	shrink_calib_params p;
	calib_params(&p);
	p.max_iter = 20;
	shrink_calibration c;
	free(calibrate_json(m, &p, &c));
	shrink_error err = {0};
	char dir[] = "/tmp/test_sense.XXXXXX", path[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/imatrix.safetensors", dir);
	cr_assert_eq(shrink_imatrix_write(&c, path, &err), SHRINK_OK, "%s", err.msg);
	shrink_tensor_set set = {0};
	cr_assert_eq(shrink_safetensors_load(path, &set, NULL, &err), SHRINK_OK, "%s", err.msg);
	const shrink_tensor *t = shrink_tensor_set_find(&set, "model.layers.1.mlp.down_proj.weight");
	cr_assert_not_null(t);
	cr_assert_eq(t->shape[0], 48);
	const shrink_tensor_sense *ts = NULL;
	for (int i = 0; i < c.n_tensors; i++)
		if (strcmp(c.tensors[i].name, t->name) == 0)
			ts = &c.tensors[i];
	cr_assert_eq(t->dtype, SHRINK_F32);
	cr_assert_eq(memcmp(t->data, ts->act_sq_mean, 48 * sizeof(float)), 0);
	cr_assert_null(shrink_tensor_set_find(&set, "model.norm.weight"), "no statistics for vectors");
	shrink_tensor_set_free(&set);
	unlink(path);
	for (int metric = 0; metric < 3; metric++) {
		snprintf(path, sizeof path, "%s/pareto.tsv", dir);
		cr_assert_eq(shrink_pareto_write(&c, (shrink_metric)metric, path, &err), SHRINK_OK, "%s", err.msg);
		FILE *f = fopen(path, "r");
		char line[8192];
		int rows = 0;
		while (fgets(line, sizeof line, f))
			rows += line[0] != '#';
		fclose(f);
		cr_assert_gt(rows, 2, "header and several frontier points");
		unlink(path);
	}
	rmdir(dir);
	shrink_calibration_free(&c);
	free_model(m);
}
