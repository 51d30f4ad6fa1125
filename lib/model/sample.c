/* sample.c: the sampler, kept apart from the model (llama2.c style).
 * temp 0 is greedy. Otherwise: softmax(logits / temp) in double, keep the
 * top_k most likely tokens (0 = all), then the smallest prefix whose mass
 * reaches top_p, renormalise and draw with a seeded GSL generator (MT19937),
 * so the same seed always gives the same text. */
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

int shrink_argmax(const float *x, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
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

/* Fill s->c with the candidates in order (the first keep of them when
 * keep < n); returns the sum of all weights. */
static double rank(shrink_sampler *s, const float *logits, int keep)
{
	int n = s->n_vocab, len = 0;
	double mx = logits[shrink_argmax(logits, n)], total = 0;
	for (int i = 0; i < n; i++) {
		cand c = {exp(((double)logits[i] - mx) / s->temp), i};
		total += c.p;
		if (keep < n)
			keep_best(s->c, &len, keep, c);
		else
			s->c[i] = c;
	}
	if (keep == n)
		qsort(s->c, (size_t)n, sizeof *s->c, by_prob_desc);
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
