/* load.c: open a model file of any supported format, bind the named weights
 * to per-layer pointers, and build the tokenizer. Binding re-checks every
 * shape and dtype the forward pass relies on, so a bad file can never make the
 * forward pass read out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "repack.h"
#include "shrink/model.h"

static shrink_status need(const shrink_model *m, const char *name, int64_t rows, int64_t cols,
			  const shrink_tensor **out, shrink_error *err)
{
	const shrink_tensor *t = shrink_tensor_set_find(&m->file.weights, name);
	*out = t;
	if (!t)
		return shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s' is missing", m->path, name);
	bool quantized_matrix = t->dtype == SHRINK_QPACKED && cols;
	if (t->dtype != SHRINK_F32 && t->dtype != SHRINK_F16 && t->dtype != SHRINK_BF16 && !quantized_matrix)
		return shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': dtype %s is not supported for computation",
				   m->path, name, shrink_dtype_name(t->dtype));
	bool ok = cols ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols)
		       : (t->n_dims == 1 && t->shape[0] == rows);
	if (!ok)
		return shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': shape does not match the config (expected [%lld%s%lld])",
				   m->path, name, (long long)rows, cols ? ", " : "", cols ? (long long)cols : 0LL);
	return SHRINK_OK;
}

static shrink_status bind_layer(shrink_model *m, int l, shrink_error *err)
{
	const shrink_config *c = m->config;
	shrink_layer_weights *w = &m->layers[l];
	int64_t dim = c->dim, q = (int64_t)c->layers[l].n_heads * c->head_dim;
	int64_t kvd = (int64_t)c->layers[l].n_kv_heads * c->head_dim, ffn = c->layers[l].ffn_dim;
	char name[SHRINK_NAME_MAX];
	shrink_status st = SHRINK_OK;
#define NEED(field, suffix, rows, cols)                                                      \
	do {                                                                                 \
		snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                \
		if (!st)                                                                     \
			st = need(m, name, rows, cols, &w->field, err);                      \
	} while (0)
	NEED(attn_norm, "input_layernorm.weight", dim, 0);
	NEED(wq, "self_attn.q_proj.weight", q, dim);
	NEED(wk, "self_attn.k_proj.weight", kvd, dim);
	NEED(wv, "self_attn.v_proj.weight", kvd, dim);
	NEED(wo, "self_attn.o_proj.weight", dim, q);
	NEED(ffn_norm, "post_attention_layernorm.weight", dim, 0);
	NEED(w_gate, "mlp.gate_proj.weight", ffn, dim);
	NEED(w_up, "mlp.up_proj.weight", ffn, dim);
	NEED(w_down, "mlp.down_proj.weight", dim, ffn);
	if (c->qkv_bias) {
		NEED(bq, "self_attn.q_proj.bias", q, 0);
		NEED(bk, "self_attn.k_proj.bias", kvd, 0);
		NEED(bv, "self_attn.v_proj.bias", kvd, 0);
	}
#undef NEED
	return st;
}

shrink_status shrink_model_bind(shrink_model *m, shrink_error *err)
{
	const shrink_config *c = m->config = &m->file.config;
	if (c->head_dim <= 0 || c->head_dim > 1024 || c->head_dim % 2)
		return shrink_fail(err, SHRINK_EINPUT, "%s: head_dim %d is not supported (even, at most 1024)", m->path,
				   c->head_dim);
	shrink_status st = need(m, "model.embed_tokens.weight", c->vocab_size, c->dim, &m->tok_embed, err);
	if (!st)
		st = need(m, "model.norm.weight", c->dim, 0, &m->norm, err);
	if (!st && c->tied_embeddings && !shrink_tensor_set_find(&m->file.weights, "lm_head.weight"))
		m->lm_head = m->tok_embed;
	else if (!st)
		st = need(m, "lm_head.weight", c->vocab_size, c->dim, &m->lm_head, err);
	free(m->layers);
	m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
	if (!m->layers)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int l = 0; l < c->n_layers && !st; l++)
		st = bind_layer(m, l, err);
	return st;
}

shrink_status shrink_model_load(const char *path, const char *tokenizer_path, shrink_model **out, shrink_error *err)
{
	*out = NULL;
	shrink_model *m = calloc(1, sizeof *m);
	if (!m)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	snprintf(m->path, sizeof m->path, "%s", path);
	shrink_status st = shrink_model_file_open(path, tokenizer_path, &m->file, err);
	if (!st)
		st = shrink_model_bind(m, err);
	if (!st)
		st = repack_model(m, err);
	if (!st && m->file.vocab.kind != SHRINK_VOCAB_NONE) {
		st = shrink_tokenizer_new(&m->file.vocab, &m->tok, err);
		if (st)
			shrink_fail_prefix(err, "%s: tokenizer: ", tokenizer_path ? tokenizer_path : path);
	}
	if (st) {
		shrink_model_free(m);
		return st;
	}
	*out = m;
	return SHRINK_OK;
}

void shrink_model_free(shrink_model *m)
{
	if (!m)
		return;
	shrink_tokenizer_free(m->tok);
	gpu_model_free(m->gpu);
	free(m->layers);
	repack_release(m);
	shrink_model_file_close(&m->file);
	free(m);
}

int64_t shrink_model_n_params(const shrink_model *m)
{
	int64_t n = 0;
	for (size_t i = 0; i < m->file.weights.n; i++)
		if (!shrink_is_container_part(&m->file.weights, m->file.weights.tensors[i].name))
			n += shrink_tensor_numel(&m->file.weights.tensors[i]);
	return n;
}
