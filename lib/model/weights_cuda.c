/* weights_cuda.c: shrink_model_set_device: upload a model's weights to the GPU
 * once. Quantized matrices (SHRINK_QPACKED) keep their bits and group size,
 * per tensor, so mixed-precision models run as stored; they are repacked on
 * the GPU into the kernels' layout. Float weights (f32, f16, bf16) become f16.
 * The token embedding stays on the host: the backend looks up the few rows a
 * call needs there and uploads them with the call (the table is the largest
 * float tensor of a small model, and tied models upload it once as lm_head). */
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "shrink/quant.h"

#ifdef SHRINK_HAVE_CUDA

shrink_status gpu_fail(const struct shrink_model_gpu *g, shrink_status st, const char *what, shrink_error *err)
{
	return shrink_fail(err, st, "cuda: %s: %s", what, shrink_cuda_ctx_message(g->ctx));
}

static shrink_cuda_dtype cuda_dtype(shrink_dtype d)
{
	return d == SHRINK_F16 ? SHRINK_CUDA_F16 : d == SHRINK_BF16 ? SHRINK_CUDA_BF16 : SHRINK_CUDA_F32;
}

static shrink_status upload_dense(struct shrink_model_gpu *g, const shrink_tensor *t, gpu_weight *w)
{
	int64_t n = shrink_tensor_numel(t);
	size_t elem = t->dtype == SHRINK_F32 ? 4 : 2;
	shrink_cuda_ctx *ctx = g->ctx;
	shrink_status st = shrink_cuda_alloc(ctx, (size_t)n * 2, (void **)&w->dense);
	if (st || t->dtype == SHRINK_F16)
		return st ? st : shrink_cuda_upload(ctx, w->dense, t->data, (size_t)n * 2);
	void *raw = NULL;
	st = shrink_cuda_alloc(ctx, (size_t)n * elem, &raw);
	if (!st)
		st = shrink_cuda_upload(ctx, raw, t->data, (size_t)n * elem);
	if (!st)
		st = shrink_cuda_convert(ctx, cuda_dtype(t->dtype), raw, n, SHRINK_CUDA_F16, w->dense);
	if (!st)
		st = shrink_cuda_sync(ctx); /* the conversion ends before raw is freed */
	shrink_cuda_release(raw);
	return st;
}

static shrink_status upload(struct shrink_model_gpu *g, const char *path, const shrink_tensor *t, gpu_weight *w,
			    shrink_error *err)
{
	if (!t)
		return SHRINK_OK; /* an absent bias */
	w->rows = t->shape[0];
	w->cols = t->n_dims == 2 ? t->shape[1] : 0;
	shrink_status st;
	if (t->dtype == SHRINK_QPACKED) {
		const shrink_qmatrix *q = t->data;
		w->quantized = true;
		st = shrink_cuda_qweight_upload(g->ctx, q->scheme.bits, q->scheme.group_size, q->scheme.symmetric, q->rows,
						q->cols, q->qweight, q->scales, q->zeros, &w->q);
		if (!st)
			g->bytes += shrink_cuda_qweight_bytes(&w->q);
	} else {
		st = upload_dense(g, t, w);
		g->bytes += (size_t)shrink_tensor_numel(t) * 2;
	}
	if (st)
		return shrink_fail(err, st, "%s: tensor '%s': upload to the GPU failed: %s", path, t->name,
				   shrink_cuda_ctx_message(g->ctx));
	return SHRINK_OK;
}

static void weight_free(gpu_weight *w)
{
	if (w->quantized)
		shrink_cuda_qweight_free(&w->q);
	shrink_cuda_release(w->dense);
	memset(w, 0, sizeof *w);
}

void gpu_model_free(struct shrink_model_gpu *g)
{
	if (!g)
		return;
	for (int l = 0; g->layers && l < g->n_layers; l++) {
		gpu_layer *L = &g->layers[l];
		gpu_weight *all[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq,
				     &L->bk, &L->bv, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
		for (size_t i = 0; i < sizeof all / sizeof *all; i++)
			weight_free(all[i]);
	}
	free(g->layers);
	weight_free(&g->norm);
	weight_free(&g->lm_head);
	shrink_cuda_ctx_destroy(g->ctx);
	free(g);
}

#define LAYER_WEIGHTS 12

/* Layer l's host tensors and their device slots, in the same order. */
static void layer_slots(const shrink_model *m, struct shrink_model_gpu *g, int l, const shrink_tensor **src,
			gpu_weight **dst)
{
	const shrink_layer_weights *w = &m->layers[l];
	gpu_layer *L = &g->layers[l];
	const shrink_tensor *s[LAYER_WEIGHTS] = {w->attn_norm, w->wq, w->wk, w->wv, w->wo, w->bq,
						 w->bk, w->bv, w->ffn_norm, w->w_gate, w->w_up, w->w_down};
	gpu_weight *d[LAYER_WEIGHTS] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq,
					&L->bk, &L->bv, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
	memcpy(src, s, sizeof s);
	memcpy(dst, d, sizeof d);
}

static shrink_status upload_layer(struct shrink_model_gpu *g, const shrink_model *m, int l, shrink_error *err)
{
	const shrink_tensor *src[LAYER_WEIGHTS];
	gpu_weight *dst[LAYER_WEIGHTS];
	layer_slots(m, g, l, src, dst);
	for (int i = 0; i < LAYER_WEIGHTS; i++) {
		shrink_status st = upload(g, m->path, src[i], dst[i], err);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status to_cuda(shrink_model *m, shrink_error *err)
{
	if (shrink_cuda_device_count() < 1)
		return shrink_fail(err, SHRINK_EIO, "--device cuda: no CUDA device found");
	struct shrink_model_gpu *g = calloc(1, sizeof *g);
	if (!g)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	shrink_status st = shrink_cuda_ctx_create(0, NULL, &g->ctx);
	if (st) {
		free(g);
		return shrink_fail(err, SHRINK_EIO, "--device cuda: cannot open the CUDA device");
	}
	g->n_layers = m->config->n_layers;
	g->layers = calloc((size_t)g->n_layers, sizeof *g->layers);
	if (!g->layers)
		st = shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int l = 0; l < g->n_layers && !st; l++)
		st = upload_layer(g, m, l, err);
	if (!st)
		st = upload(g, m->path, m->norm, &g->norm, err);
	if (!st)
		st = upload(g, m->path, m->lm_head, &g->lm_head, err);
	if (st) {
		gpu_model_free(g);
		return st;
	}
	m->gpu = g;
	return SHRINK_OK;
}

/* The device slot holding host tensor t, or NULL (the embedding; absent biases). */
static gpu_weight *slot_of(struct shrink_model_gpu *g, const shrink_model *m, const shrink_tensor *t)
{
	if (t == m->lm_head)
		return &g->lm_head;
	if (t == m->norm)
		return &g->norm;
	for (int l = 0; l < g->n_layers; l++) {
		const shrink_tensor *src[LAYER_WEIGHTS];
		gpu_weight *dst[LAYER_WEIGHTS];
		layer_slots(m, g, l, src, dst);
		for (int i = 0; i < LAYER_WEIGHTS; i++)
			if (src[i] == t)
				return dst[i];
	}
	return NULL;
}

static shrink_status reload(shrink_model *m, const shrink_tensor *t, shrink_error *err)
{
	struct shrink_model_gpu *g = m->gpu;
	gpu_weight *w = slot_of(g, m, t);
	if (!w)
		return SHRINK_OK;
	/* the stream may still read the old weight */
	shrink_status st = shrink_cuda_sync(g->ctx);
	if (st)
		return gpu_fail(g, st, "waiting for the stream", err);
	g->bytes -= w->quantized ? shrink_cuda_qweight_bytes(&w->q) : (size_t)(w->rows * (w->cols ? w->cols : 1)) * 2;
	weight_free(w);
	return upload(g, m->path, t, w, err);
}

#else

void gpu_model_free(struct shrink_model_gpu *g)
{
	(void)g;
}

static shrink_status reload(shrink_model *m, const shrink_tensor *t, shrink_error *err)
{
	(void)m, (void)t, (void)err;
	return SHRINK_OK;
}

static shrink_status to_cuda(shrink_model *m, shrink_error *err)
{
	(void)m;
	return shrink_fail(err, SHRINK_EIO, "--device cuda: this build of libshrink has no CUDA backend");
}

#endif

shrink_status shrink_model_set_device(shrink_model *m, const char *device, shrink_error *err)
{
	if (!device || strcmp(device, "cpu") == 0) {
		gpu_model_free(m->gpu);
		m->gpu = NULL;
		return SHRINK_OK;
	}
	if (strcmp(device, "cuda") != 0)
		return shrink_fail(err, SHRINK_EUSAGE, "device '%s': expected cpu or cuda", device);
	if (m->gpu)
		return SHRINK_OK;
	return to_cuda(m, err);
}

shrink_status shrink_model_reload_weight(shrink_model *m, const shrink_tensor *t, shrink_error *err)
{
	return m->gpu ? reload(m, t, err) : SHRINK_OK;
}
