/* forward.c: the Llama-family forward pass, top to bottom:
 * embed -> per layer [rmsnorm, q/k/v (+bias), rope, KV store, attention,
 * o_proj, residual, rmsnorm, gate/up, swiglu, down, residual] -> norm ->
 * logits. Shapes: x is (n_tok, dim); q (n_tok, n_heads*hd); k, v
 * (n_tok, n_kv*hd); h1, h3 (n_tok, ffn). */
#include <string.h>

#include "cuda_backend.h"
#include "ops.h"
#include "state_impl.h"

static shrink_status check_call(const shrink_model *m, const shrink_state *s, const int *tokens, int n,
				shrink_error *err)
{
	if (n < 1 || n > s->max_batch)
		return shrink_fail(err, SHRINK_EUSAGE, "forward: %d tokens in one call (1..%d allowed)", n, s->max_batch);
	if (s->pos + n > s->max_tokens)
		return shrink_fail(err, SHRINK_EUSAGE, "context full: %d + %d tokens exceed the context of %d", s->pos, n,
				   s->max_tokens);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= m->config->vocab_size)
			return shrink_fail(err, SHRINK_EINPUT, "token id %d out of range (vocabulary of %d)", tokens[i],
					   m->config->vocab_size);
	return SHRINK_OK;
}

typedef struct {
	shrink_capture_fn fn;
	void *user;
} capture;

static void see(const capture *cap, int l, int which, const float *x, int n, int width)
{
	if (cap && cap->fn)
		cap->fn(cap->user, l, which, x, n, width);
}

static shrink_status attention_block(const shrink_model *m, shrink_state *s, int l, const shrink_layer_weights *w,
				     int n, const capture *cap, shrink_error *err)
{
	const shrink_config *c = m->config;
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim, dim = c->dim;
	int64_t kvd = (int64_t)nkv * hd;
	op_rmsnorm(s->x, w->attn_norm, n, dim, c->norm_eps, s->xb);
	see(cap, l, 0, s->xb, n, dim);
	op_linear(w->wq, w->bq, s->xb, n, s->q, s->lin_scratch);
	op_linear(w->wk, w->bk, s->xb, n, s->k, s->lin_scratch);
	op_linear(w->wv, w->bv, s->xb, n, s->v, s->lin_scratch);
	op_rope(s->q, s->k, n, s->pos, nh, nkv, hd, s->inv_freq);
	for (int t = 0; t < n; t++) {
		shrink_status st = s->kv->ops->store(s->kv, l, s->pos + t, s->k + t * kvd, s->v + t * kvd, err);
		if (st)
			return st;
	}
	attention(s, l, s->q, s->pos, n, s->att);
	see(cap, l, 1, s->att, n, nh * hd);
	op_linear(w->wo, NULL, s->att, n, s->xb, s->lin_scratch);
	op_add(s->x, s->xb, (int64_t)n * dim);
	return SHRINK_OK;
}

static void ffn_block(const shrink_model *m, shrink_state *s, int l, const shrink_layer_weights *w, int n,
		      const capture *cap)
{
	const shrink_config *c = m->config;
	int64_t ffn = c->layers[l].ffn_dim;
	op_rmsnorm(s->x, w->ffn_norm, n, c->dim, c->norm_eps, s->xb);
	see(cap, l, 2, s->xb, n, c->dim);
	op_linear(w->w_gate, NULL, s->xb, n, s->h1, s->lin_scratch);
	op_linear(w->w_up, NULL, s->xb, n, s->h3, s->lin_scratch);
	op_swiglu(s->h1, s->h3, n * ffn);
	see(cap, l, 3, s->h1, n, (int)ffn);
	op_linear(w->w_down, NULL, s->h1, n, s->xb, s->lin_scratch);
	op_add(s->x, s->xb, (int64_t)n * c->dim);
}

static void logits_out(const shrink_model *m, shrink_state *s, int n, float *logits, bool all)
{
	const shrink_config *c = m->config;
	int first = all ? 0 : n - 1, count = all ? n : 1;
	float *x = s->x + (size_t)first * c->dim;
	op_rmsnorm(x, m->norm, count, c->dim, c->norm_eps, x);
	op_linear(m->lm_head, NULL, x, count, logits, s->lin_scratch);
}

/* shrink_forward, or with next set shrink_forward_greedy (logits then NULL) */
static shrink_status forward(const shrink_model *m, shrink_state *s, const int *tokens, int n, float *logits,
			     bool all_logits, int *next, shrink_error *err)
{
	shrink_status st = check_call(m, s, tokens, n, err);
	if (st)
		return st;
	if (s->gpu) {
		if ((st = gpu_forward(m, s->gpu, s->pos, tokens, n, logits, all_logits, next, err)))
			return st;
		s->pos += n;
		shrink_kv_end_forward(s->kv); /* a compressed cache's host half (kv_cuda.c) */
		return SHRINK_OK;
	}
	op_embed(m->tok_embed, tokens, n, m->config->dim, s->x);
	for (int l = 0; l < m->config->n_layers; l++) {
		if ((st = attention_block(m, s, l, &m->layers[l], n, NULL, err)))
			return st;
		ffn_block(m, s, l, &m->layers[l], n, NULL);
	}
	if (logits || next) /* (once: the final norm runs in place) */
		logits_out(m, s, n, next ? s->logits : logits, all_logits && !next);
	if (next)
		*next = shrink_argmax(s->logits, m->config->vocab_size);
	s->pos += n;
	shrink_kv_end_forward(s->kv);
	return SHRINK_OK;
}

shrink_status shrink_forward(const shrink_model *m, shrink_state *s, const int *tokens, int n, float *logits,
			     bool all_logits, shrink_error *err)
{
	return forward(m, s, tokens, n, logits, all_logits, NULL, err);
}

shrink_status shrink_forward_greedy(const shrink_model *m, shrink_state *s, const int *tokens, int n, int *next,
				    shrink_error *err)
{
	return forward(m, s, tokens, n, NULL, false, next, err);
}

shrink_status shrink_layer_run(const shrink_model *m, shrink_state *s, int layer, const shrink_layer_weights *w,
			       float *x, int n, shrink_capture_fn fn, void *user, shrink_error *err)
{
	if (n < 1 || n > s->max_batch || layer < 0 || layer >= m->config->n_layers)
		return shrink_fail(err, SHRINK_EUSAGE, "layer run: %d tokens (1..%d) at layer %d", n, s->max_batch, layer);
	capture cap = {fn, user};
	size_t bytes = (size_t)n * m->config->dim * sizeof(float);
	memcpy(s->x, x, bytes);
	s->pos = 0;
	shrink_status st = attention_block(m, s, layer, w, n, &cap, err);
	if (!st)
		ffn_block(m, s, layer, w, n, &cap);
	memcpy(x, s->x, bytes);
	return st;
}

shrink_status shrink_embed(const shrink_model *m, const int *tokens, int n, float *out, shrink_error *err)
{
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= m->config->vocab_size)
			return shrink_fail(err, SHRINK_EINPUT, "token id %d out of range (vocabulary of %d)", tokens[i],
					   m->config->vocab_size);
	op_embed(m->tok_embed, tokens, n, m->config->dim, out);
	return SHRINK_OK;
}
