/* forward_cuda.c: the forward pass of forward.c on the GPU, step for step:
 * embed -> per layer [rmsnorm, q/k/v (+bias), rope, KV store, attention,
 * o_proj, residual, rmsnorm, gate/up, swiglu, down, residual] -> norm ->
 * logits. Why a second, parallel pass rather than one pass over a device op
 * table: the CPU ops take host float32 arrays and a KV interface that reads
 * history back chunk by chunk (for the compressed caches of lib/kv), while
 * the GPU ops take device f16 buffers and a flat f16 cache; sharing the pass
 * would mean an op vtable over opaque buffers in forward.c and ops.c, which
 * other work changes at the same time. Keep the two in the same order.
 * Each block leaves its output (o_proj, down_proj) in xb; the next RMSNorm adds
 * it to the residual stream in the same kernel (one launch fewer per block).
 * Precision: the residual stream is float32 as on the CPU; matrix products,
 * RoPE, attention and SwiGLU run in f16 with float accumulation; logits are
 * float32 from a float-accumulated product.
 * Decode (one token) is one CUDA graph replayed for every token: the position
 * lives in device memory (pos_dev), read by the fused rope + KV store +
 * attention kernel, so the captured step serves every position; q/k/v and
 * gate/up run as one launch each (shrink_cuda_qlinear_multi), and the MLP's
 * RMSNorm and SwiGLU ride in the activation loads of its GEMVs
 * (shrink_cuda_xin; the residual then takes the o_proj output, kept in xo,
 * together with down_proj's at the next layer's norm). The graph is
 * captured on the first decode step and again whenever the context's
 * workspace moved; if capture fails the same ops run eagerly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "ops.h"

#ifdef SHRINK_HAVE_CUDA

struct shrink_state_gpu {
	const struct shrink_model_gpu *g;
	int max_tokens, max_batch, n_layers;
	uint16_t **kc, **vc;					/* per layer [max_tokens][kv_dim] f16 */
	float *x;						/* residual stream [max_batch, dim] */
	uint16_t *xb, *xo, *q, *k, *v, *att, *h1, *h3, *logits16; /* f16 activations */
	float *logits;						/* [max_batch, vocab] */
	float *inv_freq;					/* head_dim / 2 */
	/* page-locked host memory (copies without staging): embedding rows gathered on the host
	 * [max_batch, dim], then the decode position and the greedy token */
	float *host_x;
	int32_t *host_pos, *host_next;
	int32_t *pos_dev, *next_dev;			/* the same two on the device */
	shrink_cuda_graph *graph[2];			/* the decode step, once captured: [greedy] */
	unsigned graph_generation[2];			/* the context's workspace generation each was captured with */
	bool graph_failed;				/* capture failed once: decode eagerly */
	struct gpu_kv *kv; /* a compressed KV cache (then kc, vc are NULL) */
};

shrink_status gpu_kv_spec(const char *kv_spec, const char **cpu_spec, shrink_error *err)
{
	(void)err;
	bool flat = !kv_spec || strcmp(kv_spec, "f16") == 0 || strcmp(kv_spec, "f32") == 0;
	*cpu_spec = flat ? "f16" : kv_spec;
	return SHRINK_OK;
}

static int layer_max(const shrink_config *c, int which)
{
	int m = 0;
	for (int l = 0; l < c->n_layers; l++) {
		int v = which == 0 ? c->layers[l].n_heads : which == 1 ? c->layers[l].n_kv_heads : c->layers[l].ffn_dim;
		m = v > m ? v : m;
	}
	return m;
}

void gpu_state_free(struct shrink_state_gpu *s)
{
	if (!s)
		return;
	for (int l = 0; l < s->n_layers; l++) {
		shrink_cuda_release(s->kc ? s->kc[l] : NULL);
		shrink_cuda_release(s->vc ? s->vc[l] : NULL);
	}
	free(s->kc), free(s->vc);
	shrink_cuda_graph_free(s->graph[0]);
	shrink_cuda_graph_free(s->graph[1]);
	gpu_kv_free(s->kv);
	void *dev[] = {s->x,  s->xb, s->xo,	    s->q,      s->k,	    s->v,	s->att,
		       s->h1, s->h3, s->logits16, s->logits, s->inv_freq, s->pos_dev, s->next_dev};
	for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
		shrink_cuda_release(dev[i]);
	shrink_cuda_host_release(s->host_x);
	free(s);
}

/* Workspace for the largest quantized product at max_batch tokens and for split decode attention. */
static size_t workspace_need(const shrink_model *m, int max_tokens, int max_batch)
{
	const struct shrink_model_gpu *g = m->gpu;
	const shrink_cuda_ctx *ctx = g->ctx;
	const shrink_config *c = m->config;
	size_t need = shrink_cuda_attention_workspace(1, layer_max(c, 0), c->head_dim, max_tokens);
	size_t dec = shrink_cuda_attention_decode_workspace(layer_max(c, 0), c->head_dim, max_tokens);
	need = dec > need ? dec : need;
	for (int l = 0; l < g->n_layers; l++) {
		const gpu_layer *L = &g->layers[l];
		if (L->wq.quantized && L->wk.quantized && L->wv.quantized) {
			const shrink_cuda_qweight *qkv[] = {&L->wq.q, &L->wk.q, &L->wv.q};
			size_t b = shrink_cuda_qlinear_multi_workspace(ctx, 3, qkv, max_batch);
			need = b > need ? b : need;
		}
		if (L->w_gate.quantized && L->w_up.quantized) {
			const shrink_cuda_qweight *gu[] = {&L->w_gate.q, &L->w_up.q};
			size_t b = shrink_cuda_qlinear_multi_workspace(ctx, 2, gu, max_batch);
			need = b > need ? b : need;
		}
		const gpu_weight *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
		for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
			size_t b = all[i]->quantized ? shrink_cuda_qlinear_workspace(ctx, &all[i]->q, max_batch, false) : 0;
			need = b > need ? b : need;
		}
	}
	if (g->lm_head.quantized) {
		size_t b = shrink_cuda_qlinear_workspace(ctx, &g->lm_head.q, max_batch, false);
		need = b > need ? b : need;
	}
	return need;
}

static shrink_status alloc_buffers(const shrink_model *m, struct shrink_state_gpu *s)
{
	const shrink_config *c = m->config;
	shrink_cuda_ctx *ctx = s->g->ctx;
	size_t b = (size_t)s->max_batch, hd = (size_t)c->head_dim, dim = (size_t)c->dim;
	size_t qd = (size_t)layer_max(c, 0) * hd, kvd = (size_t)layer_max(c, 1) * hd, ffn = (size_t)layer_max(c, 2);
	size_t vocab = (size_t)c->vocab_size;
	struct {
		void **p;
		size_t bytes;
	} want[] = {
		{(void **)&s->x, b * dim * 4},	   {(void **)&s->xb, b * dim * 2},   {(void **)&s->xo, dim * 2},
		{(void **)&s->q, b * qd * 2},
		{(void **)&s->k, b * kvd * 2},	   {(void **)&s->v, b * kvd * 2},    {(void **)&s->att, b * qd * 2},
		{(void **)&s->h1, b * ffn * 2},	   {(void **)&s->h3, b * ffn * 2},   {(void **)&s->logits, b * vocab * 4},
		{(void **)&s->inv_freq, hd / 2 * 4},
		{(void **)&s->logits16, s->g->lm_head.quantized ? b * vocab * 2 : 0},
		{(void **)&s->pos_dev, 4},	   {(void **)&s->next_dev, 4},
	};
	shrink_status st = shrink_cuda_host_alloc(ctx, b * dim * 4 + 8, (void **)&s->host_x);
	if (!st)
		s->host_pos = (int32_t *)(s->host_x + b * dim), s->host_next = s->host_pos + 1;
	for (size_t i = 0; i < sizeof want / sizeof *want && !st; i++)
		if (want[i].bytes)
			st = shrink_cuda_alloc(ctx, want[i].bytes, want[i].p);
	for (int l = 0; l < s->n_layers && !st && !s->kv; l++) {
		size_t bytes = (size_t)s->max_tokens * c->layers[l].n_kv_heads * hd * 2;
		st = shrink_cuda_alloc(ctx, bytes, (void **)&s->kc[l]);
		if (!st)
			st = shrink_cuda_alloc(ctx, bytes, (void **)&s->vc[l]);
	}
	return st;
}

shrink_status gpu_state_new(const shrink_model *m, shrink_kv *kv, int max_tokens, int max_batch,
			    struct shrink_state_gpu **out, shrink_error *err)
{
	*out = NULL;
	const shrink_config *c = m->config;
	if (c->head_dim % 8 || c->head_dim > 256)
		return shrink_fail(err, SHRINK_EUSAGE, "%s: head_dim %d: the CUDA backend needs a multiple of 8 up to 256",
				   m->path, c->head_dim);
	struct shrink_state_gpu *s = calloc(1, sizeof *s);
	if (!s)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	s->g = m->gpu;
	s->max_tokens = max_tokens, s->max_batch = max_batch, s->n_layers = c->n_layers;
	s->kc = calloc((size_t)c->n_layers, sizeof *s->kc);
	s->vc = calloc((size_t)c->n_layers, sizeof *s->vc);
	float *inv_freq = malloc((size_t)c->head_dim / 2 * 4);
	shrink_status st = !s->kc || !s->vc || !inv_freq ? SHRINK_EIO : SHRINK_OK;
	if (!st && kv->ops->view)
		st = gpu_kv_new(s->g->ctx, kv, c, max_batch, &s->kv);
	if (!st)
		st = alloc_buffers(m, s);
	if (!st) {
		op_rope_inv_freq(c, inv_freq);
		st = shrink_cuda_upload(s->g->ctx, s->inv_freq, inv_freq, (size_t)c->head_dim / 2 * 4);
	}
	if (!st)
		st = shrink_cuda_ctx_reserve(s->g->ctx, workspace_need(m, max_tokens, max_batch));
	free(inv_freq);
	if (st) {
		gpu_state_free(s);
		return shrink_fail(err, SHRINK_EIO, "cuda: cannot allocate the run state (%d tokens, batch %d): %s",
				   max_tokens, max_batch, shrink_cuda_ctx_message(m->gpu->ctx));
	}
	*out = s;
	return SHRINK_OK;
}

/* y [n, rows] (f16) = x [n, cols] W^T (+ b) */
static shrink_status linear(shrink_cuda_ctx *ctx, const gpu_weight *w, const gpu_weight *b, const uint16_t *x, int n,
			    uint16_t *y)
{
	shrink_status st = w->quantized ? shrink_cuda_qlinear(ctx, &w->q, SHRINK_CUDA_F16, x, n, y)
					: shrink_cuda_linear_dense(ctx, SHRINK_CUDA_F16, w->dense, w->rows, w->cols, x,
								   n, y);
	if (!st && b && b->dense)
		st = shrink_cuda_bias(ctx, y, b->dense, n, b->rows);
	return st;
}

/* pending: the previous block's output to add to the residual stream first (NULL for the first layer);
 * kv_err: a compressed cache's failures, described there */
static shrink_status attention_block(const shrink_model *m, struct shrink_state_gpu *s, int l, int pos, int n,
				     const uint16_t *pending, shrink_error *kv_err)
{
	const shrink_config *c = m->config;
	const gpu_layer *w = &s->g->layers[l];
	shrink_cuda_ctx *ctx = s->g->ctx;
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim, dim = c->dim;
	shrink_status st = shrink_cuda_add_rmsnorm_f32(ctx, s->x, pending, w->attn_norm.dense, n, dim, c->norm_eps, s->xb);
	if (!st)
		st = linear(ctx, &w->wq, &w->bq, s->xb, n, s->q);
	if (!st)
		st = linear(ctx, &w->wk, &w->bk, s->xb, n, s->k);
	if (!st)
		st = linear(ctx, &w->wv, &w->bv, s->xb, n, s->v);
	if (!st)
		st = shrink_cuda_rope(ctx, SHRINK_CUDA_F16, s->q, s->k, n, nh, nkv, hd, s->inv_freq, pos);
	if (!st && s->kv) {
		if ((st = gpu_kv_store(ctx, s->kv, c, l, pos, n, s->k, s->v, kv_err)))
			return st;
		st = gpu_kv_attention(ctx, s->kv, c, l, s->q, n, pos, s->att);
	} else if (!st) {
		st = shrink_cuda_kv_store(ctx, SHRINK_CUDA_F16, s->k, s->v, n, (int64_t)nkv * hd, s->kc[l], s->vc[l], pos);
		if (!st)
			st = shrink_cuda_attention(ctx, SHRINK_CUDA_F16, s->q, n, pos, nh, nkv, hd, s->kc[l], s->vc[l],
						   1.0f / sqrtf((float)hd), s->att);
	}
	if (!st)
		st = linear(ctx, &w->wo, NULL, s->att, n, s->xb); /* added by ffn_block's norm */
	return st;
}

static shrink_status ffn_block(const shrink_model *m, struct shrink_state_gpu *s, int l, int n)
{
	const shrink_config *c = m->config;
	const gpu_layer *w = &s->g->layers[l];
	shrink_cuda_ctx *ctx = s->g->ctx;
	int64_t ffn = c->layers[l].ffn_dim;
	shrink_status st = shrink_cuda_add_rmsnorm_f32(ctx, s->x, s->xb, w->ffn_norm.dense, n, c->dim, c->norm_eps, s->xb);
	if (!st)
		st = linear(ctx, &w->w_gate, NULL, s->xb, n, s->h1);
	if (!st)
		st = linear(ctx, &w->w_up, NULL, s->xb, n, s->h3);
	if (!st)
		st = shrink_cuda_swiglu(ctx, SHRINK_CUDA_F16, s->h1, s->h3, n * ffn, s->h1);
	if (!st)
		st = linear(ctx, &w->w_down, NULL, s->h1, n, s->xb); /* added by the next norm */
	return st;
}

/* The output head over count rows of normed (f16): float32 logits in s->logits, or with greedy only
 * the last row's argmax in s->next_dev. A quantized head's f16 logits convert to float exactly, so
 * their argmax is taken before the conversion, which greedy skips. */
static shrink_status head(const shrink_model *m, struct shrink_state_gpu *s, const uint16_t *normed, int count,
			  bool greedy)
{
	const gpu_weight *w = &s->g->lm_head;
	shrink_cuda_ctx *ctx = s->g->ctx;
	const int64_t vocab = m->config->vocab_size, last = (int64_t)(count - 1) * vocab;
	shrink_status st;
	if (w->quantized) {
		st = shrink_cuda_qlinear(ctx, &w->q, SHRINK_CUDA_F16, normed, count, s->logits16);
		if (!st && greedy)
			return shrink_cuda_argmax(ctx, SHRINK_CUDA_F16, s->logits16 + last, 1, vocab, s->next_dev);
		return st ? st : shrink_cuda_convert(ctx, SHRINK_CUDA_F16, s->logits16, count * vocab, SHRINK_CUDA_F32,
						      s->logits);
	}
	st = shrink_cuda_linear_dense_f32(ctx, w->dense, w->rows, w->cols, normed, count, s->logits);
	return st || !greedy ? st : shrink_cuda_argmax(ctx, SHRINK_CUDA_F32, s->logits + last, 1, vocab, s->next_dev);
}

/* Copy the step's result back and wait for it: the logits, or the greedy token, or nothing. (A row
 * of logits staged through pinned memory measured no faster on the H100 machine: +293 against +296
 * us a step for logits and host argmax over 128K floats, most of it the argmax then.) */
static shrink_status result_out(struct shrink_state_gpu *s, int64_t n_logits, float *logits, int *next)
{
	shrink_cuda_ctx *ctx = s->g->ctx;
	if (logits)
		return shrink_cuda_download(ctx, logits, s->logits, (size_t)n_logits * 4);
	if (!next)
		return shrink_cuda_sync(ctx);
	shrink_status st = shrink_cuda_download(ctx, s->host_next, s->next_dev, 4);
	if (!st)
		*next = *s->host_next;
	return st;
}

static shrink_status logits_out(const shrink_model *m, struct shrink_state_gpu *s, int n, float *logits, bool all,
				int *next)
{
	const shrink_config *c = m->config;
	int first = all ? 0 : n - 1, count = all ? n : 1;
	/* the last down_proj output is still pending in xb: only the rows that give logits need it */
	size_t off = (size_t)first * c->dim;
	/* into row 0 of xb: in place when all rows are wanted; else one CTA reads its row before writing */
	shrink_status st = shrink_cuda_add_rmsnorm_f32(s->g->ctx, s->x + off, s->xb + off, s->g->norm.dense, count,
						       c->dim, c->norm_eps, s->xb);
	if (!st)
		st = head(m, s, s->xb, count, next != NULL);
	return st ? st : result_out(s, (int64_t)count * c->vocab_size, logits, next);
}

/* y[i] = x W[i]^T for weights that read the same x (q/k/v, gate/up): one launch when all are quantized. */
static shrink_status linear_multi(shrink_cuda_ctx *ctx, int n_w, const gpu_weight *const *w, const uint16_t *x, int n,
				  uint16_t *const *y)
{
	const shrink_cuda_qweight *q[3];
	bool all_q = true;
	for (int i = 0; i < n_w; i++)
		all_q = all_q && w[i]->quantized, q[i] = &w[i]->q;
	if (all_q)
		return shrink_cuda_qlinear_multi(ctx, n_w, q, SHRINK_CUDA_F16, x, n, (void *const *)y);
	shrink_status st = SHRINK_OK;
	for (int i = 0; i < n_w && !st; i++)
		st = linear(ctx, w[i], NULL, x, n, y[i]);
	return st;
}

/* linear_multi over activations formed on the way in (shrink_cuda_xin): fused into the GEMV's load
 * where the TMA GEMV takes the weights, else formed first into in->scratch. */
static shrink_status linear_multi_xin(shrink_cuda_ctx *ctx, int n_w, const gpu_weight *const *w,
				      const shrink_cuda_xin *in, uint16_t *const *y)
{
	const shrink_cuda_qweight *q[3];
	bool all_q = true;
	for (int i = 0; i < n_w; i++)
		all_q = all_q && w[i]->quantized, q[i] = &w[i]->q;
	if (all_q)
		return shrink_cuda_qlinear_multi_xin(ctx, n_w, q, SHRINK_CUDA_F16, in, 1, (void *const *)y);
	shrink_status st = shrink_cuda_xin_form(ctx, SHRINK_CUDA_F16, in, 1, w[0]->cols);
	return st ? st : linear_multi(ctx, n_w, w, in->scratch, 1, y);
}

/* One token's attention block with the position read from s->pos_dev (capturable). The previous
 * layer's o_proj and down_proj outputs (xo, xb; NULL for the first) join the residual here. */
static shrink_status attention_decode(const shrink_model *m, struct shrink_state_gpu *s, int l, bool pending)
{
	const shrink_config *c = m->config;
	const gpu_layer *w = &s->g->layers[l];
	shrink_cuda_ctx *ctx = s->g->ctx;
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim;
	const gpu_weight *qkv[] = {&w->wq, &w->wk, &w->wv}, *bias[] = {&w->bq, &w->bk, &w->bv};
	uint16_t *out[] = {s->q, s->k, s->v};
	shrink_status st = shrink_cuda_add2_rmsnorm_f32(ctx, s->x, pending ? s->xo : NULL, pending ? s->xb : NULL,
							w->attn_norm.dense, 1, c->dim, c->norm_eps, s->xb);
	if (!st)
		st = linear_multi(ctx, 3, qkv, s->xb, 1, out);
	for (int i = 0; i < 3 && !st; i++)
		if (bias[i]->dense)
			st = shrink_cuda_bias(ctx, out[i], bias[i]->dense, 1, bias[i]->rows);
	if (!st)
		st = shrink_cuda_attention_decode(ctx, SHRINK_CUDA_F16, s->q, s->k, s->v, nh, nkv, hd, s->inv_freq,
						  s->pos_dev, s->max_tokens, s->kc[l], s->vc[l], 1.0f / sqrtf((float)hd),
						  s->att);
	if (!st)
		st = linear(ctx, &w->wo, NULL, s->att, 1, s->xo);
	return st;
}

/* The MLP of one token: its RMSNorm reads the residual plus xo without writing it back (the next
 * block's norm adds xo and the down_proj output in xb), so that it and the SwiGLU can ride in the
 * GEMVs' activation loads (shrink_cuda_xin): two launches fewer per layer. */
static shrink_status ffn_decode(const shrink_model *m, struct shrink_state_gpu *s, int l)
{
	const shrink_config *c = m->config;
	const gpu_layer *w = &s->g->layers[l];
	shrink_cuda_ctx *ctx = s->g->ctx;
	const gpu_weight *gu[] = {&w->w_gate, &w->w_up}, *down[] = {&w->w_down};
	uint16_t *out[] = {s->h1, s->h3}, *out_down[] = {s->xb};
	const shrink_cuda_xin norm = {.kind = SHRINK_CUDA_XIN_ADD_RMSNORM, .x = s->xo, .res = s->x,
				      .norm_w = w->ffn_norm.dense, .eps = c->norm_eps, .scratch = s->xb};
	const shrink_cuda_xin act = {.kind = SHRINK_CUDA_XIN_SWIGLU, .x = s->h1, .up = s->h3, .scratch = s->h1};
	shrink_status st = linear_multi_xin(ctx, 2, gu, &norm, out);
	return st ? st : linear_multi_xin(ctx, 1, down, &act, out_down);
}

/* Everything of a decode step after the embedding row reached s->x: the layers, the final norm
 * and the head (float32 logits in s->logits, or the greedy token in s->next_dev). */
static shrink_status decode_ops(const shrink_model *m, struct shrink_state_gpu *s, bool greedy)
{
	const shrink_config *c = m->config;
	shrink_cuda_ctx *ctx = s->g->ctx;
	shrink_status st = SHRINK_OK;
	for (int l = 0; l < c->n_layers && !st; l++) {
		st = attention_decode(m, s, l, l > 0);
		if (!st)
			st = ffn_decode(m, s, l);
	}
	if (!st)
		st = shrink_cuda_add2_rmsnorm_f32(ctx, s->x, s->xo, s->xb, s->g->norm.dense, 1, c->dim, c->norm_eps,
						  s->xb);
	return st ? st : head(m, s, s->xb, 1, greedy);
}

/* Run decode_ops through its captured graph (capturing it first when there is none or the
 * workspace moved since); eagerly when capture does not work here. */
static shrink_status decode_run(const shrink_model *m, struct shrink_state_gpu *s, bool greedy)
{
	shrink_cuda_ctx *ctx = s->g->ctx;
	const unsigned gen = shrink_cuda_ctx_generation(ctx);
	shrink_cuda_graph **graph = &s->graph[greedy];
	if (*graph && s->graph_generation[greedy] != gen) {
		shrink_cuda_graph_free(*graph);
		*graph = NULL;
	}
	if (!*graph && !s->graph_failed) {
		shrink_status st = shrink_cuda_capture_begin(ctx);
		if (!st) {
			shrink_status ran = decode_ops(m, s, greedy); /* recorded, not run */
			shrink_status ended = shrink_cuda_capture_end(ctx, ran ? NULL : graph);
			st = ran ? ran : ended;
		}
		s->graph_failed = st != SHRINK_OK;
		s->graph_generation[greedy] = gen;
	}
	return *graph ? shrink_cuda_graph_launch(ctx, *graph) : decode_ops(m, s, greedy);
}

static shrink_status gpu_decode(const shrink_model *m, struct shrink_state_gpu *s, int pos, int token, float *logits,
				int *next)
{
	const shrink_config *c = m->config;
	shrink_cuda_ctx *ctx = s->g->ctx;
	op_embed(m->tok_embed, &token, 1, c->dim, s->host_x);
	*s->host_pos = pos;
	/* pinned sources: read when the stream reaches the copies, before result_out returns */
	shrink_status st = shrink_cuda_upload_async(ctx, s->x, s->host_x, (size_t)c->dim * 4);
	if (!st)
		st = shrink_cuda_upload_async(ctx, s->pos_dev, s->host_pos, 4);
	if (!st)
		st = decode_run(m, s, next != NULL);
	return st ? st : result_out(s, c->vocab_size, logits, next);
}

shrink_status gpu_forward(const shrink_model *m, struct shrink_state_gpu *s, int pos, const int *tokens, int n,
			  float *logits, bool all_logits, int *next, shrink_error *err)
{
	const shrink_config *c = m->config;
	if (n == 1 && !s->kv) {
		shrink_status st = gpu_decode(m, s, pos, tokens[0], logits, next);
		return st ? gpu_fail(s->g, st, "decode", err) : SHRINK_OK;
	}
	shrink_error kv_err;
	shrink_error_clear(&kv_err);
	op_embed(m->tok_embed, tokens, n, c->dim, s->host_x);
	shrink_status st = shrink_cuda_upload(s->g->ctx, s->x, s->host_x, (size_t)n * c->dim * 4);
	for (int l = 0; l < c->n_layers && !st; l++) {
		st = attention_block(m, s, l, pos, n, l ? s->xb : NULL, &kv_err);
		if (!st)
			st = ffn_block(m, s, l, n);
	}
	if (!st && (logits || next))
		st = logits_out(m, s, n, logits, all_logits, next);
	if (!st && !logits && !next)
		st = shrink_cuda_sync(s->g->ctx);
	if (st && kv_err.code) {
		if (err)
			*err = kv_err;
		return st;
	}
	return st ? gpu_fail(s->g, st, "forward", err) : SHRINK_OK;
}

#else

shrink_status gpu_kv_spec(const char *kv_spec, const char **cpu_spec, shrink_error *err)
{
	*cpu_spec = kv_spec;
	return shrink_fail(err, SHRINK_EIO, "--device cuda: this build of libshrink has no CUDA backend");
}

shrink_status gpu_state_new(const shrink_model *m, shrink_kv *kv, int max_tokens, int max_batch,
			    struct shrink_state_gpu **out, shrink_error *err)
{
	(void)m, (void)max_tokens, (void)max_batch;
	*out = NULL;
	return shrink_fail(err, SHRINK_EIO, "--device cuda: this build of libshrink has no CUDA backend");
}

void gpu_state_free(struct shrink_state_gpu *g)
{
	(void)g;
}

shrink_status gpu_forward(const shrink_model *m, struct shrink_state_gpu *g, int pos, const int *tokens, int n,
			  float *logits, bool all_logits, int *next, shrink_error *err)
{
	(void)m, (void)g, (void)pos, (void)tokens, (void)n, (void)logits, (void)all_logits, (void)next;
	return shrink_fail(err, SHRINK_EIO, "--device cuda: this build of libshrink has no CUDA backend");
}

#endif
