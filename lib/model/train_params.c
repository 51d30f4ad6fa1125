/* train_params.c: the float32 parameter vector of a bound model (grad.h): which
 * tensor sits where, and copying the model's weights into it. The order is the
 * forward pass's: embed, per layer attn_norm, q (+b), k (+b), v (+b), o,
 * ffn_norm, gate, up, down, then norm and lm_head (absent when tied).
 * Deliberately not here: writing weights back into a model (they are mapped
 * read-only), any arithmetic on the vector. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/grad.h"

static const char *layer_suffix[SHRINK_PARAM_KINDS] = {
	[SHRINK_PARAM_ATTN_NORM] = "input_layernorm.weight",
	[SHRINK_PARAM_WQ] = "self_attn.q_proj.weight",
	[SHRINK_PARAM_BQ] = "self_attn.q_proj.bias",
	[SHRINK_PARAM_WK] = "self_attn.k_proj.weight",
	[SHRINK_PARAM_BK] = "self_attn.k_proj.bias",
	[SHRINK_PARAM_WV] = "self_attn.v_proj.weight",
	[SHRINK_PARAM_BV] = "self_attn.v_proj.bias",
	[SHRINK_PARAM_WO] = "self_attn.o_proj.weight",
	[SHRINK_PARAM_FFN_NORM] = "post_attention_layernorm.weight",
	[SHRINK_PARAM_GATE] = "mlp.gate_proj.weight",
	[SHRINK_PARAM_UP] = "mlp.up_proj.weight",
	[SHRINK_PARAM_DOWN] = "mlp.down_proj.weight",
};

static const shrink_tensor *layer_tensor(const shrink_layer_weights *w, shrink_param_kind k)
{
	switch (k) {
	case SHRINK_PARAM_ATTN_NORM: return w->attn_norm;
	case SHRINK_PARAM_WQ: return w->wq;
	case SHRINK_PARAM_BQ: return w->bq;
	case SHRINK_PARAM_WK: return w->wk;
	case SHRINK_PARAM_BK: return w->bk;
	case SHRINK_PARAM_WV: return w->wv;
	case SHRINK_PARAM_BV: return w->bv;
	case SHRINK_PARAM_WO: return w->wo;
	case SHRINK_PARAM_FFN_NORM: return w->ffn_norm;
	case SHRINK_PARAM_GATE: return w->w_gate;
	case SHRINK_PARAM_UP: return w->w_up;
	case SHRINK_PARAM_DOWN: return w->w_down;
	default: return NULL;
	}
}

static void add_param(shrink_param_layout *lay, shrink_param_kind kind, int layer, const char *name,
		      const shrink_tensor *t)
{
	shrink_param *p = &lay->params[lay->n];
	memset(p, 0, sizeof *p);
	snprintf(p->name, sizeof p->name, "%s", name);
	p->kind = kind;
	p->layer = layer;
	p->rows = t->shape[0];
	p->cols = t->n_dims == 2 ? t->shape[1] : 0;
	p->numel = shrink_tensor_numel(t);
	p->offset = lay->n_params;
	p->src = t;
	lay->index[(layer + 1) * SHRINK_PARAM_KINDS + kind] = lay->n;
	lay->n_params += p->numel;
	lay->n++;
}

shrink_status shrink_param_layout_init(const shrink_model *m, shrink_param_layout *lay, shrink_error *err)
{
	const shrink_config *c = m->config;
	memset(lay, 0, sizeof *lay);
	int max = 3 + c->n_layers * SHRINK_PARAM_KINDS;
	lay->config = c;
	lay->params = calloc((size_t)max, sizeof *lay->params);
	lay->index = malloc((size_t)(c->n_layers + 1) * SHRINK_PARAM_KINDS * sizeof *lay->index);
	if (!lay->params || !lay->index) {
		shrink_param_layout_free(lay);
		return shrink_fail(err, SHRINK_EIO, "%s: out of memory for the parameter layout", m->path);
	}
	for (int i = 0; i < (c->n_layers + 1) * SHRINK_PARAM_KINDS; i++)
		lay->index[i] = -1;
	add_param(lay, SHRINK_PARAM_EMBED, -1, m->tok_embed->name, m->tok_embed);
	char name[SHRINK_NAME_MAX];
	for (int l = 0; l < c->n_layers; l++) {
		for (int k = SHRINK_PARAM_ATTN_NORM; k <= SHRINK_PARAM_DOWN; k++) {
			const shrink_tensor *t = layer_tensor(&m->layers[l], (shrink_param_kind)k);
			if (!t)
				continue;
			snprintf(name, sizeof name, "model.layers.%d.%s", l, layer_suffix[k]);
			add_param(lay, (shrink_param_kind)k, l, name, t);
		}
	}
	add_param(lay, SHRINK_PARAM_NORM, -1, m->norm->name, m->norm);
	lay->tied = m->lm_head == m->tok_embed;
	if (!lay->tied)
		add_param(lay, SHRINK_PARAM_LM_HEAD, -1, m->lm_head->name, m->lm_head);
	return SHRINK_OK;
}

void shrink_param_layout_free(shrink_param_layout *lay)
{
	free(lay->params);
	free(lay->index);
	memset(lay, 0, sizeof *lay);
}

const shrink_param *shrink_param_get(const shrink_param_layout *lay, shrink_param_kind kind, int layer)
{
	if (kind == SHRINK_PARAM_LM_HEAD && lay->tied)
		kind = SHRINK_PARAM_EMBED;
	int i = lay->index[(layer + 1) * SHRINK_PARAM_KINDS + kind];
	return i < 0 ? NULL : &lay->params[i];
}

int shrink_param_find(const shrink_param_layout *lay, const char *name)
{
	for (int i = 0; i < lay->n; i++)
		if (strcmp(lay->params[i].name, name) == 0)
			return i;
	return -1;
}

#define GATHER_BLOCK (1 << 16)

shrink_status shrink_param_gather(const shrink_param_layout *lay, float *theta, shrink_error *err)
{
	for (int i = 0; i < lay->n; i++) {
		const shrink_param *p = &lay->params[i];
		if (!p->src)
			return shrink_fail(err, SHRINK_EUSAGE, "parameter '%s' has no source tensor", p->name);
		int block_elems = 1, block_bytes;
		shrink_dtype_block(p->src->dtype, &block_elems, &block_bytes);
		int64_t step = GATHER_BLOCK - GATHER_BLOCK % block_elems;
		for (int64_t first = 0; first < p->numel; first += step) {
			int64_t n = p->numel - first < step ? p->numel - first : step;
			shrink_status st =
			    shrink_dequant_row(p->src->dtype, p->src->data, first, n, theta + p->offset + first, err);
			if (st)
				return shrink_fail_prefix(err, "tensor '%s': ", p->name);
		}
	}
	return SHRINK_OK;
}
