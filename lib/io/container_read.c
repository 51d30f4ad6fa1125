/* container_read.c: reader of the shrink container (man/shrink-format.5).
 * The file was already parsed as safetensors; here its __metadata__ is
 * interpreted: the normalized config, the tokenizer, the per-tensor CRC-32
 * (every tensor is verified), and the quantization table, from which each
 * quantized X.weight is rebuilt as a SHRINK_QPACKED tensor describing the
 * X.qweight / X.scales / X.zeros arrays (borrowed from the mapping). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shrink/io.h"
#include "shrink/quant.h"

static const char *meta_str(const cJSON *meta, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static shrink_status verify_crcs(const char *path, const shrink_tensor_set *set, const cJSON *meta, shrink_error *err)
{
	const char *s = meta_str(meta, "shrink.crc32");
	cJSON *crcs = s ? cJSON_Parse(s) : NULL;
	shrink_status st = crcs ? SHRINK_OK : shrink_fail(err, SHRINK_EINPUT, "%s: metadata shrink.crc32 missing or invalid", path);
	for (size_t i = 0; i < set->n && !st; i++) {
		const shrink_tensor *t = &set->tensors[i];
		const char *want = meta_str(crcs, t->name);
		if (!want) {
			st = shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s' has no CRC-32 in the metadata", path, t->name);
			break;
		}
		uint32_t got = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), t->data, t->n_bytes);
		char hex[16];
		snprintf(hex, sizeof hex, "%08x", got);
		if (strcmp(hex, want) != 0)
			st = shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': CRC-32 mismatch (file says %s, data gives %s)",
					 path, t->name, want, hex);
	}
	cJSON_Delete(crcs);
	return st;
}

static const shrink_tensor *part(const shrink_tensor_set *set, const char *base, const char *suffix, shrink_dtype dt,
				 int64_t rows, int64_t cols)
{
	char name[SHRINK_NAME_MAX + 16];
	snprintf(name, sizeof name, "%s.%s", base, suffix);
	const shrink_tensor *t = shrink_tensor_set_find(set, name);
	if (!t || t->dtype != dt || t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
		return NULL;
	return t;
}

static shrink_status scheme_of(const cJSON *e, shrink_qscheme *s, int64_t *rows, int64_t *cols)
{
	const cJSON *bits = cJSON_GetObjectItemCaseSensitive(e, "bits"), *group = cJSON_GetObjectItemCaseSensitive(e, "group");
	const cJSON *sym = cJSON_GetObjectItemCaseSensitive(e, "sym"), *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
	if (!cJSON_IsNumber(bits) || !cJSON_IsNumber(group) || !cJSON_IsBool(sym) || cJSON_GetArraySize(shape) != 2)
		return SHRINK_EINPUT;
	const cJSON *r = cJSON_GetArrayItem(shape, 0), *c = cJSON_GetArrayItem(shape, 1);
	if (!cJSON_IsNumber(r) || !cJSON_IsNumber(c) || r->valuedouble < 1 || c->valuedouble < 1 ||
	    r->valuedouble > 1e9 || c->valuedouble > 1e9)
		return SHRINK_EINPUT;
	s->bits = bits->valueint;
	s->group_size = group->valueint;
	s->symmetric = cJSON_IsTrue(sym);
	*rows = (int64_t)r->valuedouble;
	*cols = (int64_t)c->valuedouble;
	return SHRINK_OK;
}

static shrink_status add_quantized(const char *path, shrink_tensor_set *set, const char *name, const cJSON *e,
				   shrink_error *err)
{
	shrink_qscheme s;
	int64_t rows, cols;
	size_t n = strlen(name);
	if (n < 8 || strcmp(name + n - 7, ".weight") != 0 || n >= SHRINK_NAME_MAX || scheme_of(e, &s, &rows, &cols))
		return shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': bad entry in shrink.quant", path, name);
	shrink_status st = shrink_qscheme_check(&s, cols, err);
	if (st)
		return shrink_fail_prefix(err, "%s: tensor '%s': ", path, name);
	char base[SHRINK_NAME_MAX];
	snprintf(base, sizeof base, "%.*s", (int)(n - 7), name);
	int64_t groups = shrink_qscheme_groups(&s, cols);
	const shrink_tensor *q = part(set, base, "qweight", SHRINK_U8, rows, (int64_t)shrink_qrow_bytes(s.bits, cols));
	const shrink_tensor *sc = part(set, base, "scales", SHRINK_F16, rows, groups);
	const shrink_tensor *z = s.symmetric ? NULL : part(set, base, "zeros", SHRINK_U8, rows, groups);
	if (!q || !sc || (!s.symmetric && !z))
		return shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': qweight/scales/zeros missing or of the wrong shape",
				   path, name);
	shrink_qmatrix *m = malloc(sizeof *m);
	if (!m)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	/* take the data pointers now: adding a tensor may move the set's array */
	*m = (shrink_qmatrix){s, rows, cols, q->data, sc->data, z ? z->data : NULL};
	shrink_tensor *t = shrink_tensor_set_add(set, err);
	if (!t) {
		free(m);
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	}
	snprintf(t->name, sizeof t->name, "%s", name);
	t->dtype = SHRINK_QPACKED;
	t->n_dims = 2;
	t->shape[0] = rows;
	t->shape[1] = cols;
	t->data = t->owned = m;
	t->n_bytes = shrink_qmatrix_bytes(&s, rows, cols);
	return SHRINK_OK;
}

static shrink_status add_all_quantized(const char *path, shrink_tensor_set *set, const cJSON *meta, shrink_error *err)
{
	const char *s = meta_str(meta, "shrink.quant");
	if (!s)
		return SHRINK_OK; /* nothing quantized (e.g. a pruned float model) */
	cJSON *quant = cJSON_Parse(s);
	if (!cJSON_IsObject(quant)) {
		cJSON_Delete(quant);
		return shrink_fail(err, SHRINK_EINPUT, "%s: metadata shrink.quant is not a JSON object", path);
	}
	shrink_status st = SHRINK_OK;
	for (const cJSON *e = quant->child; e && !st; e = e->next)
		st = add_quantized(path, set, e->string, e, err);
	cJSON_Delete(quant);
	return st;
}

shrink_status shrink_read_container(const char *path, shrink_tensor_set *set, char *meta, shrink_model_file *mf,
				    shrink_error *err)
{
	cJSON *root = cJSON_Parse(meta);
	const char *version = meta_str(root, "shrink.version"), *config = meta_str(root, "shrink.config");
	const char *tok = meta_str(root, "shrink.tokenizer");
	shrink_status st = SHRINK_OK;
	if (!version || strcmp(version, "1") != 0)
		st = shrink_fail(err, SHRINK_EINPUT, "%s: unsupported shrink container version '%s' (1 is)", path,
				 version ? version : "?");
	else if (!config)
		st = shrink_fail(err, SHRINK_EINPUT, "%s: metadata shrink.config is missing", path);
	if (!st)
		st = shrink_config_from_hf_json(config, path, &mf->config, err);
	if (!st && tok)
		st = shrink_vocab_spec_from_json(tok, path, &mf->vocab, err);
	if (!st)
		st = verify_crcs(path, set, root, err);
	if (!st)
		st = add_all_quantized(path, set, root, err);
	cJSON_Delete(root);
	if (st) {
		shrink_tensor_set_free(set);
		free(meta);
		return st;
	}
	mf->format = SHRINK_FMT_SHRINK;
	mf->weights = *set;
	memset(set, 0, sizeof *set);
	mf->container_meta = meta;
	return SHRINK_OK;
}

bool shrink_is_container_part(const shrink_tensor_set *set, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (!dot || (strcmp(dot, ".qweight") && strcmp(dot, ".scales") && strcmp(dot, ".zeros")))
		return false;
	char w[SHRINK_NAME_MAX + 8];
	snprintf(w, sizeof w, "%.*s.weight", (int)(dot - name), name);
	const shrink_tensor *t = shrink_tensor_set_find(set, w);
	return t && t->dtype == SHRINK_QPACKED;
}
