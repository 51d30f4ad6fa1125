/* qmatvec.c: y = x W^T for integer-quantized W (shrink container layout),
 * never expanding the whole matrix. Few tokens: one thread per output row;
 * per group the kernel computes scale * (sum q*x - zero * sum x), with the
 * group sums of x computed once per call; 4- and 8-bit codes are expanded in
 * AVX2 registers (checked at run time), other widths through a small buffer.
 * Many tokens: blocks of 128 rows are dequantized and handed to sgemm. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define GEMM_MIN_TOKENS 8

static float zero_of(const shrink_kq *w, int64_t r, int64_t g);
#define BLOCK_ROWS 128
#define CHUNK 256

/* codes of elements [j0, j0+n) of a row */
static void unpack_range(const uint8_t *row, int bits, int64_t j0, int64_t n, uint8_t *out)
{
	if (bits == 8) {
		memcpy(out, row + j0, (size_t)n);
		return;
	}
	unsigned mask = (1u << bits) - 1;
	for (int64_t j = 0; j < n; j++) {
		uint64_t bit = (uint64_t)(j0 + j) * (uint64_t)bits;
		size_t byte = bit >> 3;
		unsigned shift = bit & 7, v = row[byte];
		if (shift + (unsigned)bits > 8)
			v |= (unsigned)row[byte + 1] << 8;
		out[j] = (uint8_t)((v >> shift) & mask);
	}
}

static float dot_codes_c(const uint8_t *c, const float *x, int64_t n)
{
	float s[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += (float)c[i + k] * x[i + k];
	float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
	for (; i < n; i++)
		r += (float)c[i] * x[i];
	return r;
}

__attribute__((target("avx2,fma"))) static float hsum(__m256 v)
{
	__m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/* 32 codes of 4 bits from 16 bytes (element 2k in the low nibble of byte k) */
__attribute__((target("avx2,fma"))) static float dot_q4_avx2(const uint8_t *p, const float *x, int64_t n)
{
	const __m128i m = _mm_set1_epi8(0x0f);
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (int64_t i = 0; i < n; i += 32, p += 16, x += 32) {
		__m128i b = _mm_loadu_si128((const __m128i *)p);
		__m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
		__m128i e0 = _mm_unpacklo_epi8(lo, hi), e1 = _mm_unpackhi_epi8(lo, hi);
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e0)), _mm256_loadu_ps(x), a0);
		a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8))), _mm256_loadu_ps(x + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e1)), _mm256_loadu_ps(x + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8))), _mm256_loadu_ps(x + 24), a3);
	}
	return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

__attribute__((target("avx2,fma"))) static float dot_q8_avx2(const uint8_t *p, const float *x, int64_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m128i b = _mm_loadu_si128((const __m128i *)(p + i));
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))), _mm256_loadu_ps(x + i + 8), a1);
	}
	float r = hsum(_mm256_add_ps(a0, a1));
	for (; i < n; i++)
		r += (float)p[i] * x[i];
	return r;
}

/* 32 codes of 4 bits from 16 bytes, as 4 vectors of 8 floats */
__attribute__((target("avx2,fma"))) static inline void q4_expand(const uint8_t *p, __m256 out[4])
{
	const __m128i m = _mm_set1_epi8(0x0f);
	__m128i b = _mm_loadu_si128((const __m128i *)p);
	__m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
	__m128i e0 = _mm_unpacklo_epi8(lo, hi), e1 = _mm_unpackhi_epi8(lo, hi);
	out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e0));
	out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e0, 8)));
	out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(e1));
	out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(e1, 8)));
}

/* One row against one token, 4-bit codes, groups a multiple of 32: the
 * scaled group dots stay in a vector accumulator; the zero-point term
 * sum_g s*z*sum(x_g) is added once. */
__attribute__((target("avx2,fma,f16c"))) static float row_q4_avx2(const shrink_kq *w, int64_t r, const float *x,
								   const float *xsum)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	const uint16_t *sc = w->scales + r * w->n_groups;
	__m256 acc = _mm256_setzero_ps();
	float corr = 0;
	for (int64_t g = 0; g < w->n_groups; g++) {
		float s = _cvtsh_ss(sc[g]);
		const uint8_t *p = row + g * w->group / 2;
		const float *xg = x + g * w->group;
		__m256 d0 = _mm256_setzero_ps(), d1 = d0;
		for (int j = 0; j < w->group; j += 32) {
			__m256 q[4];
			q4_expand(p + j / 2, q);
			d0 = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(xg + j), d0);
			d1 = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xg + j + 8), d1);
			d0 = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xg + j + 16), d0);
			d1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xg + j + 24), d1);
		}
		acc = _mm256_fmadd_ps(_mm256_add_ps(d0, d1), _mm256_set1_ps(s), acc);
		corr += s * zero_of(w, r, g) * xsum[g];
	}
	return hsum(acc) - corr;
}

__attribute__((target("avx2,fma,f16c"))) static float row_q8_avx2(const shrink_kq *w, int64_t r, const float *x,
								   const float *xsum)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	const uint16_t *sc = w->scales + r * w->n_groups;
	__m256 acc = _mm256_setzero_ps();
	float corr = 0;
	for (int64_t g = 0; g < w->n_groups; g++) {
		float s = _cvtsh_ss(sc[g]);
		const uint8_t *p = row + g * w->group;
		const float *xg = x + g * w->group;
		__m256 d0 = _mm256_setzero_ps(), d1 = d0;
		for (int j = 0; j < w->group; j += 16) {
			__m128i b = _mm_loadu_si128((const __m128i *)(p + j));
			d0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), _mm256_loadu_ps(xg + j), d0);
			d1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))),
					     _mm256_loadu_ps(xg + j + 8), d1);
		}
		acc = _mm256_fmadd_ps(_mm256_add_ps(d0, d1), _mm256_set1_ps(s), acc);
		corr += s * zero_of(w, r, g) * xsum[g];
	}
	return hsum(acc) - corr;
}

/* whole groups of 32 (4-bit) or 16 (8-bit) columns, no short last group */
static int fast_shape(const shrink_kq *w)
{
	if (w->cols % w->group)
		return 0;
	return (w->bits == 4 && w->group % 32 == 0) || (w->bits == 8 && w->group % 16 == 0);
}

/* sum over the group's columns [j0, j0+n) of code * x */
static float group_dot(const shrink_kq *w, const uint8_t *row, int64_t j0, int64_t n, const float *x, int avx)
{
	if (avx && w->bits == 4 && j0 % 2 == 0 && n % 32 == 0)
		return dot_q4_avx2(row + j0 / 2, x + j0, n);
	if (avx && w->bits == 8)
		return dot_q8_avx2(row + j0, x + j0, n);
	uint8_t codes[CHUNK];
	float s = 0;
	for (int64_t k = 0; k < n; k += CHUNK) {
		int64_t m = n - k < CHUNK ? n - k : CHUNK;
		unpack_range(row, w->bits, j0 + k, m, codes);
		s += dot_codes_c(codes, x + j0 + k, m);
	}
	return s;
}

static float zero_of(const shrink_kq *w, int64_t r, int64_t g)
{
	return w->zeros ? (float)w->zeros[r * w->n_groups + g] : (float)(1 << (w->bits - 1));
}

static void row_dots(const shrink_kq *w, int64_t r, const float *x, const float *xsum, int n_tok, float *y, int avx)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	if (avx && fast_shape(w)) {
		for (int t = 0; t < n_tok; t++) {
			const float *xt = x + (size_t)t * w->cols, *st = xsum + (size_t)t * w->n_groups;
			y[(size_t)t * w->rows + r] = w->bits == 4 ? row_q4_avx2(w, r, xt, st) : row_q8_avx2(w, r, xt, st);
		}
		return;
	}
	for (int t = 0; t < n_tok; t++) {
		const float *xt = x + (size_t)t * w->cols, *st = xsum + (size_t)t * w->n_groups;
		float acc = 0;
		for (int64_t g = 0; g < w->n_groups; g++) {
			int64_t j0 = g * w->group, n = w->cols - j0 < w->group ? w->cols - j0 : w->group;
			float d = group_dot(w, row, j0, n, xt, avx);
			acc += shrink_f16_to_f32(w->scales[r * w->n_groups + g]) * (d - zero_of(w, r, g) * st[g]);
		}
		y[(size_t)t * w->rows + r] = acc;
	}
}

__attribute__((target("avx2,fma,f16c"))) static void dequant_q4_avx2(const shrink_kq *w, int64_t r, float *out)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	for (int64_t g = 0; g < w->n_groups; g++) {
		__m256 s = _mm256_set1_ps(_cvtsh_ss(w->scales[r * w->n_groups + g]));
		__m256 sz = _mm256_mul_ps(s, _mm256_set1_ps(zero_of(w, r, g)));
		for (int j = 0; j < w->group; j += 32) {
			int64_t c = g * w->group + j;
			__m256 q[4];
			q4_expand(row + c / 2, q);
			for (int k = 0; k < 4; k++)
				_mm256_storeu_ps(out + c + 8 * k, _mm256_fmsub_ps(q[k], s, sz));
		}
	}
}

__attribute__((target("avx2,fma,f16c"))) static void dequant_q8_avx2(const shrink_kq *w, int64_t r, float *out)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	for (int64_t g = 0; g < w->n_groups; g++) {
		__m256 s = _mm256_set1_ps(_cvtsh_ss(w->scales[r * w->n_groups + g]));
		__m256 sz = _mm256_mul_ps(s, _mm256_set1_ps(zero_of(w, r, g)));
		for (int j = 0; j < w->group; j += 8) {
			int64_t c = g * w->group + j;
			__m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + c))));
			_mm256_storeu_ps(out + c, _mm256_fmsub_ps(q, s, sz));
		}
	}
}

void shrink_kernel_dequant_q_row(const shrink_kq *w, int64_t r, float *out)
{
	if (shrink_cpu_avx2() && fast_shape(w)) {
		if (w->bits == 4)
			dequant_q4_avx2(w, r, out);
		else
			dequant_q8_avx2(w, r, out);
		return;
	}
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	uint8_t codes[CHUNK];
	for (int64_t j0 = 0; j0 < w->cols; j0 += CHUNK) {
		int64_t n = w->cols - j0 < CHUNK ? w->cols - j0 : CHUNK;
		unpack_range(row, w->bits, j0, n, codes);
		for (int64_t j = 0; j < n; j++) {
			int64_t g = (j0 + j) / w->group;
			out[j0 + j] = shrink_f16_to_f32(w->scales[r * w->n_groups + g]) * ((float)codes[j] - zero_of(w, r, g));
		}
	}
}

static void linear_rows(const shrink_kq *w, const float *x, int n_tok, float *y)
{
	float *xsum = malloc((size_t)n_tok * (size_t)w->n_groups * sizeof(float));
	for (int t = 0; t < n_tok; t++)
		for (int64_t g = 0; g < w->n_groups; g++) {
			int64_t j0 = g * w->group, n = w->cols - j0 < w->group ? w->cols - j0 : w->group;
			float s = 0;
			for (int64_t j = 0; j < n; j++)
				s += x[(size_t)t * w->cols + j0 + j];
			xsum[(size_t)t * w->n_groups + g] = s;
		}
	int avx = shrink_cpu_avx2();
#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < w->rows; r++)
		row_dots(w, r, x, xsum, n_tok, y, avx);
	free(xsum);
}

void shrink_kernel_linear_q(const shrink_kq *w, const float *x, int n_tok, float *y, float *scratch)
{
	if (n_tok < GEMM_MIN_TOKENS) {
		linear_rows(w, x, n_tok, y);
		return;
	}
	for (int64_t r0 = 0; r0 < w->rows; r0 += BLOCK_ROWS) {
		int64_t nr = w->rows - r0 < BLOCK_ROWS ? w->rows - r0 : BLOCK_ROWS;
#pragma omp parallel for schedule(static)
		for (int64_t r = 0; r < nr; r++)
			shrink_kernel_dequant_q_row(w, r0 + r, scratch + r * w->cols);
		shrink_kernel_sgemm(false, true, n_tok, (int)nr, (int)w->cols, 1.0f, x, (int)w->cols, scratch,
				    (int)w->cols, 0.0f, y + r0, (int)w->rows);
	}
}
