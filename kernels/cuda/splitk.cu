// splitk.cu: the reduction of split-K partials of the tiled GEMMs (qgemm.cu's warpgroup-MMA
// GEMM, w8a8.cu's int8 GEMM), as a kernel of its own after the GEMM: every SM takes part. The
// last CTA of a tile adding its tile's partials alone, as both once did, left the rest of the GPU
// idle (H100: quantized GEMM, 4096x4096 at 128 tokens 37.4 us against 17.4; W8A8 29.8-30.0
// against 24.1), and a last CTA that adds them while the others still run lost too
// (tests/bench/bench_cuda.md, 2026-11-28).
// Deliberately not here: the GEMMs and their plans.
#include "pdl.cuh"
#include "splitk.cuh"

namespace {

// y = the splits' partials added in split order (deterministic), 4 columns a thread.
template <typename T>
__global__ void splitk_reduce_kernel(const float *__restrict__ ws, int M, int N, int bm, int splits,
				     int64_t tiles_a_row, T *__restrict__ y)
{
	launch_dependents();
	wait_prerequisites(); // the GEMM's partials
	const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n4 = (N + 3) / 4;
	if (i >= (int64_t)M * n4)
		return;
	const int m = (int)(i / n4), n = 4 * (int)(i % n4);
	const int64_t tile = n / 128 + (int64_t)(m / bm) * tiles_a_row;
	const float *p = ws + (tile * splits * bm + m % bm) * 128 + n % 128;
	float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
	for (int sp = 0; sp < splits; sp++) {
		const float4 q = __ldcg(reinterpret_cast<const float4 *>(p + (size_t)sp * bm * 128));
		v.x += q.x, v.y += q.y, v.z += q.z, v.w += q.w;
	}
	const float vs[4] = {v.x, v.y, v.z, v.w};
	T *dst = y + (size_t)m * N + n;
	for (int k = 0; k < 4 && n + k < N; k++)
		dst[k] = dtype_traits<T>::from_f(vs[k]);
}

} // namespace

shrink_status splitk_reduce(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const float *ws, int M, int N, int bm,
			    int splits, int64_t tiles_a_row, void *y)
{
	const unsigned blocks = (unsigned)ceil_div64((int64_t)M * ceil_div64(N, 4), 256);
	const cudaError_t e =
	    dt == SHRINK_CUDA_F16
		? launch_dependent(splitk_reduce_kernel<__half>, dim3(blocks), dim3(256), 0, ctx->stream, ws, M, N, bm,
				   splits, tiles_a_row, static_cast<__half *>(y))
		: launch_dependent(splitk_reduce_kernel<__nv_bfloat16>, dim3(blocks), dim3(256), 0, ctx->stream, ws, M,
				   N, bm, splits, tiles_a_row, static_cast<__nv_bfloat16 *>(y));
	return shrink_cuda_check(ctx, e, "split-K reduction");
}
