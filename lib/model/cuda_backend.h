/* cuda_backend.h: the GPU backend of the forward pass (internal to lib/model).
 * The weights live in a shrink_model_gpu (uploaded once by
 * shrink_model_set_device), the f16 KV cache and the activations in a
 * shrink_state_gpu made with each state. Without CUDA these functions exist
 * and report that the backend is not built. */
#ifndef SHRINK_MODEL_CUDA_BACKEND_H
#define SHRINK_MODEL_CUDA_BACKEND_H

#include "config.h"
#include "shrink/model.h"

struct shrink_state_gpu;

#ifdef SHRINK_HAVE_CUDA
#include "cuda/cuda.h"

/* One weight on the device: f16 (vectors and float matrices) or repacked quantized codes. */
typedef struct {
	bool quantized;
	uint16_t *dense;
	shrink_cuda_qweight q;
	int64_t rows, cols; /* cols 0 for a vector */
} gpu_weight;

typedef struct {
	gpu_weight attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w_gate, w_up, w_down;
} gpu_layer;

struct shrink_model_gpu {
	shrink_cuda_ctx *ctx; /* shared by every state of the model: one stream, one workspace */
	int n_layers;
	gpu_layer *layers;
	gpu_weight norm, lm_head;
	size_t bytes; /* device bytes of the weights */
};

/* A compressed KV cache on the GPU (kv_cuda.c): host is the state's kivi/gear cache, which compresses. */
struct gpu_kv;
shrink_status gpu_kv_new(shrink_cuda_ctx *ctx, shrink_kv *host, const shrink_config *c, int max_batch,
			 struct gpu_kv **out);
void gpu_kv_free(struct gpu_kv *g);
/* after rope: layer l's new rows k, v [n][kv_dim] (device f16) at positions pos.. into the cache */
shrink_status gpu_kv_store(shrink_cuda_ctx *ctx, struct gpu_kv *g, const shrink_config *c, int l, int pos, int n,
			   const uint16_t *k, const uint16_t *v, shrink_error *err);
/* attention of q [n][n_heads * head_dim] at positions pos.. over the cache (positions 0..pos+n-1) */
shrink_status gpu_kv_attention(shrink_cuda_ctx *ctx, const struct gpu_kv *g, const shrink_config *c, int l,
			       const uint16_t *q, int n, int pos, uint16_t *out);

/* The status of a failed CUDA op as a shrink_error naming what was running. */
shrink_status gpu_fail(const struct shrink_model_gpu *g, shrink_status st, const char *what, shrink_error *err);
#endif

void gpu_model_free(struct shrink_model_gpu *g);
/* The KV spec of the host cache the state keeps beside the GPU's: f16 for the float caches (the GPU
 * keeps its own f16 cache), the spec itself for the compressed ones (the host cache compresses). */
shrink_status gpu_kv_spec(const char *kv_spec, const char **cpu_spec, shrink_error *err);
/* kv: the state's host cache (a compressed one is mirrored on the GPU, see kv_cuda.c) */
shrink_status gpu_state_new(const shrink_model *m, shrink_kv *kv, int max_tokens, int max_batch,
			    struct shrink_state_gpu **out, shrink_error *err);
void gpu_state_free(struct shrink_state_gpu *g);
/* The forward pass on the GPU for n tokens at position pos; logits as shrink_forward; next, when
 * not NULL, the argmax of the last token's logits (shrink_forward_greedy). */
shrink_status gpu_forward(const shrink_model *m, struct shrink_state_gpu *g, int pos, const int *tokens, int n,
			  float *logits, bool all_logits, int *next, shrink_error *err);

#endif
