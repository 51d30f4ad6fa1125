/* layerstats.c: one forward pass over the calibration windows, layer by layer
 * (all windows through block l before block l+1, as GPTQ does), collecting
 * for every linear layer the per-channel mean of x^2 over its inputs (llama.cpp's
 * imatrix) and the proxy tr(dW H dW^T) = (2/N) ||dW X||_F^2 for each candidate
 * scheme, by whichever exact route costs less: with more tokens N than input
 * channels, through H = 2 X X^T / N (lib/quant's accumulator; rows * cols^2 per
 * scheme); with fewer, from the inputs X themselves (rows * cols * N). Only one
 * layer's H or X are held at a time. The embedding's proxy uses the token
 * counts (its input is one-hot: (2/N) sum_t count_t ||dE_t||^2); a tied
 * embedding adds its lm_head term. Also gives the loss at theta.
 * Not here: backward passes, GPTQ (which uses the same H). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "sense_impl.h"

#define N_SITES 5
#define PROXY_ROWS 64      /* rows of dW per product with H */
#define DIRECT_ROWS 1024   /* rows of dW per product with X */

typedef struct {
	int layer; /* the layer observed; -1 for the head */
	bool proxy;
	double *sq[N_SITES];
	int64_t rows[N_SITES];
	int width[N_SITES];
	shrink_hessian H[N_SITES]; /* the proxy through H ... */
	float *X[N_SITES];         /* ... or from the inputs, (x_cap, width) */
	int64_t x_cap[N_SITES];
} layer_acc;

static const shrink_param_kind site_weights[N_SITES][4] = {
	[SHRINK_SITE_ATTN_IN] = {SHRINK_PARAM_WQ, SHRINK_PARAM_WK, SHRINK_PARAM_WV, SHRINK_PARAM_KINDS},
	[SHRINK_SITE_ATTN_OUT] = {SHRINK_PARAM_WO, SHRINK_PARAM_KINDS},
	[SHRINK_SITE_FFN_IN] = {SHRINK_PARAM_GATE, SHRINK_PARAM_UP, SHRINK_PARAM_KINDS},
	[SHRINK_SITE_FFN_MID] = {SHRINK_PARAM_DOWN, SHRINK_PARAM_KINDS},
	[SHRINK_SITE_HEAD_IN] = {SHRINK_PARAM_LM_HEAD, SHRINK_PARAM_KINDS},
};

static void observe(void *user, int layer, shrink_site site, const float *x, int n, int width)
{
	layer_acc *a = user;
	if (layer != a->layer || !a->sq[site])
		return;
	double *sq = a->sq[site];
#pragma omp parallel for if ((int64_t)n * width > 65536)
	for (int c0 = 0; c0 < width; c0 += 64) {
		int c1 = c0 + 64 < width ? c0 + 64 : width;
		for (int t = 0; t < n; t++)
			for (int c = c0; c < c1; c++)
				sq[c] += (double)x[(int64_t)t * width + c] * x[(int64_t)t * width + c];
	}
	if (a->X[site] && a->rows[site] + n <= a->x_cap[site])
		memcpy(a->X[site] + a->rows[site] * width, x, (size_t)n * width * sizeof *x);
	else if (a->H[site].H)
		shrink_hessian_add(&a->H[site], x, n);
	a->rows[site] += n;
}

static void acc_free(layer_acc *a)
{
	for (int s = 0; s < N_SITES; s++) {
		free(a->sq[s]);
		free(a->X[s]);
		if (a->H[s].H)
			shrink_hessian_free(&a->H[s]);
	}
	memset(a, 0, sizeof *a);
}

/* The proxy's store for one site that will see n_rows inputs of its width. */
static shrink_status proxy_store(layer_acc *a, int s, int64_t n_rows, shrink_error *err)
{
	if (n_rows >= a->width[s])
		return shrink_hessian_init(&a->H[s], a->width[s], err);
	a->X[s] = malloc((size_t)n_rows * a->width[s] * sizeof *a->X[s]);
	a->x_cap[s] = n_rows;
	return a->X[s] ? SHRINK_OK : shrink_fail(err, SHRINK_EIO, "out of memory for activations");
}

/* n_rows: the tokens each site of the layer will see */
static shrink_status acc_init(layer_acc *a, const shrink_config *c, int layer, bool proxy, int64_t n_rows,
			      shrink_error *err)
{
	memset(a, 0, sizeof *a);
	a->layer = layer;
	a->proxy = proxy;
	if (layer < 0) {
		a->width[SHRINK_SITE_HEAD_IN] = c->dim;
	} else {
		a->width[SHRINK_SITE_ATTN_IN] = a->width[SHRINK_SITE_FFN_IN] = c->dim;
		a->width[SHRINK_SITE_ATTN_OUT] = c->layers[layer].n_heads * c->head_dim;
		a->width[SHRINK_SITE_FFN_MID] = c->layers[layer].ffn_dim;
	}
	for (int s = 0; s < N_SITES; s++) {
		if (!a->width[s])
			continue;
		a->sq[s] = calloc((size_t)a->width[s], sizeof *a->sq[s]);
		shrink_status st = proxy ? proxy_store(a, s, n_rows, err) : SHRINK_OK;
		if (!st && !a->sq[s])
			st = shrink_fail(err, SHRINK_EIO, "out of memory for activation statistics");
		if (st) {
			acc_free(a);
			return st;
		}
	}
	return SHRINK_OK;
}

/* tr(dW H dW^T) for dW = wq - w (rows, cols), PROXY_ROWS rows at a time. */
static double proxy_trace(const float *w, const float *wq, int64_t rows, int64_t cols, const double *H, double *d,
			  double *m)
{
	double total = 0;
	for (int64_t r0 = 0; r0 < rows; r0 += PROXY_ROWS) {
		int64_t nr = rows - r0 < PROXY_ROWS ? rows - r0 : PROXY_ROWS;
		for (int64_t i = 0; i < nr * cols; i++)
			d[i] = (double)wq[r0 * cols + i] - w[r0 * cols + i];
		shrink_kernel_blas_serial(); /* its threaded dsymm rounds by thread count */
		cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, (int)nr, (int)cols, 1.0, H, (int)cols, d, (int)cols,
			    0.0, m, (int)cols);
		for (int64_t i = 0; i < nr * cols; i++)
			total += d[i] * m[i];
	}
	return total;
}

/* (2/N) ||X dW^T||_F^2 for dW = wq - w (rows, cols) and X (n, cols), DIRECT_ROWS rows at a time;
 * d: DIRECT_ROWS * cols floats, y: n * DIRECT_ROWS floats. */
static double proxy_direct(const float *w, const float *wq, int64_t rows, int64_t cols, const float *X, int64_t n,
			   float *d, float *y)
{
	double total = 0;
	for (int64_t r0 = 0; r0 < rows; r0 += DIRECT_ROWS) {
		int64_t nr = rows - r0 < DIRECT_ROWS ? rows - r0 : DIRECT_ROWS;
		for (int64_t i = 0; i < nr * cols; i++)
			d[i] = wq[r0 * cols + i] - w[r0 * cols + i];
		shrink_kernel_sgemm(false, true, (int)n, (int)nr, (int)cols, 1.0f, X, (int)cols, d, (int)cols, 0.0f, y,
				    (int)nr);
		for (int64_t i = 0; i < n * nr; i++)
			total += (double)y[i] * y[i];
	}
	return 2.0 * total / (double)n;
}

static double proxy_of(const layer_acc *a, int site, const float *w, const float *wq, const shrink_param *p,
		       void *s1, void *s2)
{
	if (a->X[site])
		return proxy_direct(w, wq, p->rows, p->cols, a->X[site], a->rows[site], s1, s2);
	return proxy_trace(w, wq, p->rows, p->cols, a->H[site].H, s1, s2);
}

static shrink_status weight_proxy(sense_run *r, const shrink_param *p, const layer_acc *a, int site,
				  shrink_tensor_sense *ts, shrink_error *err)
{
	const float *w = r->theta + p->offset;
	size_t n1 = a->X[site] ? (size_t)DIRECT_ROWS * p->cols * sizeof(float) : (size_t)PROXY_ROWS * p->cols * 8;
	size_t n2 = a->X[site] ? (size_t)a->rows[site] * DIRECT_ROWS * sizeof(float) : n1;
	float *wq = malloc((size_t)p->numel * sizeof *wq);
	void *s1 = malloc(n1), *s2 = malloc(n2);
	shrink_status st = !wq || !s1 || !s2 ? shrink_fail(err, SHRINK_EIO, "out of memory for the proxy") : SHRINK_OK;
	for (int b = 0; !st && b < shrink_calib_n_schemes(r->p); b++) {
		shrink_qscheme s = sense_scheme(r->p, b);
		if (!(st = sense_qdq(w, p->rows, p->cols, &s, wq, err)))
			ts->schemes[b].proxy += proxy_of(a, site, w, wq, p, s1, s2);
	}
	free(wq), free(s1), free(s2);
	return st ? shrink_fail_prefix(err, "tensor '%s': ", p->name) : SHRINK_OK;
}

static shrink_status finish_site(sense_run *r, layer_acc *a, int site, shrink_error *err)
{
	for (int i = 0; site_weights[site][i] != SHRINK_PARAM_KINDS; i++) {
		const shrink_param *p = shrink_param_get(&r->lay, site_weights[site][i], a->layer);
		shrink_tensor_sense *ts = &r->out->tensors[p - r->lay.params];
		ts->act_sq_mean = malloc((size_t)a->width[site] * sizeof *ts->act_sq_mean);
		if (!ts->act_sq_mean)
			return shrink_fail(err, SHRINK_EIO, "out of memory");
		for (int c = 0; c < a->width[site]; c++)
			ts->act_sq_mean[c] = (float)(a->sq[site][c] / (double)a->rows[site]);
		ts->act_width = a->width[site];
		ts->act_rows = a->rows[site];
		shrink_status st = a->proxy ? weight_proxy(r, p, a, site, ts, err) : SHRINK_OK;
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status finish(sense_run *r, layer_acc *a, shrink_error *err)
{
	shrink_status st = SHRINK_OK;
	for (int s = 0; !st && s < N_SITES; s++)
		if (a->sq[s])
			st = finish_site(r, a, s, err);
	return st;
}

static shrink_status embed_proxy(sense_run *r, shrink_error *err)
{
	const shrink_param *p = shrink_param_get(&r->lay, SHRINK_PARAM_EMBED, -1);
	shrink_tensor_sense *ts = &r->out->tensors[p - r->lay.params];
	int64_t n_win = (int64_t)r->p->n_samples * r->p->ctx;
	double *count = calloc((size_t)p->rows, sizeof *count);
	float *wq = malloc((size_t)p->numel * sizeof *wq);
	shrink_status st = !count || !wq ? shrink_fail(err, SHRINK_EIO, "out of memory") : SHRINK_OK;
	for (int64_t i = 0; !st && i < n_win; i++)
		count[r->windows[i]] += 1;
	const float *w = r->theta + p->offset;
	for (int b = 0; !st && b < shrink_calib_n_schemes(r->p); b++) {
		shrink_qscheme s = sense_scheme(r->p, b);
		if ((st = sense_qdq(w, p->rows, p->cols, &s, wq, err)))
			break;
		double sum = 0;
		for (int64_t t = 0; t < p->rows; t++)
			if (count[t] > 0)
				sum += count[t] * sense_sq_diff(wq + t * p->cols, w + t * p->cols, p->cols);
		ts->schemes[b].proxy += 2.0 * sum / (double)n_win;
	}
	free(count), free(wq);
	return st ? shrink_fail_prefix(err, "tensor '%s': ", p->name) : SHRINK_OK;
}

static shrink_status run_layers(sense_run *r, float *x_all, layer_acc *a, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	const shrink_config *c = r->lay.config;
	size_t win = (size_t)p->ctx * c->dim;
	shrink_status st = SHRINK_OK;
	for (int s = 0; !st && s < p->n_samples; s++)
		st = shrink_train_embed(r->train, r->theta, r->windows + (size_t)s * p->ctx, p->ctx, x_all + s * win,
					err);
	for (int l = 0; !st && l <= c->n_layers; l++) {
		int layer = l < c->n_layers ? l : -1;
		int64_t rows = (int64_t)p->n_samples * (layer >= 0 ? p->ctx : p->ctx - 1);
		if ((st = acc_init(a, c, layer, p->hessian != SHRINK_HESSIAN_NONE, rows, err)))
			break;
		double loss_sum = 0, loss = 0;
		for (int s = 0; !st && s < p->n_samples; s++) {
			const int *tok = r->windows + (size_t)s * p->ctx;
			st = layer >= 0
				 ? shrink_train_block(r->train, r->theta, l, x_all + s * win, p->ctx, err)
				 : shrink_train_head(r->train, r->theta, x_all + s * win, tok, p->ctx, &loss, err);
			loss_sum += layer < 0 ? loss : 0;
		}
		if (!st)
			st = finish(r, a, err);
		acc_free(a);
		r->out->loss = loss_sum / p->n_samples;
		sense_progress(r, "activations", l + 1, c->n_layers + 1);
	}
	return st;
}

shrink_status sense_layer_pass(sense_run *r, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	bool proxy = p->hessian != SHRINK_HESSIAN_NONE;
	for (int i = 0; proxy && i < r->out->n_tensors; i++)
		for (int b = 0; r->out->tensors[i].schemes && b < shrink_calib_n_schemes(p); b++)
			r->out->tensors[i].schemes[b].proxy = 0;
	float *x_all = malloc((size_t)p->n_samples * p->ctx * r->lay.config->dim * sizeof *x_all);
	if (!x_all)
		return shrink_fail(err, SHRINK_EIO, "out of memory for %d windows of activations", p->n_samples);
	layer_acc a;
	shrink_train_observe(r->train, observe, &a);
	shrink_status st = run_layers(r, x_all, &a, err);
	shrink_train_observe(r->train, NULL, NULL);
	free(x_all);
	if (!st && proxy)
		st = embed_proxy(r, err);
	return st;
}
