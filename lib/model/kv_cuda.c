/* kv_cuda.c: a compressed KV cache (--kv kivi, --kv gear) under the CUDA backend.
 * The host cache of lib/kv (the state's shrink_kv, the object the CPU pass
 * uses) does the compressing: each layer's new key and value rows come back to
 * the host and go through its store(), so chunks are compressed by the same
 * code, at the same positions and with the same ranks as on the CPU, and its
 * n_bytes() is exact after every call of more than one token (decode steps
 * that complete no chunk keep their rows on the GPU only, so there the host
 * lags by fewer than a chunk of f16 rows). The GPU keeps a copy of every compressed record
 * (uploaded when its chunk completes) and a ring of the recent f16 rows;
 * attention decodes the records on the fly (shrink_cuda_attention_packed).
 * Why the host encodes: GEAR's encoder (outlier selection, power iteration)
 * is sequential per head, and the copy it needs is the layer's new rows, small
 * next to the attention over the cache. Its cost: one device-to-host copy per
 * layer per prefill call and per completed chunk (a wait for the stream each);
 * decode runs eagerly (not as one CUDA graph), attention unfused from RoPE. */
#include <math.h>
#include <stdlib.h>

#include "cuda_backend.h"
#include "kernels.h"

#ifdef SHRINK_HAVE_CUDA

struct gpu_kv {
	shrink_kv *host;
	int n_layers, head_dim, ring; /* ring: the chunk size */
	uint16_t **k_ring, **v_ring; /* per layer [ring][kv_dim]: position p at row p % ring */
	uint8_t **rec_k, **rec_v;    /* per layer [max_chunks][n_kv] records, as the host's */
	uint8_t **rank;		     /* per layer [max_chunks] */
	uint16_t *rows;		     /* host: k then v rows [n][kv_dim] of one call */
	float *kf, *vf;		     /* host: one token's rows */
	int max_batch, max_kv_dim;
	int *handed; /* per layer: positions 0 .. handed - 1 are in the host cache */
};

void gpu_kv_free(struct gpu_kv *g)
{
	if (!g)
		return;
	for (int l = 0; l < g->n_layers; l++) {
		void *dev[] = {g->k_ring[l], g->v_ring[l], g->rec_k[l], g->rec_v[l], g->rank[l]};
		for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
			shrink_cuda_release(dev[i]);
	}
	free(g->k_ring), free(g->v_ring), free(g->rec_k), free(g->rec_v), free(g->rank);
	free(g->rows), free(g->kf), free(g->vf), free(g->handed);
	free(g);
}

static shrink_status alloc_layer(shrink_cuda_ctx *ctx, struct gpu_kv *g, const shrink_config *c, int l, int max_chunks)
{
	shrink_kv_view v;
	g->host->ops->view(g->host, l, &v);
	size_t kvd = (size_t)c->layers[l].n_kv_heads * c->head_dim, recs = (size_t)max_chunks * c->layers[l].n_kv_heads;
	shrink_status st = shrink_cuda_alloc(ctx, (size_t)g->ring * kvd * 2, (void **)&g->k_ring[l]);
	if (!st)
		st = shrink_cuda_alloc(ctx, (size_t)g->ring * kvd * 2, (void **)&g->v_ring[l]);
	if (!st && recs)
		st = shrink_cuda_alloc(ctx, recs * v.k.rec_bytes, (void **)&g->rec_k[l]);
	if (!st && recs)
		st = shrink_cuda_alloc(ctx, recs * v.v.rec_bytes, (void **)&g->rec_v[l]);
	if (!st)
		st = shrink_cuda_alloc(ctx, (size_t)max_chunks + 1, (void **)&g->rank[l]);
	return st;
}

shrink_status gpu_kv_new(shrink_cuda_ctx *ctx, shrink_kv *host, const shrink_config *c, int max_batch,
			 struct gpu_kv **out)
{
	*out = NULL;
	struct gpu_kv *g = calloc(1, sizeof *g);
	if (!g)
		return SHRINK_EIO;
	shrink_kv_view v;
	host->ops->view(host, 0, &v);
	g->host = host;
	g->n_layers = c->n_layers, g->head_dim = c->head_dim, g->max_batch = max_batch;
	g->ring = v.chunk; /* positions after the last complete chunk */
	g->max_kv_dim = shrink_kv_max_kv_dim(c);
	size_t n = (size_t)c->n_layers;
	g->k_ring = calloc(n, sizeof *g->k_ring), g->v_ring = calloc(n, sizeof *g->v_ring);
	g->rec_k = calloc(n, sizeof *g->rec_k), g->rec_v = calloc(n, sizeof *g->rec_v);
	g->rank = calloc(n, sizeof *g->rank);
	size_t rows = (size_t)(max_batch > v.chunk ? max_batch : v.chunk);
	g->rows = malloc(rows * g->max_kv_dim * 2 * 2);
	g->handed = calloc(n, sizeof *g->handed);
	g->kf = malloc((size_t)g->max_kv_dim * 4), g->vf = malloc((size_t)g->max_kv_dim * 4);
	shrink_status st =
		g->k_ring && g->v_ring && g->rec_k && g->rec_v && g->rank && g->rows && g->kf && g->vf && g->handed
			? SHRINK_OK
			: SHRINK_EIO;
	for (int l = 0; l < c->n_layers && !st; l++)
		st = alloc_layer(ctx, g, c, l, host->max_tokens / v.chunk);
	if (st) {
		gpu_kv_free(g);
		return st;
	}
	*out = g;
	return SHRINK_OK;
}

/* The rows of positions pos.. (k, v [n][kv_dim]) that stay uncompressed after this call, into the
 * ring: they lie in the last, incomplete chunk, at rows p % chunk. */
static shrink_status ring_store(shrink_cuda_ctx *ctx, struct gpu_kv *g, int l, int pos, int n, int64_t kvd,
				const uint16_t *k, const uint16_t *v)
{
	int end = pos + n, from = end / g->ring * g->ring > pos ? end / g->ring * g->ring : pos;
	if (from == end)
		return SHRINK_OK;
	k += (size_t)(from - pos) * kvd, v += (size_t)(from - pos) * kvd;
	return shrink_cuda_kv_store(ctx, SHRINK_CUDA_F16, k, v, end - from, kvd, g->k_ring[l], g->v_ring[l],
				    from % g->ring);
}

/* the host cache's newly compressed chunks [c0, c1) of layer l onto the GPU */
static shrink_status upload_chunks(shrink_cuda_ctx *ctx, struct gpu_kv *g, int l, const shrink_kv_view *v, int c0,
				   int n_kv)
{
	size_t per_k = (size_t)n_kv * v->k.rec_bytes, per_v = (size_t)n_kv * v->v.rec_bytes;
	size_t n = (size_t)(v->n_chunks - c0);
	shrink_status st = shrink_cuda_upload(ctx, g->rec_k[l] + c0 * per_k, v->rec_k + c0 * per_k, n * per_k);
	if (!st)
		st = shrink_cuda_upload(ctx, g->rec_v[l] + c0 * per_v, v->rec_v + c0 * per_v, n * per_v);
	if (!st)
		st = shrink_cuda_upload(ctx, g->rank[l] + c0, v->rank + c0, n);
	return st;
}

/* n rows (device k, v [n][kv_dim]) of positions pos.. through the host cache's store() */
static shrink_status hand_over(shrink_cuda_ctx *ctx, struct gpu_kv *g, int l, int64_t kvd, int pos, int n,
			       const uint16_t *k, const uint16_t *v, shrink_error *err)
{
	uint16_t *hk = g->rows, *hv = g->rows + (size_t)n * kvd;
	shrink_status st = shrink_cuda_download(ctx, hk, k, (size_t)n * kvd * 2);
	if (!st)
		st = shrink_cuda_download(ctx, hv, v, (size_t)n * kvd * 2);
	if (st)
		return shrink_fail(err, st, "cuda: KV cache of layer %d: %s", l, shrink_cuda_ctx_message(ctx));
	for (int t = 0; t < n && !st; t++) {
		shrink_kernel_f16_to_f32(hk + t * kvd, g->kf, kvd);
		shrink_kernel_f16_to_f32(hv + t * kvd, g->vf, kvd);
		st = g->host->ops->store(g->host, l, pos + t, g->kf, g->vf, err);
	}
	if (!st)
		g->handed[l] = pos + n;
	return st;
}

shrink_status gpu_kv_store(shrink_cuda_ctx *ctx, struct gpu_kv *g, const shrink_config *c, int l, int pos, int n,
			   const uint16_t *k, const uint16_t *v, shrink_error *err)
{
	int64_t kvd = (int64_t)c->layers[l].n_kv_heads * c->head_dim;
	int T = g->ring;
	if (pos == 0) /* a new sequence (the state was reset) */
		g->handed[l] = 0;
	/* A decode step that completes no chunk leaves its rows in the ring only (no copy, no wait);
	 * they go to the host with the step that completes their chunk. */
	if (n == 1 && (pos + 1) % T)
		return ring_store(ctx, g, l, pos, n, kvd, k, v);
	/* rows still only in the ring (all in pos's chunk) go first, before this call overwrites them */
	int late = pos - g->handed[l];
	const uint16_t *kr = g->k_ring[l] + (size_t)(g->handed[l] % T) * kvd;
	const uint16_t *vr = g->v_ring[l] + (size_t)(g->handed[l] % T) * kvd;
	shrink_status st = late > 0 ? hand_over(ctx, g, l, kvd, g->handed[l], late, kr, vr, err) : SHRINK_OK;
	if (st)
		return st;
	if ((st = ring_store(ctx, g, l, pos, n, kvd, k, v)))
		return shrink_fail(err, st, "cuda: KV cache of layer %d: %s", l, shrink_cuda_ctx_message(ctx));
	shrink_kv_view view;
	g->host->ops->view(g->host, l, &view);
	int c0 = view.n_chunks;
	if ((st = hand_over(ctx, g, l, kvd, pos, n, k, v, err)))
		return st;
	g->host->ops->view(g->host, l, &view);
	if (view.n_chunks > c0 && (st = upload_chunks(ctx, g, l, &view, c0, c->layers[l].n_kv_heads)))
		return shrink_fail(err, st, "cuda: KV cache of layer %d: %s", l, shrink_cuda_ctx_message(ctx));
	return SHRINK_OK;
}

shrink_status gpu_kv_attention(shrink_cuda_ctx *ctx, const struct gpu_kv *g, const shrink_config *c, int l,
			       const uint16_t *q, int n, int pos, uint16_t *out)
{
	shrink_kv_view view;
	g->host->ops->view(g->host, l, &view);
	shrink_cuda_kv_packed p = {view.k,	   view.v,	view.chunk,   view.n_chunks, g->rec_k[l],
				   g->rec_v[l], g->rank[l], g->k_ring[l], g->v_ring[l]};
	int hd = c->head_dim;
	return shrink_cuda_attention_packed(ctx, SHRINK_CUDA_F16, q, n, pos, c->layers[l].n_heads,
					    c->layers[l].n_kv_heads, hd, &p, 1.0f / sqrtf((float)hd), out);
}

#endif
