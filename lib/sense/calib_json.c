/* calib_json.c: the calibration file, one JSON object (cJSON), format
 * "shrink-calibration" version 1, documented field by field in
 * shrink-calibrate(1). Fields a run did not measure are null. The text holds
 * no times or host details, so the same inputs give the same bytes.
 * Not here: reading the file back (calib_read.c), the imatrix and Pareto files. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"
#include "shrink/shrink.h"

#define CALIB_VERSION 1

static void add_num(cJSON *o, const char *key, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

static const char *hessian_name(shrink_hessian_mode m)
{
	return m == SHRINK_HESSIAN_HUTCHINSON ? "hutchinson" : m == SHRINK_HESSIAN_PROXY ? "proxy" : "none";
}

static cJSON *hessian_json(const shrink_calibration *c)
{
	const shrink_calib_params *p = &c->params;
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "method", hessian_name(p->hessian));
	if (p->hessian != SHRINK_HESSIAN_HUTCHINSON)
		return h;
	cJSON_AddStringToObject(h, "hvp", p->hvp == SHRINK_HVP_CENTRAL ? "central" : "forward");
	add_num(h, "step", p->hvp_step);
	add_num(h, "eps", c->hvp_eps);
	add_num(h, "tol", p->tol);
	cJSON_AddNumberToObject(h, "min_iter", p->min_iter);
	cJSON_AddNumberToObject(h, "max_iter", p->max_iter);
	cJSON_AddNumberToObject(h, "iterations", c->hutch_iterations);
	cJSON_AddNumberToObject(h, "seed", (double)p->seed);
	cJSON_AddBoolToObject(h, "checkpoint", p->checkpoint);
	return h;
}

static cJSON *schemes_json(const shrink_calib_params *p)
{
	cJSON *a = cJSON_CreateArray();
	for (int b = 0; b < shrink_calib_n_schemes(p); b++) {
		shrink_qscheme q = shrink_calib_scheme(p, b);
		cJSON *s = cJSON_CreateObject();
		cJSON_AddNumberToObject(s, "bits", q.bits);
		cJSON_AddNumberToObject(s, "group_size", q.group_size);
		cJSON_AddBoolToObject(s, "symmetric", p->symmetric);
		cJSON_AddItemToArray(a, s);
	}
	return a;
}

static cJSON *tensor_json(const shrink_tensor_sense *t, int n_schemes)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", t->name);
	cJSON *shape = cJSON_AddArrayToObject(o, "shape");
	cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->rows));
	if (t->cols)
		cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->cols));
	cJSON_AddNumberToObject(o, "n_params", (double)t->n_params);
	add_num(o, "trace", t->trace);
	add_num(o, "trace_se", t->trace_se);
	cJSON_AddNumberToObject(o, "iterations", t->iterations);
	cJSON_AddBoolToObject(o, "converged", t->converged);
	cJSON *a = cJSON_AddArrayToObject(o, "schemes");
	for (int b = 0; t->schemes && b < n_schemes; b++) {
		const shrink_scheme_sense *e = &t->schemes[b];
		cJSON *s = cJSON_CreateObject();
		cJSON_AddNumberToObject(s, "bits", e->bits);
		cJSON_AddNumberToObject(s, "group_size", e->group_size);
		cJSON_AddNumberToObject(s, "size_bits", (double)e->size_bits);
		add_num(s, "dw_sq", e->dw_sq);
		add_num(s, "omega", e->omega);
		add_num(s, "proxy", e->proxy);
		add_num(s, "kl", e->kl);
		cJSON_AddItemToArray(a, s);
	}
	return o;
}

static cJSON *data_json(const shrink_calibration *c, const char *data)
{
	cJSON *d = cJSON_CreateObject();
	if (data)
		cJSON_AddStringToObject(d, "path", data);
	else
		cJSON_AddNullToObject(d, "path");
	cJSON_AddNumberToObject(d, "text_tokens", (double)c->n_text_tokens);
	cJSON_AddNumberToObject(d, "samples", c->params.n_samples);
	cJSON_AddNumberToObject(d, "ctx", c->params.ctx);
	cJSON_AddNumberToObject(d, "seed", (double)c->params.seed);
	if (c->params.measure_kl) /* the GPU's f16 activations give slightly different KLs */
		cJSON_AddStringToObject(d, "kl_device", c->params.device ? c->params.device : "cpu");
	return d;
}

char *shrink_calibration_json(const shrink_calibration *c, const char *model, const char *data)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "format", "shrink-calibration");
	cJSON_AddNumberToObject(j, "version", CALIB_VERSION);
	char generator[64];
	snprintf(generator, sizeof generator, "shrink %s", shrink_version());
	cJSON_AddStringToObject(j, "generator", generator);
	cJSON_AddStringToObject(j, "model", model ? model : "");
	cJSON_AddNumberToObject(j, "n_params", (double)c->n_params);
	cJSON_AddItemToObject(j, "data", data_json(c, data));
	add_num(j, "loss", c->loss);
	cJSON_AddItemToObject(j, "hessian", hessian_json(c));
	cJSON_AddItemToObject(j, "schemes", schemes_json(&c->params));
	cJSON *a = cJSON_AddArrayToObject(j, "tensors");
	for (int i = 0; i < c->n_tensors; i++)
		cJSON_AddItemToArray(a, tensor_json(&c->tensors[i], shrink_calib_n_schemes(&c->params)));
	char *text = cJSON_Print(j);
	cJSON_Delete(j);
	return text;
}

shrink_status shrink_calibration_write(const shrink_calibration *c, const char *model, const char *data,
				       const char *path, shrink_error *err)
{
	char *text = shrink_calibration_json(c, model, data);
	if (!text)
		return shrink_fail(err, SHRINK_EIO, "out of memory writing the calibration file");
	size_t n = strlen(text);
	text[n] = '\n';
	shrink_status st = sense_write_file(path, text, n + 1, err);
	free(text);
	return st;
}
