/* gptq_plan.c: everything GPTQ needs before the sweep, shared by all rows: the column
 * order (act_order: decreasing diag H, ties by column), dead columns (H_ii = 0 -> 1),
 * damping (lambda = damp * mean(diag H)), U = the upper Cholesky factor of the damped
 * H^-1 (LAPACKE: potrf, potri, potrf), and the lazy-update blocks with U's rows repacked
 * in place so that the sweep reads memory contiguously.
 * Deliberately not here: anything per row (gptq_sweep.c), argument checks (gptq.c). */
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "gptq_impl.h"

typedef struct {
	double d;
	int64_t c;
} diag_entry;

static int by_diag_desc(const void *a, const void *b)
{
	const diag_entry *x = a, *y = b;
	if (x->d != y->d)
		return x->d > y->d ? -1 : 1;
	return (x->c > y->c) - (x->c < y->c);
}

static shrink_status make_perm(gptq_plan *pl, const double *H, bool act_order, shrink_error *err)
{
	int64_t n = pl->cols;
	diag_entry *e = malloc((size_t)n * sizeof *e);
	if (!e)
		return shrink_fail(err, SHRINK_EIO, "GPTQ: out of memory");
	for (int64_t c = 0; c < n; c++) {
		pl->dead[c] = H[c * n + c] == 0;
		e[c] = (diag_entry){pl->dead[c] ? 1.0 : H[c * n + c], c};
	}
	if (act_order)
		qsort(e, (size_t)n, sizeof *e, by_diag_desc);
	for (int64_t i = 0; i < n; i++)
		pl->perm[i] = e[i].c;
	free(e);
	return SHRINK_OK;
}

/* U's upper triangle = the permuted H with dead columns fixed and damping added. */
static void fill_damped(gptq_plan *pl, const double *H, double damp)
{
	int64_t n = pl->cols;
	double diag_sum = 0;
	for (int64_t c = 0; c < n; c++)
		diag_sum += pl->dead[c] ? 1.0 : H[c * n + c];
	double lambda = damp * (diag_sum / (double)n);
	for (int64_t i = 0; i < n; i++) {
		int64_t a = pl->perm[i];
		for (int64_t j = i; j < n; j++) {
			int64_t b = pl->perm[j];
			pl->U[i * n + j] = a <= b ? H[a * n + b] : H[b * n + a];
		}
		pl->U[i * n + i] = (pl->dead[a] ? 1.0 : pl->U[i * n + i]) + lambda;
	}
}

/* Row-major upper triangle = column-major lower triangle: H = U^T U, then H^-1, then
 * H^-1 = U^T U again, all in place. */
static shrink_status factor_inverse(double *A, int64_t n, double damp, shrink_error *err)
{
	lapack_int ni = (lapack_int)n, info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ni, A, ni);
	if (info > 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "Hessian is not positive definite even after damping (damp %g, leading minor %d); "
				   "use more calibration data or a larger damp",
				   damp, (int)info);
	if (info == 0)
		info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', ni, A, ni);
	if (info == 0)
		info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', ni, A, ni);
	if (info > 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "inverse Hessian is not positive definite (Hessian too ill-conditioned; damp %g)",
				   damp);
	if (info < 0)
		return shrink_fail(err, SHRINK_EINTERNAL, "GPTQ: LAPACK argument %d rejected", (int)-info);
	return SHRINK_OK;
}

/* End of the block starting at i1. With dynamic groups a block never ends inside a group
 * that starts after i1, so every group is fitted on fully updated weights. */
static int64_t block_end(const gptq_plan *pl, int64_t i1)
{
	int64_t end = i1 + pl->block < pl->cols ? i1 + pl->block : pl->cols, g = pl->group_size;
	if (pl->static_groups)
		return end;
	for (int64_t gs = (i1 / g + 1) * g; gs < end; gs += g)
		if ((gs + g < pl->cols ? gs + g : pl->cols) > end)
			return gs;
	return end;
}

/* Copy band [i1, i2)'s part of U (columns >= i1) to tmp, then write it back packed. */
static void pack_band(gptq_plan *pl, gptq_band *b, double *tmp)
{
	int64_t n = pl->cols, nb = b->i2 - b->i1, width = n - b->i1;
	for (int64_t k = 0; k < nb; k++)
		memcpy(tmp + k * width, pl->U + (b->i1 + k) * n + b->i1, (size_t)width * sizeof *tmp);
	double *D = pl->U + b->i1 * n, *P = D + nb * nb, *T = P + b->n_strips * nb * 8;
	for (int64_t k = 0; k < nb; k++) {
		const double *src = tmp + k * width;
		memcpy(D + k * nb, src, (size_t)nb * sizeof *D);
		for (int64_t s = 0; s < b->n_strips; s++)
			memcpy(P + (s * nb + k) * 8, src + nb + 8 * s, 8 * sizeof *P);
		memcpy(T + k * b->n_tail, src + nb + 8 * b->n_strips, (size_t)b->n_tail * sizeof *T);
	}
	b->D = D;
	b->P = P;
	b->T = T;
}

static shrink_status make_bands(gptq_plan *pl, shrink_error *err)
{
	pl->bands = malloc((size_t)pl->cols * sizeof *pl->bands);
	double *tmp = malloc((size_t)pl->block * (size_t)pl->cols * sizeof *tmp);
	if (!pl->bands || !tmp) {
		free(tmp);
		return shrink_fail(err, SHRINK_EIO, "GPTQ: out of memory");
	}
	for (int64_t i1 = 0; i1 < pl->cols; pl->n_bands++) {
		gptq_band *b = &pl->bands[pl->n_bands];
		b->i1 = i1;
		b->i2 = block_end(pl, i1);
		b->n_strips = (pl->cols - b->i2) / 8;
		b->n_tail = (pl->cols - b->i2) % 8;
		pack_band(pl, b, tmp);
		i1 = b->i2;
	}
	free(tmp);
	return SHRINK_OK;
}

void shrink_gptq_plan_free(gptq_plan *pl)
{
	free(pl->U);
	free(pl->perm);
	free(pl->dead);
	free(pl->bands);
}

shrink_status shrink_gptq_plan_init(gptq_plan *pl, const double *H, double damp, bool act_order, shrink_error *err)
{
	size_t n = (size_t)pl->cols, n2;
	if (!shrink_mul_size(n, n, &n2) || n2 > SIZE_MAX / sizeof(double))
		return shrink_fail(err, SHRINK_EIO, "GPTQ: Hessian of %zu columns is too large", n);
	pl->U = calloc(n2, sizeof(double));
	pl->perm = malloc(n * sizeof *pl->perm);
	pl->dead = malloc(n);
	if (!pl->U || !pl->perm || !pl->dead)
		return shrink_fail(err, SHRINK_EIO, "GPTQ: out of memory for a %zu x %zu Hessian", n, n);
	shrink_status st = make_perm(pl, H, act_order, err);
	if (st)
		return st;
	fill_damped(pl, H, damp);
	st = factor_inverse(pl->U, pl->cols, damp, err);
	return st ? st : make_bands(pl, err);
}
