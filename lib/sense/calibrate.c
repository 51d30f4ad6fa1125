/* calibrate.c: the calibration run (sense.h): parameters into a float32
 * vector, windows, then in turn the layer pass (activation statistics, proxy,
 * loss), Hutchinson traces, each scheme's error and Omega, and the measured
 * KL. Each phase fills its fields of the result; fields a run did not ask for
 * stay NAN. Not here: the math of each phase (their own files), output files
 * (calib_json.c, calib_files.c), reading text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"

#define HUTCH_SEED_MIX 0x9E3779B97F4A7C15ull /* Rademacher stream apart from the window stream */

void shrink_calib_defaults(shrink_calib_params *p)
{
	static const int bits[] = {2, 3, 4, 5, 6, 8};
	memset(p, 0, sizeof *p);
	p->n_samples = 16;
	p->ctx = 256;
	p->hessian = SHRINK_HESSIAN_HUTCHINSON;
	p->hvp = SHRINK_HVP_FORWARD; /* as accurate for traces at half the cost: shrink-calibrate(1) */
	p->hvp_step = 1e-3;
	p->min_iter = 10;
	p->max_iter = 100;
	p->tol = 1e-3;
	p->n_bits = 6;
	memcpy(p->bits, bits, sizeof bits);
	p->group_size = 128;
	p->symmetric = true;
}

int shrink_calib_n_schemes(const shrink_calib_params *p)
{
	return p->n_bits * (p->n_groups > 0 ? p->n_groups : 1);
}

shrink_qscheme shrink_calib_scheme(const shrink_calib_params *p, int i)
{
	int g = p->n_groups > 0 ? p->n_groups : 1;
	shrink_qscheme s = {p->bits[i / g], p->n_groups > 0 ? p->groups[i % g] : p->group_size, p->symmetric};
	return s;
}

static shrink_status check_params(const shrink_calib_params *p, shrink_error *err)
{
	if (p->n_bits < 1 || p->n_bits > SHRINK_CALIB_MAX_SCHEMES)
		return shrink_fail(err, SHRINK_EUSAGE, "calibration: %d candidate bit widths (1..%d)", p->n_bits,
				   SHRINK_CALIB_MAX_SCHEMES);
	if (p->n_groups < 0 || p->n_groups > SHRINK_CALIB_MAX_GROUPS)
		return shrink_fail(err, SHRINK_EUSAGE, "calibration: %d candidate group sizes (0..%d)", p->n_groups,
				   SHRINK_CALIB_MAX_GROUPS);
	for (int b = 0; b < shrink_calib_n_schemes(p); b++) {
		shrink_qscheme s = sense_scheme(p, b);
		shrink_status st = shrink_qscheme_check(&s, s.group_size ? s.group_size : 1, err);
		if (st)
			return st;
	}
	if (!(p->hvp_step > 0))
		return shrink_fail(err, SHRINK_EUSAGE, "calibration: Hessian-vector step %g", p->hvp_step);
	return SHRINK_OK;
}

static shrink_status tensors_init(sense_run *r, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	shrink_calibration *out = r->out;
	out->n_tensors = r->lay.n;
	out->n_params = r->lay.n_params;
	out->tensors = calloc((size_t)r->lay.n, sizeof *out->tensors);
	if (!out->tensors)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < r->lay.n; i++) {
		const shrink_param *q = &r->lay.params[i];
		shrink_tensor_sense *t = &out->tensors[i];
		snprintf(t->name, sizeof t->name, "%s", q->name);
		t->rows = q->rows, t->cols = q->cols, t->n_params = q->numel;
		t->trace = t->trace_se = NAN;
		if (q->cols == 0)
			continue;
		if (!(t->schemes = calloc((size_t)shrink_calib_n_schemes(p), sizeof *t->schemes)))
			return shrink_fail(err, SHRINK_EIO, "out of memory");
		for (int b = 0; b < shrink_calib_n_schemes(p); b++) {
			shrink_qscheme s = sense_scheme(p, b);
			shrink_scheme_sense *e = &t->schemes[b];
			e->bits = s.bits, e->group_size = s.group_size;
			e->size_bits = (int64_t)shrink_qmatrix_bytes(&s, q->rows, q->cols) * 8;
			e->dw_sq = e->omega = e->proxy = e->kl = NAN;
		}
	}
	return SHRINK_OK;
}

static void hutch_progress(void *user, int done, int total)
{
	sense_progress(user, "hutchinson", done, total);
}

static shrink_status run_hutchinson(sense_run *r, shrink_fd_hvp *h, shrink_trace *traces, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	int64_t *start = malloc(((size_t)r->lay.n + 1) * sizeof *start);
	if (!start)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < r->lay.n; i++)
		start[i] = r->lay.params[i].offset;
	start[r->lay.n] = r->lay.n_params;
	shrink_hutch_params hp = {p->min_iter, p->max_iter, p->tol, p->seed ^ HUTCH_SEED_MIX, hutch_progress, r};
	shrink_status st = shrink_hutchinson(r->lay.n_params, r->lay.n, start, shrink_fd_hvp_apply, h, &hp, traces,
					     &r->out->hutch_iterations, err);
	free(start);
	return st;
}

shrink_status sense_trace_pass(sense_run *r, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	shrink_window_loss wl = {r->train, r->windows, p->n_samples, p->ctx, 0};
	double eps = shrink_hvp_step(r->theta, r->lay.n_params, p->hvp_step);
	shrink_fd_hvp h;
	shrink_trace *traces = malloc((size_t)r->lay.n * sizeof *traces);
	shrink_status st = traces ? shrink_fd_hvp_init(&h, shrink_window_grad, &wl, r->theta, r->lay.n_params, p->hvp,
							eps, err)
				  : shrink_fail(err, SHRINK_EIO, "out of memory");
	if (st) {
		free(traces);
		return st;
	}
	st = run_hutchinson(r, &h, traces, err);
	for (int i = 0; !st && i < r->lay.n; i++) {
		shrink_tensor_sense *t = &r->out->tensors[i];
		t->trace = traces[i].trace, t->trace_se = traces[i].se;
		t->iterations = traces[i].iterations, t->converged = traces[i].converged;
	}
	r->out->hvp_eps = eps;
	shrink_fd_hvp_free(&h);
	free(traces);
	return st;
}

/* ||Q_b(W) - W||^2 and Omega for every 2-D tensor and scheme. */
static shrink_status scheme_pass(sense_run *r, shrink_error *err)
{
	int64_t max_numel = 0;
	for (int i = 0; i < r->lay.n; i++)
		max_numel = r->lay.params[i].numel > max_numel ? r->lay.params[i].numel : max_numel;
	float *wq = malloc((size_t)max_numel * sizeof *wq);
	shrink_status st = wq ? SHRINK_OK : shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; !st && i < r->lay.n; i++) {
		const shrink_param *q = &r->lay.params[i];
		shrink_tensor_sense *t = &r->out->tensors[i];
		for (int b = 0; !st && q->cols > 0 && b < shrink_calib_n_schemes(r->p); b++) {
			shrink_qscheme s = sense_scheme(r->p, b);
			if ((st = sense_qdq(r->theta + q->offset, q->rows, q->cols, &s, wq, err))) {
				shrink_fail_prefix(err, "tensor '%s': ", q->name);
				break;
			}
			t->schemes[b].dw_sq = sense_sq_diff(wq, r->theta + q->offset, q->numel);
			t->schemes[b].omega = t->trace / (double)q->numel * t->schemes[b].dw_sq;
		}
		sense_progress(r, "schemes", i + 1, r->lay.n);
	}
	free(wq);
	return st;
}

static shrink_status setup(sense_run *r, const int *tokens, size_t n_tokens, shrink_error *err)
{
	const shrink_calib_params *p = r->p;
	shrink_status st = shrink_param_layout_init(r->model, &r->lay, err);
	if (st)
		return st;
	r->theta = malloc((size_t)r->lay.n_params * sizeof *r->theta);
	r->windows = malloc((size_t)p->n_samples * p->ctx * sizeof *r->windows);
	if (!r->theta || !r->windows)
		return shrink_fail(err, SHRINK_EIO, "%s: out of memory for %lld float32 parameters", r->model->path,
				   (long long)r->lay.n_params);
	int bos = r->model->tok ? shrink_tokenizer_bos(r->model->tok) : r->model->config->bos_id;
	if ((st = shrink_param_gather(&r->lay, r->theta, err)))
		return shrink_fail_prefix(err, "%s: ", r->model->path);
	if ((st = shrink_calib_windows(tokens, n_tokens, p->n_samples, p->ctx, bos, p->seed, r->windows, err)) ||
	    (st = tensors_init(r, err)))
		return st;
	return shrink_train_new(&r->lay, p->ctx, p->checkpoint, &r->train, err);
}

static shrink_status run_phases(sense_run *r, shrink_error *err)
{
	shrink_status st = sense_layer_pass(r, err);
	if (!st && r->p->hessian == SHRINK_HESSIAN_HUTCHINSON)
		st = sense_trace_pass(r, err);
	if (!st)
		st = scheme_pass(r, err);
	if (!st && r->p->measure_kl)
		st = sense_kl_pass(r, err);
	return st;
}

shrink_status shrink_calibrate(const shrink_model *m, const int *tokens, size_t n_tokens, const shrink_calib_params *p,
			       shrink_calibration *out, shrink_error *err)
{
	memset(out, 0, sizeof *out);
	shrink_status st = check_params(p, err);
	if (st)
		return st;
	out->params = *p;
	out->n_text_tokens = n_tokens;
	sense_run r = {.model = m, .p = p, .out = out};
	st = setup(&r, tokens, n_tokens, err);
	if (!st)
		st = run_phases(&r, err);
	shrink_train_free(r.train);
	shrink_param_layout_free(&r.lay);
	free(r.theta), free(r.windows);
	if (st)
		shrink_calibration_free(out);
	return st;
}

void shrink_calibration_free(shrink_calibration *c)
{
	for (int i = 0; c->tensors && i < c->n_tensors; i++) {
		free(c->tensors[i].schemes);
		free(c->tensors[i].act_sq_mean);
	}
	free(c->tensors);
	memset(c, 0, sizeof *c);
}
