/* gptq_sweep.c: the GPTQ row sweeps. For column j (sweep order) of every row:
 * q = quantize(w_j), e = (w_j - dequant(q)) / U_jj, then w_c -= e * U_jc for the later
 * columns c: at once inside the current block, lazily (one pass per block) after it.
 * Rows are independent given U; they are swept in fixed chunks of GPTQ_CHUNK_ROWS rows,
 * OpenMP hands chunks to threads, and every element's arithmetic depends only on the
 * shapes, so the result is the same whatever the thread count. All in double.
 * Deliberately not here: U and the column order (gptq_plan.c), group fitting (group.c). */
#include <stdlib.h>
#include <string.h>

#include "gptq_impl.h"

#define GPTQ_CHUNK_ROWS 32 /* rows swept together: each pass over U serves all of them */

typedef struct {
	double *W;     /* CHUNK x cols: working weights in sweep order */
	double *E;     /* CHUNK x block: scaled errors of the current block */
	uint8_t *Q;    /* CHUNK x cols: codes in sweep order */
	qgroup *G;     /* CHUNK x n_groups: group parameters */
	double *row;   /* cols: one original row (static group fitting) */
	uint8_t *qrow; /* cols: one row of codes in original order */
} gptq_work;

/* Where a row failed, and why (the smallest failing row wins: reproducible messages). */
typedef struct {
	int64_t row;
	qfit_status why;
} gptq_fault;

static void work_free(gptq_work *wk)
{
	free(wk->W);
	free(wk->E);
	free(wk->Q);
	free(wk->G);
	free(wk->row);
	free(wk->qrow);
}

static bool work_alloc(gptq_work *wk, const gptq_plan *pl)
{
	size_t cols = (size_t)pl->cols, R = GPTQ_CHUNK_ROWS;
	wk->W = malloc(R * cols * sizeof *wk->W);
	wk->E = malloc(R * (size_t)pl->block * sizeof *wk->E);
	wk->Q = malloc(R * cols);
	wk->G = malloc(R * (size_t)pl->n_groups * sizeof *wk->G);
	wk->row = malloc(cols * sizeof *wk->row);
	wk->qrow = malloc(cols);
	return wk->W && wk->E && wk->Q && wk->G && wk->row && wk->qrow;
}

static void load_rows(const gptq_plan *pl, gptq_work *wk, int64_t r0, int64_t nr)
{
	for (int64_t r = 0; r < nr; r++) {
		const float *src = pl->w + (r0 + r) * pl->cols;
		double *dst = wk->W + r * pl->cols;
		for (int64_t j = 0; j < pl->cols; j++) {
			int64_t c = pl->perm[j];
			dst[j] = pl->dead[c] ? 0.0 : src[c];
		}
	}
}

static qfit_status fit(const gptq_plan *pl, const double *w, int64_t k, qgroup *g)
{
	return shrink_qgroup_fit(w, qgroup_len(pl->group_size, pl->cols, k), pl->bits, pl->symmetric, pl->clip, g);
}

/* Static groups: every group of every row from the original weights (dead columns zeroed). */
static qfit_status fit_static(const gptq_plan *pl, gptq_work *wk, int64_t r0, int64_t nr, int64_t *bad)
{
	for (int64_t r = 0; r < nr; r++) {
		const float *src = pl->w + (r0 + r) * pl->cols;
		for (int64_t c = 0; c < pl->cols; c++)
			wk->row[c] = pl->dead[c] ? 0.0 : src[c];
		for (int64_t k = 0; k < pl->n_groups; k++) {
			qfit_status st = fit(pl, wk->row + k * pl->group_size, k, wk->G + r * pl->n_groups + k);
			if (st) {
				*bad = r;
				return st;
			}
		}
	}
	return QFIT_OK;
}

/* Dynamic groups (identity order): group k from the current weights at its first column. */
static qfit_status fit_dynamic(const gptq_plan *pl, gptq_work *wk, int64_t nr, int64_t k, int64_t *bad)
{
	for (int64_t r = 0; r < nr; r++) {
		qfit_status st = fit(pl, wk->W + r * pl->cols + k * pl->group_size, k, wk->G + r * pl->n_groups + k);
		if (st) {
			*bad = r;
			return st;
		}
	}
	return QFIT_OK;
}

/* Quantize column j of every row; push the error onto the rest of the block. */
static qfit_status sweep_column(const gptq_plan *pl, const gptq_band *b, gptq_work *wk, int64_t nr, int64_t j,
				int64_t *bad)
{
	int64_t nb = b->i2 - b->i1, a = j - b->i1;
	const double *u = b->D + a * nb; /* u[c - i1] = U[j][c] for c in [j, i2) */
	int64_t k = qgroup_of(pl->group_size, pl->perm[j]);
	for (int64_t r = 0; r < nr; r++) {
		double *wr = wk->W + r * pl->cols;
		const qgroup *g = wk->G + r * pl->n_groups + k;
		if (!isfinite(wr[j])) {
			*bad = r;
			return QFIT_NONFINITE;
		}
		int q = qgroup_quant(g, pl->maxq, wr[j]);
		wk->Q[r * pl->cols + j] = (uint8_t)q;
		double e = (wr[j] - qgroup_dequant(g, q)) / u[a];
		wk->E[r * pl->block + a] = e;
#pragma omp simd
		for (int64_t c = j + 1; c < b->i2; c++)
			wr[c] -= e * u[c - b->i1];
	}
	return QFIT_OK;
}

static qfit_status sweep_band(const gptq_plan *pl, const gptq_band *b, gptq_work *wk, int64_t nr, int64_t *bad)
{
	for (int64_t j = b->i1; j < b->i2; j++) {
		qfit_status st = QFIT_OK;
		if (!pl->static_groups && j % pl->group_size == 0)
			st = fit_dynamic(pl, wk, nr, j / pl->group_size, bad);
		if (!st)
			st = sweep_column(pl, b, wk, nr, j, bad);
		if (st)
			return st;
	}
	return QFIT_OK;
}

/* The lazy update: W[r][c] -= sum_k E[r][k] * U[i1 + k][c] for c >= i2. Each element's
 * sum runs over k in order into one accumulator, then is subtracted. The 4 x 8 kernel
 * keeps its accumulators in registers; on x86-64 an AVX2/FMA clone is picked at load
 * time (the same one for every row and thread of a run). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GPTQ_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GPTQ_CLONES
#endif

typedef double v4d __attribute__((vector_size(32)));

#define LOAD4(v, p) memcpy(&(v), (p), sizeof(v4d))
#define SUB_STORE4(p, acc)                                                                                             \
	do {                                                                                                           \
		v4d w_;                                                                                                \
		LOAD4(w_, p);                                                                                          \
		w_ -= (acc);                                                                                           \
		memcpy((p), &w_, sizeof w_);                                                                           \
	} while (0)

/* Rows W[0..3] (stride ldw), columns [0, 8): W -= E[0..3][0, nb) * P, P a packed strip. */
GPTQ_CLONES static void update_4x8(const double *P, const double *E, int64_t lde, int64_t nb, double *W, int64_t ldw)
{
	v4d a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0}, ul, uh;
	for (int64_t k = 0; k < nb; k++) {
		LOAD4(ul, P + 8 * k);
		LOAD4(uh, P + 8 * k + 4);
		double e0 = E[k], e1 = E[lde + k], e2 = E[2 * lde + k], e3 = E[3 * lde + k];
		a0 += e0 * ul;
		b0 += e0 * uh;
		a1 += e1 * ul;
		b1 += e1 * uh;
		a2 += e2 * ul;
		b2 += e2 * uh;
		a3 += e3 * ul;
		b3 += e3 * uh;
	}
	SUB_STORE4(W, a0);
	SUB_STORE4(W + 4, b0);
	SUB_STORE4(W + ldw, a1);
	SUB_STORE4(W + ldw + 4, b1);
	SUB_STORE4(W + 2 * ldw, a2);
	SUB_STORE4(W + 2 * ldw + 4, b2);
	SUB_STORE4(W + 3 * ldw, a3);
	SUB_STORE4(W + 3 * ldw + 4, b3);
}

/* One row, m columns: w[c] -= sum_k e[k] * P[k * ldp + c]. */
GPTQ_CLONES static void update_1xm(const double *P, int64_t ldp, const double *e, int64_t nb, double *w, int64_t m)
{
	for (int64_t c = 0; c < m; c++) {
		double acc = 0;
		for (int64_t k = 0; k < nb; k++)
			acc += e[k] * P[k * ldp + c];
		w[c] -= acc;
	}
}

static void update_after_band(const gptq_plan *pl, const gptq_band *b, gptq_work *wk, int64_t nr)
{
	int64_t n = pl->cols, nb = b->i2 - b->i1, n4 = nr / 4 * 4;
	for (int64_t s = 0; s < b->n_strips; s++) {
		const double *P = b->P + s * nb * 8;
		double *W = wk->W + b->i2 + 8 * s;
		for (int64_t r = 0; r < n4; r += 4)
			update_4x8(P, wk->E + r * pl->block, pl->block, nb, W + r * n, n);
		for (int64_t r = n4; r < nr; r++)
			update_1xm(P, 8, wk->E + r * pl->block, nb, W + r * n, 8);
	}
	for (int64_t r = 0; r < nr && b->n_tail; r++)
		update_1xm(b->T, b->n_tail, wk->E + r * pl->block, nb, wk->W + r * n + b->i2 + 8 * b->n_strips,
			   b->n_tail);
}

static void store_rows(const gptq_plan *pl, gptq_work *wk, int64_t r0, int64_t nr, uint8_t *qweight, uint16_t *scales,
		       uint8_t *zeros)
{
	size_t row_bytes = shrink_qrow_bytes(pl->bits, pl->cols);
	for (int64_t r = 0; r < nr; r++) {
		for (int64_t j = 0; j < pl->cols; j++)
			wk->qrow[pl->perm[j]] = wk->Q[r * pl->cols + j];
		shrink_pack_bits(wk->qrow, pl->cols, pl->bits, qweight + (size_t)(r0 + r) * row_bytes);
		for (int64_t k = 0; k < pl->n_groups; k++) {
			const qgroup *g = wk->G + r * pl->n_groups + k;
			scales[(r0 + r) * pl->n_groups + k] = g->scale_f16;
			if (!pl->symmetric)
				zeros[(r0 + r) * pl->n_groups + k] = (uint8_t)g->zero;
		}
	}
}

static qfit_status run_chunk(const gptq_plan *pl, gptq_work *wk, int64_t r0, int64_t nr, int64_t *bad)
{
	load_rows(pl, wk, r0, nr);
	qfit_status st = pl->static_groups ? fit_static(pl, wk, r0, nr, bad) : QFIT_OK;
	for (int64_t i = 0; i < pl->n_bands && !st; i++) {
		st = sweep_band(pl, &pl->bands[i], wk, nr, bad);
		if (!st)
			update_after_band(pl, &pl->bands[i], wk, nr);
	}
	return st;
}

static void note_fault(gptq_fault *f, int64_t row, qfit_status why)
{
#pragma omp critical(shrink_gptq_fault)
	if (f->row < 0 || row < f->row) {
		f->row = row;
		f->why = why;
	}
}

shrink_status shrink_gptq_sweep(const gptq_plan *pl, uint8_t *qweight, uint16_t *scales, uint8_t *zeros,
				shrink_error *err)
{
	int64_t n_chunks = (pl->rows + GPTQ_CHUNK_ROWS - 1) / GPTQ_CHUNK_ROWS;
	gptq_fault fault = {-1, QFIT_OK};
	int oom = 0;
#pragma omp parallel
	{
		gptq_work wk;
		bool ok = work_alloc(&wk, pl);
		if (!ok) {
#pragma omp atomic write
			oom = 1;
		}
#pragma omp for schedule(dynamic, 1)
		for (int64_t ch = 0; ch < n_chunks; ch++) {
			int64_t r0 = ch * GPTQ_CHUNK_ROWS,
				nr = pl->rows - r0 < GPTQ_CHUNK_ROWS ? pl->rows - r0 : GPTQ_CHUNK_ROWS;
			int64_t bad = 0;
			qfit_status st = ok ? run_chunk(pl, &wk, r0, nr, &bad) : QFIT_OK;
			if (st)
				note_fault(&fault, r0 + bad, st);
			else if (ok)
				store_rows(pl, &wk, r0, nr, qweight, scales, zeros);
		}
		work_free(&wk);
	}
	if (oom)
		return shrink_fail(err, SHRINK_EIO, "GPTQ: out of memory");
	if (fault.row >= 0)
		return shrink_fail(err, SHRINK_EINPUT, "row %lld: %s during GPTQ%s", (long long)fault.row,
				   shrink_qfit_reason(fault.why),
				   fault.why == QFIT_NONFINITE ? " (Hessian too ill-conditioned? raise damp)" : "");
	return SHRINK_OK;
}
