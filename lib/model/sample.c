/* sample.c: the sampler, kept apart from the model (llama2.c style).
 * temp 0 is greedy. Otherwise: softmax(logits / temp) in double, keep the
 * top_k most likely tokens (0 = all), then the smallest prefix whose mass
 * reaches top_p, renormalise and draw with a seeded GSL generator (MT19937),
 * so the same seed always gives the same text. */
#include <gsl/gsl_rng.h>
#include <math.h>
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

static int by_prob_desc(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->id - y->id;
}

int shrink_sample(shrink_sampler *s, const float *logits)
{
	if (s->temp == 0)
		return shrink_argmax(logits, s->n_vocab);
	int n = s->n_vocab;
	double mx = logits[shrink_argmax(logits, n)], total = 0;
	for (int i = 0; i < n; i++) {
		s->c[i].id = i;
		s->c[i].p = exp(((double)logits[i] - mx) / s->temp);
		total += s->c[i].p;
	}
	qsort(s->c, (size_t)n, sizeof *s->c, by_prob_desc);
	int keep = s->top_k > 0 && s->top_k < n ? s->top_k : n;
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
