/* group.c: fitting one group's scale and zero point (min/max, f16 scale rounded up,
 * optional clipping search by squared error). Used by RTN and GPTQ alike.
 * Deliberately not here: loops over rows, packing, any allocation. */
#include "shrink/tensor.h"

#include "quant_impl.h"

/* The smallest f16 >= scale (scale > 0); 0x7c00 (Inf) when it does not fit. */
static uint16_t f16_ceil(double scale)
{
	uint16_t h = shrink_f32_to_f16((float)scale);
	if (h < 0x7c00 && shrink_f16_to_f32(h) < scale)
		h++;
	return h;
}

/* Scale and zero point for the range [lo, hi], lo <= 0 <= hi. */
static qfit_status fit_range(double lo, double hi, int bits, bool symmetric, qgroup *g)
{
	int maxq = (1 << bits) - 1;
	double amax = -lo > hi ? -lo : hi;
	double scale = symmetric ? 2.0 * amax / maxq : (hi - lo) / maxq;
	g->zero = symmetric ? 1 << (bits - 1) : 0;
	if (scale == 0) {
		g->scale = 0;
		g->scale_f16 = 0;
		return QFIT_OK;
	}
	g->scale_f16 = f16_ceil(scale);
	if (g->scale_f16 >= 0x7c00)
		return QFIT_OVERFLOW;
	g->scale = shrink_f16_to_f32(g->scale_f16);
	if (!symmetric) {
		double z = rint(-lo / g->scale);
		g->zero = z < 0 ? 0 : z > maxq ? maxq : (int)z;
	}
	return QFIT_OK;
}

/* Sum of squared reconstruction errors, in index order (reproducible). */
static double group_sq_error(const double *w, int64_t n, int maxq, const qgroup *g)
{
	double sum = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = w[i] - qgroup_dequant(g, qgroup_quant(g, maxq, w[i]));
		sum += d * d;
	}
	return sum;
}

static void clip_search(const double *w, int64_t n, int bits, bool symmetric, double lo, double hi, qgroup *g)
{
	int maxq = (1 << bits) - 1;
	double best = group_sq_error(w, n, maxq, g);
	for (int i = 1; i < QCLIP_STEPS && best > 0; i++) {
		double r = 1.0 - QCLIP_STEP * i;
		qgroup c;
		fit_range(lo * r, hi * r, bits, symmetric, &c); /* a narrower range cannot overflow */
		double e = group_sq_error(w, n, maxq, &c);
		if (e < best) {
			best = e;
			*g = c;
		}
	}
}

qfit_status shrink_qgroup_fit(const double *w, int64_t n, int bits, bool symmetric, bool clip, qgroup *g)
{
	double lo = 0, hi = 0;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(w[i]))
			return QFIT_NONFINITE;
		lo = w[i] < lo ? w[i] : lo;
		hi = w[i] > hi ? w[i] : hi;
	}
	qfit_status st = fit_range(lo, hi, bits, symmetric, g);
	if (st == QFIT_OK && clip)
		clip_search(w, n, bits, symmetric, lo, hi, g);
	return st;
}

const char *shrink_qfit_reason(qfit_status st)
{
	switch (st) {
	case QFIT_OK:
		return "ok";
	case QFIT_OVERFLOW:
		return "group scale overflows f16 (weights too large)";
	case QFIT_NONFINITE:
		return "non-finite weight";
	}
	return "?";
}
