/* gptq_model.c: GPTQ over a whole model, one transformer layer at a time.
 * The calibration windows are embedded once; for each layer the inputs of
 * its linears are captured while running the float layer on every window
 * (accumulating H = 2XX^T/N per input: q/k/v share one, then o_proj,
 * gate/up, down_proj), the layer's linears are quantized with GPTQ, and the
 * windows are pushed through the quantized layer so the next layer is
 * calibrated on what the quantized model really produces. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_quant_impl.h"

typedef struct {
	shrink_hessian h[4];
} layer_hessians;

static void capture(void *user, int layer, int which, const float *x, int n_tok, int width)
{
	layer_hessians *lh = user;
	(void)layer, (void)width;
	shrink_hessian_add(&lh->h[which], x, n_tok);
}

static const struct {
	const char *suffix;
	int which;
	size_t field; /* offset of the tensor pointer in shrink_layer_weights */
} linears[] = {
	{"self_attn.q_proj.weight", 0, offsetof(shrink_layer_weights, wq)},
	{"self_attn.k_proj.weight", 0, offsetof(shrink_layer_weights, wk)},
	{"self_attn.v_proj.weight", 0, offsetof(shrink_layer_weights, wv)},
	{"self_attn.o_proj.weight", 1, offsetof(shrink_layer_weights, wo)},
	{"mlp.gate_proj.weight", 2, offsetof(shrink_layer_weights, w_gate)},
	{"mlp.up_proj.weight", 2, offsetof(shrink_layer_weights, w_up)},
	{"mlp.down_proj.weight", 3, offsetof(shrink_layer_weights, w_down)},
};
#define N_LINEARS (sizeof linears / sizeof linears[0])

static shrink_status collect(const shrink_model *m, shrink_state *s, int l, float *X, const shrink_quantize_params *p,
			     layer_hessians *lh, shrink_error *err)
{
	const shrink_config *c = m->config;
	int64_t widths[4] = {c->dim, (int64_t)c->layers[l].n_heads * c->head_dim, c->dim, c->layers[l].ffn_dim};
	for (int i = 0; i < 4; i++) {
		shrink_status st = shrink_hessian_init(&lh->h[i], widths[i], err);
		if (st)
			return st;
	}
	size_t win = (size_t)p->ctx * c->dim;
	float *tmp = malloc(win * sizeof(float));
	if (!tmp)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	shrink_status st = SHRINK_OK;
	for (int i = 0; i < p->n_samples && !st; i++) {
		memcpy(tmp, X + i * win, win * sizeof(float));
		st = shrink_layer_run(m, s, l, &m->layers[l], tmp, p->ctx, capture, lh, err);
	}
	free(tmp);
	return st;
}

/* Quantize layer l's linears; qw gets f32 tensors of the dequantized weights. */
static shrink_status quantize_layer(const shrink_model *m, int l, const shrink_quant_plan *plan,
				   const shrink_quantize_params *p, shrink_container_writer *wr, bool *written,
				   layer_hessians *lh, shrink_layer_weights *qw, shrink_tensor *tmp, shrink_error *err)
{
	*qw = m->layers[l];
	for (size_t i = 0; i < N_LINEARS; i++) {
		char name[SHRINK_NAME_MAX];
		snprintf(name, sizeof name, "model.layers.%d.%s", l, linears[i].suffix);
		const shrink_plan_entry *e = mq_plan_find(plan, name);
		if (!e || !e->quantized)
			continue; /* kept in float: written by the generic pass */
		const shrink_tensor *src = shrink_tensor_set_find(&m->file.weights, name);
		float *w, *deq = malloc((size_t)(e->rows * e->cols) * sizeof(float));
		shrink_status st = deq ? mq_tensor_f32(src, &w, err) : shrink_fail(err, SHRINK_EIO, "out of memory");
		if (st) {
			free(deq);
			return st;
		}
		st = mq_quantize_put(wr, e, w, lh->h[linears[i].which].H, p, deq, err);
		free(w);
		tmp[i] = *src;
		tmp[i].dtype = SHRINK_F32;
		tmp[i].data = tmp[i].owned = deq;
		tmp[i].n_bytes = (size_t)(e->rows * e->cols) * sizeof(float);
		*(const shrink_tensor **)((char *)qw + linears[i].field) = &tmp[i];
		written[e - plan->e] = true;
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status embed_windows(const shrink_model *m, const shrink_quantize_params *p, float **X,
				   shrink_error *err)
{
	size_t win = (size_t)p->ctx * m->config->dim;
	*X = malloc((size_t)p->n_samples * win * sizeof(float));
	if (!*X)
		return shrink_fail(err, SHRINK_EIO, "out of memory for %d calibration windows", p->n_samples);
	shrink_status st = SHRINK_OK;
	for (int i = 0; i < p->n_samples && !st; i++)
		st = shrink_embed(m, p->calib_tokens + (size_t)i * p->ctx, p->ctx, *X + i * win, err);
	return st;
}

shrink_status mq_gptq_layers(const shrink_model *m, const shrink_quant_plan *plan, const shrink_quantize_params *p,
			     shrink_container_writer *wr, bool *written, shrink_error *err)
{
	if (!p->calib_tokens || p->n_samples < 1 || p->ctx < 2)
		return shrink_fail(err, SHRINK_EUSAGE, "GPTQ needs calibration text (--data)");
	shrink_state *s;
	float *X = NULL;
	shrink_status st = shrink_state_new(m, p->ctx, p->ctx, "f32", &s, err);
	if (st)
		return st;
	st = embed_windows(m, p, &X, err);
	size_t win = (size_t)p->ctx * m->config->dim;
	for (int l = 0; l < m->config->n_layers && !st; l++) {
		layer_hessians lh = {0};
		shrink_layer_weights qw;
		shrink_tensor tmp[N_LINEARS] = {0};
		st = collect(m, s, l, X, p, &lh, err);
		if (!st)
			st = quantize_layer(m, l, plan, p, wr, written, &lh, &qw, tmp, err);
		for (int i = 0; i < p->n_samples && !st; i++)
			st = shrink_layer_run(m, s, l, &qw, X + i * win, p->ctx, NULL, NULL, err);
		for (int i = 0; i < 4; i++)
			shrink_hessian_free(&lh.h[i]);
		for (size_t i = 0; i < N_LINEARS; i++)
			free(tmp[i].owned);
		if (p->progress)
			p->progress(p->user, l + 1, m->config->n_layers);
	}
	free(X);
	shrink_state_free(s);
	return st;
}
