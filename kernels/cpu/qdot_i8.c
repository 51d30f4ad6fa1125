/* qdot_i8.c: y = x W^T for 4- and 8-bit quantized W with the activations
 * rounded to int8 (the "int8 path"). x is cut into blocks of 32 columns (a
 * block never straddles a weight group: groups are multiples of 32 or one per
 * row); each block gets one float scale d = max|x|/127 and codes round(x/d).
 * A row's block dot is then an exact integer sum(xq * (q - zero)), and only
 * the products s * d * isum are float: about a third of the work of expanding
 * the codes to float (qmatvec.c), at the price of rounding the activations,
 * as llama.cpp does for Q4_0/Q8_0. AVX512-VNNI, AVX2 or portable C, chosen at
 * run time. Rows go four at a time (quads at fixed places, one thread each),
 * so any thread count gives the same bits. Used for decode (few tokens) of
 * matrices that have no repacked copy (qdot_x8.c is about twice as fast on
 * one); for many tokens block dequantization + sgemm (qmatvec.c) is faster. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define BLK 32

/* One token's activations in int8. For 4-bit weights a full block is stored
 * in nibble order (the 16 even columns, then the 16 odd ones), so that 16
 * packed bytes split into low and high nibbles line up with it; a short last
 * block stays in column order. */
typedef struct {
	int64_t n_blocks, bpg; /* blocks per row, blocks per weight group */
	int64_t stride;	       /* n_blocks rounded up to 8: per-token stride of d, sum, nzs */
	int bpg_shift;	       /* log2(bpg) when there are several groups */
	int8_t *q;	       /* [n_tok][n_blocks * 32], zero-padded */
	int16_t *q16;	       /* AVX2 8-bit only: q widened, same shape */
	float *d;	       /* [n_tok][stride], zero-padded */
	int32_t *sum;	       /* [n_tok][stride]: sum of the block's codes */
	int32_t *nzs;	       /* [n_tok][stride]: -2^(bits-1) * sum, the symmetric zero-point term */
} act_i8;

static int cpu_has(shrink_ki8_impl impl)
{
	return impl == SHRINK_KI8_C || (impl == SHRINK_KI8_AVX2 && shrink_cpu_avx2()) ||
	       (impl == SHRINK_KI8_VNNI && shrink_cpu_vnni());
}

int shrink_kernel_i8_available(shrink_ki8_impl impl)
{
	return impl == SHRINK_KI8_AUTO || cpu_has(impl);
}

int shrink_kernel_linear_q_i8_ok(const shrink_kq *w)
{
	return (w->bits == 4 || w->bits == 8) && (w->group % BLK == 0 || w->n_groups == 1);
}

float shrink_kernel_quantize_i8(const float *x, int n, int8_t *q, int32_t *sum)
{
	float amax = 0;
	for (int j = 0; j < n; j++) {
		float a = fabsf(x[j]);
		amax = a > amax ? a : amax;
	}
	float id = amax > 0 ? 127.0f / amax : 0.0f;
	int32_t s = 0;
	for (int j = 0; j < n; j++) {
		float v = x[j] * id;
		/* clamps rounding noise and keeps NaN/inf from undefined conversions */
		v = v >= -127.0f ? (v <= 127.0f ? v : 127.0f) : -127.0f;
		q[j] = (int8_t)nearbyintf(v);
		s += q[j];
	}
	*sum = s;
	return amax / 127.0f;
}

static void quantize_token(const float *x, int64_t cols, int bits, int wide, const act_i8 *a, int t)
{
	int64_t nb = a->n_blocks, st = a->stride;
	int8_t *q = a->q + (size_t)t * (size_t)nb * BLK;
	for (int64_t b = 0; b < st; b++) {
		if (b >= nb) {
			a->d[t * st + b] = 0;
			a->sum[t * st + b] = a->nzs[t * st + b] = 0;
			continue;
		}
		int n = cols - b * BLK < BLK ? (int)(cols - b * BLK) : BLK;
		int8_t c[BLK] = {0}, *dst = q + b * BLK;
		a->d[t * st + b] = shrink_kernel_quantize_i8(x + b * BLK, n, c, &a->sum[t * st + b]);
		a->nzs[t * st + b] = -(1 << (bits - 1)) * a->sum[t * st + b];
		for (int j = 0; j < BLK; j++)
			dst[bits == 4 && n == BLK ? j / 2 + (j & 1) * 16 : j] = c[j];
		if (wide)
			for (int j = 0; j < BLK; j++)
				a->q16[((size_t)t * nb + b) * BLK + j] = dst[j];
	}
}

static int zero_of(const shrink_kq *w, int64_t r, int64_t g)
{
	return w->zeros ? w->zeros[r * w->n_groups + g] : 1 << (w->bits - 1);
}

/* exact sum over block b of xq * q (codes as stored, zero not subtracted) */
static int32_t block_dot_c(const shrink_kq *w, const uint8_t *row, const int8_t *xq, int64_t b)
{
	int n = w->cols - b * BLK < BLK ? (int)(w->cols - b * BLK) : BLK;
	int32_t s = 0;
	if (w->bits == 8) {
		for (int j = 0; j < n; j++)
			s += xq[j] * row[b * BLK + j];
	} else if (n == BLK) {
		const uint8_t *p = row + b * (BLK / 2);
		for (int k = 0; k < 16; k++)
			s += xq[k] * (p[k] & 15) + xq[16 + k] * (p[k] >> 4);
	} else {
		for (int j = 0; j < n; j++) {
			int64_t c = b * BLK + j;
			s += xq[j] * ((row[c / 2] >> (4 * (c & 1))) & 15);
		}
	}
	return s;
}

static float row_c(const shrink_kq *w, int64_t r, const act_i8 *a, int t)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	int64_t nb = a->n_blocks;
	const int8_t *xq = a->q + (size_t)t * (size_t)nb * BLK;
	const float *d = a->d + t * a->stride;
	const int32_t *xs = a->sum + t * a->stride;
	float acc = 0;
	for (int64_t g = 0; g < w->n_groups; g++) {
		int64_t b0 = g * a->bpg, b1 = b0 + a->bpg < nb ? b0 + a->bpg : nb;
		int z = zero_of(w, r, g);
		float gacc = 0;
		for (int64_t b = b0; b < b1; b++)
			gacc += d[b] * (float)(block_dot_c(w, row, xq + b * BLK, b) - z * xs[b]);
		acc += shrink_f16_to_f32(w->scales[r * w->n_groups + g]) * gacc;
	}
	return acc;
}

__attribute__((target("avx2,fma"))) static float hsum(__m256 v)
{
	__m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/* Per-block factors of one row for blocks [b0, b0+n) of token t: sd = s * d
 * (the float scale of the block's integer dot) and the exact zero-point
 * term -zero * sum(xq), returned as a pointer: the token's precomputed one
 * for symmetric weights, else nzx filled here. Computed ahead, 8 blocks per
 * instruction where groups are one block, so the dot loop only loads them.
 * sd and nzx have room for n rounded up to 8. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline const int32_t *
block_factors(const shrink_kq *w, int64_t r, const act_i8 *a, int t, int64_t b0, int n, float *sd, int32_t *nzx)
{
	const uint16_t *sc = w->scales + r * w->n_groups;
	const uint8_t *zr = w->zeros ? w->zeros + r * w->n_groups : NULL;
	const float *d = a->d + t * a->stride;
	const int32_t *xs = a->sum + t * a->stride;
	int i = 0;
	if (a->bpg == 1) {
		for (; i < n; i += 8) {
			int64_t b = b0 + i;
			uint16_t s8[8] = {0};
			uint8_t z8[16] = {0};
			const uint16_t *sp = sc + b;
			const uint8_t *zp = zr ? zr + b : NULL;
			if (n - i < 8) { /* the row's last blocks: no reading past its scales */
				for (int j = 0; j < n - i; j++) {
					s8[j] = sc[b + j];
					z8[j] = zr ? zr[b + j] : 0;
				}
				sp = s8, zp = zr ? z8 : NULL;
			}
			__m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)sp));
			_mm256_storeu_ps(sd + i, _mm256_mul_ps(s, _mm256_loadu_ps(d + b)));
			if (zp) {
				__m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)zp));
				__m256i zx = _mm256_mullo_epi32(z, _mm256_loadu_si256((const __m256i *)(xs + b)));
				_mm256_storeu_si256((__m256i *)(nzx + i), _mm256_sub_epi32(_mm256_setzero_si256(), zx));
			}
		}
	}
	/* groups of several blocks, one per row or a power of two of blocks */
	for (int64_t g = w->n_groups == 1 ? 0 : (b0 + i) >> a->bpg_shift; i < n; g++) {
		int64_t end = (g + 1) * a->bpg - b0;
		float s = _cvtsh_ss(sc[g]);
		int z = zr ? zr[g] : 0;
		for (; i < n && i < end; i++) {
			sd[i] = s * d[b0 + i];
			nzx[i] = -z * xs[b0 + i];
		}
	}
	return zr ? nzx : a->nzs + t * a->stride + b0;
}

/* 32 4-bit codes from 16 bytes in nibble order, as bytes */
__attribute__((target("avx2"))) static inline __m256i nibbles(const uint8_t *p)
{
	__m128i b = _mm_loadu_si128((const __m128i *)p);
	__m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
	return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* Dots of full block b as 8 int32 lanes whose sum is the block's dot, plus
 * the lanes of `init`. 4-bit: maddubs (codes <= 15, no int16 saturation);
 * 8-bit codes times 8-bit activations could saturate maddubs, so both are
 * widened to int16 for madd (exact in int32). VNNI's dpbusd sums unsigned
 * times signed bytes by fours into int32 with no intermediate saturation,
 * so one instruction serves both widths. */
__attribute__((target("avx2"))) static inline __m256i dot4_avx2(const uint8_t *row, const int8_t *xq,
								 const int16_t *x16, int64_t b, __m256i init)
{
	__m256i p = _mm256_maddubs_epi16(nibbles(row + b * (BLK / 2)), _mm256_loadu_si256((const __m256i *)xq));
	return _mm256_add_epi32(init, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

__attribute__((target("avx2"))) static inline __m256i dot8_avx2(const uint8_t *row, const int8_t *xq,
								 const int16_t *x16, int64_t b, __m256i init)
{
	const uint8_t *p = row + b * BLK;
	__m256i lo = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
	__m256i hi = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
	__m256i s = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_loadu_si256((const __m256i *)x16)),
				     _mm256_madd_epi16(hi, _mm256_loadu_si256((const __m256i *)(x16 + 16))));
	return _mm256_add_epi32(init, s);
}

__attribute__((target("avx2,avx512vl,avx512vnni"))) static inline __m256i dot4_vnni(const uint8_t *row,
										    const int8_t *xq,
										    const int16_t *x16, int64_t b,
										    __m256i init)
{
	return _mm256_dpbusd_epi32(init, nibbles(row + b * (BLK / 2)), _mm256_loadu_si256((const __m256i *)xq));
}

__attribute__((target("avx2,avx512vl,avx512vnni"))) static inline __m256i dot8_vnni(const uint8_t *row,
										    const int8_t *xq,
										    const int16_t *x16, int64_t b,
										    __m256i init)
{
	return _mm256_dpbusd_epi32(init, _mm256_loadu_si256((const __m256i *)(row + b * BLK)),
				   _mm256_loadu_si256((const __m256i *)xq));
}

#define CHUNK_BLOCKS 64

/* The SIMD rows: R rows at once (sharing the loop and the activation
 * loads), blocks in chunks of CHUNK_BLOCKS; per full block the exact integer
 * dot less the zero-point term (in lane 0), converted to float and scaled by
 * sd into one of two accumulators per row (even and odd blocks, to hide the
 * FMA latency). A short last block goes through the C dot. Each row's
 * arithmetic is the same for any R, so grouping rows changes no bits. */
#define ROWS_SIMD(name, isa, dot, R)                                                                               \
	__attribute__((target(isa))) static void name(const shrink_kq *w, int64_t r, const act_i8 *a, int t,       \
						      float *out)                                                  \
	{                                                                                                          \
		int64_t nb = a->n_blocks, nfull = w->cols / BLK;                                                   \
		const int8_t *xq = a->q + (size_t)t * (size_t)nb * BLK;                                            \
		const int16_t *x16 = a->q16 ? a->q16 + (size_t)t * (size_t)nb * BLK : NULL;                        \
		const uint8_t *row[R];                                                                             \
		float sd[R][CHUNK_BLOCKS];                                                                         \
		int32_t nzbuf[R][CHUNK_BLOCKS];                                                                    \
		const int32_t *nzx[R];                                                                             \
		__m256 acc0[R], acc1[R];                                                                           \
		size_t ahead = (size_t)R * w->row_bytes;                                                           \
		for (int k = 0; k < R; k++) {                                                                      \
			row[k] = w->q + (size_t)(r + k) * w->row_bytes;                                            \
			acc0[k] = acc1[k] = _mm256_setzero_ps();                                                   \
		}                                                                                                  \
		for (int64_t b0 = 0; b0 < nb; b0 += CHUNK_BLOCKS) {                                                \
			int n = nb - b0 < CHUNK_BLOCKS ? (int)(nb - b0) : CHUNK_BLOCKS;                            \
			int nf = nfull - b0 < n ? (int)(nfull - b0) : n;                                           \
			for (int k = 0; k < R; k++) {                                                              \
				const uint16_t *next = w->scales + (r + R + k) * w->n_groups + b0 / a->bpg;        \
				_mm_prefetch((const char *)next, _MM_HINT_T0);                                     \
				_mm_prefetch((const char *)next + 64, _MM_HINT_T0);                                \
				nzx[k] = block_factors(w, r + k, a, t, b0, n, sd[k], nzbuf[k]);                    \
			}                                                                                          \
			int i = 0;                                                                                 \
			for (; i + 2 <= nf; i += 2) {                                                              \
				int64_t b = b0 + i;                                                                \
				const int16_t *h0 = x16 ? x16 + b * BLK : NULL, *h1 = x16 ? h0 + BLK : NULL;       \
				_Pragma("GCC unroll 4") for (int k = 0; k < R; k++)                                \
				{                                                                                  \
					/* the rows R further on, while these compute: DRAM-bound otherwise */     \
					_mm_prefetch((const char *)row[k] + ahead + b * w->bits * (BLK / 8),       \
						     _MM_HINT_T0);                                                 \
					__m256i i0 = dot(row[k], xq + b * BLK, h0, b,                              \
							 _mm256_zextsi128_si256(_mm_cvtsi32_si128(nzx[k][i])));    \
					__m256i i1 = dot(row[k], xq + (b + 1) * BLK, h1, b + 1,                    \
							 _mm256_zextsi128_si256(_mm_cvtsi32_si128(nzx[k][i + 1]))); \
					acc0[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_broadcast_ss(&sd[k][i]), \
								  acc0[k]);                                        \
					acc1[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1),                          \
								  _mm256_broadcast_ss(&sd[k][i + 1]), acc1[k]);    \
				}                                                                                  \
			}                                                                                          \
			for (; i < n; i++) {                                                                       \
				int64_t b = b0 + i;                                                                \
				for (int k = 0; k < R; k++) {                                                      \
					__m256i iv = _mm256_zextsi128_si256(_mm_cvtsi32_si128(nzx[k][i]));         \
					if (i < nf)                                                                \
						iv = dot(row[k], xq + b * BLK, x16 ? x16 + b * BLK : NULL, b, iv); \
					else                                                                       \
						iv = _mm256_add_epi32(iv, _mm256_zextsi128_si256(_mm_cvtsi32_si128( \
									      block_dot_c(w, row[k], xq + b * BLK, b)))); \
					acc0[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iv), _mm256_broadcast_ss(&sd[k][i]), \
								  acc0[k]);                                        \
				}                                                                                  \
			}                                                                                          \
		}                                                                                                  \
		for (int k = 0; k < R; k++)                                                                        \
			out[k] = hsum(_mm256_add_ps(acc0[k], acc1[k]));                                            \
	}

ROWS_SIMD(rows4_avx2, "avx2,fma,f16c", dot4_avx2, 4)
ROWS_SIMD(rows8_avx2, "avx2,fma,f16c", dot8_avx2, 4)
ROWS_SIMD(rows4_vnni, "avx2,fma,f16c,avx512vl,avx512vnni", dot4_vnni, 4)
ROWS_SIMD(rows8_vnni, "avx2,fma,f16c,avx512vl,avx512vnni", dot8_vnni, 4)
ROWS_SIMD(row4_avx2, "avx2,fma,f16c", dot4_avx2, 1)
ROWS_SIMD(row8_avx2, "avx2,fma,f16c", dot8_avx2, 1)
ROWS_SIMD(row4_vnni, "avx2,fma,f16c,avx512vl,avx512vnni", dot4_vnni, 1)
ROWS_SIMD(row8_vnni, "avx2,fma,f16c,avx512vl,avx512vnni", dot8_vnni, 1)

static void row1_c(const shrink_kq *w, int64_t r, const act_i8 *a, int t, float *out)
{
	*out = row_c(w, r, a, t);
}

static void rows4_c(const shrink_kq *w, int64_t r, const act_i8 *a, int t, float *out)
{
	for (int k = 0; k < 4; k++)
		out[k] = row_c(w, r + k, a, t);
}

/* rows r..r+3 into out[4], or one row into out[0] */
typedef void (*rows_fn)(const shrink_kq *, int64_t, const act_i8 *, int, float *);

static shrink_ki8_impl resolve(shrink_ki8_impl impl)
{
	if (impl != SHRINK_KI8_AUTO)
		return impl;
	return cpu_has(SHRINK_KI8_VNNI) ? SHRINK_KI8_VNNI : cpu_has(SHRINK_KI8_AVX2) ? SHRINK_KI8_AVX2 : SHRINK_KI8_C;
}

static void pick_rows(const shrink_kq *w, shrink_ki8_impl impl, rows_fn *four, rows_fn *one)
{
	int b4 = w->bits == 4;
	switch (impl) {
	case SHRINK_KI8_VNNI:
		*four = b4 ? rows4_vnni : rows8_vnni;
		*one = b4 ? row4_vnni : row8_vnni;
		break;
	case SHRINK_KI8_AVX2:
		*four = b4 ? rows4_avx2 : rows8_avx2;
		*one = b4 ? row4_avx2 : row8_avx2;
		break;
	default: *four = rows4_c, *one = row1_c;
	}
}

int shrink_kernel_linear_q_i8(const shrink_kq *w, const float *x, int n_tok, float *y, shrink_ki8_impl impl)
{
	impl = resolve(impl);
	if (!shrink_kernel_linear_q_i8_ok(w) || !cpu_has(impl) || n_tok < 1)
		return -1;
	int64_t nb = (w->cols + BLK - 1) / BLK, st = (nb + 7) / 8 * 8;
	act_i8 a = {nb, w->n_groups == 1 ? nb : w->group / BLK, st, 0, NULL, NULL, NULL, NULL, NULL};
	while (w->n_groups > 1 && (1 << a.bpg_shift) < a.bpg)
		a.bpg_shift++;
	int wide = impl == SHRINK_KI8_AVX2 && w->bits == 8;
	size_t n = (size_t)n_tok * (size_t)nb, ns = (size_t)n_tok * (size_t)st;
	/* one allocation: floats and int32 first, then the codes */
	char *mem = malloc(ns * (sizeof(float) + 2 * sizeof(int32_t)) + n * (BLK + (wide ? 2 * BLK : 0)));
	if (!mem)
		return -1;
	a.d = (float *)mem;
	a.sum = (int32_t *)(a.d + ns);
	a.nzs = a.sum + ns;
	a.q16 = wide ? (int16_t *)(a.nzs + ns) : NULL;
	a.q = (int8_t *)(a.nzs + ns) + (wide ? n * BLK * 2 : 0);
	for (int t = 0; t < n_tok; t++)
		quantize_token(x + (size_t)t * (size_t)w->cols, w->cols, w->bits, wide, &a, t);
	rows_fn four, one;
	pick_rows(w, impl, &four, &one);
	/* quads of rows at fixed places: a row's code path never depends on the
	 * thread count */
#pragma omp parallel for schedule(static)
	for (int64_t r = 0; r < w->rows; r += 4)
		for (int t = 0; t < n_tok; t++) {
			float out[4];
			int64_t nr = w->rows - r < 4 ? w->rows - r : 4;
			if (nr == 4)
				four(w, r, &a, t, out);
			else
				for (int k = 0; k < nr; k++)
					one(w, r + k, &a, t, out + k);
			for (int k = 0; k < nr; k++)
				y[(size_t)t * (size_t)w->rows + r + k] = out[k];
		}
	free(mem);
	return 0;
}
