/* quant.h: integer weight quantization: schemes, bit packing, RTN (with an
 * optional clipping search) and GPTQ. Pure math over float arrays: no files,
 * no models. The packed layout here is the one the shrink container stores
 * (man/shrink-format.5); kernels that want another layout repack at load.
 *
 * Layout of a quantized matrix W [rows, cols] with scheme (bits b, group g):
 *   qweight: rows x row_bytes(b, cols) bytes; element j of a row occupies bits
 *            [j*b, (j+1)*b) of the row's little-endian bit stream (bit 0 = LSB of byte 0).
 *   scales:  rows x n_groups f16 (n_groups = ceil(cols / g); g = 0 means one group per row).
 *   zeros:   asymmetric only: rows x n_groups uint8 integer zero points in [0, 2^b - 1].
 *   dequantized w = scale * (q - zero), zero = 2^(b-1) for symmetric schemes. */
#ifndef SHRINK_QUANT_H
#define SHRINK_QUANT_H

#include <stdbool.h>

#include "base.h"

typedef struct {
	int bits;       /* 2, 3, 4, 5, 6 or 8 */
	int group_size; /* 32, 64, 128 ... or 0 for one group per row */
	bool symmetric;
} shrink_qscheme;

typedef struct {
	shrink_qscheme scheme;
	int64_t rows, cols;
	const uint8_t *qweight;
	const uint16_t *scales;
	const uint8_t *zeros; /* NULL when symmetric */
} shrink_qmatrix;

shrink_status shrink_qscheme_check(const shrink_qscheme *s, int64_t cols, shrink_error *err);
int64_t shrink_qscheme_groups(const shrink_qscheme *s, int64_t cols);
size_t shrink_qrow_bytes(int bits, int64_t cols);
/* Total bytes of qweight + scales + zeros, and bits per weight including them. */
size_t shrink_qmatrix_bytes(const shrink_qscheme *s, int64_t rows, int64_t cols);
double shrink_qscheme_bpw(const shrink_qscheme *s, int64_t rows, int64_t cols);

void shrink_pack_bits(const uint8_t *q, int64_t n, int bits, uint8_t *out);
void shrink_unpack_bits(const uint8_t *packed, int64_t n, int bits, uint8_t *q);

/* Dequantize one row into out[cols]. */
void shrink_qmatrix_row(const shrink_qmatrix *m, int64_t row, float *out);

/* Round-to-nearest quantization of w [rows, cols] into caller-allocated
 * qweight/scales/zeros (zeros NULL for symmetric). clip_search: per group,
 * try shrinking the range (a grid of ratios) and keep the one with the least
 * squared error. Deterministic whatever the thread count. */
shrink_status shrink_quantize_rtn(const float *w, int64_t rows, int64_t cols, const shrink_qscheme *s,
				  bool clip_search, uint8_t *qweight, uint16_t *scales, uint8_t *zeros,
				  shrink_error *err);

/* GPTQ of w [rows, cols] given the input Hessian H [cols, cols] (H = 2 X X^T / N,
 * accumulated by the caller). damp: fraction of mean(diag H) added to the
 * diagonal (0.01 typical); block: lazy-batch width (128); act_order: process
 * columns by decreasing diag(H). w is not modified. */
typedef struct {
	double damp;
	int block;
	bool act_order;
	bool clip_search;
} shrink_gptq_params;

shrink_status shrink_quantize_gptq(const float *w, int64_t rows, int64_t cols, const double *H,
				   const shrink_qscheme *s, const shrink_gptq_params *p, uint8_t *qweight,
				   uint16_t *scales, uint8_t *zeros, shrink_error *err);

/* Running Hessian accumulator: H = 2/N sum_j x_j x_j^T over the rows x_j fed so far. */
typedef struct {
	int64_t n_cols;
	int64_t n_samples;
	double *H;
} shrink_hessian;

shrink_status shrink_hessian_init(shrink_hessian *h, int64_t cols, shrink_error *err);
void shrink_hessian_add(shrink_hessian *h, const float *x, int64_t n_rows); /* x: [n_rows, cols] */
void shrink_hessian_free(shrink_hessian *h);

#endif
