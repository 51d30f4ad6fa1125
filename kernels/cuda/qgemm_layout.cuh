// qgemm_layout.cuh: where the warpgroup-MMA GEMM keeps a block's activations, shared by the
// pass that lays them out (qgemm.cu) and the kernel that copies them to shared memory as they
// are (qgemm_wgmma.cu). Internal to kernels/cuda.
#ifndef SHRINK_CUDA_QGEMM_LAYOUT_CUH
#define SHRINK_CUDA_QGEMM_LAYOUT_CUH

#include "common.cuh"

// Byte offset, in the BN x 64 activations of one block and k tile, of column pair P (0..31,
// columns 2 P and 2 P + 1 of the tile) of token n: the wgmma core matrix (8 tokens x 8
// columns, 16 bytes a token) of k16 step s = (P / 2) % 4, K half h = P % 2, at
// ((2 s + h) * BN / 8 + n / 8) * 128, and in it column pair t = P / 8 of token n % 8.
// Core matrices are 128 bytes apart along N and BN * 16 along K.
template <int BN> __host__ __device__ __forceinline__ int qgemm_x_offset(int n, int P)
{
	const int s = (P >> 1) & 3, h = P & 1, t = P >> 3;
	return ((2 * s + h) * (BN / 8) + (n >> 3)) * 128 + (n & 7) * 16 + 4 * t;
}

#endif
