/* test_grad.c: the training pass and its gradient (grad.h) on random in-memory
 * models (no files): the loss equals the inference pass's, checkpointing and
 * the thread count change no bit, scale accumulates linearly, the stage-by-
 * stage pass equals the whole one, every parameter kind's directional
 * derivative matches central differences of the loss, and bad calls fail.
 * Agreement with an independent float64 gradient is tests/ref/test_grad_ref.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"
#include "shrink/grad.h"

static uint64_t rng_state;

static float frand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((rng_state >> 40) / (float)(1 << 24)) * 2 - 1;
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

/* dim 32, 2 layers (4 heads / 2 KV heads of 8, then 2 heads / 1 KV head), ffn 48 / 40, vocab 40 */
static shrink_model *tiny_model(bool bias, bool tied)
{
	shrink_model *m = calloc(1, sizeof *m);
	shrink_config *c = &m->file.config;
	rng_state = 11;
	snprintf(c->arch, sizeof c->arch, bias ? "qwen2" : "llama");
	c->dim = 32, c->n_layers = 2, c->head_dim = 8, c->vocab_size = 40, c->max_seq = 64;
	c->norm_eps = 1e-5f, c->rope_theta = 10000, c->qkv_bias = bias, c->tied_embeddings = tied;
	c->bos_id = 1, c->eos_id = 2;
	c->layers[0] = (shrink_layer_config){4, 2, 48};
	c->layers[1] = (shrink_layer_config){2, 1, 40};
	add_tensor(m, "model.embed_tokens.weight", 40, 32, 0, 0.5f);
	add_tensor(m, "model.norm.weight", 32, 0, 1, 0.1f);
	if (!tied)
		add_tensor(m, "lm_head.weight", 40, 32, 0, 0.3f);
	const char *mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
			      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
	char name[128];
	for (int l = 0; l < 2; l++) {
		int64_t q = c->layers[l].n_heads * 8, kv = c->layers[l].n_kv_heads * 8, f = c->layers[l].ffn_dim;
		int64_t shapes[][2] = {{q, 32}, {kv, 32}, {kv, 32}, {32, q}, {f, 32}, {f, 32}, {32, f}};
		for (int i = 0; i < 7; i++) {
			snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, mats[i]);
			add_tensor(m, name, shapes[i][0], shapes[i][1], 0, 0.3f);
			if (bias && i < 3) {
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

static const int TOKENS[] = {1, 7, 3, 22, 9, 9, 15, 38, 0, 5, 31, 12, 4, 27, 19, 2, 33, 8};
#define N_TOK ((int)(sizeof TOKENS / sizeof TOKENS[0]))

typedef struct {
	shrink_model *m;
	shrink_param_layout lay;
	float *theta, *grad;
	shrink_train *t;
} fixture;

static void setup(fixture *f, bool bias, bool tied, bool checkpoint)
{
	shrink_error err = {0};
	f->m = tiny_model(bias, tied);
	cr_assert_eq(shrink_param_layout_init(f->m, &f->lay, &err), SHRINK_OK, "%s", err.msg);
	f->theta = malloc((size_t)f->lay.n_params * 4);
	f->grad = calloc((size_t)f->lay.n_params, 4);
	cr_assert_eq(shrink_param_gather(&f->lay, f->theta, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(shrink_train_new(&f->lay, N_TOK, checkpoint, &f->t, &err), SHRINK_OK, "%s", err.msg);
}

static void teardown(fixture *f)
{
	shrink_train_free(f->t);
	shrink_param_layout_free(&f->lay);
	free(f->theta), free(f->grad);
	free_model(f->m);
}

static double grad_of(fixture *f, float scale)
{
	shrink_error err = {0};
	double loss;
	memset(f->grad, 0, (size_t)f->lay.n_params * 4);
	cr_assert_eq(shrink_train_grad(f->t, f->theta, TOKENS, N_TOK, scale, f->grad, &loss, &err), SHRINK_OK, "%s",
		     err.msg);
	return loss;
}

Test(grad, layout_covers_every_tensor_once)
{
	fixture f;
	setup(&f, true, true, false);
	cr_assert_eq(f.lay.n, (int)f.m->file.weights.n, "tied model: one parameter per stored tensor");
	cr_assert_eq(f.lay.n_params, shrink_model_n_params(f.m));
	cr_assert(f.lay.tied);
	cr_assert_eq(shrink_param_get(&f.lay, SHRINK_PARAM_LM_HEAD, -1),
		     shrink_param_get(&f.lay, SHRINK_PARAM_EMBED, -1));
	cr_assert_not_null(shrink_param_get(&f.lay, SHRINK_PARAM_BK, 1));
	cr_assert_eq(shrink_param_find(&f.lay, "model.layers.1.mlp.down_proj.weight"),
		     (int)(shrink_param_get(&f.lay, SHRINK_PARAM_DOWN, 1) - f.lay.params));
	int64_t next = 0;
	for (int i = 0; i < f.lay.n; i++) {
		cr_assert_eq(f.lay.params[i].offset, next);
		next += f.lay.params[i].numel;
	}
	teardown(&f);
}

Test(grad, loss_matches_inference_forward)
{
	fixture f;
	setup(&f, true, false, false);
	shrink_error err = {0};
	shrink_state *s;
	int V = f.m->config->vocab_size;
	float *logits = malloc((size_t)N_TOK * V * 4);
	cr_assert_eq(shrink_state_new(f.m, N_TOK, N_TOK, "f32", &s, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(shrink_forward(f.m, s, TOKENS, N_TOK, logits, true, &err), SHRINK_OK, "%s", err.msg);
	double want = 0;
	for (int t = 0; t + 1 < N_TOK; t++) {
		double mx = -INFINITY, sum = 0;
		for (int j = 0; j < V; j++)
			mx = fmax(mx, logits[t * V + j]);
		for (int j = 0; j < V; j++)
			sum += exp(logits[t * V + j] - mx);
		want += mx + log(sum) - logits[t * V + TOKENS[t + 1]];
	}
	want /= N_TOK - 1;
	double loss;
	cr_assert_eq(shrink_train_loss(f.t, f.theta, TOKENS, N_TOK, &loss, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(fabs(loss - want) < 1e-5 * want, "training loss %.9f, inference %.9f", loss, want);
	shrink_state_free(s);
	free(logits);
	teardown(&f);
}

Test(grad, checkpointing_changes_no_bit)
{
	fixture a, b;
	setup(&a, true, true, false);
	setup(&b, true, true, true);
	double la = grad_of(&a, 1), lb = grad_of(&b, 1);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(a.grad, b.grad, (size_t)a.lay.n_params * 4), 0);
	cr_assert_lt(shrink_train_bytes(b.t), shrink_train_bytes(a.t));
	teardown(&a);
	teardown(&b);
}

Test(grad, thread_count_changes_no_bit)
{
	fixture f;
	setup(&f, false, false, false);
	int before = shrink_get_threads();
	shrink_set_threads(1);
	grad_of(&f, 1);
	float *one = malloc((size_t)f.lay.n_params * 4);
	memcpy(one, f.grad, (size_t)f.lay.n_params * 4);
	shrink_set_threads(3);
	grad_of(&f, 1);
	shrink_set_threads(before);
	cr_assert_eq(memcmp(one, f.grad, (size_t)f.lay.n_params * 4), 0);
	free(one);
	teardown(&f);
}

Test(grad, scale_and_accumulation)
{
	fixture f;
	setup(&f, false, true, false);
	shrink_error err = {0};
	grad_of(&f, 1);
	float *g1 = malloc((size_t)f.lay.n_params * 4);
	memcpy(g1, f.grad, (size_t)f.lay.n_params * 4);
	grad_of(&f, -0.5f);
	cr_assert_eq(shrink_train_grad(f.t, f.theta, TOKENS, N_TOK, 2.5f, f.grad, NULL, &err), SHRINK_OK);
	double worst = 0, norm = 0;
	for (int64_t i = 0; i < f.lay.n_params; i++) {
		worst = fmax(worst, fabs(f.grad[i] - 2.0 * g1[i]));
		norm = fmax(norm, fabs(g1[i]));
	}
	cr_assert(worst < 1e-5 * norm, "-0.5 g + 2.5 g differs from 2 g by %g (max |g| %g)", worst, norm);
	free(g1);
	teardown(&f);
}

static void observe_count(void *user, int layer, shrink_site site, const float *x, int n, int width)
{
	int *count = user;
	count[site]++;
	cr_assert_eq(n, site == SHRINK_SITE_HEAD_IN ? N_TOK - 1 : N_TOK);
	cr_assert(width == 32 || width == 48 || width == 40 || width == 16, "width %d", width);
	cr_assert(layer >= -1 && layer < 2);
	(void)x;
}

Test(grad, stage_by_stage_equals_whole_pass)
{
	fixture f;
	setup(&f, true, false, true);
	shrink_error err = {0};
	int count[5] = {0};
	shrink_train_observe(f.t, observe_count, count);
	float *x = malloc((size_t)N_TOK * 32 * 4);
	double staged, whole;
	cr_assert_eq(shrink_train_embed(f.t, f.theta, TOKENS, N_TOK, x, &err), SHRINK_OK);
	for (int l = 0; l < 2; l++)
		cr_assert_eq(shrink_train_block(f.t, f.theta, l, x, N_TOK, &err), SHRINK_OK);
	cr_assert_eq(shrink_train_head(f.t, f.theta, x, TOKENS, N_TOK, &staged, &err), SHRINK_OK);
	for (int s = 0; s < 4; s++)
		cr_assert_eq(count[s], 2, "site %d seen %d times", s, count[s]);
	cr_assert_eq(count[SHRINK_SITE_HEAD_IN], 1);
	grad_of(&f, 1);
	for (int s = 0; s < 4; s++)
		cr_assert_eq(count[s], 4, "checkpoint recomputation must not be observed (site %d: %d)", s, count[s]);
	cr_assert_eq(shrink_train_loss(f.t, f.theta, TOKENS, N_TOK, &whole, &err), SHRINK_OK);
	cr_assert_eq(staged, whole);
	free(x);
	teardown(&f);
}

/* Directional derivative along a random unit direction inside each tensor
 * against central differences of the float32 loss (step 1e-2 along it). */
static void check_directional(bool bias, bool tied)
{
	fixture f;
	setup(&f, bias, tied, false);
	shrink_error err = {0};
	grad_of(&f, 1);
	float *t2 = malloc((size_t)f.lay.n_params * 4);
	rng_state = 99;
	for (int i = 0; i < f.lay.n; i++) {
		const shrink_param *p = &f.lay.params[i];
		double *u = malloc((size_t)p->numel * sizeof *u), norm = 0, dir = 0, gnorm = 0;
		for (int64_t j = 0; j < p->numel; j++) {
			u[j] = f.grad[p->offset + j] + 0.5 * frand() * fabs(f.grad[p->offset + j]);
			norm += u[j] * u[j];
		}
		norm = sqrt(norm);
		for (int64_t j = 0; j < p->numel; j++) {
			u[j] /= norm;
			dir += u[j] * f.grad[p->offset + j];
			gnorm += (double)f.grad[p->offset + j] * f.grad[p->offset + j];
		}
		double h = 1e-2, lp, lm;
		for (int sgn = 1; sgn >= -1; sgn -= 2) {
			memcpy(t2, f.theta, (size_t)f.lay.n_params * 4);
			for (int64_t j = 0; j < p->numel; j++)
				t2[p->offset + j] += (float)(sgn * h * u[j]);
			cr_assert_eq(shrink_train_loss(f.t, t2, TOKENS, N_TOK, sgn > 0 ? &lp : &lm, &err), SHRINK_OK);
		}
		double fd = (lp - lm) / (2 * h);
		cr_assert(fabs(fd - dir) <= 1e-2 * fabs(dir) + 1e-5, "%s: gradient along u %.7g, differences %.7g",
			  p->name, dir, fd);
		cr_assert_gt(sqrt(gnorm), 0, "%s: zero gradient", p->name);
		free(u);
	}
	free(t2);
	teardown(&f);
}

Test(grad, directional_derivatives_llama_untied)
{
	check_directional(false, false);
}

Test(grad, directional_derivatives_qwen2_bias_tied)
{
	check_directional(true, true);
}

Test(grad, bad_calls_fail)
{
	fixture f;
	setup(&f, false, false, false);
	shrink_error err = {0};
	double loss;
	int bad[] = {1, 40};
	cr_assert_eq(shrink_train_loss(f.t, f.theta, TOKENS, 1, &loss, &err), SHRINK_EUSAGE);
	cr_assert_eq(shrink_train_loss(f.t, f.theta, TOKENS, N_TOK + 1, &loss, &err), SHRINK_EUSAGE);
	cr_assert_eq(shrink_train_loss(f.t, f.theta, bad, 2, &loss, &err), SHRINK_EINPUT);
	cr_assert(strstr(err.msg, "40"), "message names the token: %s", err.msg);
	shrink_train *t;
	cr_assert_eq(shrink_train_new(&f.lay, 1, false, &t, &err), SHRINK_EUSAGE);
	teardown(&f);
}
