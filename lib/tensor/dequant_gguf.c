/* dequant_gguf.c: shrink_dequant_row(), any dtype to float32.
 * Covers the plain types (F32/F16/BF16/F64, integers, BOOL) and the ggml block
 * types Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K. Block layouts are
 * ggml's (ggml-common.h); the element order and the order of the float
 * operations follow the Python gguf package (gguf-py quants.py), which
 * tests/ref/test_gguf_dequant.py uses as a bit-exact oracle. Affine types
 * compute round(round(d*q) - m): this file must not be built with FMA
 * contraction (see the pragma below).
 * Plain C with loops simple enough for the compiler to vectorise. It does not
 * quantize, does not thread (callers split rows), and assumes a
 * little-endian host, as GGUF files are little-endian. */
#include <string.h>

#include "shrink/tensor.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* One block in, block_elems floats out. restrict lets GCC's -O2 (very cheap)
 * vectoriser handle the inner loops without runtime alias checks. */
typedef void (*block_fn)(const uint8_t *restrict b, float *restrict y);

/* f16 -> f32 without a table; exact for all inputs, NaN payloads kept. */
static inline float half_at(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, rest = h & 0x7fffu, bits;
	if (rest >= 0x7c00u) {
		bits = sign | 0x7f800000u | (rest & 0x3ffu) << 13;
	} else if (rest >= 0x0400u) {
		bits = sign | ((rest << 13) + (112u << 23));
	} else { /* zero or subnormal: exact as an integer times 2^-24 */
		float f = (float)rest * 0x1p-24f;
		memcpy(&bits, &f, 4);
		bits |= sign;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* ---- 32-element blocks ---- */

static void dq_q4_0(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b);
	const uint8_t *qs = b + 2;
	for (int j = 0; j < 16; j++) {
		y[j] = d * (float)((qs[j] & 0x0f) - 8);
		y[j + 16] = d * (float)((qs[j] >> 4) - 8);
	}
}

static void dq_q4_1(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b), m = half_at(b + 2);
	const uint8_t *qs = b + 4;
	for (int j = 0; j < 16; j++) {
		y[j] = d * (float)(qs[j] & 0x0f) + m;
		y[j + 16] = d * (float)(qs[j] >> 4) + m;
	}
}

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The 32 fifth bits of Q5_0/Q5_1 as 0 or 16, so the main loops vectorise. */
static void fifth_bits(const uint8_t *qh_bytes, uint8_t *hi)
{
	const uint32_t qh = u32_at(qh_bytes);
	for (int j = 0; j < 32; j++)
		hi[j] = (uint8_t)(((qh >> j) & 1) << 4);
}

static void dq_q5_0(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b);
	const uint8_t *qs = b + 6;
	uint8_t hi[32];
	fifth_bits(b + 2, hi);
	for (int j = 0; j < 16; j++) {
		y[j] = d * (float)(((qs[j] & 0x0f) | hi[j]) - 16);
		y[j + 16] = d * (float)(((qs[j] >> 4) | hi[j + 16]) - 16);
	}
}

static void dq_q5_1(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b), m = half_at(b + 2);
	const uint8_t *qs = b + 8;
	uint8_t hi[32];
	fifth_bits(b + 4, hi);
	for (int j = 0; j < 16; j++) {
		y[j] = d * (float)((qs[j] & 0x0f) | hi[j]) + m;
		y[j + 16] = d * (float)((qs[j] >> 4) | hi[j + 16]) + m;
	}
}

static void dq_q8_0(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b);
	const int8_t *qs = (const int8_t *)(b + 2);
	for (int j = 0; j < 32; j++)
		y[j] = (float)qs[j] * d;
}

/* ---- 256-element K-quant super-blocks ---- */

/* Q2_K: scales[16] qs[64] d dmin. 16 groups of 16; group g takes 2-bit
 * fields at shift 2*((g/2)%4) from qs[32*(g/8) + 16*(g%2) ...]. */
static void dq_q2_k(const uint8_t *restrict b, float *restrict y)
{
	const uint8_t *scales = b, *qs = b + 16;
	const float d = half_at(b + 80), dmin = half_at(b + 82);
	for (int g = 0; g < 16; g++) {
		const float dl = d * (float)(scales[g] & 0x0f), ml = dmin * (float)(scales[g] >> 4);
		const uint8_t *q = qs + 32 * (g / 8) + 16 * (g % 2);
		const int shift = 2 * ((g / 2) % 4);
		for (int l = 0; l < 16; l++)
			y[16 * g + l] = dl * (float)((q[l] >> shift) & 3) - ml;
	}
}

/* Q3_K scale g (6 bits, stored low 4 in scales[0..7], high 2 in scales[8..11]) minus 32. */
static int q3_k_scale(const uint8_t *sc, int g)
{
	int lo = g < 8 ? sc[g] & 0x0f : sc[g - 8] >> 4;
	int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
	return (lo | hi << 4) - 32;
}

/* Q3_K: hmask[32] qs[64] scales[12] d. Element i: 2 low bits as in Q2_K,
 * high bit (hmask[i%32] >> i/32) & 1; a clear high bit means "minus 4". */
static void dq_q3_k(const uint8_t *restrict b, float *restrict y)
{
	const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
	const float d = half_at(b + 108);
	for (int g = 0; g < 16; g++) {
		const float dl = d * (float)q3_k_scale(sc, g);
		const uint8_t *q = qs + 32 * (g / 8) + 16 * (g % 2), *hm = hmask + 16 * (g % 2);
		const int shift = 2 * ((g / 2) % 4), hbit = g / 2;
		for (int l = 0; l < 16; l++) {
			int v = ((q[l] >> shift) & 3) - (((hm[l] >> hbit) & 1) ? 0 : 4);
			y[16 * g + l] = dl * (float)v;
		}
	}
}

/* Q4_K/Q5_K 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 0x3f;
		*m = s[j + 4] & 0x3f;
	} else {
		*sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 2) & 0x30);
		*m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
	}
}

/* Q4_K: d dmin scales[12] qs[128]; sub-block j uses nibble j%2 of qs[32*(j/2) ...]. */
static void dq_q4_k(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b), dmin = half_at(b + 2);
	const uint8_t *s = b + 4, *qs = b + 16;
	for (int j = 0; j < 8; j++) {
		int sc, m;
		k_scale_min(s, j, &sc, &m);
		const float dl = d * (float)sc, ml = dmin * (float)m;
		const uint8_t *q = qs + 32 * (j / 2);
		const int shift = 4 * (j % 2);
		for (int l = 0; l < 32; l++)
			y[32 * j + l] = dl * (float)((q[l] >> shift) & 0x0f) - ml;
	}
}

/* Q5_K: d dmin scales[12] qh[32] qs[128]; as Q4_K plus bit j of qh[l]. */
static void dq_q5_k(const uint8_t *restrict b, float *restrict y)
{
	const float d = half_at(b), dmin = half_at(b + 2);
	const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
	for (int j = 0; j < 8; j++) {
		int sc, m;
		k_scale_min(s, j, &sc, &m);
		const float dl = d * (float)sc, ml = dmin * (float)m;
		const uint8_t *q = qs + 32 * (j / 2);
		const int shift = 4 * (j % 2);
		for (int l = 0; l < 32; l++) {
			int v = ((q[l] >> shift) & 0x0f) | ((qh[l] >> j) & 1) << 4;
			y[32 * j + l] = dl * (float)v - ml;
		}
	}
}

/* Q6_K: ql[128] qh[64] int8 scales[16] d. In each half h (128 elements),
 * element r: low nibble r/64 of ql[64h + r%64], 2 high bits at shift
 * 2*(r/32) of qh[32h + r%32]; value minus 32 times d*scales[i/16]. */
static void dq_q6_k(const uint8_t *restrict b, float *restrict y)
{
	const uint8_t *ql = b, *qh = b + 128;
	const int8_t *sc = (const int8_t *)(b + 192);
	const float d = half_at(b + 208);
	for (int g = 0; g < 16; g++) {
		const float dl = d * (float)sc[g];
		const int h = g / 8, r0 = 16 * (g % 8);
		const uint8_t *lo = ql + 64 * h + r0 % 64, *hi = qh + 32 * h + r0 % 32;
		const int lshift = 4 * (r0 / 64), hshift = 2 * (r0 / 32);
		for (int l = 0; l < 16; l++) {
			int v = ((lo[l] >> lshift) & 0x0f) | ((hi[l] >> hshift) & 3) << 4;
			y[16 * g + l] = dl * (float)(v - 32);
		}
	}
}

static const block_fn block_fns[SHRINK_DTYPE_COUNT] = {
    [SHRINK_Q4_0] = dq_q4_0, [SHRINK_Q4_1] = dq_q4_1, [SHRINK_Q5_0] = dq_q5_0, [SHRINK_Q5_1] = dq_q5_1,
    [SHRINK_Q8_0] = dq_q8_0, [SHRINK_Q2_K] = dq_q2_k, [SHRINK_Q3_K] = dq_q3_k, [SHRINK_Q4_K] = dq_q4_k,
    [SHRINK_Q5_K] = dq_q5_k, [SHRINK_Q6_K] = dq_q6_k,
};

/* ---- plain element types ---- */

#define CONVERT_LOOP(ctype)                                                                                            \
	do {                                                                                                           \
		const uint8_t *p = (const uint8_t *)src + first * (int64_t)sizeof(ctype);                              \
		for (int64_t i = 0; i < n; i++) {                                                                      \
			ctype v;                                                                                       \
			memcpy(&v, p + i * (int64_t)sizeof(ctype), sizeof v);                                          \
			dst[i] = (float)v;                                                                             \
		}                                                                                                      \
	} while (0)

static int convert_plain(shrink_dtype t, const void *src, int64_t first, int64_t n, float *dst)
{
	const uint8_t *p = src;
	switch (t) {
	case SHRINK_F32:
		memcpy(dst, p + first * 4, (size_t)n * 4);
		break;
	case SHRINK_F16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = half_at(p + (first + i) * 2);
		break;
	case SHRINK_BF16:
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, p + (first + i) * 2, 2);
			dst[i] = shrink_bf16_to_f32(h);
		}
		break;
	case SHRINK_F64:
		CONVERT_LOOP(double);
		break;
	case SHRINK_I8:
		CONVERT_LOOP(int8_t);
		break;
	case SHRINK_U8:
		CONVERT_LOOP(uint8_t);
		break;
	case SHRINK_BOOL:
		for (int64_t i = 0; i < n; i++)
			dst[i] = p[first + i] ? 1.0f : 0.0f;
		break;
	case SHRINK_I16:
		CONVERT_LOOP(int16_t);
		break;
	case SHRINK_U16:
		CONVERT_LOOP(uint16_t);
		break;
	case SHRINK_I32:
		CONVERT_LOOP(int32_t);
		break;
	case SHRINK_U32:
		CONVERT_LOOP(uint32_t);
		break;
	case SHRINK_I64:
		CONVERT_LOOP(int64_t);
		break;
	case SHRINK_U64:
		CONVERT_LOOP(uint64_t);
		break;
	default:
		return 0;
	}
	return 1;
}

shrink_status shrink_dequant_row(shrink_dtype t, const void *src, int64_t first, int64_t n, float *dst,
				 shrink_error *err)
{
	int block_elems, block_bytes;
	if (!shrink_dtype_block(t, &block_elems, &block_bytes))
		return shrink_fail(err, SHRINK_EINPUT, "dequantize: unknown dtype %d", (int)t);
	if (first < 0 || n < 0 || first % block_elems != 0 || n % block_elems != 0)
		return shrink_fail(
		    err, SHRINK_EINPUT,
		    "dequantize: elements [%lld, +%lld) do not fall on %s block boundaries (%d elements)",
		    (long long)first, (long long)n, shrink_dtype_name(t), block_elems);
	block_fn fn = block_fns[t];
	if (!fn)
		return convert_plain(t, src, first, n, dst)
			   ? SHRINK_OK
			   : shrink_fail(err, SHRINK_EINPUT, "dequantize: unsupported dtype %s", shrink_dtype_name(t));
	const uint8_t *b = (const uint8_t *)src + (first / block_elems) * block_bytes;
	for (int64_t i = 0; i < n / block_elems; i++)
		fn(b + i * block_bytes, dst + i * block_elems);
	return SHRINK_OK;
}
