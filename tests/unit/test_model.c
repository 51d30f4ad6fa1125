/* test_model.c: forward pass and sampler invariants on a random in-memory
 * model (no files): batched == token-by-token, thread count never changes a
 * bit, f16 KV close to f32, sampler reproducible and distributed as softmax.
 * Agreement with an independent float64 reference is tests/ref/test_forward.py. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

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

/* dim 32, 2 layers, 4 heads / 2 KV heads of 8, ffn 48, vocab 40 */
static shrink_model *tiny_model(bool bias)
{
	shrink_model *m = calloc(1, sizeof *m);
	shrink_config *c = &m->file.config;
	rng_state = 7;
	snprintf(c->arch, sizeof c->arch, "llama");
	c->dim = 32, c->n_layers = 2, c->head_dim = 8, c->vocab_size = 40, c->max_seq = 64;
	c->norm_eps = 1e-5f, c->rope_theta = 10000, c->qkv_bias = bias, c->bos_id = 1, c->eos_id = 2;
	for (int l = 0; l < 2; l++)
		c->layers[l] = (shrink_layer_config){4, 2, 48};
	add_tensor(m, "model.embed_tokens.weight", 40, 32, 0, 0.5f);
	add_tensor(m, "model.norm.weight", 32, 0, 1, 0.1f);
	add_tensor(m, "lm_head.weight", 40, 32, 0, 0.3f);
	char name[128];
	const char *mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
			      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
	int64_t shapes[][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32}, {48, 32}, {48, 32}, {32, 48}};
	for (int l = 0; l < 2; l++) {
		for (int i = 0; i < 7; i++) {
			snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, mats[i]);
			add_tensor(m, name, shapes[i][0], shapes[i][1], 0, 0.3f);
			if (bias && i < 3) {
				snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, mats[i]);
				add_tensor(m, name, shapes[i][0], 0, 0, 0.1f);
			}
		}
		snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
		add_tensor(m, name, 32, 0, 1, 0.1f);
		snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
		add_tensor(m, name, 32, 0, 1, 0.1f);
	}
	shrink_error err = {0};
	cr_assert_eq(shrink_model_bind(m, &err), SHRINK_OK, "%s", err.msg);
	return m;
}

static const int toks[] = {1, 5, 9, 33, 7, 7, 0, 39, 12, 3, 25, 18, 4, 30, 11, 2, 6, 8, 21, 17};
#define NT 20

static float *run(const shrink_model *m, int batch, const char *kv)
{
	shrink_error err = {0};
	shrink_state *s;
	cr_assert_eq(shrink_state_new(m, NT, batch, kv, &s, &err), SHRINK_OK, "%s", err.msg);
	float *lg = malloc(NT * 40 * sizeof(float));
	for (int i = 0; i < NT; i += batch) {
		int k = NT - i < batch ? NT - i : batch;
		cr_assert_eq(shrink_forward(m, s, toks + i, k, lg + i * 40, true, &err), SHRINK_OK, "%s", err.msg);
	}
	shrink_state_free(s);
	return lg;
}

static double max_rel(const float *a, const float *b, int n)
{
	double d = 0, mx = 0;
	for (int i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs((double)b[i]));
	}
	return d / mx;
}

Test(model, batched_equals_incremental)
{
	shrink_model *m = tiny_model(true);
	float *all = run(m, NT, NULL), *one = run(m, 1, NULL), *mid = run(m, 7, NULL);
	cr_expect_lt(max_rel(one, all, NT * 40), 1e-5);
	cr_expect_lt(max_rel(mid, all, NT * 40), 1e-5);
	free(all), free(one), free(mid);
	shrink_model_free(m);
}

Test(model, threads_do_not_change_bits)
{
	shrink_model *m = tiny_model(false);
	shrink_set_threads(1);
	float *a = run(m, NT, NULL);
	shrink_set_threads(2);
	float *b = run(m, NT, NULL);
	cr_expect(memcmp(a, b, NT * 40 * sizeof(float)) == 0);
	free(a), free(b);
	shrink_model_free(m);
}

Test(model, f16_cache_close_to_f32)
{
	shrink_model *m = tiny_model(false);
	float *a = run(m, NT, "f32"), *b = run(m, NT, "f16");
	double r = max_rel(b, a, NT * 40);
	cr_expect_lt(r, 5e-3, "f16 KV relative error %g", r);
	cr_expect_gt(r, 0, "f16 cache should round something");
	free(a), free(b);
	shrink_model_free(m);
}

/* shrink_forward_greedy gives the argmax of the logits shrink_forward gives, after a prefill of
 * several tokens and at each step after it, and moves the position the same way. */
Test(model, greedy_is_argmax_of_the_logits)
{
	shrink_model *m = tiny_model(true);
	float *lg = run(m, 7, NULL);
	shrink_error err = {0};
	shrink_state *s;
	cr_assert_eq(shrink_state_new(m, NT, 7, NULL, &s, &err), SHRINK_OK, "%s", err.msg);
	int next = -1;
	cr_assert_eq(shrink_forward_greedy(m, s, toks, 5, &next, &err), SHRINK_OK, "%s", err.msg);
	cr_expect_eq(next, shrink_argmax(lg + 4 * 40, 40));
	for (int i = 5; i < NT; i++) {
		cr_assert_eq(shrink_forward_greedy(m, s, toks + i, 1, &next, &err), SHRINK_OK, "%s", err.msg);
		cr_expect_eq(next, shrink_argmax(lg + i * 40, 40), "token %d", i);
	}
	cr_expect_eq(shrink_state_pos(s), NT);
	cr_expect_eq(shrink_forward_greedy(m, s, toks, 1, &next, &err), SHRINK_EUSAGE, "a full context is an error");
	shrink_state_free(s);
	free(lg);
	shrink_model_free(m);
}

Test(model, bad_calls_are_errors)
{
	shrink_model *m = tiny_model(false);
	shrink_error err = {0};
	shrink_state *s;
	cr_assert_eq(shrink_state_new(m, 4, 4, NULL, &s, &err), SHRINK_OK);
	int bad = 40, ok[5] = {1, 2, 3, 4, 5};
	cr_expect_eq(shrink_forward(m, s, &bad, 1, NULL, false, &err), SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "out of range"));
	cr_expect_neq(shrink_forward(m, s, ok, 5, NULL, false, &err), SHRINK_OK);
	shrink_state *s2;
	cr_expect_eq(shrink_state_new(m, 4, 4, "q3", &s2, &err), SHRINK_EUSAGE);
	cr_expect_null(s2);
	shrink_state_free(s);
	shrink_model_free(m);
}

Test(model, bind_rejects_wrong_shape)
{
	shrink_model *m = tiny_model(false);
	shrink_tensor *t = shrink_tensor_set_find_mut(&m->file.weights, "model.layers.1.mlp.down_proj.weight");
	t->shape[1] = 47;
	shrink_error err = {0};
	cr_expect_eq(shrink_model_bind(m, &err), SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "model.layers.1.mlp.down_proj.weight"), "%s", err.msg);
	shrink_model_free(m);
}

Test(sampler, greedy_and_reproducible)
{
	float logits[6] = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f, 1.9f};
	shrink_sampler *g, *a, *b;
	shrink_error err = {0};
	cr_assert_eq(shrink_sampler_new(0, 0, 1, 1, 6, &g, &err), SHRINK_OK);
	cr_expect_eq(shrink_sample(g, logits), 1, "ties go to the lowest id");
	float nan_first[3] = {NAN, -1.0f, 0.5f}, all_nan[2] = {NAN, NAN};
	cr_expect_eq(shrink_argmax(nan_first, 3), 2, "NaN is never chosen over a number");
	cr_expect_eq(shrink_argmax(all_nan, 2), 0);
	shrink_sampler_new(1, 0, 1, 99, 6, &a, &err);
	shrink_sampler_new(1, 0, 1, 99, 6, &b, &err);
	for (int i = 0; i < 100; i++)
		cr_expect_eq(shrink_sample(a, logits), shrink_sample(b, logits));
	shrink_sampler_free(g), shrink_sampler_free(a), shrink_sampler_free(b);
}

Test(sampler, frequencies_follow_softmax)
{
	float logits[4] = {1.0f, 0.0f, -1.0f, 0.5f};
	double z = exp(1) + 1 + exp(-1) + exp(0.5), p[4] = {exp(1) / z, 1 / z, exp(-1) / z, exp(0.5) / z};
	shrink_sampler *s;
	shrink_error err = {0};
	shrink_sampler_new(1, 0, 1, 5, 4, &s, &err);
	int counts[4] = {0}, n = 40000;
	for (int i = 0; i < n; i++)
		counts[shrink_sample(s, logits)]++;
	for (int i = 0; i < 4; i++) {
		double sd = sqrt(p[i] * (1 - p[i]) / n);
		cr_expect_lt(fabs((double)counts[i] / n - p[i]), 5 * sd, "token %d: %g vs %g", i, (double)counts[i] / n, p[i]);
	}
	shrink_sampler_free(s);
}

Test(sampler, top_k_and_top_p_truncate)
{
	float logits[4] = {3.0f, 2.9f, 0.0f, -5.0f};
	shrink_sampler *k1, *p;
	shrink_error err = {0};
	shrink_sampler_new(1, 1, 1, 3, 4, &k1, &err);
	shrink_sampler_new(1, 0, 0.5f, 3, 4, &p, &err); /* token 0 alone has mass > 0.5 */
	for (int i = 0; i < 200; i++) {
		cr_expect_eq(shrink_sample(k1, logits), 0);
		cr_expect_eq(shrink_sample(p, logits), 0);
	}
	shrink_sampler_free(k1), shrink_sampler_free(p);
}

/* shrink_argmax (chunked, vectorised) against one sequential pass: first index of the largest,
 * NaN never taken, on lengths around its 256-value chunks, with ties and NaNs. */
Test(sampler, argmax_matches_a_sequential_scan)
{
	static const int lens[] = {1, 7, 255, 256, 257, 1000, 128256};
	float *x = malloc(128256 * sizeof *x);
	uint64_t r = 5;
	for (size_t t = 0; t < sizeof lens / sizeof *lens; t++)
		for (int trial = 0; trial < 20; trial++) {
			const int n = lens[t];
			for (int i = 0; i < n; i++) {
				r = r * 6364136223846793005ull + 1442695040888963407ull;
				const int v = (int)((r >> 33) % 64);
				x[i] = v == 0 ? NAN : v == 1 ? -INFINITY : (float)(v % 16); /* many ties */
			}
			int want = 0;
			float best = -INFINITY;
			for (int i = 0; i < n; i++)
				if (x[i] > best)
					best = x[i], want = i;
			cr_assert_eq(shrink_argmax(x, n), want, "n %d trial %d", n, trial);
		}
	free(x);
}

/* top_p measures mass within the top_k (renormalised), as llama.cpp and transformers do: token 0
 * holds 73 % of the top two but 16 % of everything, so top_p 0.7 keeps it alone. */
Test(sampler, top_p_applies_after_top_k)
{
	float logits[102] = {1.0f, 0.0f};
	for (int i = 2; i < 102; i++)
		logits[i] = -2.0f;
	shrink_sampler *s;
	shrink_error err = {0};
	cr_assert_eq(shrink_sampler_new(1, 2, 0.7f, 3, 102, &s, &err), SHRINK_OK);
	for (int i = 0; i < 200; i++)
		cr_expect_eq(shrink_sample(s, logits), 0);
	shrink_sampler_free(s);
}

/* The sampler keeps its top k by insertion instead of sorting the vocabulary: the
 * same tokens as sorting everything (weight descending, then id) and cutting. */
typedef struct {
	double p;
	int id;
} ref_cand;

static int ref_order(const void *a, const void *b)
{
	const ref_cand *x = a, *y = b;
	return x->p != y->p ? (x->p < y->p ? 1 : -1) : x->id - y->id;
}

/* softmax over everything, sort, cut to top_k, renormalise, then top_p over what is left */
static int ref_sample(const float *logits, int n, float temp, int top_k, double top_p, gsl_rng *r)
{
	ref_cand *c = malloc((size_t)n * sizeof *c);
	double mx = -INFINITY, total = 0;
	for (int i = 0; i < n; i++)
		mx = fmax(mx, logits[i]);
	for (int i = 0; i < n; i++)
		c[i] = (ref_cand){exp((logits[i] - mx) / temp), i};
	qsort(c, (size_t)n, sizeof *c, ref_order);
	for (int i = 0; i < top_k; i++)
		total += c[i].p;
	int k = 0;
	double mass = 0, kept = 0;
	while (k < top_k && mass < top_p)
		mass += c[k].p / total, kept += c[k].p, k++;
	double u = gsl_rng_uniform(r) * kept, acc = 0;
	int id = c[k - 1].id;
	for (int i = 0; i < k; i++)
		if (u < (acc += c[i].p)) {
			id = c[i].id;
			break;
		}
	free(c);
	return id;
}

Test(sampler, top_k_selection_matches_a_full_sort)
{
	enum { N = 3000 };
	static float logits[N];
	gsl_rng *gen = gsl_rng_alloc(gsl_rng_mt19937), *ref = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(gen, 11);
	gsl_rng_set(ref, 7);
	int ks[] = {1, 5, 40, 400};
	for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
		shrink_sampler *s;
		shrink_error err = {0};
		cr_assert_eq(shrink_sampler_new(0.8f, ks[t], 0.9f, 7, N, &s, &err), SHRINK_OK);
		gsl_rng_set(ref, 7);
		for (int draw = 0; draw < 50; draw++) {
			for (int i = 0; i < N; i++) /* steps of 0.25: many ties */
				logits[i] = (float)(0.25 * (int)(gsl_rng_uniform(gen) * 40));
			int want = ref_sample(logits, N, 0.8f, ks[t], 0.9f, ref);
			cr_assert_eq(shrink_sample(s, logits), want, "top_k %d, draw %d", ks[t], draw);
		}
		shrink_sampler_free(s);
	}
	gsl_rng_free(gen), gsl_rng_free(ref);
}
