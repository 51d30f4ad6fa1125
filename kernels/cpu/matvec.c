/* matvec.c: y = x W^T for float weights (f32, f16, bf16).
 * Few tokens (decode): one thread per output row, a fused convert-and-dot,
 * AVX2/FMA when the CPU has it (checked at run time) else portable C.
 * Many tokens (prefill, evaluation): sgemm in fixed tiles (sgemm.c), converting f16/bf16
 * weights a block of rows at a time so the whole matrix is never expanded.
 * Quantized weights are not handled here (see lib/quant when it lands). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define GEMM_MIN_TOKENS 8
#define CONVERT_BLOCK_ROWS 128

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v)
{
	__m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
		__m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
		s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), s0);
		s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), s1);
	}
	float s = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += shrink_f16_to_f32(w[i]) * x[i];
	return s;
}

static float dot_f32_c(const float *a, const float *b, int64_t n)
{
	float s[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	for (; i < n; i++)
		r += a[i] * b[i];
	return r;
}

static float dot_f16_c(const uint16_t *w, const float *x, int64_t n)
{
	float s[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += shrink_f16_to_f32(w[i + j]) * x[i + j];
	float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	for (; i < n; i++)
		r += shrink_f16_to_f32(w[i]) * x[i];
	return r;
}

static float dot_bf16(const uint16_t *w, const float *x, int64_t n)
{
	float s[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += shrink_bf16_to_f32(w[i + j]) * x[i + j];
	float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	for (; i < n; i++)
		r += shrink_bf16_to_f32(w[i]) * x[i];
	return r;
}

float shrink_kernel_dot(const float *a, const float *b, int64_t n)
{
	return shrink_cpu_avx2() ? dot_f32_avx2(a, b, n) : dot_f32_c(a, b, n);
}

static float dot_row(const void *w, shrink_kw_type type, int64_t r, int64_t cols, const float *x, int avx)
{
	switch (type) {
	case SHRINK_KW_F16: {
		const uint16_t *row = (const uint16_t *)w + r * cols;
		return avx ? dot_f16_avx2(row, x, cols) : dot_f16_c(row, x, cols);
	}
	case SHRINK_KW_BF16:
		return dot_bf16((const uint16_t *)w + r * cols, x, cols);
	default: {
		const float *row = (const float *)w + r * cols;
		return avx ? dot_f32_avx2(row, x, cols) : dot_f32_c(row, x, cols);
	}
	}
}

static void linear_rows(const void *w, shrink_kw_type type, int64_t rows, int64_t cols, const float *x, int n_tok,
			float *y)
{
	int avx = shrink_cpu_avx2();
#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < rows; r++)
		for (int t = 0; t < n_tok; t++)
			y[(int64_t)t * rows + r] = dot_row(w, type, r, cols, x + (int64_t)t * cols, avx);
}

static void convert_rows(const void *w, shrink_kw_type type, int64_t r0, int64_t nr, int64_t cols, float *dst)
{
#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < nr; r++) {
		const uint16_t *src = (const uint16_t *)w + (r0 + r) * cols;
		if (type == SHRINK_KW_F16)
			shrink_kernel_f16_to_f32(src, dst + r * cols, cols);
		else
			shrink_kernel_bf16_to_f32(src, dst + r * cols, cols);
	}
}

size_t shrink_kernel_linear_scratch(int64_t rows, int64_t cols, int n_tok)
{
	(void)rows;
	return n_tok >= GEMM_MIN_TOKENS ? (size_t)CONVERT_BLOCK_ROWS * (size_t)cols : 0;
}

void shrink_kernel_linear(const void *w, shrink_kw_type type, int64_t rows, int64_t cols, const float *x, int n_tok,
			  float *y, float *scratch)
{
	if (n_tok < GEMM_MIN_TOKENS) {
		linear_rows(w, type, rows, cols, x, n_tok, y);
		return;
	}
	if (type == SHRINK_KW_F32) {
		shrink_kernel_sgemm(false, true, n_tok, (int)rows, (int)cols, 1.0f, x, (int)cols, w, (int)cols, 0.0f, y,
				    (int)rows);
		return;
	}
	for (int64_t r0 = 0; r0 < rows; r0 += CONVERT_BLOCK_ROWS) {
		int64_t nr = rows - r0 < CONVERT_BLOCK_ROWS ? rows - r0 : CONVERT_BLOCK_ROWS;
		convert_rows(w, type, r0, nr, cols, scratch);
		shrink_kernel_sgemm(false, true, n_tok, (int)nr, (int)cols, 1.0f, x, (int)cols, scratch, (int)cols,
				    0.0f, y + r0, (int)rows);
	}
}
