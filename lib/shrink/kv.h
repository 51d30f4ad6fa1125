/* kv.h: the KV cache interface. Attention never sees the storage: it asks for
 * tokens [t0, t0+n) of one KV head, decoded into a caller-owned float scratch,
 * so compressed caches need not materialise the whole history in float. */
#ifndef SHRINK_KV_H
#define SHRINK_KV_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct shrink_kv shrink_kv;

/* Where the parts of one compressed chunk record lie (one KV head, K or V side, `T` tokens of `d`
 * channels), for backends that decode records themselves (the GPU). Byte offsets into the record:
 * scale (at 0) and min f16 [n_params]; outlier values f16 and indices (u8 when idx8, else u16)
 * [n_vec][2 * n_side]; U f16 [T][rank] at off_u; Vt f16 [rank][d] at off_vt; codes [T][row_bytes] at
 * off_codes, packed as bit planes (lib/kv/kv_impl.h). Keys: (scale, min) index (t / group) * d + j,
 * outlier vectors are channels (indices are tokens). Values: index t * n_groups + j / group, outlier
 * vectors are tokens (indices are channels). Element (t, j) = code * scale + min + U[t] . Vt[:, j],
 * then replaced by its outlier value when it is one. */
typedef struct {
	int keys, T, d, bits, group, n_groups, n_side, idx8;
	size_t off_min, off_oval, off_oidx, off_u, off_vt, off_codes, row_bytes, rec_bytes;
} shrink_kv_layout;

/* The compressed part of one layer of a kivi/gear cache: chunks [0, n_chunks) of `chunk` tokens,
 * records [n_chunks][n_kv_heads] of k.rec_bytes (v.rec_bytes) bytes, and each chunk's rank. */
typedef struct {
	shrink_kv_layout k, v;
	int chunk, n_chunks;
	const uint8_t *rec_k, *rec_v, *rank;
} shrink_kv_view;

typedef struct {
	/* k, v: one token's rows for every KV head of the layer: [n_kv_heads * head_dim] */
	shrink_status (*store)(shrink_kv *kv, int layer, int pos, const float *k, const float *v, shrink_error *err);
	/* out_k, out_v: [n, head_dim] for tokens t0..t0+n-1 of kv_head */
	void (*load)(const shrink_kv *kv, int layer, int kv_head, int t0, int n, float *out_k, float *out_v);
	size_t (*n_bytes)(const shrink_kv *kv); /* bytes held for the tokens stored so far */
	void (*reset)(shrink_kv *kv);
	void (*free)(shrink_kv *kv);
	/* optional (NULL when unused): the forward pass has stored this call's tokens in every layer.
	 * GEAR compresses chunks completed before the first call's end (the prefill) with rank_prefill. */
	void (*end_forward)(shrink_kv *kv);
	/* optional (NULL for the float caches): the compressed chunks of a layer as stored */
	void (*view)(const shrink_kv *kv, int layer, shrink_kv_view *out);
} shrink_kv_ops;

struct shrink_kv {
	const shrink_kv_ops *ops;
	char spec[64];
	int n_layers;
	int head_dim;
	int max_tokens;
	const shrink_config *config;
};

/* spec: "f32", "f16", "kivi[:bits=2,group=64,residual=64]" or
 * "gear[:bits=2,group=64,buffer=64,rank=4,rank_prefill=RANK,outliers=0.02,iters=3]" (the defaults shown).
 * bits 2, 3, 4 or 8; residual/buffer: tokens kept in f16 and then compressed together, a multiple of group.
 * Unknown kinds, parameters or bad values are SHRINK_EUSAGE naming the parameter (lib/kv/kv_spec.c). */
shrink_status shrink_kv_new(const char *spec, const shrink_config *c, int max_tokens, shrink_kv **out,
			    shrink_error *err);
void shrink_kv_free(shrink_kv *kv);
/* The widest layer's n_kv_heads * head_dim: one token's key (or value) row of any layer fits. */
int shrink_kv_max_kv_dim(const shrink_config *c);
/* Call after each forward call (calls ops->end_forward when there is one). */
void shrink_kv_end_forward(shrink_kv *kv);

#endif
