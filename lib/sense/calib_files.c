/* calib_files.c: the side files of a calibration run: the imatrix as
 * safetensors (one F32 [cols] tensor of per-channel mean squares per linear
 * weight, under the weight's name; lib/io's container writer) and the Pareto
 * frontier as TSV, all written crash-safe (shrink_outfile).
 * Not here: the calibration JSON (calib_json.c), reading any of these back. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"
#include "shrink/io.h"

shrink_status sense_write_file(const char *path, const void *data, size_t size, shrink_error *err)
{
	if (strcmp(path, "-") == 0) {
		if (fwrite(data, 1, size, stdout) != size || fflush(stdout))
			return shrink_fail(err, SHRINK_EIO, "standard output: %s", strerror(errno));
		return SHRINK_OK;
	}
	shrink_outfile f;
	shrink_status st = shrink_outfile_open(&f, path, err);
	if (st)
		return st;
	if ((st = shrink_outfile_write(&f, data, size, err)) || (st = shrink_outfile_commit(&f, err))) {
		shrink_outfile_abort(&f);
		return st;
	}
	return SHRINK_OK;
}

/* ---- imatrix (safetensors) ---- */

static char *imatrix_metadata(const shrink_calibration *c)
{
	cJSON *meta = cJSON_CreateObject(), *rows = cJSON_CreateObject();
	for (int i = 0; i < c->n_tensors; i++)
		if (c->tensors[i].act_sq_mean)
			cJSON_AddNumberToObject(rows, c->tensors[i].name, (double)c->tensors[i].act_rows);
	char *rows_text = cJSON_PrintUnformatted(rows);
	cJSON_AddStringToObject(meta, "format", "shrink-imatrix");
	cJSON_AddStringToObject(meta, "version", "1");
	cJSON_AddStringToObject(meta, "rows", rows_text ? rows_text : "{}");
	char *text = cJSON_PrintUnformatted(meta);
	free(rows_text);
	cJSON_Delete(rows);
	cJSON_Delete(meta);
	return text;
}

static size_t imatrix_plan(const shrink_calibration *c, shrink_tensor *plan)
{
	size_t n = 0;
	for (int i = 0; i < c->n_tensors; i++) {
		const shrink_tensor_sense *t = &c->tensors[i];
		if (!t->act_sq_mean)
			continue;
		shrink_tensor *p = &plan[n++];
		memset(p, 0, sizeof *p);
		snprintf(p->name, sizeof p->name, "%s", t->name);
		p->dtype = SHRINK_F32;
		p->n_dims = 1;
		p->shape[0] = t->act_width;
		p->n_bytes = (size_t)t->act_width * sizeof(float);
	}
	return n;
}

shrink_status shrink_imatrix_write(const shrink_calibration *c, const char *path, shrink_error *err)
{
	shrink_tensor *plan = malloc((size_t)c->n_tensors * sizeof *plan);
	char *meta = imatrix_metadata(c);
	if (!plan || !meta) {
		free(plan), free(meta);
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	}
	size_t n = imatrix_plan(c, plan);
	shrink_container_writer *w;
	shrink_status st = shrink_container_begin(path, meta, plan, n, &w, err);
	for (int i = 0; !st && i < c->n_tensors; i++) {
		const shrink_tensor_sense *t = &c->tensors[i];
		if (t->act_sq_mean)
			st =
			    shrink_container_put(w, t->name, t->act_sq_mean, (size_t)t->act_width * sizeof(float), err);
	}
	if (!st)
		st = shrink_container_commit(w, err);
	else if (w)
		shrink_container_abort(w);
	free(plan), free(meta);
	return st;
}

/* ---- Pareto frontier (TSV) ---- */

static double metric_value(const shrink_scheme_sense *e, shrink_metric m)
{
	return m == SHRINK_METRIC_OMEGA ? e->omega : m == SHRINK_METRIC_PROXY ? e->proxy : e->kl;
}

static const char *metric_name(shrink_metric m)
{
	return m == SHRINK_METRIC_OMEGA ? "omega" : m == SHRINK_METRIC_PROXY ? "proxy" : "kl";
}

/* items: the 2-D tensors; sizes and costs n_items x n_schemes. */
static int pareto_items(const shrink_calibration *c, shrink_metric m, int64_t *size, double *cost, int *item,
			int64_t *n_weights)
{
	int n = 0, nb = shrink_calib_n_schemes(&c->params);
	*n_weights = 0;
	for (int i = 0; i < c->n_tensors; i++) {
		const shrink_tensor_sense *t = &c->tensors[i];
		if (!t->schemes)
			continue;
		for (int b = 0; b < nb; b++) {
			size[n * nb + b] = (t->schemes[b].size_bits + 7) / 8;
			cost[n * nb + b] = metric_value(&t->schemes[b], m);
		}
		*n_weights += t->n_params;
		item[n++] = i;
	}
	return n;
}

/* "4", or "4g128" when the candidates have several group sizes */
static void print_scheme(FILE *out, const shrink_calib_params *p, int i, bool comma)
{
	shrink_qscheme s = shrink_calib_scheme(p, i);
	fprintf(out, comma ? ",%d" : "%d", s.bits);
	if (p->n_groups > 1)
		fprintf(out, "g%d", s.group_size);
}

static char *pareto_text(const shrink_calibration *c, shrink_metric m, const shrink_pareto_front *f, const int *item,
			 int64_t n_weights, size_t *len)
{
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out)
		return NULL;
	fprintf(out,
		"# shrink-calibrate Pareto frontier v1: metric %s, %d tensors, %lld weights, %s (unit %lld bytes)\n",
		metric_name(m), f->n_items, (long long)n_weights, f->exact ? "exact" : "sizes rounded up",
		(long long)f->quantum);
	fprintf(out, "# bits column: one entry per tensor, in this order:");
	for (int i = 0; i < f->n_items; i++)
		fprintf(out, "%s%s", i ? "," : " ", c->tensors[item[i]].name);
	fprintf(out, "\nsize_bytes\tbits_per_weight\t%s\tbits\n", metric_name(m));
	for (size_t k = 0; k < f->n; k++) {
		fprintf(out, "%lld\t%.6f\t%.9g\t", (long long)f->size_bytes[k], 8.0 * f->size_bytes[k] / n_weights,
			f->cost[k]);
		for (int i = 0; i < f->n_items; i++)
			print_scheme(out, &c->params, f->choice[k * f->n_items + i], i > 0);
		fputc('\n', out);
	}
	fclose(out);
	return text;
}

shrink_status shrink_pareto_write(const shrink_calibration *c, shrink_metric m, const char *path, shrink_error *err)
{
	int nb = shrink_calib_n_schemes(&c->params);
	int64_t *size = malloc((size_t)c->n_tensors * nb * sizeof *size), n_weights;
	double *cost = malloc((size_t)c->n_tensors * nb * sizeof *cost);
	int *item = malloc((size_t)c->n_tensors * sizeof *item);
	shrink_pareto_front f = {0};
	shrink_status st = !size || !cost || !item ? shrink_fail(err, SHRINK_EIO, "out of memory") : SHRINK_OK;
	int n = st ? 0 : pareto_items(c, m, size, cost, item, &n_weights);
	if (!st && (st = shrink_pareto(n, nb, size, cost, &f, err)))
		shrink_fail_prefix(err, "--pareto (metric %s): ", metric_name(m));
	if (!st) {
		size_t len = 0;
		char *text = pareto_text(c, m, &f, item, n_weights, &len);
		st = text ? sense_write_file(path, text, len, err) : shrink_fail(err, SHRINK_EIO, "out of memory");
		free(text);
	}
	shrink_pareto_free(&f);
	free(size), free(cost), free(item);
	return st;
}
