/* sgemm.c: C = alpha op(A) op(B) + beta C (row-major floats) through OpenBLAS, with the same
 * bits whatever the thread count. Why not plain cblas_sgemm: OpenBLAS's threaded sgemm shares
 * the work out by its thread count and then rounds differently (OpenBLAS 0.3.21 on an AMD EPYC,
 * Zen kernels: thousands of the 44032 elements of a 256x172x64 product differ between 1, 2, 3
 * and 4 threads, in every transpose combination), which broke "same bytes whatever the thread
 * count" in training, calibration and prefill. So OpenBLAS runs on one thread and C is cut
 * into fixed tiles, shared out by OpenMP; each tile is one single-threaded call, so every
 * element is computed the same way at any thread count.
 * Deliberately not here: other BLAS routines (callers of dsymm/dsyrk get one BLAS thread from
 * shrink_kernel_blas_serial and run them as they are). */
#include <cblas.h>
#include <omp.h>

#include "kernels.h"

#define TILE_M 64
#define TILE_N 256
#define PAR_MIN_FLOPS (1 << 20) /* smaller products stay on the calling thread */

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

void shrink_kernel_blas_serial(void)
{
	if (!omp_in_parallel() && openblas_get_num_threads() != 1)
		openblas_set_num_threads(1);
}

void shrink_kernel_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
			 int ldb, float beta, float *C, int ldc)
{
	shrink_kernel_blas_serial();
	const int tm = (M + TILE_M - 1) / TILE_M, tn = (N + TILE_N - 1) / TILE_N;
	const bool par = (int64_t)M * N * K >= PAR_MIN_FLOPS && tm * tn > 1;
#pragma omp parallel for collapse(2) schedule(static) if (par)
	for (int i = 0; i < tm; i++)
		for (int j = 0; j < tn; j++) {
			const int i0 = i * TILE_M, j0 = j * TILE_N;
			const int mb = M - i0 < TILE_M ? M - i0 : TILE_M, nb = N - j0 < TILE_N ? N - j0 : TILE_N;
			const float *a = ta ? A + i0 : A + (size_t)i0 * lda;
			const float *b = tb ? B + (size_t)j0 * ldb : B + j0;
			cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, mb,
				    nb, K, alpha, a, lda, b, ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
		}
}
