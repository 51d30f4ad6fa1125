// stream_read.cu: the benchmark's read floor. A kernel that only reads a weight's bytes, timed
// the way bench_cuda times the GEMVs (the same rotation of copies in one CUDA graph), says what
// streaming those bytes costs at that size on this device: the copy bandwidth of bench_cuda's
// header is measured on 1 GB, where a launch's ramp and tail weigh nothing, and a 30 MB weight
// streams in about 7 us.
// Two forms: ordinary launches (each waits for the one before to end), and dependent launches as
// kernels/cuda/pdl.cuh makes them, where a launch streams everything before it waits for the one
// before; the second is a floor that no GEMV of the same bytes can beat in that chain.
#include <stdint.h>

#include "cuda/pdl.cuh"
#include "stream_read.h"

namespace {

constexpr int kThreads = 512, kCtasPerSm = 4, kUnroll = 4; // 2048 threads an SM, 4 loads in flight each

__global__ void __launch_bounds__(kThreads, kCtasPerSm)
	stream_read_kernel(const uint4 *__restrict__ p, size_t n, unsigned *sink, int dependent)
{
	if (dependent)
		launch_dependents();
	const size_t stride = (size_t)gridDim.x * kThreads;
	size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
	unsigned acc = 0;
	for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
		uint4 v[kUnroll];
#pragma unroll
		for (int u = 0; u < kUnroll; u++)
			v[u] = __ldcs(p + i + u * stride); // streamed: not kept in L1 or L2
#pragma unroll
		for (int u = 0; u < kUnroll; u++)
			acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
	}
	for (; i < n; i += stride) {
		const uint4 v = __ldcs(p + i);
		acc ^= v.x ^ v.y ^ v.z ^ v.w;
	}
	if (dependent)
		wait_prerequisites();
	if (acc == 0x9e3779b9u) // keeps the loads; about never true
		*sink = acc;
}

} // namespace

extern "C" cudaError_t bench_stream_read(const void *p, size_t bytes, unsigned *sink, int dependent, int n_sms,
					 cudaStream_t s)
{
	if (bytes % 16)
		return cudaErrorInvalidValue;
	const dim3 grid((unsigned)(n_sms * kCtasPerSm)), block(kThreads);
	const uint4 *q = static_cast<const uint4 *>(p);
	if (dependent)
		return launch_dependent(stream_read_kernel, grid, block, 0, s, q, bytes / 16, sink, 1);
	stream_read_kernel<<<grid, block, 0, s>>>(q, bytes / 16, sink, 0);
	return cudaGetLastError();
}
