/* gptq.c: GPTQ (Frantar et al. 2022), the entry point: quantize W column by column,
 * pushing each column's quantization error onto the columns not yet quantized through
 * the upper Cholesky factor U of the damped inverse Hessian (H^-1 = U^T U):
 * e = (w_j - dequant(q_j)) / U_jj, w_c -= e * U_jc for c after j, updates applied lazily
 * in blocks. Checks the arguments, builds the plan (gptq_plan.c), sweeps the rows
 * (gptq_sweep.c). Deliberately not here: accumulating H (hessian.c), and any per-column
 * group index (with act_order the groups are "static": fitted on the original weights). */
#include <limits.h>

#include "gptq_impl.h"

static shrink_status check_params(const shrink_gptq_params *p, const double *H, int64_t cols, shrink_error *err)
{
	if (!H)
		return shrink_fail(err, SHRINK_EUSAGE, "GPTQ: no Hessian given");
	if (!(p->damp >= 0) || !isfinite(p->damp))
		return shrink_fail(err, SHRINK_EUSAGE, "GPTQ: damp must be a finite number >= 0 (got %g)", p->damp);
	if (p->block < 1)
		return shrink_fail(err, SHRINK_EUSAGE, "GPTQ: block must be >= 1 (got %d)", p->block);
	if (cols > INT_MAX)
		return shrink_fail(err, SHRINK_EINPUT, "GPTQ: %lld columns is more than LAPACK can factor",
				   (long long)cols);
	return SHRINK_OK;
}

static shrink_status check_hessian(const double *H, int64_t n, shrink_error *err)
{
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = i; j < n; j++)
			if (!isfinite(H[i * n + j]))
				return shrink_fail(err, SHRINK_EINPUT, "Hessian has a non-finite entry at (%lld, %lld)",
						   (long long)i, (long long)j);
	return SHRINK_OK;
}

shrink_status shrink_quantize_gptq(const float *w, int64_t rows, int64_t cols, const double *H, const shrink_qscheme *s,
				   const shrink_gptq_params *p, uint8_t *qweight, uint16_t *scales, uint8_t *zeros,
				   shrink_error *err)
{
	static const shrink_gptq_params defaults = {0.01, 128, false, false};
	if (!p)
		p = &defaults;
	shrink_status st = shrink_quant_check_args(s, rows, cols, w, qweight, scales, zeros, err);
	if (!st)
		st = check_params(p, H, cols, err);
	if (!st)
		st = shrink_quant_check_finite(w, rows, cols, err);
	if (!st)
		st = check_hessian(H, cols, err);
	if (st)
		return st;
	gptq_plan pl = {
	    .w = w,
	    .rows = rows,
	    .cols = cols,
	    .n_groups = shrink_qscheme_groups(s, cols),
	    .bits = s->bits,
	    .maxq = (1 << s->bits) - 1,
	    .group_size = s->group_size,
	    .block = p->block < cols ? p->block : (int)cols,
	    .symmetric = s->symmetric,
	    .static_groups = p->act_order || s->group_size == 0,
	    .clip = p->clip_search,
	};
	st = shrink_gptq_plan_init(&pl, H, p->damp, p->act_order, err);
	if (!st)
		st = shrink_gptq_sweep(&pl, qweight, scales, zeros, err);
	shrink_gptq_plan_free(&pl);
	return st;
}
