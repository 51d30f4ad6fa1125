/* kv_impl.h: internals shared by the KV cache implementations: the parsed
 * --kv spec, the constructors, and the building blocks of the compressed
 * caches (min-max quantizer and code packing, outlier extraction, low-rank
 * fit). Not a public header: tests include it to check the pieces alone. */
#ifndef SHRINK_KV_IMPL_H
#define SHRINK_KV_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "shrink/kv.h"

/* ---- the parsed --kv spec (kv_spec.c) ---- */

typedef enum { SHRINK_KV_F32, SHRINK_KV_F16, SHRINK_KV_KIVI, SHRINK_KV_GEAR } shrink_kv_kind;

#define SHRINK_KV_MAX_RANK 32
#define SHRINK_KV_MAX_CHUNK 4096
#define SHRINK_KV_MAX_HEAD_DIM 1024
#define SHRINK_KV_MAX_LOWRANK 8192 /* rank * head_dim */

typedef struct {
	shrink_kv_kind kind;
	int bits;	  /* 2, 3, 4 or 8 */
	int group;	  /* key tokens per (scale, min); value channels per (scale, min) */
	int chunk;	  /* tokens compressed together: KIVI residual=, GEAR buffer= */
	float outliers;	  /* fraction of each vector kept exactly (GEAR), 0 = none */
	int rank;	  /* low-rank rank of chunks compressed after the first forward call */
	int rank_prefill; /* ... and of chunks compressed during it */
	int iters;	  /* power iterations */
} shrink_kv_params;

/* "kind[:key=value,...]"; unknown kinds, keys and bad values are SHRINK_EUSAGE naming the parameter. */
shrink_status shrink_kv_parse_spec(const char *spec, shrink_kv_params *p, shrink_error *err);

/* ---- constructors ---- */

shrink_status shrink_kv_float_new(const shrink_config *c, int max_tokens, bool half, shrink_kv **out,
				  shrink_error *err);
/* KIVI (no outliers, rank 0) and GEAR share one streaming implementation (kv_stream.c). */
shrink_status shrink_kv_stream_new(const shrink_kv_params *p, const char *spec, const shrink_config *c, int max_tokens,
				   shrink_kv **out, shrink_error *err);

/* ---- the min-max quantizer of algorithms.md §0 (kv_quant.c) ---- */

/* (scale, min) of values x[0], x[stride], ... x[(n-1)*stride], rounded to f16 so that
 * min_h <= min(x) and min_h + (2^bits - 1) * scale_h >= max(x): every value then
 * dequantizes within scale_h / 2 of itself. */
void shrink_kvq_range(const float *x, int n, int stride, int bits, uint16_t *scale_h, uint16_t *min_h);
/* Code of x under (scale, min): round((x - min) / scale) clamped to [0, 2^bits - 1]. */
static inline int shrink_kvq_code(float x, float min, float inv_scale, int levels)
{
	float q = (x - min) * inv_scale + 0.5f;
	if (!(q > 0)) /* NaN too */
		return 0;
	return q >= (float)levels ? levels : (int)q;
}

/* Bytes of one packed row of d codes (d a multiple of 8). Codes are bit planes:
 * 8 bits one byte per code; 4 bits byte i holds codes i (low) and i + d/2 (high);
 * 2 bits byte i holds codes i + k*d/4 in bits 2k..2k+1; 3 bits is a 2-bit plane
 * (d/4 bytes) followed by a 1-bit plane (d/8 bytes) holding bit 2 of code i + k*d/8
 * in bit k. Unpacking is then a few shifts over contiguous bytes. */
static inline int shrink_kvq_row_bytes(int d, int bits)
{
	return d * bits / 8;
}
void shrink_kvq_pack_row(const uint8_t *codes, int d, int bits, uint8_t *row);
void shrink_kvq_unpack_row(const uint8_t *row, int d, int bits, uint8_t *codes);
/* exact f16 -> f32 of one value, inlined for the hot loops */
static inline float shrink_kvq_h2f(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	union {
		uint32_t u;
		float f;
	} v;
	if (e == 0) {
		float f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	v.u = sign | (e == 31 ? 0x7f800000u : (e + 112) << 23) | m << 13;
	return v.f;
}

/* ---- outliers (kv_outliers.c) ---- */

/* Outliers per side of a vector of len values under fraction s: round(s * len / 2), at least 1 when s > 0,
 * at most (len - 1) / 2. */
int shrink_kv_outliers_per_side(float s, int len);
/* Take the n_side largest and n_side smallest of x[0], x[stride], ... (ties: lowest index first),
 * write their values (f16) and indices, and replace them in x by the mean of the remaining entries. */
void shrink_kv_outliers_extract(float *x, int len, int stride, int n_side, uint16_t *val_h, uint16_t *idx);

/* ---- low rank by power iteration (lowrank.c) ---- */

/* Rank-r approximation of R [T, d] (row-major) by subspace iteration from a fixed-seed start:
 * each iteration re-orthonormalises (Gram-Schmidt, twice) P [d, r], forms Q = R P [T, r],
 * re-orthonormalises it and sets P = R^T Q. Out: qt [r, T] (orthonormal rows, that is Q^T;
 * rows left zero where R has rank < r) and pt [r, d] (P^T = Q^T R), so R ~ qt^T pt. */
void shrink_lowrank_fit(const float *R, int T, int d, int r, int iters, float *qt, float *pt);
/* pt = qt R for a given qt (re-fit of the right factor after rounding qt). */
void shrink_lowrank_right(const float *R, int T, int d, int r, const float *qt, float *pt);

/* ---- one chunk of one KV head, K or V side: the record layout and its codec ---- */

/* A record holds, in this order: scale[n_params] and min[n_params] (f16), outlier values (f16) and
 * indices (u16) [n_vec][2 * n_side], the low-rank factors U [T][rank] and Vt [rank][d] (f16, room
 * for max_rank), and the codes [T][row_bytes]. Keys: (scale, min) per channel over groups of `group`
 * tokens, outlier vectors are channels over the T tokens. Values: (scale, min) per token over groups of
 * `group` channels of the head's vector, outlier vectors are tokens over the d channels. */
typedef struct {
	bool keys;
	int T, d, bits, group;
	int n_params;	    /* (scale, min) pairs */
	int n_vec, vec_len; /* outlier vectors and their length */
	int n_side;	    /* outliers per side of each vector (0: none) */
	int max_rank;
	bool avx2;	    /* decode with the AVX2/FMA kernel (kv_decode.c) */
	bool idx8;	    /* outlier indices fit one byte (vectors of <= 256 entries, the usual case) */
	size_t off_min, off_oval, off_oidx, off_u, off_vt, off_codes, row_bytes, rec_bytes;
} shrink_kv_side;

void shrink_kv_side_layout(shrink_kv_side *s, bool keys, int T, int d, int bits, int group, float outliers,
			   int max_rank);
/* whether this CPU and shape can use the AVX2 decoding kernel */
bool shrink_kv_side_avx2(const shrink_kv_side *s);
/* bytes of one record actually holding data when its low-rank part has this rank */
size_t shrink_kv_side_bytes(const shrink_kv_side *s, int rank);

/* KIVI backbone (kv_kivi.c): quantize x [T, d] into the record's scales, mins and codes. */
void shrink_kv_kivi_encode(const shrink_kv_side *s, const float *x, uint8_t *rec);

/* GEAR (kv_gear.c): outliers + backbone + low rank of the residual; KIVI when n_side and rank are 0.
 * work: shrink_kv_gear_work(s) floats. */
size_t shrink_kv_gear_work(const shrink_kv_side *s);
void shrink_kv_gear_encode(const shrink_kv_side *s, const float *x, int rank, int iters, uint8_t *rec, float *work);

/* rows [a, b) of a record back to float, out [b - a, d]: codes * scale + min + U Vt, outliers written last
 * (kv_decode.c, the hot path). */
void shrink_kv_chunk_decode(const shrink_kv_side *s, const uint8_t *rec, int rank, int a, int b, float *out);

static inline uint16_t *shrink_kv_rec16(const uint8_t *rec, size_t off)
{
	return (uint16_t *)(uintptr_t)(rec + off);
}

/* index of outlier e in its vector: one byte each when they fit, else two */
static inline int shrink_kv_oidx(const shrink_kv_side *s, const uint8_t *rec, int e)
{
	return s->idx8 ? rec[s->off_oidx + (size_t)e] : shrink_kv_rec16(rec, s->off_oidx)[e];
}

static inline void shrink_kv_oidx_set(const shrink_kv_side *s, uint8_t *rec, int e, int i)
{
	if (s->idx8)
		rec[s->off_oidx + (size_t)e] = (uint8_t)i;
	else
		shrink_kv_rec16(rec, s->off_oidx)[e] = (uint16_t)i;
}

#endif
