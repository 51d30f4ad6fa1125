/* train_impl.h: the training pass's state (internal to lib/model; see grad.h).
 * Shapes: T = max_tokens, n = tokens of the current pass; per layer
 * qd = n_heads * head_dim, kvd = n_kv_heads * head_dim, ffn = ffn_dim. */
#ifndef SHRINK_MODEL_TRAIN_IMPL_H
#define SHRINK_MODEL_TRAIN_IMPL_H

#include "shrink/grad.h"
#include "train_ops.h"

#define HEAD_CHUNK 64 /* logits rows held at a time */

/* What one block's backward pass needs from its forward pass. */
typedef struct {
	float *rstd1; /* (T) */
	float *xn1;   /* (T, dim) attn_norm output */
	float *q;     /* (T, qd) after RoPE */
	float *k;     /* (T, kvd) after RoPE */
	float *v;     /* (T, kvd) */
	float *p;     /* (nh, T, T) attention probabilities (n x n used) */
	float *att;   /* (T, qd) attention output */
	float *x_mid; /* (T, dim) residual stream after attention */
	float *rstd2; /* (T) */
	float *xn2;   /* (T, dim) ffn_norm output */
	float *g, *u; /* (T, ffn) gate and up projections */
	float *h;     /* (T, ffn) silu(g) * u */
} block_acts;

struct shrink_train {
	const shrink_param_layout *lay;
	const shrink_config *c;
	int max_tokens;
	bool checkpoint;
	float **x_in;     /* n_layers + 1 of (T, dim): block inputs, then the last block's output */
	block_acts *acts; /* one per layer, or a single shared one when checkpointing */
	int n_acts;
	float *rstd_f, *xn_f; /* final norm: (T), (T, dim) */
	float *logits;        /* (HEAD_CHUNK, vocab) */
	double *row_loss;     /* (T) */
	/* backward scratch, sized for the widest layer */
	float *dx, *dxn;      /* (T, dim) */
	float *dq, *datt;     /* (T, qd) */
	float *dk, *dv;       /* (T, kvd) */
	float *ds;            /* (T, T) */
	float *dh, *dg, *du;  /* (T, ffn) */
	float *x_tmp;         /* (T, dim): output of recomputed blocks */
	float *inv_freq;      /* head_dim / 2 */
	shrink_site_observer observe;
	void *observe_user;
	size_t bytes;
};

/* Offsets of one layer's parameters in theta (-1 when absent). */
void train_layer_offsets(const shrink_param_layout *lay, int layer, int64_t off[SHRINK_PARAM_KINDS]);

static inline const float *train_at(const float *base, int64_t off)
{
	return off < 0 ? NULL : base + off;
}

static inline float *train_grad_at(float *base, int64_t off)
{
	return off < 0 ? NULL : base + off;
}

block_acts *train_acts(shrink_train *t, int layer);
/* x_out (n, dim) = block(x_in); x_out may equal x_in. */
void block_forward(shrink_train *t, const float *theta, int layer, const float *x_in, float *x_out, block_acts *a,
		   int n, bool observe);
/* t->dx: dLoss/d(block output) on entry, dLoss/d(block input) on return. */
void block_backward(shrink_train *t, const float *theta, float *grad, int layer, const float *x_in, const block_acts *a,
		    int n);
/* Final norm, lm_head and cross-entropy of rows 0..n-2 of x (n, dim). With
 * grad: grad += scale * dLoss/d(norm, lm_head) and t->dx = scale * dLoss/dx. */
void head_pass(shrink_train *t, const float *theta, float *grad, float scale, const float *x, const int *tokens,
	       int n, bool observe, double *loss);

#endif
