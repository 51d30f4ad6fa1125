/* kv_stream.c: the streaming compressed KV cache behind --kv kivi and --kv gear.
 * Tokens arrive one position at a time (prefill too) into an f16 buffer of
 * `chunk` tokens per layer and KV head; when it is full, each head's K and V
 * chunk [chunk, head_dim] is compressed into a fixed-size record (kv_gear.c)
 * and the buffer starts over. So between 0 and chunk - 1 recent tokens stay in
 * f16, and key groups always line up with chunks. Chunks compressed before the
 * first end_forward() after a reset (the prefill) use rank_prefill, later ones
 * rank. load() decodes only the records and buffer rows it is asked for.
 * Records for the whole context are allocated up front; n_bytes() counts only
 * what holds data. Not thread-safe for store (the forward pass stores from one
 * thread); load() only reads and may run on many threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kv_impl.h"

typedef struct {
	int n_kv;
	int n_tokens;		 /* positions 0 .. n_tokens - 1 are stored */
	uint16_t *buf_k, *buf_v; /* [n_kv][chunk][d]: positions n_tokens / chunk * chunk .. n_tokens - 1 */
	uint8_t *rec_k, *rec_v;	 /* [max_chunks][n_kv] records */
	uint8_t *rank;		 /* [max_chunks] rank of each compressed chunk */
} stream_layer;

typedef struct {
	shrink_kv base;
	shrink_kv_params p;
	shrink_kv_side ks, vs;
	int max_chunks;
	bool prefill_done;
	stream_layer *layers;
	float *x, *work; /* compression scratch: one chunk [chunk, d], and the codec's */
} kv_stream;

static const uint8_t *record(const kv_stream *kv, const stream_layer *L, bool keys, int chunk, int head)
{
	const shrink_kv_side *s = keys ? &kv->ks : &kv->vs;
	return (keys ? L->rec_k : L->rec_v) + ((size_t)chunk * L->n_kv + head) * s->rec_bytes;
}

static void compress(kv_stream *kv, stream_layer *L, int chunk, int rank)
{
	int T = kv->p.chunk, d = kv->base.head_dim;
	for (int h = 0; h < L->n_kv; h++) {
		for (int side = 0; side < 2; side++) {
			const uint16_t *buf = (side ? L->buf_v : L->buf_k) + (size_t)h * T * d;
			shrink_kernel_f16_to_f32(buf, kv->x, (int64_t)T * d);
			shrink_kv_gear_encode(side ? &kv->vs : &kv->ks, kv->x, rank, kv->p.iters,
					      (uint8_t *)record(kv, L, !side, chunk, h), kv->work);
		}
	}
	L->rank[chunk] = (uint8_t)rank;
}

static shrink_status store(shrink_kv *base, int layer, int pos, const float *k, const float *v, shrink_error *err)
{
	kv_stream *kv = (kv_stream *)base;
	stream_layer *L = &kv->layers[layer];
	if (pos >= base->max_tokens)
		return shrink_fail(err, SHRINK_EUSAGE, "KV cache full: position %d beyond the context of %d tokens",
				   pos, base->max_tokens);
	if (pos != L->n_tokens)
		return shrink_fail(err, SHRINK_EUSAGE,
				   "KV cache %s: layer %d got position %d, expected %d (positions are stored in order; "
				   "reset starts over)",
				   base->spec, layer, pos, L->n_tokens);
	int T = kv->p.chunk, d = base->head_dim, slot = pos % T;
	for (int h = 0; h < L->n_kv; h++) {
		shrink_kernel_f32_to_f16(k + (size_t)h * d, L->buf_k + ((size_t)h * T + slot) * d, d);
		shrink_kernel_f32_to_f16(v + (size_t)h * d, L->buf_v + ((size_t)h * T + slot) * d, d);
	}
	L->n_tokens++;
	if (slot == T - 1)
		compress(kv, L, pos / T, kv->prefill_done ? kv->p.rank : kv->p.rank_prefill);
	return SHRINK_OK;
}

static void load(const shrink_kv *base, int layer, int kv_head, int t0, int n, float *out_k, float *out_v)
{
	const kv_stream *kv = (const kv_stream *)base;
	const stream_layer *L = &kv->layers[layer];
	int T = kv->p.chunk, d = base->head_dim, n_chunks = L->n_tokens / T;
	for (int t = t0, end = t0 + n; t < end;) {
		int c = t / T, a = t % T, b = a + (end - t) < T ? a + (end - t) : T;
		size_t off = (size_t)(t - t0) * d;
		if (c < n_chunks) {
			shrink_kv_chunk_decode(&kv->ks, record(kv, L, true, c, kv_head), L->rank[c], a, b, out_k + off);
			shrink_kv_chunk_decode(&kv->vs, record(kv, L, false, c, kv_head), L->rank[c], a, b,
					       out_v + off);
		} else {
			size_t row = ((size_t)kv_head * T + a) * d;
			shrink_kernel_f16_to_f32(L->buf_k + row, out_k + off, (int64_t)(b - a) * d);
			shrink_kernel_f16_to_f32(L->buf_v + row, out_v + off, (int64_t)(b - a) * d);
		}
		t += b - a;
	}
}

static size_t n_bytes(const shrink_kv *base)
{
	const kv_stream *kv = (const kv_stream *)base;
	size_t total = 0;
	int T = kv->p.chunk;
	for (int l = 0; l < base->n_layers; l++) {
		const stream_layer *L = &kv->layers[l];
		for (int c = 0; c < L->n_tokens / T; c++)
			total += L->n_kv * (shrink_kv_side_bytes(&kv->ks, L->rank[c]) +
					    shrink_kv_side_bytes(&kv->vs, L->rank[c]));
		total += (size_t)(L->n_tokens % T) * L->n_kv * 2 * base->head_dim * 2;
	}
	return total;
}

static void reset(shrink_kv *base)
{
	kv_stream *kv = (kv_stream *)base;
	for (int l = 0; l < base->n_layers; l++)
		kv->layers[l].n_tokens = 0;
	kv->prefill_done = false;
}

static void end_forward(shrink_kv *base)
{
	((kv_stream *)base)->prefill_done = true;
}

static void kv_free(shrink_kv *base)
{
	kv_stream *kv = (kv_stream *)base;
	for (int l = 0; kv->layers && l < base->n_layers; l++) {
		stream_layer *L = &kv->layers[l];
		free(L->buf_k), free(L->buf_v), free(L->rec_k), free(L->rec_v), free(L->rank);
	}
	free(kv->layers), free(kv->x), free(kv->work);
	free(kv);
}

static void side_layout(const shrink_kv_side *s, shrink_kv_layout *l)
{
	*l = (shrink_kv_layout){.keys = s->keys, .T = s->T, .d = s->d, .bits = s->bits, .group = s->group,
				.n_groups = s->keys ? 0 : s->n_params / s->T, .n_side = s->n_side, .idx8 = s->idx8,
				.off_min = s->off_min, .off_oval = s->off_oval, .off_oidx = s->off_oidx,
				.off_u = s->off_u, .off_vt = s->off_vt, .off_codes = s->off_codes,
				.row_bytes = s->row_bytes, .rec_bytes = s->rec_bytes};
}

static void view(const shrink_kv *base, int layer, shrink_kv_view *out)
{
	const kv_stream *kv = (const kv_stream *)base;
	const stream_layer *L = &kv->layers[layer];
	side_layout(&kv->ks, &out->k);
	side_layout(&kv->vs, &out->v);
	out->chunk = kv->p.chunk;
	out->n_chunks = L->n_tokens / kv->p.chunk;
	out->rec_k = L->rec_k, out->rec_v = L->rec_v, out->rank = L->rank;
}

static const shrink_kv_ops ops = {store, load, n_bytes, reset, kv_free, end_forward, view};

static shrink_status check_shape(const shrink_kv_params *p, const char *spec, const shrink_config *c, shrink_error *err)
{
	int d = c->head_dim;
	if (d % 8 || d > SHRINK_KV_MAX_HEAD_DIM)
		return shrink_fail(err, SHRINK_EUSAGE,
				   "--kv %s: head_dim %d not supported (a multiple of 8, at most %d)", spec, d,
				   SHRINK_KV_MAX_HEAD_DIM);
	int r = p->rank > p->rank_prefill ? p->rank : p->rank_prefill;
	if (r > d || r * d > SHRINK_KV_MAX_LOWRANK)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: rank=%d: too large for head_dim %d (at most %d)", spec,
				   r, d, d < SHRINK_KV_MAX_LOWRANK / d ? d : SHRINK_KV_MAX_LOWRANK / d);
	return SHRINK_OK;
}

static bool alloc_layer(kv_stream *kv, stream_layer *L, int n_kv)
{
	size_t buf = (size_t)n_kv * kv->p.chunk * kv->base.head_dim, recs = (size_t)kv->max_chunks * n_kv;
	L->n_kv = n_kv;
	L->buf_k = malloc(buf * 2);
	L->buf_v = malloc(buf * 2);
	L->rec_k = calloc(recs ? recs : 1, kv->ks.rec_bytes);
	L->rec_v = calloc(recs ? recs : 1, kv->vs.rec_bytes);
	L->rank = calloc((size_t)kv->max_chunks + 1, 1);
	return L->buf_k && L->buf_v && L->rec_k && L->rec_v && L->rank;
}

static bool alloc_all(kv_stream *kv, const shrink_config *c)
{
	int T = kv->p.chunk, d = c->head_dim;
	if (!(kv->layers = calloc((size_t)c->n_layers, sizeof *kv->layers)))
		return false;
	for (int l = 0; l < c->n_layers; l++)
		if (!alloc_layer(kv, &kv->layers[l], c->layers[l].n_kv_heads))
			return false;
	size_t work = shrink_kv_gear_work(&kv->ks) > shrink_kv_gear_work(&kv->vs) ? shrink_kv_gear_work(&kv->ks)
										  : shrink_kv_gear_work(&kv->vs);
	kv->x = malloc((size_t)T * d * sizeof *kv->x);
	kv->work = malloc(work * sizeof *kv->work);
	return kv->x && kv->work;
}

shrink_status shrink_kv_stream_new(const shrink_kv_params *p, const char *spec, const shrink_config *c, int max_tokens,
				   shrink_kv **out, shrink_error *err)
{
	shrink_status st = check_shape(p, spec, c, err);
	if (st)
		return st;
	kv_stream *kv = calloc(1, sizeof *kv);
	if (!kv)
		return shrink_fail(err, SHRINK_EIO, "KV cache: out of memory");
	kv->base = (shrink_kv){&ops, "", c->n_layers, c->head_dim, max_tokens, c};
	snprintf(kv->base.spec, sizeof kv->base.spec, "%s", spec);
	kv->p = *p;
	kv->max_chunks = max_tokens / p->chunk;
	int max_rank = p->rank > p->rank_prefill ? p->rank : p->rank_prefill;
	shrink_kv_side_layout(&kv->ks, true, p->chunk, c->head_dim, p->bits, p->group, p->outliers, max_rank);
	shrink_kv_side_layout(&kv->vs, false, p->chunk, c->head_dim, p->bits, p->group, p->outliers, max_rank);
	if (!alloc_all(kv, c)) {
		kv_free(&kv->base);
		return shrink_fail(err, SHRINK_EIO, "KV cache %s: out of memory for %d tokens", spec, max_tokens);
	}
	*out = &kv->base;
	return SHRINK_OK;
}
