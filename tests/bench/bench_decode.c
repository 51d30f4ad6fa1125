/* bench_decode.c: where a batch-1 decode step's time goes outside the model's
 * kernels. Four ways of taking a step, each with its own run state, in turns
 * step by step (so drift in clocks or load hits all alike), every one fed the
 * same token ids at the same positions, so they differ only in what leaves
 * the forward pass:
 *   none     shrink_forward without logits (the step and a wait for it)
 *   greedy   shrink_forward_greedy (on the GPU: argmax there, 4 bytes back)
 *   logits   shrink_forward with the logits, then shrink_argmax on the host
 *   sampled  shrink_forward with the logits, then shrink-run's default
 *            sampler (temp 0.8, top-k 40, top-p 0.95)
 * Prints us per step (median and mean over the steps) and tokens/s of the
 * mean, and each way's cost over `none`. Not part of make check.
 * Usage: bench_decode MODEL [cpu|cuda] [steps=128] [prompt=16] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

enum { NONE, GREEDY, LOGITS, SAMPLED, N_WAYS };
static const char *way_name[N_WAYS] = {"none", "greedy", "logits", "sampled"};

static int fail(const shrink_error *err)
{
	fprintf(stderr, "bench_decode: %s\n", err->msg);
	return 1;
}

/* one step of way w over token `id`; the chosen token is dropped (every way feeds the same ids) */
static shrink_status step(int w, const shrink_model *m, shrink_state *s, shrink_sampler *smp, float *logits, int id,
			  volatile int *sink, shrink_error *err)
{
	int next = 0;
	shrink_status st = w == GREEDY ? shrink_forward_greedy(m, s, &id, 1, &next, err)
				       : shrink_forward(m, s, &id, 1, w == NONE ? NULL : logits, false, err);
	if (!st && w == LOGITS)
		next = shrink_argmax(logits, m->config->vocab_size);
	if (!st && w == SAMPLED)
		next = shrink_sample(smp, logits);
	*sink = next;
	return st;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int bench(shrink_model *m, int steps, int prompt)
{
	const int vocab = m->config->vocab_size;
	shrink_error err = {0};
	shrink_state *st[N_WAYS] = {0};
	shrink_sampler *smp = NULL;
	float *logits = malloc((size_t)vocab * 4);
	double *us = malloc((size_t)N_WAYS * steps * sizeof *us);
	int *ids = malloc((size_t)(prompt + steps) * sizeof *ids);
	uint64_t r = 1;
	for (int i = 0; i < prompt + steps; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = 3 + (int)((r >> 33) % (uint64_t)(vocab > 3 ? vocab - 3 : 1));
	}
	volatile int sink = 0;
	int rc = 0;
	if (shrink_sampler_new(0.8f, 40, 0.95f, 42, vocab, &smp, &err))
		rc = fail(&err);
	for (int w = 0; w < N_WAYS && !rc; w++)
		if (shrink_state_new(m, prompt + steps, prompt, NULL, &st[w], &err) ||
		    shrink_forward(m, st[w], ids, prompt, NULL, false, &err))
			rc = fail(&err);
	for (int i = 0; i < steps && !rc; i++)
		for (int w = 0; w < N_WAYS && !rc; w++) {
			double t0 = shrink_now();
			if (step(w, m, st[w], smp, logits, ids[prompt + i], &sink, &err))
				rc = fail(&err);
			us[w * steps + i] = (shrink_now() - t0) * 1e6;
		}
	/* the first step captures the GPU's graph: left out of both figures */
	const int from = steps > 1 ? 1 : 0, n = steps - from;
	double mean[N_WAYS] = {0};
	for (int w = 0; w < N_WAYS && !rc; w++) {
		double *x = us + w * steps + from;
		for (int i = 0; i < n; i++)
			mean[w] += x[i] / n;
		qsort(x, (size_t)n, sizeof *x, cmp_double);
		if (w == 0)
			printf("%s: %d decode steps at positions %d..%d, vocabulary %d, %d threads\n", m->path, n,
			       prompt + from, prompt + steps - 1, vocab, shrink_get_threads());
		if (w == 0)
			printf("| way | us/step median | us/step mean | tokens/s | us over none |\n|---|---|---|---|---|\n");
		printf("| %s | %.1f | %.1f | %.1f | %+.1f |\n", way_name[w], (x[n / 2] + x[(n - 1) / 2]) / 2, mean[w],
		       1e6 / mean[w], mean[w] - mean[NONE]);
	}
	for (int w = 0; w < N_WAYS; w++)
		shrink_state_free(st[w]);
	shrink_sampler_free(smp);
	free(logits), free(us), free(ids);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_decode MODEL [cpu|cuda] [steps=128] [prompt=16]\n");
		return 2;
	}
	const char *device = argc > 2 ? argv[2] : "cpu";
	int steps = argc > 3 ? atoi(argv[3]) : 128, prompt = argc > 4 ? atoi(argv[4]) : 16;
	if (steps < 1 || prompt < 1) {
		fprintf(stderr, "bench_decode: need steps >= 1 and prompt >= 1\n");
		return 2;
	}
	shrink_model *m = NULL;
	shrink_error err = {0};
	if (shrink_model_load(argv[1], NULL, &m, &err) || shrink_model_set_device(m, device, &err))
		return shrink_model_free(m), fail(&err);
	int rc = bench(m, steps, prompt);
	shrink_model_free(m);
	return rc;
}
