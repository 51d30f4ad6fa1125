/* bench_kv.c: cost of reading the KV cache back, per KV cache type, side by
 * side in one run: a load() of 64 tokens of one KV head (what attention asks
 * for), and one decode step's attention over the whole context for one layer
 * (the load plus the dot products and the weighted sum of GQA query heads, as
 * lib/model/attention.c does), on one thread; with bytes per token and the
 * ratio against f16. Each figure is the fastest of 30 passes taken in turns,
 * so a busy machine slows all alike. Not part of make check; prints a table.
 * With --model DIR it times whole decode steps of that model at a long
 * context instead (all threads), the caches taking turns step by step.
 * Usage: bench_kv [context=2048] [head_dim=64] [kv_heads=8] [group=4]
 *        bench_kv --model DIR [context=2048 [kv spec...]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "shrink/shrink.h"

static uint64_t rng_state = 1;

static float gauss(void)
{
	float s = 0;
	for (int i = 0; i < 4; i++) {
		rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
		s += (rng_state >> 40) / (float)(1 << 24) - 0.5f;
	}
	return s * 1.7f;
}

typedef struct {
	int ctx, hd, n_kv, group;
	float *k, *v; /* [ctx][n_kv * hd] */
	float *q;     /* [n_kv * group * hd] */
} bench_data;

static bench_data make_data(int ctx, int hd, int n_kv, int group)
{
	bench_data b = {ctx, hd, n_kv, group, NULL, NULL, NULL};
	size_t n = (size_t)ctx * n_kv * hd;
	b.k = malloc(n * 4), b.v = malloc(n * 4), b.q = malloc((size_t)n_kv * group * hd * 4);
	float *base = malloc((size_t)n_kv * hd * 4);
	for (int i = 0; i < n_kv * hd; i++)
		base[i] = 2 * gauss(); /* per-channel offsets, as keys have */
	for (size_t i = 0; i < n; i++) {
		b.k[i] = base[i % ((size_t)n_kv * hd)] + gauss();
		b.v[i] = gauss() * (i % 97 == 0 ? 8 : 1);
	}
	for (int i = 0; i < n_kv * group * hd; i++)
		b.q[i] = gauss() / 4;
	free(base);
	return b;
}

/* attention of `group` query heads over tokens [0, ctx) of one KV head, online softmax over 64-token loads */
static float attend(const shrink_kv *kv, const bench_data *b, int h, float *k, float *v, float *acc)
{
	float mx[64], sum[64], scores[64], scale = 1 / sqrtf((float)b->hd), check = 0;
	for (int g = 0; g < b->group; g++)
		mx[g] = -INFINITY, sum[g] = 0;
	for (int i = 0; i < b->group * b->hd; i++)
		acc[i] = 0;
	for (int t0 = 0; t0 < b->ctx; t0 += 64) {
		int n = b->ctx - t0 < 64 ? b->ctx - t0 : 64;
		kv->ops->load(kv, 0, h, t0, n, k, v);
		for (int g = 0; g < b->group; g++) {
			const float *q = b->q + ((size_t)h * b->group + g) * b->hd;
			float m = mx[g], *a = acc + (size_t)g * b->hd;
			for (int j = 0; j < n; j++) {
				scores[j] = shrink_kernel_dot(q, k + (size_t)j * b->hd, b->hd) * scale;
				m = scores[j] > m ? scores[j] : m;
			}
			float corr = expf(mx[g] - m);
			sum[g] *= corr;
			for (int i = 0; i < b->hd; i++)
				a[i] *= corr;
			for (int j = 0; j < n; j++) {
				float p = expf(scores[j] - m);
				sum[g] += p;
				for (int i = 0; i < b->hd; i++)
					a[i] += p * v[(size_t)j * b->hd + i];
			}
			mx[g] = m;
		}
	}
	for (int g = 0; g < b->group; g++)
		check += acc[(size_t)g * b->hd] / sum[g];
	return check;
}

typedef struct {
	shrink_kv *kv;
	double load_ns, step_us, bytes_per_token, rms_err;
} result;

static double rms_error(const shrink_kv *kv, const bench_data *b, float *k, float *v)
{
	double e = 0;
	for (int h = 0; h < b->n_kv; h++)
		for (int t0 = 0; t0 < b->ctx; t0 += 64) {
			int n = b->ctx - t0 < 64 ? b->ctx - t0 : 64;
			kv->ops->load(kv, 0, h, t0, n, k, v);
			for (int j = 0; j < n; j++)
				for (int i = 0; i < b->hd; i++) {
					size_t x = ((size_t)(t0 + j) * b->n_kv + h) * b->hd + i;
					double dk = k[j * b->hd + i] - b->k[x], dv = v[j * b->hd + i] - b->v[x];
					e += dk * dk + dv * dv;
				}
		}
	return sqrt(e / (2.0 * b->ctx * b->n_kv * b->hd));
}

static shrink_kv *filled(const char *spec, const shrink_config *c, const bench_data *b)
{
	shrink_kv *kv = NULL;
	shrink_error err = {0};
	if (shrink_kv_new(spec, c, b->ctx, &kv, &err)) {
		fprintf(stderr, "bench_kv: %s\n", err.msg);
		return NULL;
	}
	size_t row = (size_t)b->n_kv * b->hd;
	for (int t = 0; t < b->ctx; t++)
		if (kv->ops->store(kv, 0, t, b->k + t * row, b->v + t * row, &err)) {
			fprintf(stderr, "bench_kv: %s\n", err.msg);
			shrink_kv_free(kv);
			return NULL;
		}
	return kv;
}

/* seconds for one pass of 64-token loads over every head */
static double time_loads(const shrink_kv *kv, const bench_data *b, float *k, float *v)
{
	double t0 = shrink_now();
	for (int h = 0; h < b->n_kv; h++)
		for (int s = 0; s < b->ctx; s += 64)
			kv->ops->load(kv, 0, h, s, b->ctx - s < 64 ? b->ctx - s : 64, k, v);
	return shrink_now() - t0;
}

static double time_step(const shrink_kv *kv, const bench_data *b, float *k, float *v, float *acc, double *sink)
{
	double t0 = shrink_now();
	for (int h = 0; h < b->n_kv; h++)
		*sink += attend(kv, b, h, k, v, acc);
	return shrink_now() - t0;
}

/* rounds over all caches in turn, keeping each one's fastest pass: robust to a busy machine */
static void measure(result *r, int n, const bench_data *b, int rounds)
{
	float *k = malloc(64 * (size_t)b->hd * 4), *v = malloc(64 * (size_t)b->hd * 4);
	float *acc = malloc((size_t)b->group * b->hd * 4);
	double sink = 0, n_loads = b->n_kv * (double)((b->ctx + 63) / 64);
	for (int i = 0; i < n; i++) {
		r[i].rms_err = rms_error(r[i].kv, b, k, v);
		r[i].bytes_per_token = (double)r[i].kv->ops->n_bytes(r[i].kv) / b->ctx / b->n_kv;
		r[i].load_ns = r[i].step_us = INFINITY;
	}
	for (int round = 0; round < rounds; round++)
		for (int i = 0; i < n; i++) {
			double tl = time_loads(r[i].kv, b, k, v) / n_loads * 1e9;
			double ts = time_step(r[i].kv, b, k, v, acc, &sink) * 1e6;
			r[i].load_ns = tl < r[i].load_ns ? tl : r[i].load_ns;
			r[i].step_us = ts < r[i].step_us ? ts : r[i].step_us;
		}
	if (sink == 12345.678)
		printf("%g\n", sink);
	free(k), free(v), free(acc);
}

/* ---- whole decode steps of a model at a long context (--model DIR) ---- */

static shrink_state *prefilled(const shrink_model *m, const char *spec, int ctx, int steps, const int *ids)
{
	shrink_state *s = NULL;
	shrink_error err = {0};
	if (shrink_state_new(m, ctx + steps, 512, spec, &s, &err)) {
		fprintf(stderr, "bench_kv: %s\n", err.msg);
		return NULL;
	}
	for (int t = 0; t < ctx; t += 512)
		if (shrink_forward(m, s, ids + t, ctx - t < 512 ? ctx - t : 512, NULL, false, &err)) {
			fprintf(stderr, "bench_kv: %s\n", err.msg);
			shrink_state_free(s);
			return NULL;
		}
	return s;
}

/* decode steps taken in turns over the caches; each cache's median step */
static int model_bench(const char *dir, int ctx, const char **specs, int n)
{
	enum { STEPS = 24 };
	shrink_model *m = NULL;
	shrink_error err = {0};
	if (shrink_model_load(dir, NULL, &m, &err)) {
		fprintf(stderr, "bench_kv: %s\n", err.msg);
		return 1;
	}
	int *ids = malloc((size_t)(ctx + STEPS) * sizeof *ids);
	for (int i = 0; i < ctx + STEPS; i++) {
		rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = 3 + (int)((rng_state >> 33) % (uint64_t)(m->config->vocab_size - 3));
	}
	shrink_state **st = calloc((size_t)n, sizeof *st);
	double *ms = calloc((size_t)n * STEPS, sizeof *ms);
	for (int i = 0; i < n; i++)
		if (!(st[i] = prefilled(m, specs[i], ctx, STEPS, ids)))
			return 1;
	for (int step = 0; step < STEPS; step++)
		for (int i = 0; i < n; i++) {
			double t0 = shrink_now();
			if (shrink_forward(m, st[i], ids + ctx + step, 1, NULL, false, &err)) {
				fprintf(stderr, "bench_kv: %s\n", err.msg);
				return 1;
			}
			ms[i * STEPS + step] = (shrink_now() - t0) * 1e3;
		}
	printf("model %s, %d threads: decode steps at context %d..%d, median of %d\n", dir, shrink_get_threads(), ctx,
	       ctx + STEPS, STEPS);
	printf("%-46s %10s %8s %14s\n", "kv", "ms/token", "x f16", "cache MiB");
	double base = 0;
	for (int i = 0; i < n; i++) {
		double *x = ms + i * STEPS;
		for (int a = 1; a < STEPS; a++) /* insertion sort for the median */
			for (int b = a; b > 0 && x[b] < x[b - 1]; b--) {
				double tmp = x[b];
				x[b] = x[b - 1], x[b - 1] = tmp;
			}
		double med = (x[STEPS / 2 - 1] + x[STEPS / 2]) / 2;
		base = i == 0 ? med : base;
		const shrink_kv *kv = shrink_state_kv(st[i]);
		printf("%-46s %10.2f %8.2f %14.2f\n", specs[i], med, med / base, kv->ops->n_bytes(kv) / 1048576.0);
		shrink_state_free(st[i]);
	}
	free(st), free(ms), free(ids);
	shrink_model_free(m);
	return 0;
}

static const char *specs[] = {"f16",
			      "f32",
			      "kivi:bits=2,group=64,residual=64",
			      "kivi:bits=4,group=64,residual=64",
			      "gear:bits=2,rank=4,outliers=0.02,buffer=64",
			      "gear:bits=2,rank=2,outliers=0.02,buffer=64",
			      "gear:bits=4,rank=4,outliers=0.02,buffer=64",
			      "gear:bits=2,rank=4,outliers=0,buffer=64"};

int main(int argc, char **argv)
{
	enum { N = sizeof specs / sizeof *specs };
	if (argc > 2 && strcmp(argv[1], "--model") == 0) /* specs after the context replace the list */
		return argc > 4 ? model_bench(argv[2], atoi(argv[3]), (const char **)argv + 4, argc - 4)
				: model_bench(argv[2], argc > 3 ? atoi(argv[3]) : 2048, specs, N);
	int ctx = argc > 1 ? atoi(argv[1]) : 2048, hd = argc > 2 ? atoi(argv[2]) : 64;
	int n_kv = argc > 3 ? atoi(argv[3]) : 8, group = argc > 4 ? atoi(argv[4]) : 4;
	shrink_config *c = calloc(1, sizeof *c);
	c->n_layers = 1, c->head_dim = hd, c->layers[0] = (shrink_layer_config){n_kv * group, n_kv, 1};
	bench_data b = make_data(ctx, hd, n_kv, group);
	printf("context %d, head_dim %d, %d KV heads x %d query heads, 1 layer, 1 thread\n", ctx, hd, n_kv, group);
	printf("%-46s %10s %8s %12s %8s %12s %9s\n", "kv", "load64 ns", "x f16", "attn step us", "x f16", "B/tok/head",
	       "rms err");
	result r[N];
	for (int i = 0; i < N; i++)
		if (!(r[i].kv = filled(specs[i], c, &b)))
			return 1;
	measure(r, N, &b, 30);
	for (int i = 0; i < N; i++) {
		printf("%-46s %10.0f %8.2f %12.1f %8.2f %12.1f %9.5f\n", specs[i], r[i].load_ns,
		       r[i].load_ns / r[0].load_ns, r[i].step_us, r[i].step_us / r[0].step_us, r[i].bytes_per_token,
		       r[i].rms_err);
		shrink_kv_free(r[i].kv);
	}
	free(b.k), free(b.v), free(b.q), free(c);
	return 0;
}
