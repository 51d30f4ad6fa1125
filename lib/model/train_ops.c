/* train_ops.c: embed, rmsnorm, linear, swiglu, rope and cross-entropy as
 * forward/backward pairs for the training pass (attention is in
 * train_attention.c). Matrix products go to OpenBLAS; every reduction over
 * tokens runs in one thread in token order, so results do not depend on the
 * thread count. Not here: the inference ops (ops.c), which read weights of any
 * dtype and work through the KV cache. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "train_ops.h"

#define COL_BLOCK 64
#define PAR_MIN 32768 /* elements below which loops stay serial */

void embed_forward(float *x, const float *emb, const int *tokens, int n, int dim)
{
	for (int t = 0; t < n; t++)
		memcpy(x + (int64_t)t * dim, emb + (int64_t)tokens[t] * dim, (size_t)dim * sizeof *x);
}

void embed_backward(float *demb, const float *dx, const int *tokens, int n, int dim)
{
#pragma omp parallel for if ((int64_t)n * dim > PAR_MIN)
	for (int c0 = 0; c0 < dim; c0 += COL_BLOCK) {
		int c1 = c0 + COL_BLOCK < dim ? c0 + COL_BLOCK : dim;
		for (int t = 0; t < n; t++) {
			float *row = demb + (int64_t)tokens[t] * dim;
			const float *d = dx + (int64_t)t * dim;
			for (int c = c0; c < c1; c++)
				row[c] += d[c];
		}
	}
}

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps)
{
#pragma omp parallel for if ((int64_t)n * dim > PAR_MIN)
	for (int t = 0; t < n; t++) {
		const float *xt = x + (int64_t)t * dim;
		float *ot = out + (int64_t)t * dim;
		double ss = 0;
		for (int i = 0; i < dim; i++)
			ss += (double)xt[i] * xt[i];
		float r = (float)(1.0 / sqrt(ss / dim + eps));
		rstd[t] = r;
		for (int i = 0; i < dim; i++)
			ot[i] = xt[i] * r * w[i];
	}
}

/* dw[c] += sum_t dout[t, c] * x[t, c] * rstd[t], column blocks in parallel, tokens in order */
static void rmsnorm_dw(float *dw, const float *dout, const float *x, const float *rstd, int n, int dim)
{
#pragma omp parallel for if ((int64_t)n * dim > PAR_MIN)
	for (int c0 = 0; c0 < dim; c0 += COL_BLOCK) {
		int c1 = c0 + COL_BLOCK < dim ? c0 + COL_BLOCK : dim;
		double acc[COL_BLOCK] = {0};
		for (int t = 0; t < n; t++)
			for (int c = c0; c < c1; c++)
				acc[c - c0] += (double)dout[(int64_t)t * dim + c] * x[(int64_t)t * dim + c] * rstd[t];
		for (int c = c0; c < c1; c++)
			dw[c] += (float)acc[c - c0];
	}
}

/* y_i = w_i x_i r with r = (mean(x^2) + eps)^-1/2:
 * dx_j = r w_j dy_j - (r^3 / dim) x_j sum_i dy_i w_i x_i */
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *rstd, const float *w,
		      int n, int dim)
{
#pragma omp parallel for if ((int64_t)n * dim > PAR_MIN)
	for (int t = 0; t < n; t++) {
		const float *xt = x + (int64_t)t * dim, *dt = dout + (int64_t)t * dim;
		float *dxt = dx + (int64_t)t * dim;
		double r = rstd[t], dot = 0;
		for (int i = 0; i < dim; i++)
			dot += (double)dt[i] * w[i] * xt[i];
		double c = r * r * r * dot / dim;
		for (int i = 0; i < dim; i++)
			dxt[i] += (float)(r * dt[i] * w[i] - c * xt[i]);
	}
	rmsnorm_dw(dw, dout, x, rstd, n, dim);
}

void linear_forward(float *y, const float *x, const float *w, const float *b, int n, int64_t rows, int64_t cols,
		    float beta)
{
	shrink_kernel_sgemm(false, true, n, (int)rows, (int)cols, 1.0f, x, (int)cols, w, (int)cols, beta, y, (int)rows);
	if (!b)
		return;
	for (int t = 0; t < n; t++)
		for (int64_t r = 0; r < rows; r++)
			y[t * rows + r] += b[r];
}

static void column_sums(float *db, const float *dy, int n, int64_t rows)
{
#pragma omp parallel for if ((int64_t)n * rows > PAR_MIN)
	for (int64_t c0 = 0; c0 < rows; c0 += COL_BLOCK) {
		int64_t c1 = c0 + COL_BLOCK < rows ? c0 + COL_BLOCK : rows;
		double acc[COL_BLOCK] = {0};
		for (int t = 0; t < n; t++)
			for (int64_t c = c0; c < c1; c++)
				acc[c - c0] += dy[t * rows + c];
		for (int64_t c = c0; c < c1; c++)
			db[c] += (float)acc[c - c0];
	}
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
		     int64_t rows, int64_t cols, float beta_dx)
{
	shrink_kernel_sgemm(false, false, n, (int)cols, (int)rows, 1.0f, dy, (int)rows, w, (int)cols, beta_dx, dx,
			    (int)cols);
	shrink_kernel_sgemm(true, false, (int)rows, (int)cols, n, 1.0f, dy, (int)rows, x, (int)cols, 1.0f, dw,
			    (int)cols);
	if (db)
		column_sums(db, dy, n, rows);
}

void swiglu_forward(float *h, const float *g, const float *u, int64_t n)
{
#pragma omp parallel for if (n > PAR_MIN)
	for (int64_t i = 0; i < n; i++)
		h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* silu(g) = g s, s = sigmoid(g); silu'(g) = s (1 + g (1 - s)) */
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n)
{
#pragma omp parallel for if (n > PAR_MIN)
	for (int64_t i = 0; i < n; i++) {
		float s = 1.0f / (1.0f + expf(-g[i]));
		du[i] = dh[i] * g[i] * s;
		dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
	}
}

/* The transpose of op_rope's rotation (same float cos/sin): (a, b) -> (a c + b s, b c - a s). */
static void unrotate(float *v, int hd, const float *cs, const float *sn)
{
	int half = hd / 2;
	for (int i = 0; i < half; i++) {
		float a = v[i], b = v[i + half];
		v[i] = a * cs[i] + b * sn[i];
		v[i + half] = b * cs[i] - a * sn[i];
	}
}

void rope_backward(float *dq, float *dk, int n, int nh, int nkv, int hd, const float *inv_freq)
{
	float cs[512], sn[512]; /* head_dim <= 1024 is checked at load */
	for (int t = 0; t < n; t++) {
		for (int i = 0; i < hd / 2; i++) {
			double a = (double)t * inv_freq[i];
			cs[i] = (float)cos(a);
			sn[i] = (float)sin(a);
		}
		for (int h = 0; h < nh; h++)
			unrotate(dq + ((int64_t)t * nh + h) * hd, hd, cs, sn);
		for (int h = 0; h < nkv; h++)
			unrotate(dk + ((int64_t)t * nkv + h) * hd, hd, cs, sn);
	}
}

void crossentropy_forward_backward(float *logits, double *row_loss, const int *targets, int m, int vocab,
				   float dscale)
{
#pragma omp parallel for if ((int64_t)m * vocab > PAR_MIN)
	for (int r = 0; r < m; r++) {
		float *z = logits + (int64_t)r * vocab;
		float mx = z[0], target = z[targets[r]];
		for (int j = 1; j < vocab; j++)
			mx = z[j] > mx ? z[j] : mx;
		double sum = 0;
		for (int j = 0; j < vocab; j++) {
			z[j] = expf(z[j] - mx);
			sum += z[j];
		}
		row_loss[r] = mx + log(sum) - target;
		if (dscale == 0)
			continue;
		float f = (float)(dscale / sum);
		for (int j = 0; j < vocab; j++)
			z[j] *= f;
		z[targets[r]] -= dscale;
	}
}
