/* f16.c: bulk f16/bf16 <-> f32 conversion. Uses the F16C instructions when the
 * CPU has them (checked at run time), else the portable scalar conversion.
 * Both paths are exact (f16 -> f32 is lossless; f32 -> f16 rounds to nearest even). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

__attribute__((target("f16c,avx"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
	for (; i < n; i++)
		dst[i] = shrink_f16_to_f32(src[i]);
}

void shrink_kernel_f16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
	if (shrink_cpu_f16c()) {
		f16_to_f32_f16c(src, dst, n);
		return;
	}
	for (int64_t i = 0; i < n; i++)
		dst[i] = shrink_f16_to_f32(src[i]);
}

void shrink_kernel_bf16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		uint32_t bits = (uint32_t)src[i] << 16;
		memcpy(&dst[i], &bits, 4);
	}
}

void shrink_kernel_f32_to_f16(const float *src, uint16_t *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		dst[i] = shrink_f32_to_f16(src[i]);
}
