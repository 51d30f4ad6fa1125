/* grad.h: gradients of the mean next-token cross-entropy for the Llama family on CPU.
 *
 * A training-style forward pass over a whole sequence that keeps what its
 * backward pass needs (or, with checkpointing, only each block's input, and
 * recomputes the block during the backward pass), written as llm.c-style
 * x_forward / x_backward pairs in lib/model/train*.c and backward*.c.
 *
 * Every parameter (embeddings, norms, projections, biases, the output head)
 * lives in one float32 vector `theta` laid out by shrink_param_layout, in
 * model order: embed, then per layer attn_norm, q (+bias), k (+bias), v (+bias),
 * o, ffn_norm, gate, up, down, then norm and lm_head (absent when tied). The
 * model's own weights (possibly f16/bf16 and mapped read-only) are copied once
 * into theta by shrink_param_gather and never written: callers perturb their
 * copy (central differences, Hutchinson) freely.
 *
 * The loss of tokens[0..n) is the mean over positions t < n-1 of
 * -log softmax(logits[t])[tokens[t+1]].
 *
 * Deliberately not here: the inference path (model.h: KV cache, one token at a
 * time), optimisers, Hessians (sense.h), CUDA. Results are the same whatever
 * the thread count (BLAS splits no reduction; our loops reduce in one thread). */
#ifndef SHRINK_GRAD_H
#define SHRINK_GRAD_H

#include <stdbool.h>

#include "model.h"

typedef enum {
	SHRINK_PARAM_EMBED,
	SHRINK_PARAM_ATTN_NORM,
	SHRINK_PARAM_WQ,
	SHRINK_PARAM_BQ,
	SHRINK_PARAM_WK,
	SHRINK_PARAM_BK,
	SHRINK_PARAM_WV,
	SHRINK_PARAM_BV,
	SHRINK_PARAM_WO,
	SHRINK_PARAM_FFN_NORM,
	SHRINK_PARAM_GATE,
	SHRINK_PARAM_UP,
	SHRINK_PARAM_DOWN,
	SHRINK_PARAM_NORM,
	SHRINK_PARAM_LM_HEAD,
	SHRINK_PARAM_KINDS
} shrink_param_kind;

typedef struct {
	char name[SHRINK_NAME_MAX]; /* Hugging Face name */
	shrink_param_kind kind;
	int layer;                  /* -1 for embed, norm and lm_head */
	int64_t rows, cols;         /* cols = 0 for vectors */
	int64_t numel, offset;      /* offset: first element in theta */
	const shrink_tensor *src;   /* the model's tensor (NULL for layouts not made from a model) */
} shrink_param;

typedef struct {
	const shrink_config *config; /* borrowed from the model */
	int n;                       /* tensors */
	shrink_param *params;
	int64_t n_params;
	bool tied;  /* lm_head is the embedding */
	int *index; /* internal: (layer + 1) * SHRINK_PARAM_KINDS + kind -> params index or -1 */
} shrink_param_layout;

shrink_status shrink_param_layout_init(const shrink_model *m, shrink_param_layout *lay, shrink_error *err);
void shrink_param_layout_free(shrink_param_layout *lay);
/* The parameter of (kind, layer), or NULL when the model has none (biases, tied lm_head). */
const shrink_param *shrink_param_get(const shrink_param_layout *lay, shrink_param_kind kind, int layer);
int shrink_param_find(const shrink_param_layout *lay, const char *name); /* index or -1 */
/* Copy the model's weights (any dtype) into theta[lay->n_params] as float32. */
shrink_status shrink_param_gather(const shrink_param_layout *lay, float *theta, shrink_error *err);

/* The inputs of the linear layers, as the forward pass computes them. */
typedef enum {
	SHRINK_SITE_ATTN_IN,  /* attn_norm output: input of q, k, v   (n_tok, dim) */
	SHRINK_SITE_ATTN_OUT, /* attention output: input of o          (n_tok, n_heads*head_dim) */
	SHRINK_SITE_FFN_IN,   /* ffn_norm output: input of gate, up    (n_tok, dim) */
	SHRINK_SITE_FFN_MID,  /* silu(gate)*up: input of down           (n_tok, ffn_dim) */
	SHRINK_SITE_HEAD_IN,  /* final norm output: input of lm_head  (n_tok - 1 scored rows, dim) */
} shrink_site;

typedef void (*shrink_site_observer)(void *user, int layer, shrink_site site, const float *x, int n_tok, int width);

typedef struct shrink_train shrink_train;

/* Activation buffers for sequences of up to max_tokens. checkpoint: keep only
 * each block's input and recompute the block in the backward pass (about one
 * block's activations instead of all of them, for one more forward). */
shrink_status shrink_train_new(const shrink_param_layout *lay, int max_tokens, bool checkpoint, shrink_train **out,
			       shrink_error *err);
void shrink_train_free(shrink_train *t);
size_t shrink_train_bytes(const shrink_train *t); /* activation and scratch memory held */
/* Call fn with every linear input of later forward passes (fn NULL: none). Not
 * called for the recomputation of checkpointed blocks. */
void shrink_train_observe(shrink_train *t, shrink_site_observer fn, void *user);

/* Loss of tokens[0..n) (2 <= n <= max_tokens) at parameters theta. */
shrink_status shrink_train_loss(shrink_train *t, const float *theta, const int *tokens, int n, double *loss,
				shrink_error *err);
/* The same, and grad[n_params] += scale * dLoss/dtheta. loss may be NULL. */
shrink_status shrink_train_grad(shrink_train *t, const float *theta, const int *tokens, int n, float scale,
				float *grad, double *loss, shrink_error *err);

/* One stage at a time, for layer-by-layer calibration. x is (n, dim). */
shrink_status shrink_train_embed(shrink_train *t, const float *theta, const int *tokens, int n, float *x,
				 shrink_error *err);
/* x <- block `layer` (x), in place. */
shrink_status shrink_train_block(shrink_train *t, const float *theta, int layer, float *x, int n, shrink_error *err);
/* Final norm, lm_head and loss on x (the last block's output). */
shrink_status shrink_train_head(shrink_train *t, const float *theta, const float *x, const int *tokens, int n,
				double *loss, shrink_error *err);

#endif
