/* train.c: the training pass's state and its forward pass over a whole
 * sequence: embed -> per layer [rmsnorm, q/k/v (+bias), rope, attention, o_proj
 * + residual, rmsnorm, gate/up, swiglu, down + residual] -> norm -> lm_head ->
 * cross-entropy, keeping what backward.c needs. The math is the inference
 * pass's (forward.c) on a float32 parameter vector, without a KV cache.
 * Not here: the backward pass (backward.c), incremental decoding. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "train_impl.h"

void train_layer_offsets(const shrink_param_layout *lay, int layer, int64_t off[SHRINK_PARAM_KINDS])
{
	for (int k = 0; k < SHRINK_PARAM_KINDS; k++) {
		const shrink_param *p = shrink_param_get(lay, (shrink_param_kind)k, layer);
		off[k] = p ? p->offset : -1;
	}
}

/* ---- allocation ---- */

typedef struct {
	size_t total;
	bool failed;
} alloc_acc;

static float *falloc(alloc_acc *a, size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	a->total += n * sizeof *p;
	a->failed |= !p;
	return p;
}

typedef struct {
	size_t dim, qd, kvd, ffn, nh;
} widths;

static widths layer_widths(const shrink_config *c, int l)
{
	widths w = {(size_t)c->dim, (size_t)c->layers[l].n_heads * c->head_dim,
		    (size_t)c->layers[l].n_kv_heads * c->head_dim, (size_t)c->layers[l].ffn_dim,
		    (size_t)c->layers[l].n_heads};
	return w;
}

static widths max_widths(const shrink_config *c)
{
	widths m = {0};
	for (int l = 0; l < c->n_layers; l++) {
		widths w = layer_widths(c, l);
		m.dim = w.dim;
		m.qd = w.qd > m.qd ? w.qd : m.qd;
		m.kvd = w.kvd > m.kvd ? w.kvd : m.kvd;
		m.ffn = w.ffn > m.ffn ? w.ffn : m.ffn;
		m.nh = w.nh > m.nh ? w.nh : m.nh;
	}
	return m;
}

static void acts_alloc(block_acts *a, widths w, size_t T, alloc_acc *acc)
{
	a->rstd1 = falloc(acc, T);
	a->xn1 = falloc(acc, T * w.dim);
	a->q = falloc(acc, T * w.qd);
	a->k = falloc(acc, T * w.kvd);
	a->v = falloc(acc, T * w.kvd);
	a->p = falloc(acc, w.nh * T * T);
	a->att = falloc(acc, T * w.qd);
	a->x_mid = falloc(acc, T * w.dim);
	a->rstd2 = falloc(acc, T);
	a->xn2 = falloc(acc, T * w.dim);
	a->g = falloc(acc, T * w.ffn);
	a->u = falloc(acc, T * w.ffn);
	a->h = falloc(acc, T * w.ffn);
}

static void acts_free(block_acts *a)
{
	free(a->rstd1), free(a->xn1), free(a->q), free(a->k), free(a->v), free(a->p), free(a->att);
	free(a->x_mid), free(a->rstd2), free(a->xn2), free(a->g), free(a->u), free(a->h);
}

static void scratch_alloc(shrink_train *t, widths m, size_t T, alloc_acc *acc)
{
	const shrink_config *c = t->c;
	t->rstd_f = falloc(acc, T);
	t->xn_f = falloc(acc, T * m.dim);
	t->logits = falloc(acc, (size_t)HEAD_CHUNK * (size_t)c->vocab_size);
	t->row_loss = malloc(T * sizeof *t->row_loss);
	acc->failed |= !t->row_loss;
	t->dx = falloc(acc, T * m.dim);
	t->dxn = falloc(acc, T * m.dim);
	t->dq = falloc(acc, T * m.qd);
	t->datt = falloc(acc, T * m.qd);
	t->dk = falloc(acc, T * m.kvd);
	t->dv = falloc(acc, T * m.kvd);
	t->ds = falloc(acc, T * T);
	t->dh = falloc(acc, T * m.ffn);
	t->dg = falloc(acc, T * m.ffn);
	t->du = falloc(acc, T * m.ffn);
	t->x_tmp = falloc(acc, T * m.dim);
	t->inv_freq = falloc(acc, (size_t)c->head_dim / 2 + 1);
}

shrink_status shrink_train_new(const shrink_param_layout *lay, int max_tokens, bool checkpoint, shrink_train **out,
			       shrink_error *err)
{
	*out = NULL;
	if (max_tokens < 2)
		return shrink_fail(err, SHRINK_EUSAGE, "training pass: sequences of %d tokens (at least 2 needed)",
				   max_tokens);
	shrink_train *t = calloc(1, sizeof *t);
	if (!t)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	const shrink_config *c = t->c = lay->config;
	t->lay = lay;
	t->max_tokens = max_tokens;
	t->checkpoint = checkpoint;
	size_t T = (size_t)max_tokens;
	alloc_acc acc = {0};
	t->n_acts = checkpoint ? 1 : c->n_layers;
	t->x_in = calloc((size_t)c->n_layers + 1, sizeof *t->x_in);
	t->acts = calloc((size_t)t->n_acts, sizeof *t->acts);
	acc.failed = !t->x_in || !t->acts;
	for (int l = 0; !acc.failed && l <= c->n_layers; l++)
		t->x_in[l] = falloc(&acc, T * (size_t)c->dim);
	for (int i = 0; !acc.failed && i < t->n_acts; i++)
		acts_alloc(&t->acts[i], checkpoint ? max_widths(c) : layer_widths(c, i), T, &acc);
	if (!acc.failed)
		scratch_alloc(t, max_widths(c), T, &acc);
	t->bytes = acc.total;
	if (acc.failed) {
		shrink_train_free(t);
		return shrink_fail(err, SHRINK_EIO, "out of memory for the training pass (%d tokens, %s)", max_tokens,
				   checkpoint ? "checkpointed" : "all activations kept");
	}
	op_rope_inv_freq(c, t->inv_freq);
	*out = t;
	return SHRINK_OK;
}

void shrink_train_free(shrink_train *t)
{
	if (!t)
		return;
	for (int l = 0; t->x_in && l <= t->c->n_layers; l++)
		free(t->x_in[l]);
	for (int i = 0; t->acts && i < t->n_acts; i++)
		acts_free(&t->acts[i]);
	free(t->x_in), free(t->acts), free(t->rstd_f), free(t->xn_f), free(t->logits), free(t->row_loss);
	free(t->dx), free(t->dxn), free(t->dq), free(t->datt), free(t->dk), free(t->dv), free(t->ds);
	free(t->dh), free(t->dg), free(t->du), free(t->x_tmp), free(t->inv_freq);
	free(t);
}

size_t shrink_train_bytes(const shrink_train *t)
{
	return t->bytes;
}

void shrink_train_observe(shrink_train *t, shrink_site_observer fn, void *user)
{
	t->observe = fn;
	t->observe_user = user;
}

block_acts *train_acts(shrink_train *t, int layer)
{
	return &t->acts[t->checkpoint ? 0 : layer];
}

/* ---- forward ---- */

static void notify(const shrink_train *t, bool observe, int layer, shrink_site site, const float *x, int n, int64_t w)
{
	if (observe && t->observe)
		t->observe(t->observe_user, layer, site, x, n, (int)w);
}

static void attention_half(shrink_train *t, const float *theta, int l, const int64_t *off, const float *x_in,
			   block_acts *a, int n, bool observe)
{
	const shrink_config *c = t->c;
	widths w = layer_widths(c, l);
	int nh = c->layers[l].n_heads, nkv = c->layers[l].n_kv_heads, hd = c->head_dim;
	rmsnorm_forward(a->xn1, a->rstd1, x_in, theta + off[SHRINK_PARAM_ATTN_NORM], n, c->dim, c->norm_eps);
	notify(t, observe, l, SHRINK_SITE_ATTN_IN, a->xn1, n, c->dim);
	linear_forward(a->q, a->xn1, theta + off[SHRINK_PARAM_WQ], train_at(theta, off[SHRINK_PARAM_BQ]), n,
		       (int64_t)w.qd, c->dim, 0);
	linear_forward(a->k, a->xn1, theta + off[SHRINK_PARAM_WK], train_at(theta, off[SHRINK_PARAM_BK]), n,
		       (int64_t)w.kvd, c->dim, 0);
	linear_forward(a->v, a->xn1, theta + off[SHRINK_PARAM_WV], train_at(theta, off[SHRINK_PARAM_BV]), n,
		       (int64_t)w.kvd, c->dim, 0);
	op_rope(a->q, a->k, n, 0, nh, nkv, hd, t->inv_freq);
	attention_forward(a->att, a->p, a->q, a->k, a->v, n, nh, nkv, hd);
	notify(t, observe, l, SHRINK_SITE_ATTN_OUT, a->att, n, (int64_t)w.qd);
	memcpy(a->x_mid, x_in, (size_t)n * c->dim * sizeof *x_in);
	linear_forward(a->x_mid, a->att, theta + off[SHRINK_PARAM_WO], NULL, n, c->dim, (int64_t)w.qd, 1.0f);
}

static void ffn_half(shrink_train *t, const float *theta, int l, const int64_t *off, float *x_out, block_acts *a,
		     int n, bool observe)
{
	const shrink_config *c = t->c;
	int64_t ffn = c->layers[l].ffn_dim;
	rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, theta + off[SHRINK_PARAM_FFN_NORM], n, c->dim, c->norm_eps);
	notify(t, observe, l, SHRINK_SITE_FFN_IN, a->xn2, n, c->dim);
	linear_forward(a->g, a->xn2, theta + off[SHRINK_PARAM_GATE], NULL, n, ffn, c->dim, 0);
	linear_forward(a->u, a->xn2, theta + off[SHRINK_PARAM_UP], NULL, n, ffn, c->dim, 0);
	swiglu_forward(a->h, a->g, a->u, (int64_t)n * ffn);
	notify(t, observe, l, SHRINK_SITE_FFN_MID, a->h, n, ffn);
	memcpy(x_out, a->x_mid, (size_t)n * c->dim * sizeof *x_out);
	linear_forward(x_out, a->h, theta + off[SHRINK_PARAM_DOWN], NULL, n, c->dim, ffn, 1.0f);
}

void block_forward(shrink_train *t, const float *theta, int layer, const float *x_in, float *x_out, block_acts *a,
		   int n, bool observe)
{
	int64_t off[SHRINK_PARAM_KINDS];
	train_layer_offsets(t->lay, layer, off);
	attention_half(t, theta, layer, off, x_in, a, n, observe);
	ffn_half(t, theta, layer, off, x_out, a, n, observe);
}

void head_pass(shrink_train *t, const float *theta, float *grad, float scale, const float *x, const int *tokens,
	       int n, bool observe, double *loss)
{
	const shrink_config *c = t->c;
	const shrink_param *pn = shrink_param_get(t->lay, SHRINK_PARAM_NORM, -1);
	const shrink_param *ph = shrink_param_get(t->lay, SHRINK_PARAM_LM_HEAD, -1);
	const float *w_norm = theta + pn->offset, *w_head = theta + ph->offset;
	int m = n - 1, dim = c->dim, vocab = c->vocab_size;
	bool backward = grad && scale != 0;
	rmsnorm_forward(t->xn_f, t->rstd_f, x, w_norm, m, dim, c->norm_eps);
	notify(t, observe, -1, SHRINK_SITE_HEAD_IN, t->xn_f, m, dim);
	for (int r0 = 0; r0 < m; r0 += HEAD_CHUNK) {
		int rows = m - r0 < HEAD_CHUNK ? m - r0 : HEAD_CHUNK;
		const float *xr = t->xn_f + (int64_t)r0 * dim;
		linear_forward(t->logits, xr, w_head, NULL, rows, vocab, dim, 0);
		crossentropy_forward_backward(t->logits, t->row_loss + r0, tokens + r0 + 1, rows, vocab,
					      backward ? scale / m : 0);
		if (backward)
			linear_backward(t->dxn + (int64_t)r0 * dim, grad + ph->offset, NULL, t->logits, xr, w_head,
					rows, vocab, dim, 0);
	}
	double sum = 0;
	for (int r = 0; r < m; r++)
		sum += t->row_loss[r];
	if (loss)
		*loss = sum / m;
	if (!backward)
		return;
	memset(t->dx, 0, (size_t)n * dim * sizeof *t->dx);
	rmsnorm_backward(t->dx, grad + pn->offset, t->dxn, x, t->rstd_f, w_norm, m, dim);
}

/* ---- entry points ---- */

static shrink_status check_tokens(const shrink_train *t, const int *tokens, int n, int min_n, shrink_error *err)
{
	if (n < min_n || n > t->max_tokens)
		return shrink_fail(err, SHRINK_EUSAGE, "training pass: %d tokens (%d..%d allowed)", n, min_n,
				   t->max_tokens);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= t->c->vocab_size)
			return shrink_fail(err, SHRINK_EINPUT, "token id %d out of range (vocabulary of %d)", tokens[i],
					   t->c->vocab_size);
	return SHRINK_OK;
}

static void forward_blocks(shrink_train *t, const float *theta, const int *tokens, int n)
{
	const shrink_param *pe = shrink_param_get(t->lay, SHRINK_PARAM_EMBED, -1);
	embed_forward(t->x_in[0], theta + pe->offset, tokens, n, t->c->dim);
	for (int l = 0; l < t->c->n_layers; l++)
		block_forward(t, theta, l, t->x_in[l], t->x_in[l + 1], train_acts(t, l), n, true);
}

shrink_status shrink_train_loss(shrink_train *t, const float *theta, const int *tokens, int n, double *loss,
				shrink_error *err)
{
	return shrink_train_grad(t, theta, tokens, n, 0, NULL, loss, err);
}

shrink_status shrink_train_grad(shrink_train *t, const float *theta, const int *tokens, int n, float scale,
				float *grad, double *loss, shrink_error *err)
{
	shrink_status st = check_tokens(t, tokens, n, 2, err);
	if (st)
		return st;
	forward_blocks(t, theta, tokens, n);
	head_pass(t, theta, grad, scale, t->x_in[t->c->n_layers], tokens, n, true, loss);
	if (!grad || scale == 0)
		return SHRINK_OK;
	for (int l = t->c->n_layers - 1; l >= 0; l--) {
		block_acts *a = train_acts(t, l);
		if (t->checkpoint)
			block_forward(t, theta, l, t->x_in[l], t->x_tmp, a, n, false);
		block_backward(t, theta, grad, l, t->x_in[l], a, n);
	}
	const shrink_param *pe = shrink_param_get(t->lay, SHRINK_PARAM_EMBED, -1);
	embed_backward(grad + pe->offset, t->dx, tokens, n, t->c->dim);
	return SHRINK_OK;
}

shrink_status shrink_train_embed(shrink_train *t, const float *theta, const int *tokens, int n, float *x,
				 shrink_error *err)
{
	shrink_status st = check_tokens(t, tokens, n, 1, err);
	if (st)
		return st;
	embed_forward(x, theta + shrink_param_get(t->lay, SHRINK_PARAM_EMBED, -1)->offset, tokens, n, t->c->dim);
	return SHRINK_OK;
}

shrink_status shrink_train_block(shrink_train *t, const float *theta, int layer, float *x, int n, shrink_error *err)
{
	if (layer < 0 || layer >= t->c->n_layers || n < 1 || n > t->max_tokens)
		return shrink_fail(err, SHRINK_EUSAGE, "training pass: block %d with %d tokens", layer, n);
	block_forward(t, theta, layer, x, x, train_acts(t, layer), n, true);
	return SHRINK_OK;
}

shrink_status shrink_train_head(shrink_train *t, const float *theta, const float *x, const int *tokens, int n,
				double *loss, shrink_error *err)
{
	shrink_status st = check_tokens(t, tokens, n, 2, err);
	if (st)
		return st;
	head_pass(t, theta, NULL, 0, x, tokens, n, true, loss);
	return SHRINK_OK;
}
