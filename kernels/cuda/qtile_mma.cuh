// qtile_mma.cuh: one lane's share of a quantized tile times the activations,
// the inner step of the GEMVs (qgemv.cu, qgemv_reg.cu, qgemv_tma.cu).
// Internal to kernels/cuda.
#ifndef SHRINK_CUDA_QTILE_MMA_CUH
#define SHRINK_CUDA_QTILE_MMA_CUH

#include "qlayout.cuh"

// acc[j] += W_tile (16 x 64, dequantized from the lane's codes w, scale pair sc and zero pair
// zp) x the activations of tokens 8 j + g (xv[j]: the lane's 16 columns, qlayout.cuh).
// FOLD (groups of >= 64 columns): an exact (q - z) x product, scaled in float afterwards;
// otherwise the scale multiplies the weight first (sc then holds the pair of the lane's group).
template <typename T, int BITS, bool SYM, bool FOLD, int NT>
__device__ __forceinline__ void qtile_mma(const uint32_t (&w)[BITS], uint32_t sc, uint32_t zp,
					  const uint4 (&xv)[NT][2], float (&acc)[NT][4])
{
	qzero z0, z1;
	if (SYM) {
		z0 = z1 = qzero_make<T, BITS>(1 << (BITS - 1));
	} else {
		z0 = qzero_make<T, BITS>(zp & 0xffffu);
		z1 = qzero_make<T, BITS>(zp >> 16);
	}
	uint32_t s0 = 0, s1 = 0;
	float f0 = 0.0f, f1 = 0.0f;
	if (FOLD) {
		const float2 f = __half22float2(from_u32<__half2>(sc));
		f0 = f.x, f1 = f.y;
	} else {
		qscale_t2<T>(sc, s0, s1);
	}
	float pacc[NT][4];
#pragma unroll
	for (int j = 0; j < NT; j++)
		pacc[j][0] = pacc[j][1] = pacc[j][2] = pacc[j][3] = 0.0f;
	static_for<0, 4>([&](auto step) {
		constexpr int s = decltype(step)::value;
		uint32_t A[4];
		qfragment<T, BITS, s>(w, z0, z1, A);
		if (!FOLD) {
			A[0] = t2_mul<T>(A[0], s0), A[1] = t2_mul<T>(A[1], s1);
			A[2] = t2_mul<T>(A[2], s0), A[3] = t2_mul<T>(A[3], s1);
		}
#pragma unroll
		for (int j = 0; j < NT; j++) {
			const uint4 &v = xv[j][s >> 1];
			const uint32_t b0 = (s & 1) ? v.z : v.x, b1 = (s & 1) ? v.w : v.y;
			mma_16816<T>(FOLD ? pacc[j] : acc[j], A, b0, b1);
		}
	});
	if (FOLD) {
#pragma unroll
		for (int j = 0; j < NT; j++) {
			acc[j][0] += f0 * pacc[j][0], acc[j][1] += f0 * pacc[j][1];
			acc[j][2] += f1 * pacc[j][2], acc[j][3] += f1 * pacc[j][3];
		}
	}
}

#endif
