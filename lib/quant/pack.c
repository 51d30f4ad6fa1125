/* pack.c: packing b-bit codes into the little-endian bit stream of shrink/quant.h,
 * and unpacking them. Whole-byte fast paths for 2, 4 and 8 bits; one bit-accumulator
 * loop for 3, 5 and 6. Deliberately not here: scales, zero points, dequantization. */
#include <string.h>

#include "quant_impl.h"

static void pack_generic(const uint8_t *q, int64_t n, int bits, uint8_t *out)
{
	uint32_t acc = 0, mask = (1u << bits) - 1;
	int n_acc = 0;
	for (int64_t i = 0; i < n; i++) {
		acc |= (q[i] & mask) << n_acc;
		n_acc += bits;
		while (n_acc >= 8) {
			*out++ = (uint8_t)acc;
			acc >>= 8;
			n_acc -= 8;
		}
	}
	if (n_acc > 0)
		*out = (uint8_t)acc;
}

static void unpack_generic(const uint8_t *packed, int64_t n, int bits, uint8_t *q)
{
	uint32_t acc = 0, mask = (1u << bits) - 1;
	int n_acc = 0;
	for (int64_t i = 0; i < n; i++) {
		while (n_acc < bits) {
			acc |= (uint32_t)*packed++ << n_acc;
			n_acc += 8;
		}
		q[i] = (uint8_t)(acc & mask);
		acc >>= bits;
		n_acc -= bits;
	}
}

static void pack4(const uint8_t *q, int64_t n, uint8_t *out)
{
	int64_t whole = n / 2;
	for (int64_t i = 0; i < whole; i++)
		out[i] = (uint8_t)((q[2 * i] & 15) | (q[2 * i + 1] & 15) << 4);
	if (n & 1)
		out[whole] = q[n - 1] & 15;
}

static void unpack4(const uint8_t *packed, int64_t n, uint8_t *q)
{
	int64_t whole = n / 2;
	for (int64_t i = 0; i < whole; i++) {
		q[2 * i] = packed[i] & 15;
		q[2 * i + 1] = packed[i] >> 4;
	}
	if (n & 1)
		q[n - 1] = packed[whole] & 15;
}

static void pack2(const uint8_t *q, int64_t n, uint8_t *out)
{
	int64_t whole = n / 4;
	for (int64_t i = 0; i < whole; i++) {
		const uint8_t *p = q + 4 * i;
		out[i] = (uint8_t)((p[0] & 3) | (p[1] & 3) << 2 | (p[2] & 3) << 4 | (p[3] & 3) << 6);
	}
	if (n & 3)
		pack_generic(q + 4 * whole, n & 3, 2, out + whole);
}

static void unpack2(const uint8_t *packed, int64_t n, uint8_t *q)
{
	int64_t whole = n / 4;
	for (int64_t i = 0; i < whole; i++) {
		uint8_t b = packed[i];
		uint8_t *p = q + 4 * i;
		p[0] = b & 3;
		p[1] = (b >> 2) & 3;
		p[2] = (b >> 4) & 3;
		p[3] = b >> 6;
	}
	if (n & 3)
		unpack_generic(packed + whole, n & 3, 2, q + 4 * whole);
}

void shrink_pack_bits(const uint8_t *q, int64_t n, int bits, uint8_t *out)
{
	if (n <= 0)
		return;
	switch (bits) {
	case 8:
		memcpy(out, q, (size_t)n);
		break;
	case 4:
		pack4(q, n, out);
		break;
	case 2:
		pack2(q, n, out);
		break;
	default:
		pack_generic(q, n, bits, out);
	}
}

void shrink_unpack_bits(const uint8_t *packed, int64_t n, int bits, uint8_t *q)
{
	if (n <= 0)
		return;
	switch (bits) {
	case 8:
		memcpy(q, packed, (size_t)n);
		break;
	case 4:
		unpack4(packed, n, q);
		break;
	case 2:
		unpack2(packed, n, q);
		break;
	default:
		unpack_generic(packed, n, bits, q);
	}
}
