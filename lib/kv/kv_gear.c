/* kv_gear.c: GEAR for one chunk of T tokens of one KV head (algorithms.md §3):
 * X ~ D + S + L. S: per-vector outliers kept exactly (kv_outliers.c); D: the
 * KIVI backbone of X with the outliers replaced (kv_kivi.c); L: rank-r fit of
 * the residual R = X - (D + S) by power iteration (lowrank.c), stored as
 * U = Q [T, r] and Vt = Q^T R [r, d] in f16, Vt re-fitted after rounding Q.
 * Decoding (kv_decode.c) adds U Vt to the dequantized rows and then writes the
 * outliers, so outlier positions come back bit-exact. With no outliers and
 * rank 0 this is plain KIVI. It keeps no state; streaming is kv_stream.c's. */
#include <string.h>

#include "kernels.h"
#include "kv_impl.h"
#include "shrink/tensor.h"

size_t shrink_kv_gear_work(const shrink_kv_side *s)
{
	return 2 * (size_t)s->T * s->d + (size_t)s->max_rank * (s->T + s->d);
}

static void extract_outliers(const shrink_kv_side *s, float *x, uint8_t *rec)
{
	uint16_t *val = shrink_kv_rec16(rec, s->off_oval), idx[SHRINK_KV_MAX_CHUNK];
	int per = 2 * s->n_side;
	for (int v = 0; v < s->n_vec; v++) {
		float *start = s->keys ? x + v : x + (size_t)v * s->d;
		shrink_kv_outliers_extract(start, s->vec_len, s->keys ? s->d : 1, s->n_side, val + v * per, idx);
		for (int e = 0; e < per; e++)
			shrink_kv_oidx_set(s, rec, v * per + e, idx[e]);
	}
}

/* R = x - (D + S): zero at outlier positions, which decode exactly */
static void residual(const shrink_kv_side *s, const float *x, const uint8_t *rec, float *r)
{
	shrink_kv_chunk_decode(s, rec, 0, 0, s->T, r);
	for (size_t i = 0; i < (size_t)s->T * s->d; i++)
		r[i] = x[i] - r[i];
}

static void fit_low_rank(const shrink_kv_side *s, const float *r, int rank, int iters, uint8_t *rec, float *qt,
			 float *pt)
{
	int T = s->T, d = s->d;
	uint16_t *u = shrink_kv_rec16(rec, s->off_u), *vt = shrink_kv_rec16(rec, s->off_vt);
	shrink_lowrank_fit(r, T, d, rank, iters, qt, pt);
	for (int t = 0; t < T; t++)
		for (int k = 0; k < rank; k++) {
			u[t * rank + k] = shrink_f32_to_f16(qt[(size_t)k * T + t]);
			qt[(size_t)k * T + t] = shrink_kvq_h2f(u[t * rank + k]);
		}
	shrink_lowrank_right(r, T, d, rank, qt, pt);
	shrink_kernel_f32_to_f16(pt, vt, (int64_t)rank * d);
}

void shrink_kv_gear_encode(const shrink_kv_side *s, const float *x, int rank, int iters, uint8_t *rec, float *work)
{
	size_t n = (size_t)s->T * s->d;
	float *xo = work, *r = work + n, *qt = work + 2 * n, *pt = qt + (size_t)s->max_rank * s->T;
	memcpy(xo, x, n * sizeof *xo);
	if (s->n_side)
		extract_outliers(s, xo, rec);
	shrink_kv_kivi_encode(s, xo, rec);
	if (rank == 0)
		return;
	residual(s, x, rec, r);
	fit_low_rank(s, r, rank, iters, rec, qt, pt);
}
