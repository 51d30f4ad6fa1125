/* dtype.c: dtype facts and scalar float conversions (f16/bf16 <-> f32). */
#include <math.h>
#include <string.h>

#include "shrink/tensor.h"

static const struct {
	const char *name;
	int block_elems, block_bytes;
} dtypes[SHRINK_DTYPE_COUNT] = {
	[SHRINK_F32] = {"F32", 1, 4},	  [SHRINK_F16] = {"F16", 1, 2},	   [SHRINK_BF16] = {"BF16", 1, 2},
	[SHRINK_F64] = {"F64", 1, 8},	  [SHRINK_I8] = {"I8", 1, 1},	   [SHRINK_U8] = {"U8", 1, 1},
	[SHRINK_I16] = {"I16", 1, 2},	  [SHRINK_U16] = {"U16", 1, 2},	   [SHRINK_I32] = {"I32", 1, 4},
	[SHRINK_U32] = {"U32", 1, 4},	  [SHRINK_I64] = {"I64", 1, 8},	   [SHRINK_U64] = {"U64", 1, 8},
	[SHRINK_BOOL] = {"BOOL", 1, 1},	  [SHRINK_Q4_0] = {"Q4_0", 32, 18}, [SHRINK_Q4_1] = {"Q4_1", 32, 20},
	[SHRINK_Q5_0] = {"Q5_0", 32, 22}, [SHRINK_Q5_1] = {"Q5_1", 32, 24}, [SHRINK_Q8_0] = {"Q8_0", 32, 34},
	[SHRINK_Q2_K] = {"Q2_K", 256, 84}, [SHRINK_Q3_K] = {"Q3_K", 256, 110}, [SHRINK_Q4_K] = {"Q4_K", 256, 144},
	[SHRINK_Q5_K] = {"Q5_K", 256, 176}, [SHRINK_Q6_K] = {"Q6_K", 256, 210}, [SHRINK_QPACKED] = {"QPACKED", 1, 0},
};

const char *shrink_dtype_name(shrink_dtype t)
{
	return (unsigned)t < SHRINK_DTYPE_COUNT ? dtypes[t].name : "?";
}

int shrink_dtype_block(shrink_dtype t, int *block_elems, int *block_bytes)
{
	if ((unsigned)t >= SHRINK_DTYPE_COUNT)
		return 0;
	*block_elems = dtypes[t].block_elems;
	*block_bytes = dtypes[t].block_bytes;
	return 1;
}

bool shrink_dtype_is_float(shrink_dtype t)
{
	return t == SHRINK_F32 || t == SHRINK_F16 || t == SHRINK_BF16 || t == SHRINK_F64;
}

int64_t shrink_tensor_numel(const shrink_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->n_dims; i++)
		if (__builtin_mul_overflow(n, t->shape[i], &n))
			return -1;
	return n;
}

size_t shrink_dtype_bytes(shrink_dtype t, int64_t numel)
{
	int be, bb;
	if (numel < 0 || !shrink_dtype_block(t, &be, &bb) || numel % be != 0)
		return 0;
	size_t out;
	if (!shrink_mul_size((size_t)(numel / be), (size_t)bb, &out))
		return 0;
	return out;
}

float shrink_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: renormalise */
			int e = -1;
			do {
				e++;
				man <<= 1;
			} while (!(man & 0x400));
			bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000 | (man << 13);
	} else {
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t shrink_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	if (isnan(f))
		return (uint16_t)(sign | 0x7e00);
	uint32_t ax = x & 0x7fffffff;
	if (ax >= 0x477ff000) /* rounds to >= 65520: infinity */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000) { /* subnormal or zero in f16: round to nearest even on 2^-24 units */
		float a;
		memcpy(&a, &ax, 4);
		float q = a * 16777216.0f; /* exact scaling by 2^24 */
		uint32_t m = (uint32_t)nearbyintf(q);
		return (uint16_t)(sign | m);
	}
	/* normal: round mantissa to 10 bits, nearest even */
	uint32_t r = ax + 0xfff + ((ax >> 13) & 1);
	r -= (uint32_t)(127 - 15) << 23;
	return (uint16_t)(sign | (r >> 13));
}

float shrink_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t shrink_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if (isnan(f))
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}
