/* queue.c: a binary heap of candidate merges for the SPM and BPE merge loops.
 * Order: larger key first; equal keys go leftmost first, which is the tie rule
 * llama.cpp and sentencepiece use. Stale entries are not removed here: the
 * merge loops skip them when popped. */
#include <stdlib.h>

#include "tokenizer_impl.h"

static bool before(const shrink_bigram *x, const shrink_bigram *y)
{
	return x->key > y->key || (x->key == y->key && x->left < y->left);
}

static void swap(shrink_bigram *x, shrink_bigram *y)
{
	shrink_bigram tmp = *x;
	*x = *y;
	*y = tmp;
}

bool shrink_queue_push(shrink_bigram_queue *q, const shrink_bigram *e)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;
		shrink_bigram *v = realloc(q->v, cap * sizeof *v);
		if (!v)
			return false;
		q->v = v;
		q->cap = cap;
	}
	size_t i = q->n++;
	q->v[i] = *e;
	while (i > 0 && before(&q->v[i], &q->v[(i - 1) / 2])) {
		swap(&q->v[i], &q->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	return true;
}

bool shrink_queue_pop(shrink_bigram_queue *q, shrink_bigram *out)
{
	if (q->n == 0)
		return false;
	*out = q->v[0];
	q->v[0] = q->v[--q->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		if (l < q->n && before(&q->v[l], &q->v[best]))
			best = l;
		if (r < q->n && before(&q->v[r], &q->v[best]))
			best = r;
		if (best == i)
			break;
		swap(&q->v[i], &q->v[best]);
		i = best;
	}
	return true;
}

void shrink_queue_free(shrink_bigram_queue *q)
{
	free(q->v);
	q->v = NULL;
	q->n = q->cap = 0;
}
