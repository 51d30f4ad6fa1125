/* threads.c: the thread count (OpenMP). OpenBLAS stays on one thread: its threaded routines
 * round differently by thread count, so shrink shares BLAS work out itself in fixed pieces
 * (kernels/cpu/sgemm.c). */
#include <omp.h>

#include "shrink/model.h"

#include "kernels.h"

void shrink_set_threads(int n)
{
	if (n < 1)
		n = 1;
	omp_set_num_threads(n);
	shrink_kernel_blas_serial();
}

int shrink_get_threads(void)
{
	return omp_get_max_threads();
}
