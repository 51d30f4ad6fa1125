/* model.h: a loaded model, its run state, the forward pass and sampling.
 * The forward pass is written once over a small op set (embed, rmsnorm,
 * linear, rope, attention, swiglu, add, logits); `linear` dispatches on the
 * weight's dtype. Read it top to bottom in lib/model/forward.c. */
#ifndef SHRINK_MODEL_H
#define SHRINK_MODEL_H

#include "io.h"
#include "kv.h"
#include "text.h"

typedef struct {
	const shrink_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv;
	const shrink_tensor *ffn_norm, *w_gate, *w_up, *w_down;
} shrink_layer_weights;

typedef struct {
	shrink_model_file file; /* owns config, tensors and vocab */
	const shrink_config *config;
	const shrink_tensor *tok_embed, *norm, *lm_head;
	shrink_layer_weights *layers;
	shrink_tokenizer *tok; /* NULL when the file has no tokenizer */
	char path[512];
	struct shrink_model_gpu *gpu; /* weights on the GPU (shrink_model_set_device), else NULL */
} shrink_model;

shrink_status shrink_model_load(const char *path, const char *tokenizer_path, shrink_model **out, shrink_error *err);
void shrink_model_free(shrink_model *m);
/* Bind weight pointers from m->file (used after a writer changes tensors too). */
shrink_status shrink_model_bind(shrink_model *m, shrink_error *err);
int64_t shrink_model_n_params(const shrink_model *m);
/* Where states made from now on run their forward pass: "cpu" (the default) or
 * "cuda" (weights uploaded once: quantized tensors as stored, float ones as f16;
 * an f16 KV cache on the GPU for --kv f16/f32; a compressed cache keeps its chunks on
 * the GPU and is compressed on the host, lib/model/kv_cuda.c). SHRINK_EIO
 * when the library has no CUDA backend or no device is present. */
shrink_status shrink_model_set_device(shrink_model *m, const char *device, shrink_error *err);
/* After tensor t of m (one bound to a layer, the final norm or the output head)
 * was changed on the host (its data, dtype or size): send it to the device
 * again. Nothing to do when m runs on the CPU. The token embedding is read
 * from the host by both backends; a tied one is uploaded again as the head. */
shrink_status shrink_model_reload_weight(shrink_model *m, const shrink_tensor *t, shrink_error *err);

/* Run state: the KV cache plus scratch for up to max_batch tokens per call. */
typedef struct shrink_state shrink_state;

shrink_status shrink_state_new(const shrink_model *m, int max_tokens, int max_batch, const char *kv_spec,
			       shrink_state **out, shrink_error *err);
void shrink_state_free(shrink_state *s);
void shrink_state_reset(shrink_state *s);
int shrink_state_pos(const shrink_state *s);
const shrink_kv *shrink_state_kv(const shrink_state *s);

/* Feed n tokens at the current position. logits: [n, vocab] when all_logits,
 * else [vocab] for the last token; may be NULL. */
shrink_status shrink_forward(const shrink_model *m, shrink_state *s, const int *tokens, int n, float *logits,
			     bool all_logits, shrink_error *err);
/* The same, giving the most likely token after the last one (shrink_argmax of its logits:
 * lowest id on ties, NaN never chosen over a number) instead of the logits: greedy decoding.
 * On the GPU the argmax runs there and only the id is copied back. */
shrink_status shrink_forward_greedy(const shrink_model *m, shrink_state *s, const int *tokens, int n, int *next,
				    shrink_error *err);

/* Layer-wise execution for compression passes (GPTQ, calibration): run one
 * layer with weights `w` (which may differ from m->layers[layer]) on x
 * [n, dim] in place, as one sequence at positions 0..n-1 (n <= max_batch of
 * s; the state's KV for that layer is overwritten). capture, when given, sees
 * the input of each group of linears: which = 0 q/k/v, 1 o_proj, 2 gate/up,
 * 3 down_proj, with x [n_tok, width]. */
/* out [n, dim] = embedding rows of tokens (no bounds check beyond the vocabulary). */
shrink_status shrink_embed(const shrink_model *m, const int *tokens, int n, float *out, shrink_error *err);
typedef void (*shrink_capture_fn)(void *user, int layer, int which, const float *x, int n_tok, int width);
shrink_status shrink_layer_run(const shrink_model *m, shrink_state *s, int layer, const shrink_layer_weights *w,
			       float *x, int n, shrink_capture_fn capture, void *user, shrink_error *err);

/* Threads for OpenMP and BLAS; results do not depend on it. */
void shrink_set_threads(int n);
int shrink_get_threads(void);

/* Sampling, kept apart from the model. temp 0 = greedy (argmax, lowest id on ties; NaN counts as -inf). */
typedef struct shrink_sampler shrink_sampler;
shrink_status shrink_sampler_new(float temp, int top_k, float top_p, uint64_t seed, int n_vocab, shrink_sampler **out,
				 shrink_error *err);
int shrink_sample(shrink_sampler *s, const float *logits);
void shrink_sampler_free(shrink_sampler *s);
int shrink_argmax(const float *x, int n);

#endif
