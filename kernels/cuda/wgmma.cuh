// wgmma.cuh: the warpgroup matrix multiply of sm_90a with the A operand in registers
// (four warps, 64 rows: warp w holds rows 16 w .. 16 w + 15 in the m16n8k16 A-fragment
// layout) and B (16 x N) in shared memory through a matrix descriptor; f32 accumulators,
// d[4 j + c] in the m16n8 C-fragment layout of n8 block j; run's accumulate 0 overwrites d
// instead of adding to it. Internal to kernels/cuda.
// The asm bodies are spelled out per shape (N = 16, 32, 64, 128: N / 2 accumulator registers), one macro each.
#ifndef SHRINK_CUDA_WGMMA_CUH
#define SHRINK_CUDA_WGMMA_CUH

#include "common.cuh"

__device__ __forceinline__ void wgmma_fence()
{
	asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit()
{
	asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait()
{
	asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Order this thread's earlier generic-proxy writes of shared memory (cp.async) before the
// async proxy's reads (wgmma).
__device__ __forceinline__ void fence_proxy_async()
{
	asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Give registers back (a warpgroup that only issues copies) or take them (one that holds
// accumulators): the kernel starts at its __launch_bounds__ cap, the pool is the SM's 64K.
template <int R> __device__ __forceinline__ void setmaxnreg_dec()
{
	asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R> __device__ __forceinline__ void setmaxnreg_inc()
{
	asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}

// Descriptor of a K-major B operand without swizzling: 8 x 16-byte core matrices, lbo bytes
// between core matrices along K, sbo bytes along N. Its low word holds the start address and
// lbo, its high word sbo: a kernel that walks the operand through shared memory builds the words
// once and adds to the address field (it never carries: shared memory is below 256 KB).
__device__ __forceinline__ uint32_t wgmma_desc_lo(uint32_t smem_addr, uint32_t lbo)
{
	return ((smem_addr >> 4) & 0x3fff) | ((lbo >> 4) & 0x3fff) << 16;
}
__host__ __device__ constexpr uint32_t wgmma_desc_hi(uint32_t sbo)
{
	return (sbo >> 4) & 0x3fff;
}
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t lo, uint32_t hi)
{
	return (uint64_t)hi << 32 | lo;
}

template <typename T, int N> struct wgmma_rs;

#define SHRINK_WGMMA_RS_16(T, PTX) \
template <> struct wgmma_rs<T, 16> { \
	static __device__ __forceinline__ void run(float (&d)[8], const uint32_t (&a)[4], uint64_t desc, int accumulate = 1) \
	{ \
		asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n" \
			     "wgmma.mma_async.sync.aligned.m64n16k16.f32." PTX "." PTX " " \
			     "{%0, %1, %2, %3, %4, %5, %6, %7}, " \
			     "{%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n" \
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]) \
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate)); \
	} \
};

#define SHRINK_WGMMA_RS_32(T, PTX) \
template <> struct wgmma_rs<T, 32> { \
	static __device__ __forceinline__ void run(float (&d)[16], const uint32_t (&a)[4], uint64_t desc, int accumulate = 1) \
	{ \
		asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n" \
			     "wgmma.mma_async.sync.aligned.m64n32k16.f32." PTX "." PTX " " \
			     "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, " \
			     "{%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n" \
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]) \
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate)); \
	} \
};

#define SHRINK_WGMMA_RS_64(T, PTX) \
template <> struct wgmma_rs<T, 64> { \
	static __device__ __forceinline__ void run(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int accumulate = 1) \
	{ \
		asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
			     "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX "." PTX " " \
			     "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, " \
			     "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n" \
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) \
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate)); \
	} \
};

#define SHRINK_WGMMA_RS_128(T, PTX) \
template <> struct wgmma_rs<T, 128> { \
	static __device__ __forceinline__ void run(float (&d)[64], const uint32_t (&a)[4], uint64_t desc, int accumulate = 1) \
	{ \
		asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" \
			     "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX "." PTX " " \
			     "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, " \
			     "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n" \
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) \
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate)); \
	} \
};

SHRINK_WGMMA_RS_16(__half, "f16")
SHRINK_WGMMA_RS_32(__half, "f16")
SHRINK_WGMMA_RS_64(__half, "f16")
SHRINK_WGMMA_RS_128(__half, "f16")
SHRINK_WGMMA_RS_16(__nv_bfloat16, "bf16")
SHRINK_WGMMA_RS_32(__nv_bfloat16, "bf16")
SHRINK_WGMMA_RS_64(__nv_bfloat16, "bf16")
SHRINK_WGMMA_RS_128(__nv_bfloat16, "bf16")
#undef SHRINK_WGMMA_RS_16
#undef SHRINK_WGMMA_RS_32
#undef SHRINK_WGMMA_RS_64
#undef SHRINK_WGMMA_RS_128

#endif
