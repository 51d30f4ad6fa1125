/* gptq_impl.h: the GPTQ plan shared by gptq.c (entry, checks), gptq_plan.c (column
 * order, damping, factorisation, block layout) and gptq_sweep.c (the row sweeps).
 * Private to lib/quant. */
#ifndef SHRINK_GPTQ_IMPL_H
#define SHRINK_GPTQ_IMPL_H

#include "quant_impl.h"

/* One lazy-update block: sweep positions [i1, i2), nb = i2 - i1, with its rows of U
 * (the upper Cholesky factor of the damped H^-1, in sweep order) packed for the sweep:
 *   D: nb x nb row-major, D[a][b] = U[i1 + a][i1 + b] (b >= a is read);
 *   P: n_strips strips of 8 columns, U[i1 + k][i2 + 8 s + j] at P[(s * nb + k) * 8 + j];
 *   T: nb x n_tail, U[i1 + k][i2 + 8 n_strips + j] at T[k * n_tail + j]. */
typedef struct {
	int64_t i1, i2, n_strips, n_tail;
	const double *D, *P, *T;
} gptq_band;

typedef struct {
	const float *w;
	int64_t rows, cols, n_groups;
	int bits, maxq, group_size, block;
	bool symmetric, static_groups, clip;
	int64_t *perm;	  /* sweep position -> original column */
	uint8_t *dead;	  /* per original column: H_ii == 0 */
	double *U;	  /* cols x cols storage: U, then the bands' packed rows in place */
	gptq_band *bands; /* in sweep order */
	int64_t n_bands;
} gptq_plan;

/* Order, damping, U = chol(H^-1) upper, bands. H: only the upper triangle is read.
 * On failure the plan may be half built: free it. */
shrink_status shrink_gptq_plan_init(gptq_plan *pl, const double *H, double damp, bool act_order, shrink_error *err);
void shrink_gptq_plan_free(gptq_plan *pl);

/* Quantize every row (OpenMP over fixed chunks of rows) into the outputs. */
shrink_status shrink_gptq_sweep(const gptq_plan *pl, uint8_t *qweight, uint16_t *scales, uint8_t *zeros,
				shrink_error *err);

#endif
