// splitk.cuh: the reduction of the tiled GEMMs' split-K partials (splitk.cu), for their hosts
// (qgemm.cu, w8a8.cu). Internal to kernels/cuda.
#ifndef SHRINK_CUDA_SPLITK_CUH
#define SHRINK_CUDA_SPLITK_CUH

#include "common.cuh"

// Adds the partials of a split-K GEMM, ws [tile][split][bm][128] floats (tile: token block x
// tiles_a_row + 128-row tile), in split order into y [M][N] (dt), as a dependent launch (pdl.cuh).
shrink_status splitk_reduce(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const float *ws, int M, int N, int bm,
			    int splits, int64_t tiles_a_row, void *y);

#endif
