/* objective.c: what each tensor's choice costs under an objective, from the
 * calibration. hawq: Omega = Tr(H)/n * ||dW||^2 (HAWQ-V2); kl: the measured
 * KL with that tensor alone quantized; proxy: tr(dW H dW^T) of the layer's
 * inputs; decoupled (MixDQ): two metrics, the curvature term Omega and the
 * output-distribution term KL, each divided by its sum over tensors of its
 * largest value so that neither dominates by units, then weighted, or one
 * minimised while the other is capped.
 * A Hutchinson trace not resolved from zero (below its standard error, or
 * negative) is taken at its standard error, the size it may plausibly have:
 * taking it as 0 told the allocator such a tensor could be ruined for free,
 * and on a 0.5B model with traces from 16 iterations (55 of 170 negative)
 * hawq then gave them all 2 bits. A KL a hair below 0 from rounding is 0,
 * since a negative cost would reward larger errors.
 * Not here: solving (knapsack_*.c), matching tensors to a plan (allocate.c). */
#include <math.h>
#include <string.h>

#include "alloc_impl.h"

static const char *const names[] = {"hawq", "kl", "proxy", "decoupled"};

const char *shrink_objective_name(shrink_objective o)
{
	return (unsigned)o < 4 ? names[o] : "?";
}

int shrink_objective_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

double alloc_omega(const shrink_tensor_sense *t, const shrink_scheme_sense *e)
{
	if (!isfinite(e->omega) || !isfinite(t->trace))
		return NAN;
	double se = isfinite(t->trace_se) && t->trace_se > 0 ? t->trace_se : 0;
	return (t->trace > se ? t->trace : se) / (double)t->n_params * e->dw_sq;
}

static double metric(const shrink_tensor_sense *t, const shrink_scheme_sense *e, shrink_metric m)
{
	double v = m == SHRINK_METRIC_OMEGA ? alloc_omega(t, e) : m == SHRINK_METRIC_KL ? e->kl : e->proxy;
	return isfinite(v) && v < 0 ? 0 : v;
}

static const char *advice(shrink_metric m)
{
	return m == SHRINK_METRIC_OMEGA ? "Hessian traces (shrink-calibrate --hessian hutchinson)"
	       : m == SHRINK_METRIC_KL	? "measured KL (shrink-calibrate --measure kl)"
					: "the proxy (shrink-calibrate --hessian proxy or hutchinson)";
}

/* out[i * nc + b] = the metric of item i's scheme b; the sum over items of each item's largest value. */
static shrink_status fill(const shrink_calibration *c, const int *tensor, int n, shrink_metric m, double *out,
			  double *norm, shrink_error *err)
{
	int nc = shrink_calib_n_schemes(&c->params);
	*norm = 0;
	for (int i = 0; i < n; i++) {
		const shrink_tensor_sense *t = &c->tensors[tensor[i]];
		double hi = 0;
		for (int b = 0; b < nc; b++) {
			double v = metric(t, &t->schemes[b], m);
			if (!isfinite(v))
				return shrink_fail(err, SHRINK_EINPUT, "tensor '%s': the calibration has no %s",
						   t->name, advice(m));
			out[i * nc + b] = v;
			hi = v > hi ? v : hi;
		}
		*norm += hi;
	}
	if (!(*norm > 0))
		*norm = 1;
	return SHRINK_OK;
}

static shrink_status decoupled(const shrink_calibration *c, const int *tensor, int n, const shrink_alloc_params *p,
			       double *cost, double *capped, double norm[2], shrink_error *err)
{
	int nc = shrink_calib_n_schemes(&c->params);
	double *second = capped;
	shrink_status st = fill(c, tensor, n, SHRINK_METRIC_OMEGA, cost, &norm[0], err);
	if (!st)
		st = fill(c, tensor, n, SHRINK_METRIC_KL, second, &norm[1], err);
	if (st)
		return st;
	bool cap_first = p->cap > 0 && p->weight[0] == 0;
	for (int x = 0; x < n * nc; x++) {
		double a = cost[x] / norm[0], b = second[x] / norm[1];
		cost[x] = p->weight[0] * a + p->weight[1] * b;
		second[x] = cap_first ? a : b; /* the metric whose weight is 0 */
	}
	return SHRINK_OK;
}

shrink_status alloc_costs(const shrink_calibration *c, const int *tensor, int n, const shrink_alloc_params *p,
			  double *cost, double *capped, bool *use_cap, double norm[2], shrink_error *err)
{
	static const shrink_metric single[] = {SHRINK_METRIC_OMEGA, SHRINK_METRIC_KL, SHRINK_METRIC_PROXY};
	norm[0] = norm[1] = 1;
	*use_cap = false;
	if (p->objective != SHRINK_OBJ_DECOUPLED) {
		if ((unsigned)p->objective > 2)
			return shrink_fail(err, SHRINK_EUSAGE, "unknown objective %d", (int)p->objective);
		return fill(c, tensor, n, single[p->objective], cost, &norm[0], err);
	}
	if (!(p->weight[0] >= 0 && p->weight[1] >= 0 && p->weight[0] + p->weight[1] > 0))
		return shrink_fail(err, SHRINK_EUSAGE,
				   "decoupled weights %g,%g: expected two non-negative numbers, not both 0",
				   p->weight[0], p->weight[1]);
	if (p->cap > 0 && p->weight[0] != 0 && p->weight[1] != 0)
		return shrink_fail(err, SHRINK_EUSAGE,
				   "a cap on one metric needs the other weight 0 (--weights 1,0 or 0,1)");
	*use_cap = p->cap > 0;
	return decoupled(c, tensor, n, p, cost, capped, norm, err);
}
