/* quant.h: integer weight quantization: schemes, bit packing, RTN (with an
 * optional clipping search) and GPTQ. Pure math over float arrays: no files,
 * no models. The packed layout here is the one the shrink container stores
 * (man/shrink-format.5); kernels that want another layout repack at load.
 *
 * Layout of a quantized matrix W [rows, cols] with scheme (bits b, group g):
 *   qweight: rows x row_bytes(b, cols) bytes; element j of a row occupies bits
 *            [j*b, (j+1)*b) of the row's little-endian bit stream (bit 0 = LSB of byte 0).
 *            Each row starts on a byte; unused high bits of a row's last byte are 0.
 *   scales:  rows x n_groups f16 (n_groups = ceil(cols / g); g = 0 means one group per row).
 *            Group k of a row covers columns [k*g, min((k+1)*g, cols)): when cols is not a
 *            multiple of g the last group is shorter.
 *   zeros:   asymmetric only: rows x n_groups uint8 integer zero points in [0, 2^b - 1].
 *   dequantized w = scale * (q - zero), zero = 2^(b-1) for symmetric schemes.
 *
 * Conventions (maxq = 2^b - 1; every q is clamped to [0, maxq]):
 *   symmetric:  scale = 2 * max|w| / maxq, zero = 2^(b-1): the full code range is used, the
 *               most negative code reaches -2^(b-1) * scale, the most positive is clamped
 *               to (2^(b-1) - 1) * scale (the GPTQ/AutoGPTQ convention; 4-bit g32 values
 *               have the form of llama.cpp's Q4_0, d * (q - 8)).
 *   asymmetric: the range is widened to contain 0 (lo = min(min w, 0), hi = max(max w, 0)),
 *               scale = (hi - lo) / maxq, zero = round(-lo / scale) clamped to [0, maxq].
 *   q = clamp(round(w / scale) + zero) with round half to even, computed in double.
 *   Scales are rounded UP to the next f16 (never down) and quantization uses that stored
 *   f16 value: without the clipping search |w - dequant(q)| <= scale / 2 for every element
 *   (scale = the stored one), and dequantization reproduces exactly what the quantizer
 *   measured (an f16 times a small integer is exact in float32).
 *   A group that is all zero gets scale 0 (q = zero; zero = 0 when asymmetric) and
 *   dequantizes to exact zeros.
 *   Clipping search: ratios r = 1.0, 0.95, ..., 0.5 scale lo and hi (sym: max|w|); the ratio
 *   with the least sum of squared errors over the group is kept, ties to the larger ratio,
 *   so it is never worse than r = 1.
 * Errors: unsupported bits or group size -> SHRINK_EUSAGE; a NaN/Inf weight or a scale
 * that overflows f16 -> SHRINK_EINPUT with a message naming the row (and column). */
#ifndef SHRINK_QUANT_H
#define SHRINK_QUANT_H

#include <stdbool.h>

#include "base.h"

typedef struct {
	int bits;	/* 2, 3, 4, 5, 6 or 8 */
	int group_size; /* a power of two from 16 to 1024 (32, 64, 128 usual), or 0 for one group per row */
	bool symmetric;
} shrink_qscheme;

typedef struct shrink_qmatrix {
	shrink_qscheme scheme;
	int64_t rows, cols;
	const uint8_t *qweight;
	const uint16_t *scales;
	const uint8_t *zeros; /* NULL when symmetric */
} shrink_qmatrix;

/* SHRINK_EUSAGE for unsupported bits/group size, SHRINK_EINPUT for cols < 1. */
shrink_status shrink_qscheme_check(const shrink_qscheme *s, int64_t cols, shrink_error *err);
int64_t shrink_qscheme_groups(const shrink_qscheme *s, int64_t cols);
size_t shrink_qrow_bytes(int bits, int64_t cols);
/* Total bytes of qweight + scales + zeros, and bits per weight including them
 * (16 bits per group for the scale, 8 more when asymmetric, row padding included). */
size_t shrink_qmatrix_bytes(const shrink_qscheme *s, int64_t rows, int64_t cols);
double shrink_qscheme_bpw(const shrink_qscheme *s, int64_t rows, int64_t cols);

/* Pack n codes (each < 2^bits; higher bits are ignored) into ceil(n * bits / 8) bytes, and back. */
void shrink_pack_bits(const uint8_t *q, int64_t n, int bits, uint8_t *out);
void shrink_unpack_bits(const uint8_t *packed, int64_t n, int bits, uint8_t *q);

/* Dequantize one row into out[cols]. */
void shrink_qmatrix_row(const shrink_qmatrix *m, int64_t row, float *out);

/* Round-to-nearest quantization of w [rows, cols] into caller-allocated
 * qweight/scales/zeros (zeros NULL for symmetric). clip_search: per group,
 * try shrinking the range (a grid of ratios) and keep the one with the least
 * squared error. Deterministic whatever the thread count. */
shrink_status shrink_quantize_rtn(const float *w, int64_t rows, int64_t cols, const shrink_qscheme *s, bool clip_search,
				  uint8_t *qweight, uint16_t *scales, uint8_t *zeros, shrink_error *err);

/* GPTQ of w [rows, cols] given the input Hessian H [cols, cols] (H = 2 X X^T / N,
 * accumulated by the caller; only its upper triangle, H[i][j] with j >= i, is read).
 * damp: fraction of mean(diag H) added to the diagonal (0.01 typical); block:
 * lazy-batch width (128); act_order: process columns by decreasing diag(H) (ties by
 * column index). w is not modified. p NULL means {0.01, 128, false, false}.
 * Columns with H_ii = 0 are dead: their weights quantize as 0.
 * Group parameters: with act_order, or with one group per row, they are fitted on the
 * original weights before the sweep ("static groups": the layout has no per-column group
 * index); otherwise on the updated weights when the sweep reaches the group's first column.
 * Results are the same whatever the OpenMP thread count (the row sweeps are our own loops;
 * the Cholesky factorisations go through LAPACKE).
 * SHRINK_EINPUT when H is not positive definite even after damping, has NaN/Inf, or the
 * sweep produces non-finite weights; SHRINK_EUSAGE for bad scheme or parameters;
 * SHRINK_EIO when memory runs out. */
typedef struct {
	double damp;
	int block;
	bool act_order;
	bool clip_search;
} shrink_gptq_params;

shrink_status shrink_quantize_gptq(const float *w, int64_t rows, int64_t cols, const double *H, const shrink_qscheme *s,
				   const shrink_gptq_params *p, uint8_t *qweight, uint16_t *scales, uint8_t *zeros,
				   shrink_error *err);

/* Running Hessian accumulator: H = 2/N sum_j x_j x_j^T over the rows x_j fed so far
 * (full symmetric matrix, double, row-major; valid after every add). */
typedef struct {
	int64_t n_cols;
	int64_t n_samples;
	double *H;
	double *scratch; /* internal: float -> double conversion buffer for a chunk of rows */
} shrink_hessian;

shrink_status shrink_hessian_init(shrink_hessian *h, int64_t cols, shrink_error *err);
void shrink_hessian_add(shrink_hessian *h, const float *x, int64_t n_rows); /* x: [n_rows, cols] */
void shrink_hessian_free(shrink_hessian *h);

#endif
