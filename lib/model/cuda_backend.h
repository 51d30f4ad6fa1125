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

/* The status of a failed CUDA op as a shrink_error naming what was running. */
shrink_status gpu_fail(const struct shrink_model_gpu *g, shrink_status st, const char *what, shrink_error *err);
#endif

void gpu_model_free(struct shrink_model_gpu *g);
/* The CPU KV spec the state keeps beside the GPU cache (for shrink_state_kv), or an error
 * for KV caches the GPU backend does not implement. */
shrink_status gpu_kv_spec(const char *kv_spec, const char **cpu_spec, shrink_error *err);
shrink_status gpu_state_new(const shrink_model *m, int max_tokens, int max_batch, struct shrink_state_gpu **out,
			    shrink_error *err);
void gpu_state_free(struct shrink_state_gpu *g);
/* The forward pass on the GPU for n tokens at position pos; logits as shrink_forward. */
shrink_status gpu_forward(const shrink_model *m, struct shrink_state_gpu *g, int pos, const int *tokens, int n,
			  float *logits, bool all_logits, shrink_error *err);

#endif
