/* plan.c: decide, before touching any weight, what happens to each tensor of
 * a model: quantized with which scheme, or kept in float. Defaults: linear
 * layers at the given scheme, embeddings and the output head at embed_bits,
 * 1-D tensors (norms, biases) in float; then the user's rules, in order. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/quantize.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_matrix(const shrink_tensor *t)
{
	return t->n_dims == 2 && ends_with(t->name, ".weight") &&
	       (shrink_dtype_is_float(t->dtype) || t->dtype == SHRINK_QPACKED);
}

static shrink_status apply_rules(const shrink_quantize_params *p, shrink_plan_entry *e, shrink_error *err)
{
	for (int i = 0; i < p->n_rules; i++) {
		regex_t re;
		if (regcomp(&re, p->rules[i].regex, REG_EXTENDED | REG_NOSUB) != 0)
			return shrink_fail(err, SHRINK_EUSAGE, "bad regular expression '%s'", p->rules[i].regex);
		bool match = regexec(&re, e->name, 0, NULL, 0) == 0;
		regfree(&re);
		if (match) {
			e->quantized = p->rules[i].bits > 0;
			e->scheme.bits = p->rules[i].bits;
		}
	}
	return SHRINK_OK;
}

static shrink_status plan_one(const shrink_tensor *t, const shrink_quantize_params *p, shrink_plan_entry *e,
			      shrink_error *err)
{
	memset(e, 0, sizeof *e);
	snprintf(e->name, sizeof e->name, "%s", t->name);
	e->n_params = shrink_tensor_numel(t);
	e->rows = t->shape[0];
	e->cols = t->n_dims == 2 ? t->shape[1] : 1;
	e->scheme = p->scheme;
	e->quantized = is_matrix(t);
	if (strcmp(t->name, "model.embed_tokens.weight") == 0 || strcmp(t->name, "lm_head.weight") == 0) {
		e->scheme.bits = p->embed_bits;
		e->quantized = e->quantized && p->embed_bits > 0; /* 0: kept in float */
	}
	shrink_status st = is_matrix(t) ? apply_rules(p, e, err) : SHRINK_OK;
	if (st)
		return st;
	if (e->quantized) {
		if ((st = shrink_qscheme_check(&e->scheme, e->cols, err)))
			return shrink_fail_prefix(err, "tensor '%s': ", t->name);
		e->n_bytes = shrink_qmatrix_bytes(&e->scheme, e->rows, e->cols);
	} else {
		e->dtype = t->dtype == SHRINK_QPACKED ? SHRINK_F32 : t->dtype;
		e->n_bytes = shrink_dtype_bytes(e->dtype, e->n_params);
	}
	return SHRINK_OK;
}

shrink_status shrink_quant_plan_make(const shrink_model *m, const shrink_quantize_params *p, shrink_quant_plan *plan,
				     shrink_error *err)
{
	const shrink_tensor_set *set = &m->file.weights;
	memset(plan, 0, sizeof *plan);
	plan->e = calloc(set->n ? set->n : 1, sizeof *plan->e);
	if (!plan->e)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (size_t i = 0; i < set->n; i++) {
		const shrink_tensor *t = &set->tensors[i];
		if (shrink_is_container_part(set, t->name))
			continue;
		shrink_plan_entry *e = &plan->e[plan->n];
		shrink_status st = plan_one(t, p, e, err);
		if (st) {
			shrink_quant_plan_free(plan);
			return st;
		}
		plan->n++;
		plan->total_bytes += e->n_bytes;
		plan->n_params += e->n_params;
	}
	plan->bpw = plan->n_params ? 8.0 * (double)plan->total_bytes / (double)plan->n_params : 0;
	return SHRINK_OK;
}

void shrink_quant_plan_free(shrink_quant_plan *plan)
{
	free(plan->e);
	memset(plan, 0, sizeof *plan);
}
