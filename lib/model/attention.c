/* attention.c: causal grouped-query attention over the KV cache.
 * The history is read chunk by chunk through the KV interface into a bounded
 * per-thread scratch and folded in with an online (running max) softmax, so
 * no implementation has to materialise the whole cache in float. One thread
 * owns each (token, KV head) pair: results do not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels.h"
#include "state_impl.h"

typedef struct {
	float *k, *v, *scores, *acc, *mx, *sum;
} scratch;

static scratch scratch_for(const shrink_state *s, int hd, int group)
{
	float *base = s->attn_scratch + (size_t)omp_get_thread_num() * s->attn_scratch_per_thread;
	scratch w = {base, base + ATTN_CHUNK * hd, base + 2 * ATTN_CHUNK * hd, NULL, NULL, NULL};
	w.acc = w.scores + ATTN_CHUNK;
	w.mx = w.acc + (size_t)group * hd;
	w.sum = w.mx + group;
	return w;
}

static void fold_chunk(const float *q, int hd, float scale, const scratch *w, int n, float *acc, float *mx,
		       float *sum)
{
	float chunk_max = -INFINITY;
	for (int j = 0; j < n; j++) {
		w->scores[j] = shrink_kernel_dot(q, w->k + (size_t)j * hd, hd) * scale;
		if (w->scores[j] > chunk_max)
			chunk_max = w->scores[j];
	}
	float new_max = chunk_max > *mx ? chunk_max : *mx;
	float corr = expf(*mx - new_max);
	*sum *= corr;
	for (int i = 0; i < hd; i++)
		acc[i] *= corr;
	for (int j = 0; j < n; j++) {
		float p = expf(w->scores[j] - new_max);
		*sum += p;
		const float *vj = w->v + (size_t)j * hd;
		for (int i = 0; i < hd; i++)
			acc[i] += p * vj[i];
	}
	*mx = new_max;
}

static void one_pair(const shrink_state *s, int layer, const float *q, int p, int g, int n_heads, int group,
		     float *att_row)
{
	int hd = s->m->config->head_dim;
	float scale = 1.0f / sqrtf((float)hd);
	scratch w = scratch_for(s, hd, group);
	for (int h = 0; h < group; h++) {
		w.mx[h] = -INFINITY;
		w.sum[h] = 0;
	}
	memset(w.acc, 0, (size_t)group * hd * 4);
	for (int t0 = 0; t0 <= p; t0 += ATTN_CHUNK) {
		int n = p + 1 - t0 < ATTN_CHUNK ? p + 1 - t0 : ATTN_CHUNK;
		s->kv->ops->load(s->kv, layer, g, t0, n, w.k, w.v);
		for (int h = 0; h < group; h++)
			fold_chunk(q + (size_t)(g * group + h) * hd, hd, scale, &w, n, w.acc + (size_t)h * hd, &w.mx[h],
				   &w.sum[h]);
	}
	for (int h = 0; h < group; h++) {
		float *out = att_row + (size_t)(g * group + h) * hd;
		for (int i = 0; i < hd; i++)
			out[i] = w.acc[(size_t)h * hd + i] / w.sum[h];
	}
	(void)n_heads;
}

void attention(const shrink_state *s, int layer, const float *q, int pos0, int n_tok, float *att)
{
	const shrink_config *c = s->m->config;
	int n_heads = c->layers[layer].n_heads, n_kv = c->layers[layer].n_kv_heads, hd = c->head_dim;
	int group = n_heads / n_kv;
	int64_t n_pairs = (int64_t)n_tok * n_kv;
#pragma omp parallel for schedule(dynamic, 1) num_threads(s->n_threads)
	for (int64_t i = 0; i < n_pairs; i++) {
		int t = (int)(i / n_kv), g = (int)(i % n_kv);
		one_pair(s, layer, q + (size_t)t * n_heads * hd, pos0 + t, g, n_heads, group,
			 att + (size_t)t * n_heads * hd);
	}
}
