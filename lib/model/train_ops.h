/* train_ops.h: the training pass's ops as forward/backward pairs (internal to
 * lib/model). Plain float32 arrays, row-major, shapes in the comments: n is the
 * number of tokens. Backward functions accumulate (+=) into parameter
 * gradients; whether they overwrite or accumulate activation gradients is said
 * per function. Not here: dtype dispatch (the parameter vector is float32), the
 * KV cache, anything about files. */
#ifndef SHRINK_MODEL_TRAIN_OPS_H
#define SHRINK_MODEL_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* x (n, dim) = emb[tokens[t]] */
void embed_forward(float *x, const float *emb, const int *tokens, int n, int dim);
/* demb[tokens[t]] += dx[t] */
void embed_backward(float *demb, const float *dx, const int *tokens, int n, int dim);

/* out (n, dim) = x * rstd * w, rstd (n) = 1 / sqrt(mean(x^2) + eps); out may not alias x */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps);
/* dx (n, dim) += d/dx, dw (dim) += d/dw, given dout (n, dim) */
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *rstd, const float *w,
		      int n, int dim);

/* y (n, rows) = x (n, cols) W^T + b (rows, may be NULL) + beta * y */
void linear_forward(float *y, const float *x, const float *w, const float *b, int n, int64_t rows, int64_t cols,
		    float beta);
/* dx (n, cols) = dy W + beta_dx * dx; dw (rows, cols) += dy^T x; db (rows) += sum_t dy (db may be NULL) */
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
		     int64_t rows, int64_t cols, float beta_dx);

/* h = silu(g) * u over n elements */
void swiglu_forward(float *h, const float *g, const float *u, int64_t n);
/* dg = dh * u * silu'(g), du = dh * silu(g) (overwrite) */
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);

/* Undo op_rope's rotation on the gradients dq (n, nh*hd) and dk (n, nkv*hd), in place. */
void rope_backward(float *dq, float *dk, int n, int nh, int nkv, int hd, const float *inv_freq);

/* Causal grouped-query attention. q (n, nh*hd), k and v (n, nkv*hd), att (n, nh*hd),
 * p (nh, n, n): softmax probabilities, row t filled over [0, t] and 0 after. */
void attention_forward(float *att, float *p, const float *q, const float *k, const float *v, int n, int nh, int nkv,
		       int hd);
/* dq (n, nh*hd) = ..., dk, dv (n, nkv*hd) = ... (overwrite); ds: scratch (n, n) */
void attention_backward(float *dq, float *dk, float *dv, float *ds, const float *datt, const float *p, const float *q,
			const float *k, const float *v, int n, int nh, int nkv, int hd);

/* Cross-entropy of logits (m, vocab) against targets (m): row_loss[r] = lse - logit[target].
 * The logits are overwritten: by dscale * (softmax - onehot) when dscale != 0, else by scratch. */
void crossentropy_forward_backward(float *logits, double *row_loss, const int *targets, int m, int vocab,
				   float dscale);

#endif
