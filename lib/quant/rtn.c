/* rtn.c: round-to-nearest quantization of a matrix (rows in parallel with OpenMP,
 * each row independent, so the result does not depend on the thread count),
 * dequantization of one packed row, and the argument checks GPTQ shares.
 * Deliberately not here: error feedback (gptq*.c), choosing schemes per tensor. */
#include <stdlib.h>

#include "shrink/tensor.h"

#include "quant_impl.h"

/* Arguments shared by RTN and GPTQ: scheme, output buffers. */
shrink_status shrink_quant_check_args(const shrink_qscheme *s, int64_t rows, int64_t cols, const void *w,
				      const uint8_t *qweight, const uint16_t *scales, const uint8_t *zeros,
				      shrink_error *err)
{
	shrink_status st = shrink_qscheme_check(s, cols, err);
	if (st)
		return st;
	if (rows < 0)
		return shrink_fail(err, SHRINK_EINPUT, "matrix has %lld rows", (long long)rows);
	if (!w || !qweight || !scales || (!s->symmetric && !zeros))
		return shrink_fail(err, SHRINK_EUSAGE, "quantize: missing weight or output buffer");
	return SHRINK_OK;
}

/* SHRINK_EINPUT naming the first non-finite weight, in row-major order. */
shrink_status shrink_quant_check_finite(const float *w, int64_t rows, int64_t cols, shrink_error *err)
{
	for (int64_t r = 0; r < rows; r++)
		for (int64_t c = 0; c < cols; c++)
			if (!isfinite(w[r * cols + c]))
				return shrink_fail(err, SHRINK_EINPUT,
						   "row %lld: non-finite weight (%g) at column %lld", (long long)r,
						   (double)w[r * cols + c], (long long)c);
	return SHRINK_OK;
}

/* Quantize row r; buf holds cols doubles, q cols codes. */
static qfit_status rtn_row(const float *w, int64_t cols, const shrink_qscheme *s, bool clip, double *buf, uint8_t *q,
			   uint16_t *scales, uint8_t *zeros)
{
	int maxq = (1 << s->bits) - 1;
	int64_t n_groups = shrink_qscheme_groups(s, cols);
	for (int64_t k = 0; k < n_groups; k++) {
		int64_t c0 = k * s->group_size, n = qgroup_len(s->group_size, cols, k);
		for (int64_t i = 0; i < n; i++)
			buf[i] = w[c0 + i];
		qgroup g;
		qfit_status st = shrink_qgroup_fit(buf, n, s->bits, s->symmetric, clip, &g);
		if (st)
			return st;
		scales[k] = g.scale_f16;
		if (zeros)
			zeros[k] = (uint8_t)g.zero;
		for (int64_t i = 0; i < n; i++)
			q[c0 + i] = (uint8_t)qgroup_quant(&g, maxq, buf[i]);
	}
	return QFIT_OK;
}

shrink_status shrink_quantize_rtn(const float *w, int64_t rows, int64_t cols, const shrink_qscheme *s, bool clip_search,
				  uint8_t *qweight, uint16_t *scales, uint8_t *zeros, shrink_error *err)
{
	shrink_status st = shrink_quant_check_args(s, rows, cols, w, qweight, scales, zeros, err);
	if (!st)
		st = shrink_quant_check_finite(w, rows, cols, err);
	if (st)
		return st;
	int64_t n_groups = shrink_qscheme_groups(s, cols), bad_row = -1;
	size_t row_bytes = shrink_qrow_bytes(s->bits, cols);
	qfit_status bad = QFIT_OK;
	int oom = 0;
	uint8_t *zero_out = s->symmetric ? NULL : zeros;
#pragma omp parallel
	{
		double *buf = malloc((size_t)cols * sizeof *buf);
		uint8_t *q = malloc((size_t)cols);
		if (!buf || !q) {
#pragma omp atomic write
			oom = 1;
		}
#pragma omp for schedule(static)
		for (int64_t r = 0; r < rows; r++) {
			if (!buf || !q)
				continue;
			qfit_status fs = rtn_row(w + r * cols, cols, s, clip_search, buf, q, scales + r * n_groups,
						 zero_out ? zero_out + r * n_groups : NULL);
			if (fs) {
#pragma omp critical(shrink_rtn_bad)
				if (bad_row < 0 || r < bad_row) {
					bad_row = r;
					bad = fs;
				}
				continue;
			}
			shrink_pack_bits(q, cols, s->bits, qweight + (size_t)r * row_bytes);
		}
		free(buf);
		free(q);
	}
	if (oom)
		return shrink_fail(err, SHRINK_EIO, "quantize: out of memory");
	if (bad_row >= 0)
		return shrink_fail(err, SHRINK_EINPUT, "row %lld: %s", (long long)bad_row, shrink_qfit_reason(bad));
	return SHRINK_OK;
}

/* Codes are unpacked in chunks that start on a byte (a multiple of 8 codes). */
#define DEQUANT_CHUNK 256

void shrink_qmatrix_row(const shrink_qmatrix *m, int64_t row, float *out)
{
	const shrink_qscheme *s = &m->scheme;
	int64_t cols = m->cols, n_groups = shrink_qscheme_groups(s, cols);
	const uint8_t *packed = m->qweight + (size_t)row * shrink_qrow_bytes(s->bits, cols);
	const uint16_t *scales = m->scales + row * n_groups;
	const uint8_t *zeros = m->zeros ? m->zeros + row * n_groups : NULL;
	int sym_zero = 1 << (s->bits - 1);
	uint8_t q[DEQUANT_CHUNK];
	for (int64_t c0 = 0; c0 < cols; c0 += DEQUANT_CHUNK) {
		int64_t n = cols - c0 < DEQUANT_CHUNK ? cols - c0 : DEQUANT_CHUNK;
		shrink_unpack_bits(packed + c0 / 8 * s->bits, n, s->bits, q);
		for (int64_t i = 0; i < n; i++) {
			int64_t k = qgroup_of(s->group_size, c0 + i);
			int zero = s->symmetric ? sym_zero : zeros[k];
			out[c0 + i] = shrink_f16_to_f32(scales[k]) * (float)(q[i] - zero);
		}
	}
}
