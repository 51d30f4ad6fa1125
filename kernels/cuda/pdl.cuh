// pdl.cuh: programmatic dependent launch for the quantized linear layers. A
// GEMV, or one of the GEMM's kernels (layout, GEMM, split-K reduction),
// launched with launch_dependent (launch_dependent_clusters for the GEMM,
// whose CTAs may run in clusters) may start while the kernel before it in the
// stream still runs: it asks for its first weights (which no kernel writes),
// then waits (wait_prerequisites) before it reads that kernel's output or
// writes anything. Kernels whose successor may be such a kernel (RMSNorm,
// decode attention, the GEMVs and the GEMM's) call launch_dependents() first
// thing, so that the successor's CTAs take each SM as soon as this kernel's
// CTA there leaves: the launch, the ramp of the weight stream and the tail of
// the kernel before overlap.
//
// Rules every kernel launched with launch_dependent keeps:
// - before wait_prerequisites: read only weights, write only registers and
//   shared memory (since each kernel lets its successor start before its own
//   wait, kernels further back may still run too);
// - every CTA executes wait_prerequisites before it exits, so that the
//   kernel's end implies the end of all work before it in the stream (the
//   next kernel may read what any earlier kernel wrote).
#ifndef SHRINK_CUDA_PDL_CUH
#define SHRINK_CUDA_PDL_CUH

#include <cuda_runtime.h>

// The launch attribute of clusters of z CTAs along the grid's z.
inline cudaLaunchAttribute cluster_z_attribute(unsigned z)
{
	cudaLaunchAttribute attr;
	attr.id = cudaLaunchAttributeClusterDimension;
	attr.val.clusterDim.x = 1, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = z;
	return attr;
}

// cluster: CTAs a cluster along z (1: no clusters; grid.z a multiple of it).
template <typename... P, typename... A>
cudaError_t launch_dependent_clusters(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
				      unsigned cluster, A &&...args)
{
	cudaLaunchConfig_t cfg = {};
	cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
	cudaLaunchAttribute attr[2];
	attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	attr[0].val.programmaticStreamSerializationAllowed = 1;
	attr[1] = cluster_z_attribute(cluster);
	cfg.attrs = attr, cfg.numAttrs = cluster > 1 ? 2 : 1;
	return cudaLaunchKernelEx(&cfg, k, static_cast<A &&>(args)...);
}

template <typename... P, typename... A>
cudaError_t launch_dependent(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A &&...args)
{
	return launch_dependent_clusters(k, grid, block, smem, s, 1, static_cast<A &&>(args)...);
}

// Let a kernel launched next with launch_dependent start (it still waits for this one's end).
__device__ __forceinline__ void launch_dependents()
{
	asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// Until the kernels before this one in the stream have finished and their writes are visible
// (at once when this kernel was launched the ordinary way).
__device__ __forceinline__ void wait_prerequisites()
{
	asm volatile("griddepcontrol.wait;\n" ::: "memory");
}

// Ask L2 for the 128-byte line holding p (no registers held, nothing waits on it).
__device__ __forceinline__ void prefetch_l2(const void *p)
{
	asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

#endif
