/* forward.c: the Llama-family forward pass, top to bottom:
 * embed -> per layer [rmsnorm, q/k/v (+bias), rope, KV store, attention,
 * o_proj, residual, rmsnorm, gate/up, swiglu, down, residual] -> norm ->
 * logits. Shapes: x is (n_tok, dim); q (n_tok, n_heads*hd); k, v
 * (n_tok, n_kv*hd); h1, h3 (n_tok, ffn). */
#include <string.h>

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

static shrink_status attention_block(const shrink_model *m, shrink_state *s, int l, int n, shrink_error *err)
{
	const shrink_config *c = m->config;
	const shrink_layer_weights *w = &m->layers[l];
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim, dim = c->dim;
	int64_t kvd = (int64_t)nkv * hd;
	op_rmsnorm(s->x, w->attn_norm, n, dim, c->norm_eps, s->xb);
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
	op_linear(w->wo, NULL, s->att, n, s->xb, s->lin_scratch);
	op_add(s->x, s->xb, (int64_t)n * dim);
	return SHRINK_OK;
}

static void ffn_block(const shrink_model *m, shrink_state *s, int l, int n)
{
	const shrink_config *c = m->config;
	const shrink_layer_weights *w = &m->layers[l];
	int64_t ffn = c->layers[l].ffn_dim;
	op_rmsnorm(s->x, w->ffn_norm, n, c->dim, c->norm_eps, s->xb);
	op_linear(w->w_gate, NULL, s->xb, n, s->h1, s->lin_scratch);
	op_linear(w->w_up, NULL, s->xb, n, s->h3, s->lin_scratch);
	op_swiglu(s->h1, s->h3, n * ffn);
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

shrink_status shrink_forward(const shrink_model *m, shrink_state *s, const int *tokens, int n, float *logits,
			     bool all_logits, shrink_error *err)
{
	shrink_status st = check_call(m, s, tokens, n, err);
	if (st)
		return st;
	op_embed(m->tok_embed, tokens, n, m->config->dim, s->x);
	for (int l = 0; l < m->config->n_layers; l++) {
		if ((st = attention_block(m, s, l, n, err)))
			return st;
		ffn_block(m, s, l, n);
	}
	if (logits)
		logits_out(m, s, n, logits, all_logits);
	s->pos += n;
	return SHRINK_OK;
}
