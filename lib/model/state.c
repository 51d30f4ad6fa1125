/* state.c: allocation of the run state (KV cache and activation buffers). */
#include <omp.h>
#include <stdlib.h>

#include "cuda_backend.h"
#include "kernels.h"
#include "ops.h"
#include "state_impl.h"

static int max_over_layers(const shrink_config *c, int which)
{
	int m = 0;
	for (int l = 0; l < c->n_layers; l++) {
		int v = which == 0 ? c->layers[l].n_heads : which == 1 ? c->layers[l].n_kv_heads : c->layers[l].ffn_dim;
		if (v > m)
			m = v;
	}
	return m;
}

static size_t max_linear_scratch(const shrink_model *m, int batch)
{
	const shrink_config *c = m->config;
	int64_t widest = c->dim;
	for (int l = 0; l < c->n_layers; l++) {
		if (c->layers[l].ffn_dim > widest)
			widest = c->layers[l].ffn_dim;
		if ((int64_t)c->layers[l].n_heads * c->head_dim > widest)
			widest = (int64_t)c->layers[l].n_heads * c->head_dim;
	}
	return shrink_kernel_linear_scratch(0, widest, batch);
}

shrink_status shrink_state_new(const shrink_model *m, int max_tokens, int max_batch, const char *kv_spec,
			       shrink_state **out, shrink_error *err)
{
	*out = NULL;
	const shrink_config *c = m->config;
	if (max_batch < 1 || max_batch > max_tokens)
		max_batch = max_tokens < 512 ? max_tokens : 512;
	shrink_state *s = calloc(1, sizeof *s);
	if (!s)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	s->m = m;
	s->max_tokens = max_tokens;
	s->max_batch = max_batch;
	shrink_status st = m->gpu ? gpu_kv_spec(kv_spec, &kv_spec, err) : SHRINK_OK;
	if (!st)
		st = shrink_kv_new(kv_spec, c, max_tokens, &s->kv, err);
	if (st) {
		free(s);
		return st;
	}
	size_t b = (size_t)max_batch, hd = (size_t)c->head_dim;
	size_t qd = (size_t)max_over_layers(c, 0) * hd, kvd = (size_t)max_over_layers(c, 1) * hd;
	size_t ffn = (size_t)max_over_layers(c, 2), dim = (size_t)c->dim;
	size_t wide = qd > dim ? qd : dim;
	s->x = malloc(b * dim * 4);
	s->xb = malloc(b * wide * 4);
	s->q = malloc(b * qd * 4);
	s->k = malloc(b * kvd * 4);
	s->v = malloc(b * kvd * 4);
	s->att = malloc(b * qd * 4);
	s->h1 = malloc(b * ffn * 4);
	s->h3 = malloc(b * ffn * 4);
	size_t lin = max_linear_scratch(m, max_batch);
	s->lin_scratch = lin ? malloc(lin * 4) : NULL;
	s->inv_freq = malloc(hd / 2 * 4 + 4);
	s->logits = malloc((size_t)c->vocab_size * 4);
	s->n_threads = omp_get_max_threads();
	int group = max_over_layers(c, 0); /* upper bound on heads sharing one KV head */
	s->attn_scratch_per_thread = 2 * ATTN_CHUNK * hd + ATTN_CHUNK + (size_t)group * (hd + 2);
	s->attn_scratch = malloc((size_t)s->n_threads * s->attn_scratch_per_thread * 4);
	if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->h1 || !s->h3 || (lin && !s->lin_scratch) ||
	    !s->inv_freq || !s->logits || !s->attn_scratch) {
		shrink_state_free(s);
		return shrink_fail(err, SHRINK_EIO, "out of memory allocating the run state (batch %d)", max_batch);
	}
	op_rope_inv_freq(c, s->inv_freq);
	if (m->gpu && (st = gpu_state_new(m, s->kv, max_tokens, max_batch, &s->gpu, err))) {
		shrink_state_free(s);
		return st;
	}
	*out = s;
	return SHRINK_OK;
}

void shrink_state_free(shrink_state *s)
{
	if (!s)
		return;
	shrink_kv_free(s->kv);
	gpu_state_free(s->gpu);
	free(s->x), free(s->xb), free(s->q), free(s->k), free(s->v), free(s->att);
	free(s->h1), free(s->h3), free(s->lin_scratch), free(s->inv_freq), free(s->logits), free(s->attn_scratch);
	free(s);
}

void shrink_state_reset(shrink_state *s)
{
	s->pos = 0;
	s->kv->ops->reset(s->kv);
}

int shrink_state_pos(const shrink_state *s)
{
	return s->pos;
}

const shrink_kv *shrink_state_kv(const shrink_state *s)
{
	return s->kv;
}
