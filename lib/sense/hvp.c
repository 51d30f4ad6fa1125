/* hvp.c: Hessian-vector products from differences of gradients, for any
 * gradient function (shrink_grad_fn), and the model's loss over calibration
 * windows as one. Central differences cost two gradients and err by O(eps^2)
 * (plus float32 rounding of order ulp(g) / eps); forward differences reuse
 * g(theta) and cost one gradient, with O(eps) error. tests/ref/test_hessian_ref.py
 * measures both against the exact float64 product.
 * Not here: an exact forward-over-reverse product (not needed at the accuracy
 * Hutchinson's estimator resolves), choosing v (hutchinson.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"

double shrink_hvp_step(const float *theta, int64_t n, double rel)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)theta[i] * theta[i];
	double rms = n > 0 ? sqrt(ss / (double)n) : 0;
	return rel * (rms > 0 ? rms : 1);
}

shrink_status shrink_fd_hvp_init(shrink_fd_hvp *h, shrink_grad_fn grad, void *user, const float *theta, int64_t n,
				 shrink_hvp_method method, double eps, shrink_error *err)
{
	memset(h, 0, sizeof *h);
	if (!(eps > 0) || n < 1)
		return shrink_fail(err, SHRINK_EUSAGE, "Hessian-vector product: step %g over %lld parameters", eps,
				   (long long)n);
	h->grad = grad;
	h->user = user;
	h->theta = theta;
	h->n = n;
	h->method = method;
	h->eps = eps;
	h->theta_step = malloc((size_t)n * sizeof *h->theta_step);
	if (method == SHRINK_HVP_FORWARD)
		h->g0 = malloc((size_t)n * sizeof *h->g0);
	if (!h->theta_step || (method == SHRINK_HVP_FORWARD && !h->g0)) {
		shrink_fd_hvp_free(h);
		return shrink_fail(err, SHRINK_EIO, "out of memory for Hessian-vector products (%lld parameters)",
				   (long long)n);
	}
	return SHRINK_OK;
}

void shrink_fd_hvp_free(shrink_fd_hvp *h)
{
	free(h->theta_step);
	free(h->g0);
	memset(h, 0, sizeof *h);
}

static void step_to(float *dst, const float *theta, const float *v, float eps, int64_t n)
{
#pragma omp parallel for if (n > 65536)
	for (int64_t i = 0; i < n; i++)
		dst[i] = theta[i] + eps * v[i];
}

static shrink_status central(shrink_fd_hvp *h, const float *v, float *hv, shrink_error *err)
{
	float inv = (float)(0.5 / h->eps);
	step_to(h->theta_step, h->theta, v, (float)h->eps, h->n);
	shrink_status st = h->grad(h->user, h->theta_step, inv, hv, err);
	if (st)
		return st;
	step_to(h->theta_step, h->theta, v, (float)-h->eps, h->n);
	return h->grad(h->user, h->theta_step, -inv, hv, err);
}

static shrink_status forward(shrink_fd_hvp *h, const float *v, float *hv, shrink_error *err)
{
	shrink_status st;
	if (!h->have_g0) {
		memset(h->g0, 0, (size_t)h->n * sizeof *h->g0);
		if ((st = h->grad(h->user, h->theta, 1.0f, h->g0, err)))
			return st;
		h->have_g0 = true;
	}
	float inv = (float)(1.0 / h->eps);
	step_to(h->theta_step, h->theta, v, (float)h->eps, h->n);
	if ((st = h->grad(h->user, h->theta_step, 1.0f, hv, err)))
		return st;
#pragma omp parallel for if (h->n > 65536)
	for (int64_t i = 0; i < h->n; i++)
		hv[i] = (hv[i] - h->g0[i]) * inv;
	return SHRINK_OK;
}

shrink_status shrink_fd_hvp_apply(void *user, const float *v, float *hv, shrink_error *err)
{
	shrink_fd_hvp *h = user;
	memset(hv, 0, (size_t)h->n * sizeof *hv);
	return h->method == SHRINK_HVP_CENTRAL ? central(h, v, hv, err) : forward(h, v, hv, err);
}

shrink_status shrink_window_grad(void *user, const float *theta, float scale, float *grad, shrink_error *err)
{
	shrink_window_loss *wl = user;
	double sum = 0;
	for (int s = 0; s < wl->n_windows; s++) {
		double loss;
		shrink_status st = shrink_train_grad(wl->train, theta, wl->windows + (size_t)s * wl->ctx, wl->ctx,
						     scale / (float)wl->n_windows, grad, &loss, err);
		if (st)
			return st;
		sum += loss;
	}
	wl->loss = sum / wl->n_windows;
	return SHRINK_OK;
}
