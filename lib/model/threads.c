/* threads.c: one knob for OpenMP and OpenBLAS thread counts. */
#include <omp.h>

#include "shrink/model.h"

void openblas_set_num_threads(int n);

void shrink_set_threads(int n)
{
	if (n < 1)
		n = 1;
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

int shrink_get_threads(void)
{
	return omp_get_max_threads();
}
