/* hessian.c: the running GPTQ Hessian H = 2/N sum_j x_j x_j^T in double, updated
 * batch by batch (H <- H * n/(n+m) + 2/(n+m) * X^T X, X^T X by cblas_dsyrk over
 * chunks of rows converted to double). Deliberately not here: collecting the
 * activations (the calibration code feeds them), damping (gptq.c). */
#include <cblas.h>
#include <stdlib.h>

#include "kernels.h"
#include "quant_impl.h"

#define HESSIAN_CHUNK_ROWS 128

shrink_status shrink_hessian_init(shrink_hessian *h, int64_t cols, shrink_error *err)
{
	*h = (shrink_hessian){0};
	size_t n2;
	if (cols < 1 || cols > INT32_MAX || !shrink_mul_size((size_t)cols, (size_t)cols, &n2))
		return shrink_fail(err, SHRINK_EINPUT, "Hessian: unsupported width %lld", (long long)cols);
	h->H = calloc(n2, sizeof *h->H);
	h->scratch = malloc((size_t)HESSIAN_CHUNK_ROWS * (size_t)cols * sizeof *h->scratch);
	if (!h->H || !h->scratch) {
		shrink_hessian_free(h);
		return shrink_fail(err, SHRINK_EIO, "Hessian: out of memory for %lld x %lld", (long long)cols,
				   (long long)cols);
	}
	h->n_cols = cols;
	return SHRINK_OK;
}

static void add_chunk(shrink_hessian *h, const float *x, int64_t m)
{
	int64_t n = h->n_cols;
	for (int64_t i = 0; i < m * n; i++)
		h->scratch[i] = x[i];
	double before = (double)h->n_samples, total = before + (double)m;
	shrink_kernel_blas_serial(); /* its threaded dsyrk rounds by thread count */
	cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)m, 2.0 / total, h->scratch, (int)n,
		    before / total, h->H, (int)n);
	h->n_samples += m;
}

void shrink_hessian_add(shrink_hessian *h, const float *x, int64_t n_rows)
{
	if (n_rows <= 0)
		return;
	for (int64_t r0 = 0; r0 < n_rows; r0 += HESSIAN_CHUNK_ROWS) {
		int64_t m = n_rows - r0 < HESSIAN_CHUNK_ROWS ? n_rows - r0 : HESSIAN_CHUNK_ROWS;
		add_chunk(h, x + r0 * h->n_cols, m);
	}
	int64_t n = h->n_cols;
	for (int64_t i = 1; i < n; i++)
		for (int64_t j = 0; j < i; j++)
			h->H[i * n + j] = h->H[j * n + i];
}

void shrink_hessian_free(shrink_hessian *h)
{
	free(h->H);
	free(h->scratch);
	*h = (shrink_hessian){0};
}
