/* cuda_ref.h: CPU references and helpers for the CUDA kernel tests and
 * benchmarks (tests/cuda/test_cuda.c, tests/bench/bench_cuda.c): a seeded
 * RNG, f16/bf16 conversions, the container's bit packing written again from
 * its specification (lib/shrink/quant.h), and float64 reference versions of
 * every op in kernels/cuda/cuda.h.
 * Deliberately independent of libshrink's own packing and float code, so the
 * tests check the kernels against the file format's specification. */
#ifndef SHRINK_TESTS_CUDA_REF_H
#define SHRINK_TESTS_CUDA_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* splitmix64 stream */
typedef struct {
	uint64_t s;
} ref_rng;
uint64_t ref_next(ref_rng *r);
double ref_uniform(ref_rng *r); /* [0, 1) */
double ref_normal(ref_rng *r);

uint16_t ref_f32_to_f16(float f);
float ref_f16_to_f32(uint16_t h);
uint16_t ref_f32_to_bf16(float f);
float ref_bf16_to_f32(uint16_t h);
/* dt: 0 f16, 1 bf16 (as shrink_cuda_dtype) */
uint16_t ref_to_half(int dt, float f);
float ref_from_half(int dt, uint16_t h);

/* The container's packing: element j of a row in bits [j*b, (j+1)*b), LSB first. */
size_t ref_row_bytes(int bits, int64_t cols);
void ref_pack_row(const uint8_t *codes, int64_t cols, int bits, uint8_t *out);

/* A random quantized matrix in the container's layout, with its codes kept. */
typedef struct {
	int bits, group_size;
	bool symmetric;
	int64_t rows, cols, n_groups;
	uint8_t *codes;   /* rows x cols */
	uint8_t *packed;  /* rows x row_bytes */
	uint16_t *scales; /* rows x n_groups f16 */
	uint8_t *zeros;   /* rows x n_groups, NULL when symmetric */
} ref_qmatrix;

void ref_qmatrix_random(ref_qmatrix *m, int bits, int group_size, bool symmetric, int64_t rows, int64_t cols,
			ref_rng *rng);
void ref_qmatrix_free(ref_qmatrix *m);
double ref_qmatrix_weight(const ref_qmatrix *m, int64_t r, int64_t c); /* scale * (q - zero) */

/* y[t][n] = sum_k x[t][k] W[n][k] in double; x holds dt values. */
void ref_qlinear(const ref_qmatrix *m, int dt, const uint16_t *x, int64_t n_tok, double *y);

/* Relative L2 error ||out - ref|| / ||ref|| over n values of dt (out) against double ref;
 * returns INFINITY when an output is not finite. */
double ref_rel_err_half(int dt, const uint16_t *out, const double *ref, size_t n);
double ref_rel_err_f32(const float *out, const double *ref, size_t n);

void ref_rmsnorm(int dt, const uint16_t *x, const uint16_t *w, int64_t n_tok, int64_t dim, float eps, double *out);
void ref_rope(int dt, const uint16_t *x, int64_t n_tok, int n_heads, int head_dim, const float *inv_freq,
	      int64_t pos0, double *out);
void ref_attention(int dt, const uint16_t *q, int64_t n_tok, int64_t pos0, int n_heads, int n_kv, int head_dim,
		   const uint16_t *kc, const uint16_t *vc, float scale, double *out);

/* A one-layer lib/kv cache (spec: --kv syntax) for H query / KV heads of hd holding L random positions
 * (keys with an 8x wider channel 5, so GEAR has outliers), an end_forward after the first `prefill`;
 * the rows stored are left in k and v [L][KV * hd] when given. NULL with err filled on failure. */
shrink_kv *ref_kv_filled(const char *spec, int H, int KV, int hd, int64_t L, int prefill, ref_rng *rng, float *k,
			 float *v, shrink_error *err);

#endif
