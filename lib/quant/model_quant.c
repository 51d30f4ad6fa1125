/* model_quant.c: quantize a whole model into a shrink container. Declares
 * every output tensor from the plan, then writes them one at a time (RTN
 * needs one tensor in memory; GPTQ one layer), then commits the file. The
 * metadata records the config, tokenizer, per-tensor schemes and the recipe
 * (with a CRC-32 digest of the input weights). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kernels.h"
#include "model_quant_impl.h"

const shrink_plan_entry *mq_plan_find(const shrink_quant_plan *plan, const char *name)
{
	for (size_t i = 0; i < plan->n; i++)
		if (strcmp(plan->e[i].name, name) == 0)
			return &plan->e[i];
	return NULL;
}

shrink_status mq_tensor_f32(const shrink_tensor *t, float **out, shrink_error *err)
{
	int64_t n = shrink_tensor_numel(t);
	float *w = malloc((size_t)n * sizeof(float));
	if (!w)
		return shrink_fail(err, SHRINK_EIO, "tensor '%s': out of memory (%lld floats)", t->name, (long long)n);
	shrink_status st = SHRINK_OK;
	if (t->dtype == SHRINK_QPACKED) {
		const shrink_qmatrix *q = t->data;
		for (int64_t r = 0; r < q->rows; r++)
			shrink_qmatrix_row(q, r, w + r * q->cols);
	} else {
		st = shrink_dequant_row(t->dtype, t->data, 0, n, w, err);
	}
	if (st) {
		free(w);
		return shrink_fail_prefix(err, "tensor '%s': ", t->name);
	}
	*out = w;
	return SHRINK_OK;
}

static void part_name(char *out, const char *weight, const char *suffix)
{
	snprintf(out, SHRINK_NAME_MAX, "%.*s.%s", (int)(strlen(weight) - 7), weight, suffix);
}

shrink_status mq_quantize_put(shrink_container_writer *wr, const shrink_plan_entry *e, const float *w, const double *H,
			      const shrink_quantize_params *p, float *deq, shrink_error *err)
{
	int64_t groups = shrink_qscheme_groups(&e->scheme, e->cols);
	size_t rb = shrink_qrow_bytes(e->scheme.bits, e->cols), ng = (size_t)(e->rows * groups);
	uint8_t *q = malloc((size_t)e->rows * rb);
	uint16_t *sc = malloc(ng * 2);
	uint8_t *z = e->scheme.symmetric ? NULL : malloc(ng);
	shrink_status st = !q || !sc || (!e->scheme.symmetric && !z) ? shrink_fail(err, SHRINK_EIO, "out of memory") : SHRINK_OK;
	if (!st)
		st = H ? shrink_quantize_gptq(w, e->rows, e->cols, H, &e->scheme, &p->gptq, q, sc, z, err)
		       : shrink_quantize_rtn(w, e->rows, e->cols, &e->scheme, p->clip_search, q, sc, z, err);
	if (st)
		shrink_fail_prefix(err, "tensor '%s': ", e->name);
	char name[SHRINK_NAME_MAX];
	if (!st)
		part_name(name, e->name, "qweight"), st = shrink_container_put(wr, name, q, (size_t)e->rows * rb, err);
	if (!st)
		part_name(name, e->name, "scales"), st = shrink_container_put(wr, name, sc, ng * 2, err);
	if (!st && z)
		part_name(name, e->name, "zeros"), st = shrink_container_put(wr, name, z, ng, err);
	if (!st && deq) {
		shrink_qmatrix m = {e->scheme, e->rows, e->cols, q, sc, z};
		for (int64_t r = 0; r < e->rows; r++)
			shrink_qmatrix_row(&m, r, deq + r * e->cols);
	}
	free(q), free(sc), free(z);
	return st;
}

static void declare(shrink_tensor *out, const char *name, shrink_dtype dt, int64_t rows, int64_t cols)
{
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->dtype = dt;
	out->n_dims = cols ? 2 : 1;
	out->shape[0] = rows;
	out->shape[1] = cols;
	out->n_bytes = shrink_dtype_bytes(dt, rows * (cols ? cols : 1));
}

/* Output tensors of the plan; returns their count (caller frees *out). */
static size_t declare_all(const shrink_quant_plan *plan, const shrink_model *m, shrink_tensor **out)
{
	shrink_tensor *d = calloc(plan->n * 3 + 1, sizeof *d);
	size_t k = 0;
	char name[SHRINK_NAME_MAX];
	for (size_t i = 0; d && i < plan->n; i++) {
		const shrink_plan_entry *e = &plan->e[i];
		if (!e->quantized) {
			const shrink_tensor *t = shrink_tensor_set_find(&m->file.weights, e->name);
			declare(&d[k], e->name, e->dtype, 0, 0);
			d[k].n_dims = t->n_dims;
			memcpy(d[k].shape, t->shape, sizeof t->shape);
			d[k++].n_bytes = e->n_bytes;
			continue;
		}
		int64_t groups = shrink_qscheme_groups(&e->scheme, e->cols);
		part_name(name, e->name, "qweight");
		declare(&d[k++], name, SHRINK_U8, e->rows, (int64_t)shrink_qrow_bytes(e->scheme.bits, e->cols));
		part_name(name, e->name, "scales");
		declare(&d[k++], name, SHRINK_F16, e->rows, groups);
		if (!e->scheme.symmetric) {
			part_name(name, e->name, "zeros");
			declare(&d[k++], name, SHRINK_U8, e->rows, groups);
		}
	}
	*out = d;
	return k;
}

static char *quant_table(const shrink_quant_plan *plan)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < plan->n; i++) {
		const shrink_plan_entry *e = &plan->e[i];
		if (!e->quantized)
			continue;
		cJSON *x = cJSON_AddObjectToObject(o, e->name), *shape = cJSON_AddArrayToObject(x, "shape");
		cJSON_AddNumberToObject(x, "bits", e->scheme.bits);
		cJSON_AddNumberToObject(x, "group", e->scheme.group_size);
		cJSON_AddBoolToObject(x, "sym", e->scheme.symmetric);
		cJSON_AddStringToObject(x, "layout", "rowbits-le");
		cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->rows));
		cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->cols));
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static uint32_t input_digest(const shrink_model *m)
{
	uLong crc = crc32_z(0, Z_NULL, 0);
	for (size_t i = 0; i < m->file.weights.n; i++) {
		const shrink_tensor *t = &m->file.weights.tensors[i];
		if (t->dtype != SHRINK_QPACKED)
			crc = crc32_z(crc, t->data, t->n_bytes);
	}
	return (uint32_t)crc;
}

static char *metadata(const shrink_model *m, const shrink_quant_plan *plan, const shrink_quantize_params *p)
{
	cJSON *meta = cJSON_CreateObject(), *recipe = p->recipe_json ? cJSON_Parse(p->recipe_json) : NULL;
	if (!cJSON_IsObject(recipe)) {
		cJSON_Delete(recipe);
		recipe = cJSON_CreateObject();
	}
	char hex[16], *s;
	snprintf(hex, sizeof hex, "%08x", input_digest(m));
	cJSON_AddStringToObject(recipe, "input_crc32", hex);
	cJSON_AddStringToObject(recipe, "method", p->method == SHRINK_METHOD_GPTQ ? "gptq" : "rtn");
	cJSON_AddNumberToObject(recipe, "bpw", plan->bpw);
	cJSON_AddStringToObject(meta, "shrink.version", "1");
	s = shrink_config_to_json(&m->file.config);
	cJSON_AddStringToObject(meta, "shrink.config", s ? s : "{}");
	free(s);
	if (m->file.vocab.kind != SHRINK_VOCAB_NONE) {
		s = shrink_vocab_spec_to_json(&m->file.vocab);
		cJSON_AddStringToObject(meta, "shrink.tokenizer", s ? s : "{}");
		free(s);
	}
	s = quant_table(plan);
	cJSON_AddStringToObject(meta, "shrink.quant", s);
	free(s);
	s = cJSON_PrintUnformatted(recipe);
	cJSON_AddStringToObject(meta, "shrink.recipe", s);
	free(s);
	cJSON_Delete(recipe);
	s = cJSON_PrintUnformatted(meta);
	cJSON_Delete(meta);
	return s;
}

static shrink_status write_one(shrink_container_writer *wr, const shrink_model *m, const shrink_plan_entry *e,
			       const shrink_quantize_params *p, shrink_error *err)
{
	const shrink_tensor *t = shrink_tensor_set_find(&m->file.weights, e->name);
	if (!e->quantized && t->dtype != SHRINK_QPACKED)
		return shrink_container_put(wr, e->name, t->data, t->n_bytes, err);
	float *w;
	shrink_status st = mq_tensor_f32(t, &w, err);
	if (st)
		return st;
	st = e->quantized ? mq_quantize_put(wr, e, w, NULL, p, NULL, err)
			  : shrink_container_put(wr, e->name, w, e->n_bytes, err);
	free(w);
	return st;
}

shrink_status shrink_quantize_model(const shrink_model *m, const shrink_quant_plan *plan,
				    const shrink_quantize_params *p, const char *out_path, shrink_error *err)
{
	shrink_tensor *decl;
	size_t n_decl = declare_all(plan, m, &decl);
	char *meta = metadata(m, plan, p);
	bool *written = calloc(plan->n + 1, sizeof *written);
	shrink_container_writer *wr = NULL;
	shrink_status st = decl && meta && written ? shrink_container_begin(out_path, meta, decl, n_decl, &wr, err)
						   : shrink_fail(err, SHRINK_EIO, "out of memory");
	if (!st && p->method == SHRINK_METHOD_GPTQ)
		st = mq_gptq_layers(m, plan, p, wr, written, err);
	for (size_t i = 0; i < plan->n && !st; i++) {
		if (!written[i])
			st = write_one(wr, m, &plan->e[i], p, err);
		if (p->progress && p->method == SHRINK_METHOD_RTN)
			p->progress(p->user, (int)i + 1, (int)plan->n);
	}
	if (!st)
		st = shrink_container_commit(wr, err);
	else if (wr)
		shrink_container_abort(wr);
	free(decl), free(meta), free(written);
	return st;
}
