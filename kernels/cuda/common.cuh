// common.cuh: what every kernels/cuda source shares: the context, status
// helpers, f16/bf16 traits, tensor-core (mma.sync) and cp.async wrappers,
// block reductions. Internal to kernels/cuda; callers use cuda.h.
// Deliberately no templates over architectures: everything targets sm_90.
#ifndef SHRINK_CUDA_COMMON_CUH
#define SHRINK_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda.h> // CUtensorMap (a plain struct; the encoder comes through the runtime)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>
#include <utility>

#include "cuda/cuda.h"

struct shrink_cuda_ctx {
	int device;
	cudaStream_t stream;
	cublasHandle_t cublas;
	int n_sms;
	int gemm_pair_ctas; // the GEMM's CTAs the device holds at once in clusters of two (qgemm_cluster_ctas)
	void *workspace;
	size_t workspace_bytes;
	void *cublas_ws;
	bool own_stream;   // made by ctx_create (asked with NULL): capturable into CUDA graphs
	unsigned ws_generation; // bumped when the workspace moves (graphs captured before are stale)
	int *counters;     // kCtxCounters arrival counters of split kernels, kept at 0 between calls
	char message[256];
};
constexpr int kCtxCounters = 4096;

// Whether a pointer allows 16-byte (uint4, bulk-copy) accesses.
static inline bool aligned16(const void *p)
{
	return ((uintptr_t)p & 15) == 0;
}

// Record a failure in the context and return its status.
shrink_status shrink_cuda_fail(shrink_cuda_ctx *ctx, shrink_status code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
// SHRINK_OK, or SHRINK_EIO with the CUDA error named (what: the call).
shrink_status shrink_cuda_check(shrink_cuda_ctx *ctx, cudaError_t e, const char *what);
// After a launch: the launch error, if any.
static inline shrink_status shrink_cuda_launched(shrink_cuda_ctx *ctx, const char *what)
{
	return shrink_cuda_check(ctx, cudaGetLastError(), what);
}

static inline int64_t ceil_div64(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

// Let kernel K ask for up to `bytes` of dynamic shared memory (more than the default 48 KB), and
// with max_carveout the SM's largest shared-memory share (so that two CTAs of K fit): once per
// kernel, at its first launch, which comes before any graph capture that records it.
template <auto K> cudaError_t allow_smem(int bytes, bool max_carveout = false)
{
	static bool done;
	if (done)
		return cudaSuccess;
	cudaError_t e = cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
	if (e == cudaSuccess && max_carveout)
		e = cudaFuncSetAttribute(K, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
	done = e == cudaSuccess;
	return e;
}

// ---- element types -------------------------------------------------------------------------

template <typename T> struct dtype_traits;
template <> struct dtype_traits<__half> {
	typedef __half2 T2;
	static __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
	static __device__ __forceinline__ __half from_f(float v) { return __float2half_rn(v); }
	static __device__ __forceinline__ T2 pack(float a, float b) { return __floats2half2_rn(a, b); }
	static __device__ __forceinline__ float2 unpack(T2 v) { return __half22float2(v); }
};
template <> struct dtype_traits<__nv_bfloat16> {
	typedef __nv_bfloat162 T2;
	static __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
	static __device__ __forceinline__ __nv_bfloat16 from_f(float v) { return __float2bfloat16_rn(v); }
	static __device__ __forceinline__ T2 pack(float a, float b) { return __floats2bfloat162_rn(a, b); }
	static __device__ __forceinline__ float2 unpack(T2 v) { return __bfloat1622float2(v); }
};

static __device__ __forceinline__ uint32_t as_u32(__half2 v)
{
	return *reinterpret_cast<uint32_t *>(&v);
}
static __device__ __forceinline__ uint32_t as_u32(__nv_bfloat162 v)
{
	return *reinterpret_cast<uint32_t *>(&v);
}
template <typename T2> static __device__ __forceinline__ T2 from_u32(uint32_t v)
{
	return *reinterpret_cast<T2 *>(&v);
}

// Attention kernels serve the query heads of one KV head in tiles of GM = 1, 2, 4 or 8 heads
// (a template argument, so the per-head registers stay registers): the tile for `group` heads
// per KV head, and f(std::integral_constant<int, GM>) called with it.
static inline int group_tile(int group)
{
	return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
}
template <typename F> auto with_group_tile(int gm, F &&f)
{
	switch (gm) {
	case 1: return f(std::integral_constant<int, 1>{});
	case 2: return f(std::integral_constant<int, 2>{});
	case 4: return f(std::integral_constant<int, 4>{});
	default: return f(std::integral_constant<int, 8>{});
	}
}

// Compile-time loop: f(std::integral_constant<int, I>()) for I in [B, E).
template <int B, int E, typename F> __device__ __forceinline__ void static_for(F &&f)
{
	if constexpr (B < E) {
		f(std::integral_constant<int, B>());
		static_for<B + 1, E>(f);
	}
}

// ---- tensor cores ---------------------------------------------------------------------------

// d += a (16x16, row) * b (16x8, col), f32 accumulate.
template <typename T> __device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
								uint32_t b1);
template <> __device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
							      uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
		     "{%0,%1,%2,%3};\n"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
								     uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
		     "{%0,%1,%2,%3};\n"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d += a (16x32 s8, row) * b (32x8 s8, col), s32 accumulate.
__device__ __forceinline__ void mma_16832_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
		     "{%0,%1,%2,%3};\n"
		     : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr)
{
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(smem_addr));
}

// (a & b) | c in one LOP3 (the compiler splits it in two when b and c are both immediates).
__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t d;
	asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
	return d;
}

// v, as a value ptxas cannot recompute: it stays in a register across a loop instead of being
// rematerialized from its inputs in every iteration.
__device__ __forceinline__ uint32_t opaque(uint32_t v)
{
	asm volatile("mov.b32 %0, %0;" : "+r"(v));
	return v;
}
template <typename P> __device__ __forceinline__ P *opaque(P *p)
{
	asm volatile("mov.b64 %0, %0;" : "+l"(p));
	return p;
}

// ---- asynchronous copies --------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
	return (uint32_t)__cvta_generic_to_shared(p);
}
// 16 bytes global -> shared; src_bytes 0 writes zeros (and reads nothing).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes)
{
	// (src_bytes is 16 or 0)
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit()
{
	asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void cp_async_wait()
{
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// mbarriers and bulk copies (sm_90): the TMA GEMV and the GEMM hand stages over with them.

__device__ __forceinline__ void mbar_init(uint32_t bar, int count)
{
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
	asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
	asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
	asm volatile("{\n"
		     ".reg .pred done;\n"
		     "wait:\n"
		     "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
		     "@!done bra wait;\n"
		     "}\n" ::"r"(bar),
		     "r"(parity)
		     : "memory");
}
// A position in a ring of mbarrier-guarded slots: the slot and the parity of the fill it holds,
// stepped rather than divided out of the stage index (a division by a run-time ring size was a
// quarter of the TMA GEMV's loop; a modulo and a divide by the GEMM's constant one, several
// instructions a stage).
struct ring_pos {
	int slot = 0;
	uint32_t parity = 0;
	__device__ __forceinline__ void step(int slots)
	{
		if (++slot == slots)
			slot = 0, parity ^= 1;
	}
};

// bytes (a multiple of 16, both addresses 16-byte aligned) global -> shared, completing on bar.
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar)
{
	asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
		     "l"(src), "r"(bytes), "r"(bar)
		     : "memory");
}

// 2D tensor copy of the box at (c0, c1) of map into shared memory, completing on bar.
__device__ __forceinline__ void tensor_copy(uint32_t dst, const CUtensorMap &map, int c0, int c1, uint32_t bar)
{
	asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
		     "[%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
		     "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(bar)
		     : "memory");
}

// Distributed shared memory (thread-block clusters): the address of the same shared-memory
// location in the CTA of cluster rank `rank`, loads from it, and the cluster-wide barrier (every
// thread of the cluster that has not exited, warps converged).
__device__ __forceinline__ uint32_t cluster_map(uint32_t addr, uint32_t rank)
{
	uint32_t r;
	asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(addr), "r"(rank));
	return r;
}
__device__ __forceinline__ float4 ld_cluster_f4(uint32_t addr)
{
	float4 v;
	asm volatile("ld.shared::cluster.v4.f32 {%0,%1,%2,%3}, [%4];\n"
		     : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
		     : "r"(addr)
		     : "memory");
	return v;
}
__device__ __forceinline__ void cluster_sync()
{
	asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// The same barrier without ordering this thread's memory operations: for a CTA that must not
// leave while another still reads its shared memory. The release form waits for the CTA's
// global stores to drain first (MEMBAR.ALL.GPU in the SASS), a few percent of the GEMM's warp
// time at 16 tokens (Nsight Compute, H200).
__device__ __forceinline__ void cluster_sync_relaxed()
{
	asm volatile("barrier.cluster.arrive.relaxed.aligned;\nbarrier.cluster.wait.aligned;\n" ::: "memory");
}

// Shared-memory loads by 32-bit shared address (keeps address arithmetic to one add).
__device__ __forceinline__ uint4 lds128(uint32_t addr)
{
	uint4 v;
	asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
		     : "r"(addr)
		     : "memory");
	return v;
}
// v = the 16 bytes at shared address addr where p, else v unchanged (a predicated load, no branch).
__device__ __forceinline__ void lds128_if(bool p, uint32_t addr, uint4 &v)
{
	asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %4, 0;\n@q ld.shared.v4.u32 {%0,%1,%2,%3}, [%5];\n}\n"
		     : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
		     : "r"((int)p), "r"(addr)
		     : "memory");
}
__device__ __forceinline__ void sts128(uint32_t addr, uint4 v)
{
	asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
		     : "memory");
}
__device__ __forceinline__ uint2 lds64(uint32_t addr)
{
	uint2 v;
	asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(addr) : "memory");
	return v;
}
__device__ __forceinline__ uint32_t lds32(uint32_t addr)
{
	uint32_t v;
	asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

// 16-byte global load that does not allocate in L1 (streamed weights).
__device__ __forceinline__ uint4 ld_stream16(const void *p)
{
	uint4 v;
	asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
		     : "l"(p));
	return v;
}
__device__ __forceinline__ uint2 ld_stream8(const void *p)
{
	uint2 v;
	asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(p));
	return v;
}
__device__ __forceinline__ uint32_t ld_stream4(const void *p)
{
	uint32_t v;
	asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];\n" : "=r"(v) : "l"(p));
	return v;
}

// ---- reductions -----------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}
// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float *scratch32)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
	v = warp_sum(v);
	__syncthreads();
	if (lane == 0)
		scratch32[warp] = v;
	__syncthreads();
	v = lane < n_warps ? scratch32[lane] : 0.0f;
	return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *scratch32)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		scratch32[warp] = v;
	__syncthreads();
	v = lane < n_warps ? scratch32[lane] : -INFINITY;
	return warp_max(v);
}

// ---- the forward pass's elementwise formulas, one definition for the kernel of their own and
// the GEMV that forms its activations on the way in (qgemv_tma.cu), so both give the same bits

// SwiGLU: silu(gate) x up.
__device__ __forceinline__ float silu_mul(float g, float u)
{
	return g / (1.0f + expf(-g)) * u;
}
// RMSNorm: the factor of a row of n values whose squares sum to ss.
__device__ __forceinline__ float rms_scale(float ss, int64_t n, float eps)
{
	return rsqrtf(ss / (float)n + eps);
}

#endif
