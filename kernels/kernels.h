/* kernels.h: hot CPU compute kernels behind one header (kernels/cpu).
 * Plain arrays in, plain arrays out; no knowledge of models or files.
 * Every kernel gives the same bits whatever the thread count: each output
 * element is reduced by one thread in a fixed order. */
#ifndef SHRINK_KERNELS_H
#define SHRINK_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SHRINK_KW_F32, SHRINK_KW_F16, SHRINK_KW_BF16 } shrink_kw_type;

/* What this CPU has (cpu_features.c): AVX2 with FMA and F16C; F16C with AVX;
 * AVX-512 VNNI (with VL) on top of AVX2. */
int shrink_cpu_avx2(void);
int shrink_cpu_f16c(void);
int shrink_cpu_vnni(void);

/* y[t, r] = sum_c x[t, c] * W[r, c] for t < n_tok, r < rows. W is row-major
 * [rows, cols] in the given float type. scratch: at least
 * shrink_kernel_linear_scratch(rows, cols, n_tok) floats (may be NULL when 0). */
void shrink_kernel_linear(const void *w, shrink_kw_type type, int64_t rows, int64_t cols, const float *x, int n_tok,
			  float *y, float *scratch);
size_t shrink_kernel_linear_scratch(int64_t rows, int64_t cols, int n_tok);

/* C [M, N] = alpha op(A) op(B) + beta C, row-major (op: transposed when ta / tb), through
 * OpenBLAS in fixed tiles so that the result does not depend on the thread count (sgemm.c). */
void shrink_kernel_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
			 int ldb, float beta, float *C, int ldc);
/* Keep OpenBLAS on one thread (its threaded routines round by thread count); call before
 * other BLAS routines, outside OpenMP regions. */
void shrink_kernel_blas_serial(void);

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

/* The int8 path (qdot_i8.c): y = x W^T with x rounded to int8 per block of
 * 32 columns (blocks start at column 0 and never straddle a weight group)
 * and exact integer block dots against the codes:
 *   y[t, r] = sum_g s[r,g] * sum_{b in g} d_b * sum_{j in b} xq_j * (q[r,j] - zero[r,g]).
 * Slightly different numbers from shrink_kernel_linear_q (the rounding of x);
 * what llama.cpp does for Q4_0/Q8_0. For 4- and 8-bit weights with groups a
 * multiple of 32 or one group per row (shrink_kernel_linear_q_i8_ok). */
typedef enum { SHRINK_KI8_AUTO, SHRINK_KI8_C, SHRINK_KI8_AVX2, SHRINK_KI8_VNNI } shrink_ki8_impl;
int shrink_kernel_linear_q_i8_ok(const shrink_kq *w);
/* Whether this CPU runs impl (AUTO and C always). */
int shrink_kernel_i8_available(shrink_ki8_impl impl);
/* 0 on success; -1 (y untouched) when the shape is not supported, impl is
 * not available, or memory for the int8 activations is short. */
int shrink_kernel_linear_q_i8(const shrink_kq *w, const float *x, int n_tok, float *y, shrink_ki8_impl impl);
/* One block of n <= 32 values: amax = max|x|, q[j] = nearbyintf(x[j] * (127.0f / amax))
 * (0 when amax is 0), *sum = sum of q; returns d = amax / 127.0f. */
float shrink_kernel_quantize_i8(const float *x, int n, int8_t *q, int32_t *sum);

/* The interleaved layout (qx_pack.c, qdot_x8.c): a 4- or 8-bit matrix
 * repacked once at load so that one 32-byte load serves 8 rows. Rows go in
 * tiles of 8 (the last tile padded with zero codes and scales); per tile and
 * 32-column block the codes are `block_bytes` bytes in chunks of 32 bytes,
 * chunk c holding 4 bytes of each of the 8 rows in row order: 8-bit, the
 * codes of columns 4c..4c+3; 4-bit, columns 4c..4c+3 in the low nibbles and
 * 16+4c..16+4c+3 in the high ones. A row's last block is padded with zero
 * codes. Scales (f16) and zeros are [tile][group][8 rows], read 8 at once. */
typedef struct {
	int bits, group; /* as in shrink_kq */
	int64_t rows, cols, n_groups;
	int64_t n_tiles, n_blocks; /* tiles of 8 rows, 32-column blocks per row */
	int64_t blocks_per_group;  /* n_blocks when one group per row */
	size_t block_bytes;	   /* bits * 32: bytes of one tile's block */
	const uint8_t *q;	   /* [n_tiles][n_blocks][block_bytes] */
	const uint16_t *scales;	   /* [n_tiles][n_groups][8] */
	const uint8_t *zeros;	   /* [n_tiles][n_groups][8], NULL: symmetric */
} shrink_kqx;

/* Whether w can be repacked (the int8 path's schemes), and the bytes of the
 * repacked arrays (64-byte aligned one after the other). */
int shrink_kernel_qx_ok(const shrink_kq *w);
size_t shrink_kernel_qx_bytes(const shrink_kq *w);
/* Repack w into mem (shrink_kernel_qx_bytes(w) bytes, 64-byte aligned) and
 * describe it in out. */
void shrink_kernel_qx_pack(const shrink_kq *w, void *mem, shrink_kqx *out);
/* Dequantize the rows of tile `tile` that exist into out[row - 8*tile][cols]. */
void shrink_kernel_qx_dequant_tile(const shrink_kqx *w, int64_t tile, float *out);
/* y = x W^T: fewer than 8 tokens through int8 activations as
 * shrink_kernel_linear_q_i8 (same products; per row the block terms are
 * summed in block order with fused multiply-adds, so every impl gives the
 * same bits); more through dequantized tiles and sgemm, scratch as for
 * shrink_kernel_linear. 0 on success, -1 (y untouched) as for
 * shrink_kernel_linear_q_i8. */
int shrink_kernel_linear_qx(const shrink_kqx *w, const float *x, int n_tok, float *y, float *scratch,
			    shrink_ki8_impl impl);

#endif
