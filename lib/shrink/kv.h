/* kv.h: the KV cache interface. Attention never sees the storage: it asks for
 * tokens [t0, t0+n) of one KV head, decoded into a caller-owned float scratch,
 * so compressed caches need not materialise the whole history in float. */
#ifndef SHRINK_KV_H
#define SHRINK_KV_H

#include "config.h"

typedef struct shrink_kv shrink_kv;

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
/* Call after each forward call (calls ops->end_forward when there is one). */
void shrink_kv_end_forward(shrink_kv *kv);

#endif
