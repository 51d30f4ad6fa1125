/* qdot_x8.c: y = x W^T over the interleaved layout of kernels.h (tiles of 8
 * rows). The activations are rounded to int8 per 32-column block as in
 * qdot_i8.c, but here one 32-byte load holds 4 codes of each of 8 rows and
 * one instruction forms 8 rows' partial dots against 4 broadcast activation
 * bytes, so a block costs a few instructions per 8 rows instead of per row;
 * the scales of the 8 rows come in one load and multiply 8 integer dots at
 * once (what llama.cpp's repacked Q4_0x8 does). Per row the float work is
 * acc = fma((float)isum_b, scale * d_b, acc) block after block, in the same
 * order in every implementation (AVX512-VNNI, AVX2, portable C), so all give
 * the same bits, whatever the thread count (tiles never straddle threads).
 * Many tokens: tiles are dequantized for sgemm, as qmatvec.c does. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define BLK 32
#define TILE 8
#define GEMM_MIN_TOKENS 8
#define GEMM_TILES 16 /* 128 rows per sgemm: the scratch of shrink_kernel_linear_scratch */
/* bytes ahead in a tile's codes to prefetch: the hardware prefetcher alone
 * left a 1-thread decode at about 2/3 of the read bandwidth */
#define PREFETCH 1024

/* One token's activations: codes in column order, zero-padded to whole blocks */
typedef struct {
	int64_t n_blocks;
	const int8_t *q;    /* [n_blocks * 32] */
	const float *d;	    /* [n_blocks] */
	const int32_t *sum; /* [n_blocks]: sum of the block's codes */
	const int32_t *nzs; /* [n_blocks]: -2^(bits-1) * sum, the symmetric zero-point term */
} act_x8;

/* shrink_kernel_quantize_i8 of a whole block in AVX2, with the same bits:
 * the same max, product and clamp (NaN to -127 as there: maxps returns its
 * second operand on NaN), and round to nearest even as nearbyintf does in
 * the default rounding mode */
__attribute__((target("avx2,fma"))) static float quantize_block_avx2(const float *x, int8_t *q, int32_t *sum)
{
	__m256 v[4], amax = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
	for (int i = 0; i < 4; i++) {
		v[i] = _mm256_loadu_ps(x + 8 * i);
		amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), amax);
	}
	__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
	m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
	float am = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
	__m256 id = _mm256_set1_ps(am > 0 ? 127.0f / am : 0.0f), lo = _mm256_set1_ps(-127.0f),
	       hi = _mm256_set1_ps(127.0f);
	__m256i c[4], s = _mm256_setzero_si256();
	for (int i = 0; i < 4; i++) {
		__m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi);
		c[i] = _mm256_cvtps_epi32(_mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
		s = _mm256_add_epi32(s, c[i]);
	}
	/* int32 -> int8 in column order (packs interleave the 128-bit lanes) */
	__m256i b = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
	b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)q, b);
	__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
	*sum = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1)));
	return am / 127.0f;
}

static void quantize_token(const float *x, int64_t cols, int bits, int simd, int8_t *q, float *d, int32_t *sum,
			   int32_t *nzs)
{
	for (int64_t b = 0; b * BLK < cols; b++) {
		int n = cols - b * BLK < BLK ? (int)(cols - b * BLK) : BLK;
		memset(q + b * BLK, 0, BLK);
		if (simd && n == BLK)
			d[b] = quantize_block_avx2(x + b * BLK, q + b * BLK, &sum[b]);
		else
			d[b] = shrink_kernel_quantize_i8(x + b * BLK, n, q + b * BLK, &sum[b]);
		nzs[b] = -(1 << (bits - 1)) * sum[b];
	}
}

static int32_t load4(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* ---- portable C ---- */

/* row k's exact dot over one tile block against 32 activation codes */
static int32_t block_dot_c(int bits, const uint8_t *blk, int k, const int8_t *xq)
{
	int32_t s = 0;
	for (int ch = 0; ch < bits; ch++) /* 4 chunks of 4-bit codes, 8 of 8-bit */
		for (int j = 0; j < 4; j++) {
			unsigned v = blk[ch * 32 + k * 4 + j];
			if (bits == 8)
				s += xq[4 * ch + j] * (int32_t)v;
			else
				s += xq[4 * ch + j] * (int32_t)(v & 15) + xq[16 + 4 * ch + j] * (int32_t)(v >> 4);
		}
	return s;
}

static void tile_c(const shrink_kqx *w, int64_t tile, const act_x8 *a, float *out)
{
	const uint8_t *tq = w->q + (size_t)tile * (size_t)w->n_blocks * w->block_bytes;
	const uint16_t *sc = w->scales + (size_t)tile * (size_t)w->n_groups * TILE;
	const uint8_t *zr = w->zeros ? w->zeros + (size_t)tile * (size_t)w->n_groups * TILE : NULL;
	for (int k = 0; k < TILE; k++) {
		float acc = 0;
		for (int64_t b = 0; b < w->n_blocks; b++) {
			int64_t g = b / w->blocks_per_group;
			int32_t isum = block_dot_c(w->bits, tq + (size_t)b * w->block_bytes, k, a->q + b * BLK);
			isum += zr ? -(int32_t)zr[g * TILE + k] * a->sum[b] : a->nzs[b];
			acc = fmaf((float)isum, shrink_f16_to_f32(sc[g * TILE + k]) * a->d[b], acc);
		}
		out[k] = acc;
	}
}

/* ---- SIMD: 8 rows in the 8 int32 lanes ---- */

#define ISA_AVX2 "avx2,fma,f16c"
#define ISA_VNNI "avx2,fma,f16c,avx512vl,avx512vnni"

/* 8 rows' dots of one 4-bit block: low nibbles against columns 4c..4c+3, high
 * against 16+4c..; maddubs is exact here (codes <= 15 and |x| <= 127: a pair
 * sums to at most 3810, and the 8 pair sums of a lane stay below 2^15) */
__attribute__((target(ISA_AVX2))) static inline __m256i dot4_avx2(const uint8_t *blk, const int8_t *xq)
{
	__m256i m = _mm256_set1_epi8(15), s = _mm256_setzero_si256();
	for (int ch = 0; ch < 4; ch++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 * ch));
		__m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
		s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load4(xq + 4 * ch))));
		s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load4(xq + 16 + 4 * ch))));
	}
	return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}

/* 8-bit codes times int8 could saturate maddubs: split each code into its
 * nibbles (code = 16 hi + lo) and sum both halves exactly as above */
__attribute__((target(ISA_AVX2))) static inline __m256i dot8_avx2(const uint8_t *blk, const int8_t *xq)
{
	__m256i m = _mm256_set1_epi8(15), slo = _mm256_setzero_si256(), shi = _mm256_setzero_si256();
	for (int ch = 0; ch < 8; ch++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 * ch));
		__m256i x = _mm256_set1_epi32(load4(xq + 4 * ch));
		slo = _mm256_add_epi16(slo, _mm256_maddubs_epi16(_mm256_and_si256(v, m), x));
		shi = _mm256_add_epi16(shi, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), x));
	}
	__m256i one = _mm256_set1_epi16(1);
	return _mm256_add_epi32(_mm256_madd_epi16(slo, one), _mm256_slli_epi32(_mm256_madd_epi16(shi, one), 4));
}

/* VNNI: dpbusd sums unsigned times signed bytes by fours into int32 with no
 * saturation; two chains (low/high nibbles, even/odd chunks) halve its latency */
__attribute__((target(ISA_VNNI))) static inline __m256i dot4_vnni(const uint8_t *blk, const int8_t *xq)
{
	__m256i m = _mm256_set1_epi8(15), s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	for (int ch = 0; ch < 4; ch++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 * ch));
		__m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
		s0 = _mm256_dpbusd_epi32(s0, lo, _mm256_set1_epi32(load4(xq + 4 * ch)));
		s1 = _mm256_dpbusd_epi32(s1, hi, _mm256_set1_epi32(load4(xq + 16 + 4 * ch)));
	}
	return _mm256_add_epi32(s0, s1);
}

__attribute__((target(ISA_VNNI))) static inline __m256i dot8_vnni(const uint8_t *blk, const int8_t *xq)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
	for (int ch = 0; ch < 8; ch += 2) {
		s0 = _mm256_dpbusd_epi32(s0, _mm256_loadu_si256((const __m256i *)(blk + 32 * ch)),
					 _mm256_set1_epi32(load4(xq + 4 * ch)));
		s1 = _mm256_dpbusd_epi32(s1, _mm256_loadu_si256((const __m256i *)(blk + 32 * ch + 32)),
					 _mm256_set1_epi32(load4(xq + 4 * ch + 4)));
	}
	return _mm256_add_epi32(s0, s1);
}

/* the cache lines PREFETCH bytes past a block of n bytes */
static inline void prefetch_ahead(const uint8_t *blk, size_t n)
{
	for (size_t o = 0; o < n; o += 64)
		_mm_prefetch((const char *)blk + PREFETCH + o, _MM_HINT_T0);
}

/* A tile: per group the 8 rows' scales (and zeros) in one load each; per
 * block the 8 integer dots, the zero-point term, one conversion and one FMA
 * by scale * d. Lane k is row k, with the arithmetic of tile_c. */
#define TILE_SIMD(name, isa, dot)                                                                                      \
	__attribute__((target(isa))) static void name(const shrink_kqx *w, int64_t tile, const act_x8 *a, float *out)  \
	{                                                                                                              \
		const uint8_t *tq = w->q + (size_t)tile * (size_t)w->n_blocks * w->block_bytes;                        \
		const uint16_t *sc = w->scales + (size_t)tile * (size_t)w->n_groups * TILE;                            \
		const uint8_t *zr = w->zeros ? w->zeros + (size_t)tile * (size_t)w->n_groups * TILE : NULL;            \
		__m256 acc = _mm256_setzero_ps();                                                                      \
		for (int64_t g = 0, b = 0; g < w->n_groups; g++) {                                                     \
			__m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sc + g * TILE)));                 \
			__m256i z = zr ? _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(zr + g * TILE)))       \
				       : _mm256_setzero_si256();                                                       \
			int64_t end = b + w->blocks_per_group < w->n_blocks ? b + w->blocks_per_group : w->n_blocks;   \
			for (; b < end; b++) {                                                                         \
				prefetch_ahead(tq + (size_t)b * w->block_bytes, w->block_bytes);                       \
				__m256i isum = dot(tq + (size_t)b * w->block_bytes, a->q + b * BLK);                   \
				isum =                                                                                 \
				    zr ? _mm256_sub_epi32(isum, _mm256_mullo_epi32(z, _mm256_set1_epi32(a->sum[b])))   \
				       : _mm256_add_epi32(isum, _mm256_set1_epi32(a->nzs[b]));                         \
				acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),                                        \
						      _mm256_mul_ps(s, _mm256_set1_ps(a->d[b])), acc);                 \
			}                                                                                              \
		}                                                                                                      \
		_mm256_storeu_ps(out, acc);                                                                            \
	}

TILE_SIMD(tile4_avx2, ISA_AVX2, dot4_avx2)
TILE_SIMD(tile8_avx2, ISA_AVX2, dot8_avx2)
TILE_SIMD(tile4_vnni, ISA_VNNI, dot4_vnni)
TILE_SIMD(tile8_vnni, ISA_VNNI, dot8_vnni)

typedef void (*tile_fn)(const shrink_kqx *, int64_t, const act_x8 *, float *);

static tile_fn pick(const shrink_kqx *w, shrink_ki8_impl impl)
{
	if (impl == SHRINK_KI8_AUTO)
		impl = shrink_kernel_i8_available(SHRINK_KI8_VNNI)   ? SHRINK_KI8_VNNI
		       : shrink_kernel_i8_available(SHRINK_KI8_AVX2) ? SHRINK_KI8_AVX2
								     : SHRINK_KI8_C;
	if (!shrink_kernel_i8_available(impl))
		return NULL;
	switch (impl) {
	case SHRINK_KI8_VNNI:
		return w->bits == 4 ? tile4_vnni : tile8_vnni;
	case SHRINK_KI8_AVX2:
		return w->bits == 4 ? tile4_avx2 : tile8_avx2;
	default:
		return tile_c;
	}
}

static int linear_i8(const shrink_kqx *w, const float *x, int n_tok, float *y, tile_fn fn)
{
	int64_t nb = w->n_blocks;
	size_t n = (size_t)n_tok * (size_t)nb;
	char *mem = malloc(n * (sizeof(float) + 2 * sizeof(int32_t) + BLK));
	if (!mem)
		return -1;
	float *d = (float *)mem;
	int32_t *sum = (int32_t *)(d + n), *nzs = sum + n;
	int8_t *q = (int8_t *)(nzs + n);
	for (int t = 0; t < n_tok; t++)
		quantize_token(x + (size_t)t * (size_t)w->cols, w->cols, w->bits, fn != tile_c,
			       q + (size_t)t * nb * BLK, d + (size_t)t * nb, sum + (size_t)t * nb,
			       nzs + (size_t)t * nb);
#pragma omp parallel for schedule(static)
	for (int64_t tile = 0; tile < w->n_tiles; tile++)
		for (int t = 0; t < n_tok; t++) {
			size_t o = (size_t)t * nb;
			act_x8 a = {nb, q + o * BLK, d + o, sum + o, nzs + o};
			float out[TILE];
			fn(w, tile, &a, out);
			for (int k = 0; k < TILE && tile * TILE + k < w->rows; k++)
				y[(size_t)t * (size_t)w->rows + (size_t)(tile * TILE + k)] = out[k];
		}
	free(mem);
	return 0;
}

static void linear_gemm(const shrink_kqx *w, const float *x, int n_tok, float *y, float *scratch)
{
	for (int64_t t0 = 0; t0 < w->n_tiles; t0 += GEMM_TILES) {
		int64_t nt = w->n_tiles - t0 < GEMM_TILES ? w->n_tiles - t0 : GEMM_TILES;
		int64_t r0 = t0 * TILE, nr = w->rows - r0 < nt * TILE ? w->rows - r0 : nt * TILE;
		/* dequantized on this thread (an OpenMP team here spun while OpenBLAS's own threads ran
		 * the sgemm; not measured again since the sgemm became OpenMP tiles, sgemm.c) */
		for (int64_t t = 0; t < nt; t++)
			shrink_kernel_qx_dequant_tile(w, t0 + t, scratch + (size_t)(t * TILE) * (size_t)w->cols);
		shrink_kernel_sgemm(false, true, n_tok, (int)nr, (int)w->cols, 1.0f, x, (int)w->cols, scratch,
				    (int)w->cols, 0.0f, y + r0, (int)w->rows);
	}
}

int shrink_kernel_linear_qx(const shrink_kqx *w, const float *x, int n_tok, float *y, float *scratch,
			    shrink_ki8_impl impl)
{
	tile_fn fn = pick(w, impl);
	if (!fn || n_tok < 1)
		return -1;
	if (n_tok >= GEMM_MIN_TOKENS) {
		linear_gemm(w, x, n_tok, y, scratch);
		return 0;
	}
	return linear_i8(w, x, n_tok, y, fn);
}
