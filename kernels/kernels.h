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

#endif
