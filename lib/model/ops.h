/* ops.h: the forward pass's small op set on CPU (internal to lib/model).
 * Activations are float32 [n_tok, width] row-major; weights are shrink_tensors
 * of any float dtype. */
#ifndef SHRINK_MODEL_OPS_H
#define SHRINK_MODEL_OPS_H

#include "shrink/model.h"

/* out[t] = embedding row tokens[t] */
void op_embed(const shrink_tensor *emb, const int *tokens, int n_tok, int dim, float *out);
/* out[t] = x[t] / rms(x[t]) * w ; out may equal x */
void op_rmsnorm(const float *x, const shrink_tensor *w, int n_tok, int dim, float eps, float *out);
/* y[t] = x[t] W^T (+ b); scratch per shrink_kernel_linear_scratch */
void op_linear(const shrink_tensor *w, const shrink_tensor *b, const float *x, int n_tok, float *y, float *scratch);
/* Rotate q [n_tok, n_heads*hd] and k [n_tok, n_kv*hd] in place (HF half-split layout). */
void op_rope(float *q, float *k, int n_tok, int pos0, int n_heads, int n_kv, int hd, const float *inv_freq);
/* Inverse frequencies for a config (with Llama-3 / linear scaling); hd/2 floats. */
void op_rope_inv_freq(const shrink_config *c, float *inv_freq);
/* g = silu(g) * u, elementwise over n */
void op_swiglu(float *g, const float *u, int64_t n);
/* x += y over n */
void op_add(float *x, const float *y, int64_t n);
/* Float value of element i of a 1-D float tensor (f32/f16/bf16). */
float op_elem(const shrink_tensor *t, int64_t i);

#endif
