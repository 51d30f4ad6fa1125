/* qdq.c: what a tensor looks like after round-to-nearest quantization
 * (quantize with lib/quant, dequantize row by row), and squared differences.
 * Not here: the quantizer itself (lib/quant), GPTQ (calibration measures the
 * plain RTN error that HAWQ-V2's Omega is defined on). */
#include <stdlib.h>

#include "sense_impl.h"

shrink_status sense_qdq(const float *w, int64_t rows, int64_t cols, const shrink_qscheme *s, float *out,
			shrink_error *err)
{
	int64_t groups = shrink_qscheme_groups(s, cols);
	size_t row_bytes = shrink_qrow_bytes(s->bits, cols);
	uint8_t *qweight = malloc((size_t)rows * row_bytes);
	uint16_t *scales = malloc((size_t)rows * (size_t)groups * sizeof *scales);
	uint8_t *zeros = s->symmetric ? NULL : malloc((size_t)rows * (size_t)groups);
	shrink_status st = SHRINK_OK;
	if (!qweight || !scales || (!s->symmetric && !zeros))
		st = shrink_fail(err, SHRINK_EIO, "out of memory quantizing a %lld x %lld tensor", (long long)rows,
				 (long long)cols);
	if (!st)
		st = shrink_quantize_rtn(w, rows, cols, s, false, qweight, scales, zeros, err);
	if (!st) {
		shrink_qmatrix m = {*s, rows, cols, qweight, scales, zeros};
#pragma omp parallel for if (rows * cols > 65536)
		for (int64_t r = 0; r < rows; r++)
			shrink_qmatrix_row(&m, r, out + r * cols);
	}
	free(qweight), free(scales), free(zeros);
	return st;
}

double sense_sq_diff(const float *a, const float *b, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];
		s += d * d;
	}
	return s;
}
