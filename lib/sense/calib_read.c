/* calib_read.c: the calibration file (shrink-calibrate(1)) read back into a
 * shrink_calibration, for choosing bits (lib/alloc). The file may come from
 * anywhere, so every field is checked before use: types, integer ranges,
 * finite numbers, counts, the candidate schemes forming a bits x groups grid
 * as the writer lays them out, shapes agreeing with parameter counts, and each
 * scheme's size agreeing with what lib/quant would store. Unmeasured numbers
 * (null) become NAN. Fields this reader does not know are ignored (later
 * versions only add fields).
 * Not here: writing the file (calib_json.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"

#define MAX_TENSORS (1 << 20)
#define MAX_DIM ((int64_t)1 << 40)
#define MAX_INT ((double)((int64_t)1 << 53)) /* integers a double holds exactly */

typedef struct {
	const char *name; /* the file, for messages */
	shrink_error *err;
} reader;

static shrink_status bad(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static shrink_status bad(reader *r, const char *fmt, ...)
{
	char text[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: %s", r->name, text);
}

/* An integer field in [lo, hi]. */
static shrink_status get_int(reader *r, const cJSON *o, const char *what, const char *key, double lo, double hi,
			     int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		return bad(r, "%s: \"%s\" missing or not a number", what, key);
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
		return bad(r, "%s: \"%s\" is not an integer in range", what, key);
	*out = (int64_t)d;
	return SHRINK_OK;
}

/* A finite number or null (NAN); absent counts as null. */
static shrink_status get_num(reader *r, const cJSON *o, const char *what, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = NAN;
	if (!v || cJSON_IsNull(v))
		return SHRINK_OK;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return bad(r, "%s: \"%s\" is not a finite number or null", what, key);
	*out = v->valuedouble;
	return SHRINK_OK;
}

static shrink_status get_bool(reader *r, const cJSON *o, const char *what, const char *key, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsBool(v))
		return bad(r, "%s: \"%s\" missing or not true/false", what, key);
	*out = cJSON_IsTrue(v);
	return SHRINK_OK;
}

static const cJSON *get_kind(reader *r, const cJSON *o, const char *key, int (*is)(const cJSON *), const char *what,
			     const char *kind, shrink_status *st)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!is(v)) {
		*st = bad(r, "%s: \"%s\" missing or not %s", what, key, kind);
		return NULL;
	}
	return v;
}

static int is_object(const cJSON *v)
{
	return cJSON_IsObject(v);
}
static int is_array(const cJSON *v)
{
	return cJSON_IsArray(v);
}
static int is_string(const cJSON *v)
{
	return cJSON_IsString(v) && v->valuestring;
}

static shrink_status read_header(reader *r, const cJSON *j, shrink_calibration *c)
{
	shrink_status st = SHRINK_OK;
	const cJSON *f = get_kind(r, j, "format", is_string, "the file", "a string", &st);
	if (st)
		return st;
	if (strcmp(f->valuestring, "shrink-calibration") != 0)
		return bad(r, "%s \"%s\" is not shrink-calibration", "format", f->valuestring);
	int64_t version, n_params;
	if ((st = get_int(r, j, "the file", "version", 1, 1e6, &version)) ||
	    (st = get_int(r, j, "the file", "n_params", 0, MAX_INT, &n_params)) ||
	    (st = get_num(r, j, "the file", "loss", &c->loss)))
		return st;
	c->n_params = n_params;
	const cJSON *d = get_kind(r, j, "data", is_object, "the file", "an object", &st);
	int64_t tokens, samples, ctx, seed;
	if (st || (st = get_int(r, d, "data", "text_tokens", 0, MAX_INT, &tokens)) ||
	    (st = get_int(r, d, "data", "samples", 1, 1 << 30, &samples)) ||
	    (st = get_int(r, d, "data", "ctx", 1, 1 << 30, &ctx)) ||
	    (st = get_int(r, d, "data", "seed", 0, MAX_INT, &seed)))
		return st;
	c->n_text_tokens = (size_t)tokens;
	c->params.n_samples = (int)samples, c->params.ctx = (int)ctx, c->params.seed = (uint64_t)seed;
	return SHRINK_OK;
}

static shrink_status read_hessian(reader *r, const cJSON *j, shrink_calibration *c)
{
	static const char *const names[] = {"hutchinson", "proxy", "none"};
	shrink_status st = SHRINK_OK;
	const cJSON *h = get_kind(r, j, "hessian", is_object, "the file", "an object", &st);
	const cJSON *m = st ? NULL : get_kind(r, h, "method", is_string, "hessian", "a string", &st);
	if (st)
		return st;
	int mode = -1;
	for (int i = 0; i < 3; i++)
		if (strcmp(m->valuestring, names[i]) == 0)
			mode = i;
	if (mode < 0)
		return bad(r, "%s: unknown method \"%s\"", "hessian", m->valuestring);
	c->params.hessian = (shrink_hessian_mode)mode;
	c->hvp_eps = NAN;
	if (c->params.hessian != SHRINK_HESSIAN_HUTCHINSON)
		return SHRINK_OK;
	int64_t min_iter, max_iter, iterations;
	if ((st = get_num(r, h, "hessian", "eps", &c->hvp_eps)) ||
	    (st = get_num(r, h, "hessian", "step", &c->params.hvp_step)) ||
	    (st = get_num(r, h, "hessian", "tol", &c->params.tol)) ||
	    (st = get_int(r, h, "hessian", "min_iter", 0, 1 << 30, &min_iter)) ||
	    (st = get_int(r, h, "hessian", "max_iter", 0, 1 << 30, &max_iter)) ||
	    (st = get_int(r, h, "hessian", "iterations", 0, 1 << 30, &iterations)))
		return st;
	c->params.min_iter = (int)min_iter, c->params.max_iter = (int)max_iter;
	c->hutch_iterations = (int)iterations;
	const cJSON *hvp = cJSON_GetObjectItemCaseSensitive(h, "hvp");
	c->params.hvp =
	    is_string(hvp) && strcmp(hvp->valuestring, "forward") == 0 ? SHRINK_HVP_FORWARD : SHRINK_HVP_CENTRAL;
	const cJSON *cp = cJSON_GetObjectItemCaseSensitive(h, "checkpoint");
	c->params.checkpoint = cJSON_IsTrue(cp);
	return SHRINK_OK;
}

static bool valid_bits(int64_t b)
{
	return b >= 2 && b <= 8 && b != 7;
}

static bool valid_group(int64_t g)
{
	return g == 0 || (g >= 16 && g <= 1024 && (g & (g - 1)) == 0);
}

static shrink_status read_scheme(reader *r, const cJSON *s, int64_t *bits, int64_t *group, bool *sym)
{
	if (!cJSON_IsObject(s))
		return bad(r, "%s: an entry is not an object", "schemes");
	shrink_status st;
	if ((st = get_int(r, s, "schemes", "bits", 2, 8, bits)) ||
	    (st = get_int(r, s, "schemes", "group_size", 0, 1024, group)) ||
	    (st = get_bool(r, s, "schemes", "symmetric", sym)))
		return st;
	if (!valid_bits(*bits) || !valid_group(*group))
		return bad(r, "%s: unsupported bits or group size", "schemes");
	return SHRINK_OK;
}

/* The candidates must be bits x groups, bit-major, each value once, one symmetry. */
static shrink_status read_schemes(reader *r, const cJSON *j, shrink_calib_params *p)
{
	shrink_status st = SHRINK_OK;
	const cJSON *a = get_kind(r, j, "schemes", is_array, "the file", "an array", &st);
	if (st)
		return st;
	int n = cJSON_GetArraySize(a), g = 0;
	if (n < 1 || n > SHRINK_CALIB_MAX_SCHEMES * SHRINK_CALIB_MAX_GROUPS)
		return bad(r, "%s: %s candidate schemes (1..32 expected)", "schemes", n < 1 ? "no" : "too many");
	int64_t bits[SHRINK_CALIB_MAX_SCHEMES * SHRINK_CALIB_MAX_GROUPS],
	    group[SHRINK_CALIB_MAX_SCHEMES * SHRINK_CALIB_MAX_GROUPS];
	bool sym[SHRINK_CALIB_MAX_SCHEMES * SHRINK_CALIB_MAX_GROUPS];
	for (int i = 0; i < n; i++)
		if ((st = read_scheme(r, cJSON_GetArrayItem(a, i), &bits[i], &group[i], &sym[i])))
			return st;
	while (g < n && bits[g] == bits[0])
		g++;
	if (n % g || g > SHRINK_CALIB_MAX_GROUPS || n / g > SHRINK_CALIB_MAX_SCHEMES)
		return bad(r, "%s: the candidates are not every bit width with every group size", "schemes");
	p->n_bits = n / g, p->n_groups = g > 1 ? g : 0, p->group_size = (int)group[0], p->symmetric = sym[0];
	for (int i = 0; i < n; i++) {
		bool ok = bits[i] == bits[i - i % g] && group[i] == group[i % g] && sym[i] == sym[0];
		for (int k = 0; ok && k < i / g; k++) /* bit widths distinct */
			ok = bits[k * g] != bits[i];
		for (int k = 0; ok && k < i % g; k++) /* group sizes distinct */
			ok = group[k] != group[i];
		if (!ok)
			return bad(r, "%s: the candidates are not every bit width with every group size, each once",
				   "schemes");
		if (i % g == 0)
			p->bits[i / g] = (int)bits[i];
		if (i < g && g > 1)
			p->groups[i] = (int)group[i];
	}
	return SHRINK_OK;
}

static shrink_status read_shape(reader *r, const cJSON *o, const char *what, shrink_tensor_sense *t)
{
	shrink_status st = SHRINK_OK;
	const cJSON *a = get_kind(r, o, "shape", is_array, what, "an array", &st);
	if (st)
		return st;
	int n = cJSON_GetArraySize(a);
	if (n < 1 || n > 2)
		return bad(r, "%s: shape has %s dimensions (1 or 2 expected)", what, n < 1 ? "no" : "too many");
	int64_t d[2] = {0, 0};
	for (int i = 0; i < n; i++) {
		const cJSON *v = cJSON_GetArrayItem(a, i);
		if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
		    v->valuedouble < 1 || v->valuedouble > (double)MAX_DIM)
			return bad(r, "%s: a dimension of shape is not a positive integer", what);
		d[i] = (int64_t)v->valuedouble;
	}
	t->rows = d[0], t->cols = d[1];
	int64_t np;
	if ((st = get_int(r, o, what, "n_params", 1, MAX_INT, &np)))
		return st;
	if ((double)d[0] * (double)(n == 2 ? d[1] : 1) != (double)np)
		return bad(r, "%s: n_params does not match the shape", what);
	t->n_params = np;
	return SHRINK_OK;
}

static shrink_status read_tensor_scheme(reader *r, const cJSON *s, const char *what, const shrink_calib_params *p,
					int i, const shrink_tensor_sense *t, shrink_scheme_sense *e)
{
	shrink_qscheme q = shrink_calib_scheme(p, i);
	int64_t bits, group = q.group_size, size_bits;
	shrink_status st;
	if (!cJSON_IsObject(s))
		return bad(r, "%s: a scheme is not an object", what);
	if ((st = get_int(r, s, what, "bits", 2, 8, &bits)))
		return st;
	if (cJSON_GetObjectItemCaseSensitive(s, "group_size") &&
	    (st = get_int(r, s, what, "group_size", 0, 1024, &group)))
		return st;
	if (bits != q.bits || group != q.group_size)
		return bad(r, "%s: schemes are not in the order of the candidate list", what);
	if ((st = get_int(r, s, what, "size_bits", 1, MAX_INT, &size_bits)) ||
	    (st = get_num(r, s, what, "dw_sq", &e->dw_sq)) || (st = get_num(r, s, what, "omega", &e->omega)) ||
	    (st = get_num(r, s, what, "proxy", &e->proxy)) || (st = get_num(r, s, what, "kl", &e->kl)))
		return st;
	shrink_error scratch;
	if (shrink_qscheme_check(&q, t->cols, &scratch) ||
	    (double)shrink_qmatrix_bytes(&q, t->rows, t->cols) * 8 != (double)size_bits)
		return bad(r, "%s: size_bits does not match the shape and scheme", what);
	e->bits = (int)bits, e->group_size = (int)group, e->size_bits = size_bits;
	return SHRINK_OK;
}

static shrink_status read_tensor_schemes(reader *r, const cJSON *o, const char *what, const shrink_calib_params *p,
					 shrink_tensor_sense *t)
{
	shrink_status st = SHRINK_OK;
	const cJSON *a = get_kind(r, o, "schemes", is_array, what, "an array", &st);
	if (st)
		return st;
	int n = cJSON_GetArraySize(a), want = t->cols ? shrink_calib_n_schemes(p) : 0;
	if (n != want)
		return bad(r, "%s: the number of schemes is not that of the candidates (none for vectors)", what);
	if (!n)
		return SHRINK_OK;
	if (!(t->schemes = calloc((size_t)n, sizeof *t->schemes)))
		return shrink_fail(r->err, SHRINK_EIO, "%s: out of memory", r->name);
	for (int i = 0; i < n; i++)
		if ((st = read_tensor_scheme(r, cJSON_GetArrayItem(a, i), what, p, i, t, &t->schemes[i])))
			return st;
	return SHRINK_OK;
}

static shrink_status read_tensor(reader *r, const cJSON *o, int index, const shrink_calib_params *p,
				 shrink_tensor_sense *t)
{
	char what[SHRINK_NAME_MAX + 32];
	snprintf(what, sizeof what, "tensor %d", index);
	if (!cJSON_IsObject(o))
		return bad(r, "%s: not an object", what);
	shrink_status st = SHRINK_OK;
	const cJSON *name = get_kind(r, o, "name", is_string, what, "a string", &st);
	if (st)
		return st;
	size_t len = strlen(name->valuestring);
	if (len == 0 || len >= sizeof t->name)
		return bad(r, "%s: name is empty or too long", what);
	memcpy(t->name, name->valuestring, len + 1);
	snprintf(what, sizeof what, "tensor '%s'", t->name);
	int64_t iterations;
	if ((st = read_shape(r, o, what, t)) || (st = get_num(r, o, what, "trace", &t->trace)) ||
	    (st = get_num(r, o, what, "trace_se", &t->trace_se)) ||
	    (st = get_int(r, o, what, "iterations", 0, 1 << 30, &iterations)) ||
	    (st = get_bool(r, o, what, "converged", &t->converged)))
		return st;
	t->iterations = (int)iterations;
	return read_tensor_schemes(r, o, what, p, t);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names are unique and the parameter counts add up to n_params. */
static shrink_status check_tensors(reader *r, shrink_calibration *c)
{
	const char **names = malloc((size_t)c->n_tensors * sizeof *names);
	if (!names)
		return shrink_fail(r->err, SHRINK_EIO, "%s: out of memory", r->name);
	double total = 0;
	for (int i = 0; i < c->n_tensors; i++) {
		names[i] = c->tensors[i].name;
		total += (double)c->tensors[i].n_params;
	}
	qsort(names, (size_t)c->n_tensors, sizeof *names, name_cmp);
	shrink_status st = SHRINK_OK;
	for (int i = 1; !st && i < c->n_tensors; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			st = bad(r, "tensor '%s' appears twice", names[i]);
	free(names);
	if (!st && total != (double)c->n_params)
		st = bad(r, "%s: the tensors' n_params do not add up to the file's n_params", "tensors");
	return st;
}

static shrink_status read_tensors(reader *r, const cJSON *j, shrink_calibration *c)
{
	shrink_status st = SHRINK_OK;
	const cJSON *a = get_kind(r, j, "tensors", is_array, "the file", "an array", &st);
	if (st)
		return st;
	int n = cJSON_GetArraySize(a);
	if (n < 1 || n > MAX_TENSORS)
		return bad(r, "%s: %s tensors", "tensors", n < 1 ? "no" : "too many");
	if (!(c->tensors = calloc((size_t)n, sizeof *c->tensors)))
		return shrink_fail(r->err, SHRINK_EIO, "%s: out of memory for %d tensors", r->name, n);
	c->n_tensors = n;
	int i = 0;
	for (const cJSON *o = a->child; !st && o; o = o->next, i++)
		st = read_tensor(r, o, i, &c->params, &c->tensors[i]);
	for (int k = 0; !st && k < n; k++)
		for (int b = 0; c->tensors[k].schemes && b < shrink_calib_n_schemes(&c->params); b++)
			c->params.measure_kl |= isfinite(c->tensors[k].schemes[b].kl);
	return st ? st : check_tensors(r, c);
}

shrink_status shrink_calibration_parse(const char *json, size_t len, const char *name, shrink_calibration *out,
				       shrink_error *err)
{
	memset(out, 0, sizeof *out);
	shrink_calib_defaults(&out->params);
	reader r = {name ? name : "calibration", err};
	cJSON *j = json ? cJSON_ParseWithLength(json, len) : NULL;
	if (!j)
		return shrink_fail(err, SHRINK_EINPUT, "%s: not valid JSON", r.name);
	shrink_status st = cJSON_IsObject(j) ? SHRINK_OK : bad(&r, "%s is not a JSON object", "the file");
	if (!st && !(st = read_header(&r, j, out)) && !(st = read_hessian(&r, j, out)) &&
	    !(st = read_schemes(&r, j, &out->params)))
		st = read_tensors(&r, j, out);
	cJSON_Delete(j);
	if (st)
		shrink_calibration_free(out);
	return st;
}

shrink_status shrink_calibration_read(const char *path, shrink_calibration *out, shrink_error *err)
{
	char *text = NULL;
	size_t n = 0;
	memset(out, 0, sizeof *out);
	shrink_status st = shrink_read_text(path, &text, &n, err);
	if (!st)
		st = shrink_calibration_parse(text, n, path, out, err);
	free(text);
	return st;
}
