/* qx_dequant.c: tiles of the interleaved layout (kernels.h) back to float
 * rows, scale * (code - zero), for the many-token path (dequantized blocks of
 * rows + sgemm), where this runs once per row per call and must keep up with
 * sgemm. AVX2 and portable C give the same bits (the subtraction is exact,
 * the product rounds once in both). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define BLK 32
#define TILE 8

/* row k's codes of one tile block in column order: its 4 bytes of every
 * chunk, then for 4-bit the low nibbles (columns 0..15) and the high ones */
static void row_codes(const shrink_kqx *w, const uint8_t *blk, int k, uint8_t *codes)
{
	uint8_t b[BLK];
	int n_chunks = w->bits;
	for (int ch = 0; ch < n_chunks; ch++)
		memcpy(b + 4 * ch, blk + ch * 32 + k * 4, 4);
	if (w->bits == 8) {
		memcpy(codes, b, BLK);
		return;
	}
	for (int j = 0; j < 16; j++) {
		codes[j] = b[j] & 15;
		codes[16 + j] = b[j] >> 4;
	}
}

static void dequant_block_c(const uint8_t *codes, float scale, float zero, int n, float *out)
{
	for (int j = 0; j < n; j++)
		out[j] = scale * ((float)codes[j] - zero);
}

static int32_t load4(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* 8 codes (bytes) to scale * (code - zero) */
__attribute__((target("avx2"))) static inline void put8(__m128i codes, __m256 s, __m256 z, float *out)
{
	__m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes));
	_mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_sub_ps(v, z)));
}

/* a whole block of row k: its 4 bytes of each chunk gathered into one vector */
__attribute__((target("avx2"))) static void dequant_block_avx2(const shrink_kqx *w, const uint8_t *blk, int k,
							       float scale, float zero, float *out)
{
	__m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
	const uint8_t *p = blk + 4 * k;
	if (w->bits == 8) {
		for (int h = 0; h < 2; h++, p += 128) { /* chunks 4h..4h+3: columns 16h..16h+15 */
			__m128i v = _mm_set_epi32(load4(p + 96), load4(p + 64), load4(p + 32), load4(p));
			put8(v, s, z, out + 16 * h);
			put8(_mm_srli_si128(v, 8), s, z, out + 16 * h + 8);
		}
		return;
	}
	__m128i v = _mm_set_epi32(load4(p + 96), load4(p + 64), load4(p + 32), load4(p)), m = _mm_set1_epi8(15);
	__m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
	put8(lo, s, z, out);
	put8(_mm_srli_si128(lo, 8), s, z, out + 8);
	put8(hi, s, z, out + 16);
	put8(_mm_srli_si128(hi, 8), s, z, out + 24);
}

void shrink_kernel_qx_dequant_tile(const shrink_kqx *w, int64_t tile, float *out)
{
	const uint8_t *tq = w->q + (size_t)tile * (size_t)w->n_blocks * w->block_bytes;
	const uint16_t *s = w->scales + (size_t)tile * (size_t)w->n_groups * TILE;
	const uint8_t *z = w->zeros ? w->zeros + (size_t)tile * (size_t)w->n_groups * TILE : NULL;
	int avx2 = shrink_cpu_avx2();
	uint8_t codes[BLK];
	for (int k = 0; k < TILE && tile * TILE + k < w->rows; k++)
		for (int64_t b = 0, g = 0; b < w->n_blocks; b++) {
			g += b == (g + 1) * w->blocks_per_group;
			float zero = z ? (float)z[g * TILE + k] : (float)(1 << (w->bits - 1));
			float scale = shrink_f16_to_f32(s[g * TILE + k]);
			int n = w->cols - b * BLK < BLK ? (int)(w->cols - b * BLK) : BLK;
			const uint8_t *blk = tq + (size_t)b * w->block_bytes;
			float *o = out + k * w->cols + b * BLK;
			if (avx2 && n == BLK) {
				dequant_block_avx2(w, blk, k, scale, zero, o);
			} else {
				row_codes(w, blk, k, codes);
				dequant_block_c(codes, scale, zero, n, o);
			}
		}
}
