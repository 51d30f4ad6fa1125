/* sample.c: the sampler, kept apart from the model (llama2.c style).
 * temp 0 is greedy. Otherwise, in the order of llama.cpp's default chain and
 * of transformers' warpers: keep the top_k most likely tokens (0 = all),
 * softmax(logits / temp) over them in double, keep the smallest prefix whose
 * mass reaches top_p, renormalise and draw with a seeded GSL generator
 * (MT19937), so the same seed always gives the same text. */
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "shrink/model.h"

typedef struct {
	double p;
	int id;
} cand;

struct shrink_sampler {
	float temp, top_p;
	int top_k, n_vocab;
	gsl_rng *rng;
	cand *c;
};

enum { CHUNK = 256 }; /* values a chunk of argmax's and top-k's first pass */

/* Largest of n values in 8 independent running maxima (the compiler vectorises it); NaN is never
 * taken over a number. */
static float chunk_max(const float *x, int n)
{
	float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
	int i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
	for (; i < n; i++)
		m[0] = x[i] > m[0] ? x[i] : m[0];
	float best = m[0];
	for (int j = 1; j < 8; j++)
		best = m[j] > best ? m[j] : best;
	return best;
}

/* The maximum of each 256-value chunk, then the first index of the overall one in the first chunk
 * holding it: one vectorised pass (a single chain of compares took 230 us over a 128K
 * vocabulary). All NaN or -inf gives 0, as the GPU's argmax. */
int shrink_argmax(const float *x, int n)
{
	float best = -INFINITY;
	int at = 0;
	for (int c = 0; c < n; c += CHUNK) {
		const float m = chunk_max(x + c, n - c < CHUNK ? n - c : CHUNK);
		if (m > best)
			best = m, at = c;
	}
	for (int i = at; i < n && best > -INFINITY; i++)
		if (x[i] == best)
			return i;
	return 0;
}

shrink_status shrink_sampler_new(float temp, int top_k, float top_p, uint64_t seed, int n_vocab, shrink_sampler **out,
				 shrink_error *err)
{
	*out = NULL;
	if (!(temp >= 0) || top_k < 0 || !(top_p > 0 && top_p <= 1))
		return shrink_fail(err, SHRINK_EUSAGE, "sampler: need temp >= 0, top_k >= 0, 0 < top_p <= 1");
	shrink_sampler *s = calloc(1, sizeof *s);
	if (!s || !(s->c = malloc((size_t)n_vocab * sizeof *s->c)) || !(s->rng = gsl_rng_alloc(gsl_rng_mt19937))) {
		shrink_sampler_free(s);
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	}
	gsl_rng_set(s->rng, (unsigned long)seed);
	s->temp = temp;
	s->top_k = top_k;
	s->top_p = top_p;
	s->n_vocab = n_vocab;
	*out = s;
	return SHRINK_OK;
}

void shrink_sampler_free(shrink_sampler *s)
{
	if (!s)
		return;
	if (s->rng)
		gsl_rng_free(s->rng);
	free(s->c);
	free(s);
}

/* The order of candidates: more likely first, then lower id. */
static bool better(cand a, cand b)
{
	return a.p > b.p || (a.p == b.p && a.id < b.id);
}

static int by_prob_desc(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	return better(*x, *y) ? -1 : better(*y, *x) ? 1 : 0;
}

/* Keep top[0..k) the best candidates seen so far, in order: with k much
 * smaller than the vocabulary almost every candidate is turned away by one
 * comparison, where sorting 128K candidates per token took longer than a
 * GPU's whole forward pass. */
static void keep_best(cand *top, int *len, int k, cand c)
{
	if (*len == k && !better(c, top[k - 1]))
		return;
	int i = *len < k ? (*len)++ : k - 1;
	for (; i > 0 && better(c, top[i - 1]); i--)
		top[i] = top[i - 1];
	top[i] = c;
}

/* Fill s->c[0..keep) with the keep most likely candidates in order, weighted
 * exp((logit - max) / temp); returns the sum of their weights. With keep < n
 * they are chosen by logit (the same order) and only they are exponentiated:
 * 128K exp() per token cost more than a GPU's forward pass. */
static double rank(shrink_sampler *s, const float *logits, int keep)
{
	int n = s->n_vocab, len = 0;
	if (keep == n)
		for (int i = 0; i < n; i++)
			s->c[i] = (cand){logits[i], i};
	/* once the top is full only a logit above its last can enter (a later id never wins a tie),
	 * so a chunk whose maximum is not above it is passed over whole */
	float last = -INFINITY;
	for (int c0 = 0; c0 < n && keep < n; c0 += CHUNK) {
		const int end = n - c0 < CHUNK ? n : c0 + CHUNK;
		if (len == keep && !(chunk_max(logits + c0, end - c0) > last))
			continue;
		for (int i = c0; i < end; i++)
			if (len < keep || logits[i] > last) {
				keep_best(s->c, &len, keep, (cand){logits[i], i});
				last = len == keep ? (float)s->c[keep - 1].p : last;
			}
	}
	if (keep == n)
		qsort(s->c, (size_t)n, sizeof *s->c, by_prob_desc);
	double mx = s->c[0].p, total = 0;
	for (int i = 0; i < keep; i++)
		total += s->c[i].p = exp((s->c[i].p - mx) / s->temp);
	return total;
}

int shrink_sample(shrink_sampler *s, const float *logits)
{
	if (s->temp == 0)
		return shrink_argmax(logits, s->n_vocab);
	int n = s->n_vocab;
	int keep = s->top_k > 0 && s->top_k < n ? s->top_k : n;
	double total = rank(s, logits, keep);
	double mass = 0, kept_total = 0;
	int k = 0;
	while (k < keep) {
		mass += s->c[k].p / total;
		kept_total += s->c[k].p;
		k++;
		if (mass >= s->top_p)
			break;
	}
	double r = gsl_rng_uniform(s->rng) * kept_total, acc = 0;
	for (int i = 0; i < k; i++) {
		acc += s->c[i].p;
		if (r < acc)
			return s->c[i].id;
	}
	return s->c[k - 1].id;
}
