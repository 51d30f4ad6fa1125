/* kernels.h: hot CPU compute kernels behind one header (kernels/cpu).
 * Plain arrays in, plain arrays out; no knowledge of models or files.
 * Every kernel gives the same bits whatever the thread count: each output
 * element is reduced by one thread in a fixed order. */
#ifndef SHRINK_KERNELS_H
#define SHRINK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SHRINK_KW_F32, SHRINK_KW_F16, SHRINK_KW_BF16 } shrink_kw_type;

/* y[t, r] = sum_c x[t, c] * W[r, c] for t < n_tok, r < rows. W is row-major
 * [rows, cols] in the given float type. scratch: at least
 * shrink_kernel_linear_scratch(rows, cols, n_tok) floats (may be NULL when 0). */
void shrink_kernel_linear(const void *w, shrink_kw_type type, int64_t rows, int64_t cols, const float *x, int n_tok,
			  float *y, float *scratch);
size_t shrink_kernel_linear_scratch(int64_t rows, int64_t cols, int n_tok);

/* Convert n elements of a f16 / bf16 array to float32. */
void shrink_kernel_f16_to_f32(const uint16_t *src, float *dst, int64_t n);
void shrink_kernel_bf16_to_f32(const uint16_t *src, float *dst, int64_t n);
void shrink_kernel_f32_to_f16(const float *src, uint16_t *dst, int64_t n);

/* Dot product in a fixed summation order. */
float shrink_kernel_dot(const float *a, const float *b, int64_t n);

/* An integer-quantized matrix in the shrink container layout (quant.h):
 * row r's codes are a little-endian bit stream of `bits`-bit values at
 * q + r*row_bytes; scale and zero point per group of `group` columns. */
typedef struct {
	int bits, group; /* group: columns per group (== cols for one group per row) */
	int64_t rows, cols, n_groups;
	size_t row_bytes;
	const uint8_t *q;
	const uint16_t *scales; /* f16, [rows, n_groups] */
	const uint8_t *zeros;   /* [rows, n_groups], NULL: symmetric (zero = 2^(bits-1)) */
} shrink_kq;

/* y[t, r] = sum_c x[t, c] * dequant(W)[r, c], dequantizing in registers;
 * scratch: shrink_kernel_linear_scratch(rows, cols, n_tok) floats. */
void shrink_kernel_linear_q(const shrink_kq *w, const float *x, int n_tok, float *y, float *scratch);
/* Dequantize row r into out[cols]. */
void shrink_kernel_dequant_q_row(const shrink_kq *w, int64_t r, float *out);

#endif
