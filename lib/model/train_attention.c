/* train_attention.c: causal grouped-query attention over a whole sequence for
 * the training pass, forward and backward, one head at a time with OpenBLAS
 * (scores Q K^T, then P V), keeping the probabilities P for the backward pass.
 * Shapes: q (n, nh*hd), k and v (n, nkv*hd), p (nh, n, n); head h reads KV head
 * h / (nh / nkv). Not here: the KV cache or incremental decoding (attention.c
 * does that for inference); the masked half of each score matrix is computed
 * and thrown away, which costs less than splitting the products. */
#include <math.h>

#include "kernels.h"
#include "train_ops.h"

static void causal_softmax(float *p, int n)
{
#pragma omp parallel for if ((int64_t)n * n > 32768)
	for (int t = 0; t < n; t++) {
		float *row = p + (int64_t)t * n, mx = row[0];
		for (int s = 1; s <= t; s++)
			mx = row[s] > mx ? row[s] : mx;
		double sum = 0;
		for (int s = 0; s <= t; s++) {
			row[s] = expf(row[s] - mx);
			sum += row[s];
		}
		float inv = (float)(1.0 / sum);
		for (int s = 0; s <= t; s++)
			row[s] *= inv;
		for (int s = t + 1; s < n; s++)
			row[s] = 0;
	}
}

void attention_forward(float *att, float *p, const float *q, const float *k, const float *v, int n, int nh, int nkv,
		       int hd)
{
	int group = nh / nkv, qd = nh * hd, kvd = nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	for (int h = 0; h < nh; h++) {
		int g = h / group;
		float *ph = p + (int64_t)h * n * n;
		shrink_kernel_sgemm(false, true, n, n, hd, scale, q + h * hd, qd, k + g * hd, kvd, 0.0f, ph, n);
		causal_softmax(ph, n);
		shrink_kernel_sgemm(false, false, n, hd, n, 1.0f, ph, n, v + g * hd, kvd, 0.0f, att + h * hd, qd);
	}
}

/* ds[t, s] = p[t, s] (dp[t, s] - sum_s' p[t, s'] dp[t, s']) on the causal part, 0 elsewhere (in place over dp) */
static void softmax_backward(float *ds, const float *p, int n)
{
#pragma omp parallel for if ((int64_t)n * n > 32768)
	for (int t = 0; t < n; t++) {
		float *d = ds + (int64_t)t * n;
		const float *pr = p + (int64_t)t * n;
		double dot = 0;
		for (int s = 0; s <= t; s++)
			dot += (double)pr[s] * d[s];
		for (int s = 0; s <= t; s++)
			d[s] = pr[s] * (float)(d[s] - dot);
		for (int s = t + 1; s < n; s++)
			d[s] = 0;
	}
}

void attention_backward(float *dq, float *dk, float *dv, float *ds, const float *datt, const float *p, const float *q,
			const float *k, const float *v, int n, int nh, int nkv, int hd)
{
	int group = nh / nkv, qd = nh * hd, kvd = nkv * hd;
	float scale = 1.0f / sqrtf((float)hd);
	for (int h = 0; h < nh; h++) {
		int g = h / group;
		float beta = h % group ? 1.0f : 0.0f; /* the group's first head starts dk, dv */
		const float *ph = p + (int64_t)h * n * n, *dout = datt + h * hd;
		shrink_kernel_sgemm(false, true, n, n, hd, 1.0f, dout, qd, v + g * hd, kvd, 0.0f, ds, n);
		softmax_backward(ds, ph, n);
		shrink_kernel_sgemm(false, false, n, hd, n, scale, ds, n, k + g * hd, kvd, 0.0f, dq + h * hd, qd);
		shrink_kernel_sgemm(true, false, n, hd, n, scale, ds, n, q + h * hd, qd, beta, dk + g * hd, kvd);
		shrink_kernel_sgemm(true, false, n, hd, n, 1.0f, ph, n, dout, qd, beta, dv + g * hd, kvd);
	}
}
