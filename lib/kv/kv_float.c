/* kv_float.c: uncompressed KV cache in f32 or f16. Layout per layer and KV
 * head: [max_tokens, head_dim], so a head's history is one contiguous run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kv_impl.h"

typedef struct {
	shrink_kv base;
	bool half;
	size_t elem;
	size_t *layer_off; /* element offset of each layer's block */
	size_t n_elems;
	void *k, *v;
	int n_tokens; /* highest stored position + 1 */
} kv_float;

static void *at(const kv_float *kv, void *base, int layer, int head, int t)
{
	size_t i = kv->layer_off[layer] + ((size_t)head * kv->base.max_tokens + (size_t)t) * kv->base.head_dim;
	return (char *)base + i * kv->elem;
}

static shrink_status store(shrink_kv *base, int layer, int pos, const float *k, const float *v, shrink_error *err)
{
	kv_float *kv = (kv_float *)base;
	if (pos < 0 || pos >= base->max_tokens)
		return shrink_fail(err, SHRINK_EUSAGE, "KV cache full: position %d beyond the context of %d tokens", pos,
				   base->max_tokens);
	int hd = base->head_dim, nkv = base->config->layers[layer].n_kv_heads;
	for (int h = 0; h < nkv; h++) {
		if (kv->half) {
			shrink_kernel_f32_to_f16(k + h * hd, at(kv, kv->k, layer, h, pos), hd);
			shrink_kernel_f32_to_f16(v + h * hd, at(kv, kv->v, layer, h, pos), hd);
		} else {
			memcpy(at(kv, kv->k, layer, h, pos), k + h * hd, (size_t)hd * 4);
			memcpy(at(kv, kv->v, layer, h, pos), v + h * hd, (size_t)hd * 4);
		}
	}
	if (pos + 1 > kv->n_tokens)
		kv->n_tokens = pos + 1;
	return SHRINK_OK;
}

static void load(const shrink_kv *base, int layer, int kv_head, int t0, int n, float *out_k, float *out_v)
{
	const kv_float *kv = (const kv_float *)base;
	size_t count = (size_t)n * base->head_dim;
	const void *k = at(kv, kv->k, layer, kv_head, t0), *v = at(kv, kv->v, layer, kv_head, t0);
	if (kv->half) {
		shrink_kernel_f16_to_f32(k, out_k, (int64_t)count);
		shrink_kernel_f16_to_f32(v, out_v, (int64_t)count);
	} else {
		memcpy(out_k, k, count * 4);
		memcpy(out_v, v, count * 4);
	}
}

static size_t n_bytes(const shrink_kv *base)
{
	const kv_float *kv = (const kv_float *)base;
	size_t per_token = 0;
	for (int l = 0; l < base->n_layers; l++)
		per_token += 2 * (size_t)base->config->layers[l].n_kv_heads * base->head_dim * kv->elem;
	return per_token * (size_t)kv->n_tokens;
}

static void reset(shrink_kv *base)
{
	((kv_float *)base)->n_tokens = 0;
}

static void kv_free(shrink_kv *base)
{
	kv_float *kv = (kv_float *)base;
	free(kv->k);
	free(kv->v);
	free(kv->layer_off);
	free(kv);
}

static const shrink_kv_ops ops = {store, load, n_bytes, reset, kv_free, NULL, NULL};

shrink_status shrink_kv_float_new(const shrink_config *c, int max_tokens, bool half, shrink_kv **out,
				  shrink_error *err)
{
	kv_float *kv = calloc(1, sizeof *kv);
	if (!kv || !(kv->layer_off = calloc((size_t)c->n_layers, sizeof(size_t)))) {
		free(kv);
		return shrink_fail(err, SHRINK_EIO, "KV cache: out of memory");
	}
	kv->base.ops = &ops;
	snprintf(kv->base.spec, sizeof kv->base.spec, "%s", half ? "f16" : "f32");
	kv->base.n_layers = c->n_layers;
	kv->base.head_dim = c->head_dim;
	kv->base.max_tokens = max_tokens;
	kv->base.config = c;
	kv->half = half;
	kv->elem = half ? 2 : 4;
	size_t total = 0;
	for (int l = 0; l < c->n_layers; l++) {
		kv->layer_off[l] = total;
		total += (size_t)c->layers[l].n_kv_heads * (size_t)max_tokens * (size_t)c->head_dim;
	}
	kv->n_elems = total;
	kv->k = malloc(total * kv->elem);
	kv->v = malloc(total * kv->elem);
	if (!kv->k || !kv->v) {
		kv_free(&kv->base);
		return shrink_fail(err, SHRINK_EIO, "KV cache: cannot allocate %zu bytes for %d tokens",
				   2 * total * (half ? 2 : 4), max_tokens);
	}
	*out = &kv->base;
	return SHRINK_OK;
}
