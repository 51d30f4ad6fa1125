/* kv_quant.c: the asymmetric min-max quantizer of algorithms.md §0 as the
 * compressed KV caches use it: (scale, min) per group rounded to f16 in the
 * safe direction, codes of 2, 3, 4 or 8 bits packed as bit planes (see
 * kv_impl.h). It does not decide the grouping (keys per channel, values per
 * token: kv_kivi.c) and does not decode rows (kv_decode.c, the hot path).
 * Written by hand because the packing is this cache's own layout. */
#include <string.h>

#include "kv_impl.h"
#include "shrink/tensor.h"

#define F16_MAX 65504.0f

static uint16_t f16_step_down(uint16_t h)
{
	if (h == 0)
		return 0x8001u;
	return (h & 0x8000u) ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
}

static uint16_t f16_step_up(uint16_t h)
{
	if (h == 0x8000u)
		return 1;
	return (h & 0x8000u) ? (uint16_t)(h - 1) : (uint16_t)(h + 1);
}

/* f16 nearest to x on the requested side: dir < 0 gives <= x, dir > 0 gives >= x */
static uint16_t f16_toward(float x, int dir)
{
	uint16_t h = shrink_f32_to_f16(x);
	float f = shrink_kvq_h2f(h);
	if (dir < 0 && f > x)
		h = f16_step_down(h);
	if (dir > 0 && f < x)
		h = f16_step_up(h);
	return h;
}

static float clamp_f16(float x)
{
	return x > F16_MAX ? F16_MAX : x < -F16_MAX ? -F16_MAX : x;
}

void shrink_kvq_range(const float *x, int n, int stride, int bits, uint16_t *scale_h, uint16_t *min_h)
{
	float mn = x[0], mx = x[0];
	for (int i = 1; i < n; i++) {
		float v = x[(size_t)i * stride];
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
	}
	mn = clamp_f16(mn);
	mx = clamp_f16(mx);
	int levels = (1 << bits) - 1;
	*min_h = f16_toward(mn, -1);
	float m = shrink_kvq_h2f(*min_h);
	uint16_t s = f16_toward((mx - m) / (float)levels, 1);
	while ((float)levels * shrink_kvq_h2f(s) + m < mx)
		s = f16_step_up(s);
	*scale_h = s;
}

void shrink_kvq_pack_row(const uint8_t *c, int d, int bits, uint8_t *row)
{
	int h = d / 2, q = d / 4, e = d / 8;
	switch (bits) {
	case 8:
		memcpy(row, c, (size_t)d);
		return;
	case 4:
		for (int i = 0; i < h; i++)
			row[i] = (uint8_t)(c[i] | c[i + h] << 4);
		return;
	default: /* 2, and the low plane of 3 */
		for (int i = 0; i < q; i++)
			row[i] = (uint8_t)((c[i] & 3) | (c[i + q] & 3) << 2 | (c[i + 2 * q] & 3) << 4 |
					   (c[i + 3 * q] & 3) << 6);
		if (bits == 3)
			for (int i = 0; i < e; i++) {
				uint8_t b = 0;
				for (int k = 0; k < 8; k++)
					b |= (uint8_t)(((c[i + k * e] >> 2) & 1) << k);
				row[q + i] = b;
			}
	}
}

void shrink_kvq_unpack_row(const uint8_t *row, int d, int bits, uint8_t *c)
{
	int h = d / 2, q = d / 4, e = d / 8;
	switch (bits) {
	case 8:
		memcpy(c, row, (size_t)d);
		return;
	case 4:
		for (int i = 0; i < h; i++) {
			c[i] = row[i] & 15;
			c[i + h] = row[i] >> 4;
		}
		return;
	default:
		for (int k = 0; k < 4; k++)
			for (int i = 0; i < q; i++)
				c[i + k * q] = (row[i] >> (2 * k)) & 3;
		if (bits == 3)
			for (int k = 0; k < 8; k++)
				for (int i = 0; i < e; i++)
					c[i + k * e] |= (uint8_t)(((row[q + i] >> k) & 1) << 2);
	}
}
