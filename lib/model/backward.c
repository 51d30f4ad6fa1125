/* backward.c: one block's backward pass, the forward pass (train.c) in reverse:
 * down, swiglu, gate/up, ffn_norm + residual, o_proj, attention, rope, q/k/v
 * (+bias), attn_norm + residual. t->dx carries dLoss/d(residual stream); weight
 * gradients are added into grad at the parameters' offsets.
 * Not here: the head and embedding ends (train.c), second derivatives. */
#include "train_impl.h"

static void ffn_backward(shrink_train *t, const float *theta, float *grad, int l, const int64_t *off,
			 const block_acts *a, int n)
{
	const shrink_config *c = t->c;
	int64_t ffn = c->layers[l].ffn_dim, dim = c->dim;
	linear_backward(t->dh, grad + off[SHRINK_PARAM_DOWN], NULL, t->dx, a->h, theta + off[SHRINK_PARAM_DOWN], n, dim,
			ffn, 0);
	swiglu_backward(t->dg, t->du, t->dh, a->g, a->u, n * ffn);
	linear_backward(t->dxn, grad + off[SHRINK_PARAM_GATE], NULL, t->dg, a->xn2, theta + off[SHRINK_PARAM_GATE], n,
			ffn, dim, 0);
	linear_backward(t->dxn, grad + off[SHRINK_PARAM_UP], NULL, t->du, a->xn2, theta + off[SHRINK_PARAM_UP], n, ffn,
			dim, 1.0f);
	rmsnorm_backward(t->dx, grad + off[SHRINK_PARAM_FFN_NORM], t->dxn, a->x_mid, a->rstd2,
			 theta + off[SHRINK_PARAM_FFN_NORM], n, (int)dim);
}

static void attention_backward_half(shrink_train *t, const float *theta, float *grad, int l, const int64_t *off,
				    const float *x_in, const block_acts *a, int n)
{
	const shrink_config *c = t->c;
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim;
	int64_t qd = (int64_t)nh * hd, kvd = (int64_t)nkv * hd, dim = c->dim;
	linear_backward(t->datt, grad + off[SHRINK_PARAM_WO], NULL, t->dx, a->att, theta + off[SHRINK_PARAM_WO], n, dim,
			qd, 0);
	attention_backward(t->dq, t->dk, t->dv, t->ds, t->datt, a->p, a->q, a->k, a->v, n, nh, nkv, hd);
	rope_backward(t->dq, t->dk, n, nh, nkv, hd, t->inv_freq);
	linear_backward(t->dxn, grad + off[SHRINK_PARAM_WQ], train_grad_at(grad, off[SHRINK_PARAM_BQ]), t->dq, a->xn1,
			theta + off[SHRINK_PARAM_WQ], n, qd, dim, 0);
	linear_backward(t->dxn, grad + off[SHRINK_PARAM_WK], train_grad_at(grad, off[SHRINK_PARAM_BK]), t->dk, a->xn1,
			theta + off[SHRINK_PARAM_WK], n, kvd, dim, 1.0f);
	linear_backward(t->dxn, grad + off[SHRINK_PARAM_WV], train_grad_at(grad, off[SHRINK_PARAM_BV]), t->dv, a->xn1,
			theta + off[SHRINK_PARAM_WV], n, kvd, dim, 1.0f);
	rmsnorm_backward(t->dx, grad + off[SHRINK_PARAM_ATTN_NORM], t->dxn, x_in, a->rstd1,
			 theta + off[SHRINK_PARAM_ATTN_NORM], n, (int)dim);
}

void block_backward(shrink_train *t, const float *theta, float *grad, int layer, const float *x_in, const block_acts *a,
		    int n)
{
	int64_t off[SHRINK_PARAM_KINDS];
	train_layer_offsets(t->lay, layer, off);
	ffn_backward(t, theta, grad, layer, off, a, n);
	attention_backward_half(t, theta, grad, layer, off, x_in, a, n);
}
