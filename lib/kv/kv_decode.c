/* kv_decode.c: the hot path of the compressed caches: rows [a, b) of one
 * chunk record (one KV head, K or V side) back to float. One pass per row:
 * unpack the codes (bit planes, kv_impl.h), multiply-add the (scale, min) of
 * the row's groups and the low-rank term U[t] Vt, then write the outliers
 * over it. Two versions: AVX2/FMA/F16C intrinsics, 8 channels a step, for
 * 2, 4 and 8 bits when each bit plane splits into whole 8-byte steps (2 bits:
 * head_dim a multiple of 32) and value groups are a multiple of 8 channels,
 * on CPUs that have them (shrink_kv_side.avx2, set at construction); plain C
 * for the vectorizer otherwise (3 bits, odd shapes, other CPUs). Both give the
 * same floats up to FMA contraction (tests/unit/test_kv.c checks). It does not
 * know about streaming or the float buffer (kv_stream.c). */
#include <string.h>

#include "kernels.h"
#include "kv_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define KV_X86 1
#include <immintrin.h>
#endif
#define INLINE static inline __attribute__((always_inline))

/* codes of one row as floats */
INLINE void unpack_float(const uint8_t *row, int d, int bits, float *out)
{
	int h = d / 2, q = d / 4, e = d / 8;
	if (bits == 8) {
#pragma omp simd
		for (int i = 0; i < d; i++)
			out[i] = (float)row[i];
		return;
	}
	if (bits == 4) {
#pragma omp simd
		for (int i = 0; i < h; i++) {
			out[i] = (float)(row[i] & 15);
			out[i + h] = (float)(row[i] >> 4);
		}
		return;
	}
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		float *o = out + k * q;
#pragma omp simd
		for (int i = 0; i < q; i++)
			o[i] = (float)((row[i] >> (2 * k)) & 3);
	}
	if (bits == 3)
#pragma GCC unroll 8
		for (int k = 0; k < 8; k++) {
			float *o = out + k * e;
			const uint8_t *p = row + q;
#pragma omp simd
			for (int i = 0; i < e; i++)
				o[i] += (float)(((p[i] >> k) & 1) << 2);
		}
}

/* out[j] = c[j] * scale[j] + min[j] + sum_k u[k] vt[k, j] for j in [j0, j1); scale/min per channel
 * when stride is 1, one value for the range when stride is 0. Inlined with constant rank and stride,
 * the k loop unrolls and the j loop vectorizes. */
INLINE void fused(const float *c, const float *scale, const float *min, int stride, const float *u, int rank,
		  const float *vt, int d, int j0, int j1, float *out)
{
#pragma omp simd
	for (int j = j0; j < j1; j++) {
		float acc = c[j] * scale[j * stride] + min[j * stride];
#pragma GCC unroll 8
		for (int k = 0; k < rank; k++)
			acc += u[k] * vt[k * d + j];
		out[j] = acc;
	}
}

/* the same for any rank: constant-rank copies up to 8, else one pass per rank */
INLINE void fused_any(const float *c, const float *scale, const float *min, int stride, const float *u, int rank,
		      const float *vt, int d, int j0, int j1, float *out)
{
#define CASE(R)                                                                                                        \
	case R:                                                                                                        \
		fused(c, scale, min, stride, u, R, vt, d, j0, j1, out);                                                \
		return;
	switch (rank) {
		CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
	}
#undef CASE
	fused(c, scale, min, stride, u, 0, vt, d, j0, j1, out);
	for (int k = 0; k < rank; k++) {
		const float *v = vt + (size_t)k * d;
		float w = u[k];
#pragma omp simd
		for (int j = j0; j < j1; j++)
			out[j] += w * v[j];
	}
}

INLINE void row_factors(const uint16_t *u_h, int t, int rank, float *u)
{
	for (int k = 0; k < rank; k++)
		u[k] = shrink_kvq_h2f(u_h[t * rank + k]);
}

INLINE void decode_keys(const shrink_kv_side *s, const uint8_t *rec, int rank, const float *vt, int a, int b,
			float *out)
{
	int d = s->d, G = s->group;
	const uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	const uint16_t *u_h = shrink_kv_rec16(rec, s->off_u);
	float scale[SHRINK_KV_MAX_HEAD_DIM], min[SHRINK_KV_MAX_HEAD_DIM], c[SHRINK_KV_MAX_HEAD_DIM];
	float u[SHRINK_KV_MAX_RANK];
	for (int t = a; t < b;) {
		int g = t / G, end = (g + 1) * G < b ? (g + 1) * G : b;
		shrink_kernel_f16_to_f32(sc + (size_t)g * d, scale, d);
		shrink_kernel_f16_to_f32(mn + (size_t)g * d, min, d);
		for (; t < end; t++) {
			unpack_float(rec + s->off_codes + (size_t)t * s->row_bytes, d, s->bits, c);
			row_factors(u_h, t, rank, u);
			fused_any(c, scale, min, 1, u, rank, vt, d, 0, d, out + (size_t)(t - a) * d);
		}
	}
}

INLINE void decode_values(const shrink_kv_side *s, const uint8_t *rec, int rank, const float *vt, int a, int b,
			  float *out)
{
	int d = s->d, G = s->group, n_g = s->n_params / s->T;
	const uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	const uint16_t *u_h = shrink_kv_rec16(rec, s->off_u);
	float c[SHRINK_KV_MAX_HEAD_DIM], u[SHRINK_KV_MAX_RANK];
	for (int t = a; t < b; t++) {
		unpack_float(rec + s->off_codes + (size_t)t * s->row_bytes, d, s->bits, c);
		row_factors(u_h, t, rank, u);
		for (int g = 0; g < n_g; g++) {
			float scale = shrink_kvq_h2f(sc[t * n_g + g]), min = shrink_kvq_h2f(mn[t * n_g + g]);
			int j1 = (g + 1) * G < d ? (g + 1) * G : d;
			fused_any(c, &scale, &min, 0, u, rank, vt, d, g * G, j1, out + (size_t)(t - a) * d);
		}
	}
}

static void restore_outliers(const shrink_kv_side *s, const uint8_t *rec, int a, int b, float *out)
{
	const uint16_t *val = shrink_kv_rec16(rec, s->off_oval);
	int per = 2 * s->n_side, d = s->d;
	if (s->keys) {
		for (int j = 0; j < d; j++)
			for (int e = j * per; e < (j + 1) * per; e++) {
				int i = shrink_kv_oidx(s, rec, e);
				if (i >= a && i < b)
					out[(size_t)(i - a) * d + j] = shrink_kvq_h2f(val[e]);
			}
		return;
	}
	for (int t = a; t < b; t++)
		for (int e = t * per; e < (t + 1) * per; e++)
			out[(size_t)(t - a) * d + shrink_kv_oidx(s, rec, e)] = shrink_kvq_h2f(val[e]);
}

#ifdef KV_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((target("avx2,fma,f16c"), always_inline))

enum { PER_CHANNEL, PER_BLOCK, PER_ROW };

/* One row, 8 channels a step: out[j] = code_j * S + M + sum_r u_r vt[r, j], S and M per channel (keys), per
 * block of 8 channels or one for the row (values). The 8 bytes of a step hold 8 / BITS planes: loaded once,
 * shifted per plane. Inlined with constant BITS, R and MODE, the plane and rank loops unroll and u stays in
 * registers. */
AVX2_INLINE void row_avx2(const uint8_t *row, int d, const int BITS, const int R, const int MODE, const float *S,
			  const float *M, const __m256 *ub, const float *vt, float *out)
{
	const int planes = 8 / BITS, q = d / planes;
	const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
	for (int i = 0; i < q; i += 8) {
		uint64_t raw;
		memcpy(&raw, row + i, 8);
		__m256i c0 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)raw));
#pragma GCC unroll 4
		for (int k = 0; k < planes; k++) {
			int j = k * q + i;
			__m256i c = _mm256_and_si256(_mm256_srli_epi32(c0, BITS * k), mask);
			int p = MODE == PER_ROW ? 0 : j >> 3;
			__m256 sv = MODE == PER_CHANNEL ? _mm256_loadu_ps(S + j) : _mm256_broadcast_ss(S + p);
			__m256 mv = MODE == PER_CHANNEL ? _mm256_loadu_ps(M + j) : _mm256_broadcast_ss(M + p);
			__m256 acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), sv, mv);
#pragma GCC unroll 8
			for (int r = 0; r < R; r++)
				acc = _mm256_fmadd_ps(ub[r], _mm256_loadu_ps(vt + (size_t)r * d + j), acc);
			_mm256_storeu_ps(out + j, acc);
		}
	}
}

AVX2_INLINE void broadcast_factors(const uint16_t *u_h, int t, const int R, __m256 *ub)
{
	for (int r = 0; r < R; r++)
		ub[r] = _mm256_set1_ps(_cvtsh_ss(u_h[t * R + r]));
}

AVX2_INLINE void keys_avx2_t(const shrink_kv_side *s, const uint8_t *rec, const int BITS, const int R, const float *vt,
			     int a, int b, float *out)
{
	int d = s->d, G = s->group;
	const uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	const uint16_t *u_h = shrink_kv_rec16(rec, s->off_u);
	float scale[SHRINK_KV_MAX_HEAD_DIM], min[SHRINK_KV_MAX_HEAD_DIM];
	__m256 ub[SHRINK_KV_MAX_RANK];
	for (int t = a; t < b;) {
		int g = t / G, end = (g + 1) * G < b ? (g + 1) * G : b;
		shrink_kernel_f16_to_f32(sc + (size_t)g * d, scale, d);
		shrink_kernel_f16_to_f32(mn + (size_t)g * d, min, d);
		for (; t < end; t++) {
			broadcast_factors(u_h, t, R, ub);
			row_avx2(rec + s->off_codes + (size_t)t * s->row_bytes, d, BITS, R, PER_CHANNEL, scale, min, ub,
				 vt, out + (size_t)(t - a) * d);
		}
	}
}

AVX2_INLINE void values_avx2_t(const shrink_kv_side *s, const uint8_t *rec, const int BITS, const int R,
			       const float *vt, int a, int b, float *out)
{
	int d = s->d, G = s->group, n_g = s->n_params / s->T;
	const uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	const uint16_t *u_h = shrink_kv_rec16(rec, s->off_u);
	float scale[SHRINK_KV_MAX_HEAD_DIM / 8], min[SHRINK_KV_MAX_HEAD_DIM / 8];
	__m256 ub[SHRINK_KV_MAX_RANK];
	for (int t = a; t < b; t++) {
		const uint8_t *row = rec + s->off_codes + (size_t)t * s->row_bytes;
		float *o = out + (size_t)(t - a) * d;
		broadcast_factors(u_h, t, R, ub);
		if (n_g == 1) {
			float sg = _cvtsh_ss(sc[t]), mg = _cvtsh_ss(mn[t]);
			row_avx2(row, d, BITS, R, PER_ROW, &sg, &mg, ub, vt, o);
			continue;
		}
		for (int g = 0; g < n_g; g++) {
			float sg = _cvtsh_ss(sc[t * n_g + g]), mg = _cvtsh_ss(mn[t * n_g + g]);
			int b1 = (g + 1) * G < d ? (g + 1) * G / 8 : d / 8;
			for (int blk = g * G / 8; blk < b1; blk++)
				scale[blk] = sg, min[blk] = mg;
		}
		row_avx2(row, d, BITS, R, PER_BLOCK, scale, min, ub, vt, o);
	}
}

/* constant-(bits, rank) copies for bits 2, 4, 8 and ranks 0..8; other ranks run the loops as they come */
#define RANKS(F, B) F(B, 0) F(B, 1) F(B, 2) F(B, 3) F(B, 4) F(B, 5) F(B, 6) F(B, 7) F(B, 8)
#define KEYS_CASE(B, R)                                                                                                \
	case B * 64 + R:                                                                                               \
		keys_avx2_t(s, rec, B, R, vt, a, b, out);                                                              \
		return;
#define VALUES_CASE(B, R)                                                                                              \
	case B * 64 + R:                                                                                               \
		values_avx2_t(s, rec, B, R, vt, a, b, out);                                                            \
		return;

AVX2 static void outliers_avx2(const shrink_kv_side *s, const uint8_t *rec, int a, int b, float *out)
{
	const uint16_t *val = shrink_kv_rec16(rec, s->off_oval);
	int per = 2 * s->n_side, d = s->d;
	if (s->keys) {
		for (int j = 0; j < d; j++)
			for (int e = j * per; e < (j + 1) * per; e++) {
				int i = shrink_kv_oidx(s, rec, e);
				if (i >= a && i < b)
					out[(size_t)(i - a) * d + j] = _cvtsh_ss(val[e]);
			}
		return;
	}
	for (int t = a; t < b; t++)
		for (int e = t * per; e < (t + 1) * per; e++)
			out[(size_t)(t - a) * d + shrink_kv_oidx(s, rec, e)] = _cvtsh_ss(val[e]);
}

AVX2 static void keys_avx2(const shrink_kv_side *s, const uint8_t *rec, int rank, const float *vt, int a, int b,
			   float *out)
{
	switch (s->bits * 64 + rank) {
		RANKS(KEYS_CASE, 2) RANKS(KEYS_CASE, 4) RANKS(KEYS_CASE, 8)
	}
	keys_avx2_t(s, rec, s->bits, rank, vt, a, b, out);
}

AVX2 static void values_avx2(const shrink_kv_side *s, const uint8_t *rec, int rank, const float *vt, int a, int b,
			     float *out)
{
	switch (s->bits * 64 + rank) {
		RANKS(VALUES_CASE, 2) RANKS(VALUES_CASE, 4) RANKS(VALUES_CASE, 8)
	}
	values_avx2_t(s, rec, s->bits, rank, vt, a, b, out);
}

bool shrink_kv_side_avx2(const shrink_kv_side *s)
{
	if (!shrink_cpu_avx2() || s->bits == 3)
		return false;
	return (s->d / (8 / s->bits)) % 8 == 0 && (s->keys || s->group % 8 == 0);
}
#else
bool shrink_kv_side_avx2(const shrink_kv_side *s)
{
	return false;
}
#endif

void shrink_kv_chunk_decode(const shrink_kv_side *s, const uint8_t *rec, int rank, int a, int b, float *out)
{
	float vt[SHRINK_KV_MAX_LOWRANK];
	shrink_kernel_f16_to_f32(shrink_kv_rec16(rec, s->off_vt), vt, (int64_t)rank * s->d);
#ifdef KV_X86
	if (s->avx2) {
		if (s->keys)
			keys_avx2(s, rec, rank, vt, a, b, out);
		else
			values_avx2(s, rec, rank, vt, a, b, out);
		if (s->n_side)
			outliers_avx2(s, rec, a, b, out);
		return;
	}
#endif
	if (s->keys)
		decode_keys(s, rec, rank, vt, a, b, out);
	else
		decode_values(s, rec, rank, vt, a, b, out);
	if (s->n_side)
		restore_outliers(s, rec, a, b, out);
}
