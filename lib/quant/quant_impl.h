/* quant_impl.h: what the lib/quant files share: one group's scale and zero point
 * (fitted, with the optional clipping search) and quantizing a value with them.
 * Private to lib/quant; the conventions are documented in shrink/quant.h.
 * Deliberately not here: packing (pack.c), row loops (rtn.c, gptq.c). */
#ifndef SHRINK_QUANT_IMPL_H
#define SHRINK_QUANT_IMPL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "shrink/quant.h"

/* Ratios tried by the clipping search: 1.0, 0.95, ..., 0.5. */
#define QCLIP_STEPS 11
#define QCLIP_STEP 0.05

typedef struct {
	double scale; /* the stored f16 scale, as a double: what dequantization uses */
	int zero;
	uint16_t scale_f16;
} qgroup;

typedef enum {
	QFIT_OK,
	QFIT_OVERFLOW,	/* the scale does not fit in f16 */
	QFIT_NONFINITE, /* a NaN or Inf among the values */
} qfit_status;

/* Fit scale and zero point to w[0, n), with the clipping search when clip is set. */
qfit_status shrink_qgroup_fit(const double *w, int64_t n, int bits, bool symmetric, bool clip, qgroup *g);
/* What a failed fit means, for error messages. */
const char *shrink_qfit_reason(qfit_status st);

/* Checks shared by RTN and GPTQ: scheme, sizes and buffers; then finite weights
 * (the message names the first bad row and column). */
shrink_status shrink_quant_check_args(const shrink_qscheme *s, int64_t rows, int64_t cols, const void *w,
				      const uint8_t *qweight, const uint16_t *scales, const uint8_t *zeros,
				      shrink_error *err);
shrink_status shrink_quant_check_finite(const float *w, int64_t rows, int64_t cols, shrink_error *err);

static inline int qgroup_quant(const qgroup *g, int maxq, double w)
{
	if (g->scale == 0)
		return g->zero;
	double q = rint(w / g->scale) + g->zero;
	return q < 0 ? 0 : q > maxq ? maxq : (int)q;
}

static inline double qgroup_dequant(const qgroup *g, int q)
{
	return g->scale * (q - g->zero);
}

/* Group index of column c, and the number of columns of group k. */
static inline int64_t qgroup_of(int group_size, int64_t c)
{
	return group_size ? c / group_size : 0;
}

static inline int64_t qgroup_len(int group_size, int64_t cols, int64_t k)
{
	if (!group_size)
		return cols;
	int64_t left = cols - k * group_size;
	return left < group_size ? left : group_size;
}

#endif
