/* safetensors.c: reader for one .safetensors file (8-byte header length, JSON
 * header, raw tensor bytes). The file is memory-mapped and its tensors are
 * borrowed from the mapping; the set keeps the mapping alive.
 * Everything the header says is checked before it is trusted: header length
 * against the file, each tensor's dtype, shape, byte range and size, duplicate
 * names and overlapping ranges. Nothing is added to the set unless the whole
 * file is valid. Tensors whose bytes are not aligned for their dtype (files
 * whose header was not padded) are copied instead of borrowed. It does not convert dtypes, interpret tensor names or
 * check that the byte ranges cover the data area without holes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "shrink/io.h"

#define MAX_JSON_INT 9007199254740992.0 /* 2^53: larger numbers are not exact in a double */

typedef struct {
	const char *name;
	shrink_dtype dtype;
	int n_dims;
	int64_t shape[SHRINK_MAX_DIMS];
	uint64_t begin, end;
} entry;

typedef struct {
	const char *path;
	uint64_t data_bytes;
	shrink_error *err;
} ctx;

static int parse_dtype(const char *s, shrink_dtype *out)
{
	static const struct {
		const char *name;
		shrink_dtype dtype;
	} names[] = {
	    {"F64", SHRINK_F64}, {"F32", SHRINK_F32}, {"F16", SHRINK_F16}, {"BF16", SHRINK_BF16}, {"I64", SHRINK_I64},
	    {"I32", SHRINK_I32}, {"I16", SHRINK_I16}, {"I8", SHRINK_I8},   {"U8", SHRINK_U8},	  {"BOOL", SHRINK_BOOL},
	    {"U16", SHRINK_U16}, {"U32", SHRINK_U32}, {"U64", SHRINK_U64},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].dtype;
			return 1;
		}
	return 0;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *v, uint64_t *out)
{
	if (!cJSON_IsNumber(v))
		return 0;
	double d = v->valuedouble;
	if (!(d >= 0 && d <= MAX_JSON_INT) || floor(d) != d)
		return 0;
	*out = (uint64_t)d;
	return 1;
}

static shrink_status bad(ctx *c, const char *name, const char *what)
{
	return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': %s", c->path, name, what);
}

static shrink_status parse_shape(ctx *c, const cJSON *shape, entry *e)
{
	if (!cJSON_IsArray(shape))
		return bad(c, e->name, "\"shape\" missing or not an array");
	int n = cJSON_GetArraySize(shape);
	if (n > SHRINK_MAX_DIMS)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': %d dimensions (at most %d allowed)",
				   c->path, e->name, n, SHRINK_MAX_DIMS);
	e->n_dims = n;
	int d = 0;
	const cJSON *dim;
	cJSON_ArrayForEach(dim, shape)
	{
		uint64_t v;
		if (!json_uint(dim, &v))
			return bad(c, e->name, "shape holds a negative, fractional or huge dimension");
		e->shape[d++] = (int64_t)v;
	}
	return SHRINK_OK;
}

static shrink_status parse_offsets(ctx *c, const cJSON *offs, entry *e)
{
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
		return bad(c, e->name, "\"data_offsets\" must be an array [begin, end]");
	if (!json_uint(cJSON_GetArrayItem(offs, 0), &e->begin) || !json_uint(cJSON_GetArrayItem(offs, 1), &e->end))
		return bad(c, e->name, "\"data_offsets\" must hold non-negative integers");
	if (e->begin > e->end || e->end > c->data_bytes)
		return shrink_fail(c->err, SHRINK_EINPUT,
				   "%s: tensor '%s': data_offsets [%llu, %llu] outside the data area (%llu bytes)",
				   c->path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
				   (unsigned long long)c->data_bytes);
	return SHRINK_OK;
}

/* end - begin must equal numel * element size, computed without overflow. */
static shrink_status check_size(ctx *c, const entry *e)
{
	int block_elems, block_bytes;
	shrink_dtype_block(e->dtype, &block_elems, &block_bytes);
	uint64_t n_bytes = (uint64_t)block_bytes;
	for (int d = 0; d < e->n_dims; d++)
		if (__builtin_mul_overflow(n_bytes, (uint64_t)e->shape[d], &n_bytes))
			return bad(c, e->name, "shape too large (byte size overflows)");
	if (n_bytes != e->end - e->begin)
		return shrink_fail(c->err, SHRINK_EINPUT,
				   "%s: tensor '%s': shape and dtype %s need %llu bytes, data_offsets give %llu",
				   c->path, e->name, shrink_dtype_name(e->dtype), (unsigned long long)n_bytes,
				   (unsigned long long)(e->end - e->begin));
	return SHRINK_OK;
}

static shrink_status parse_entry(ctx *c, const cJSON *item, entry *e)
{
	e->name = item->string;
	if (strlen(e->name) >= SHRINK_NAME_MAX)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%.60s...': name longer than %d bytes", c->path,
				   e->name, SHRINK_NAME_MAX - 1);
	if (!cJSON_IsObject(item))
		return bad(c, e->name, "entry is not an object");
	const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
	if (!cJSON_IsString(dtype))
		return bad(c, e->name, "\"dtype\" missing or not a string");
	if (!parse_dtype(dtype->valuestring, &e->dtype))
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': unknown dtype '%.32s'", c->path, e->name,
				   dtype->valuestring);
	shrink_status st = parse_shape(c, cJSON_GetObjectItemCaseSensitive(item, "shape"), e);
	if (!st)
		st = parse_offsets(c, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), e);
	if (!st)
		st = check_size(c, e);
	return st;
}

static shrink_status check_metadata(ctx *c, const cJSON *meta)
{
	if (!cJSON_IsObject(meta))
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: __metadata__ is not an object", c->path);
	const cJSON *v;
	cJSON_ArrayForEach(v, meta)
	{
		if (!cJSON_IsString(v))
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: __metadata__ '%.100s' is not a string", c->path,
					   v->string);
	}
	return SHRINK_OK;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
	const entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Entries are sorted by name first (duplicates), then by begin (overlaps). */
static shrink_status check_layout(ctx *c, entry *e, size_t n, const shrink_tensor_set *set, size_t n_old)
{
	qsort(e, n, sizeof *e, by_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(e[i - 1].name, e[i].name) == 0)
			return bad(c, e[i].name, "appears twice in the header");
	for (size_t i = 0; i < n_old; i++) {
		entry key = {.name = set->tensors[i].name};
		if (bsearch(&key, e, n, sizeof *e, by_name))
			return bad(c, key.name, "already loaded from another file");
	}
	qsort(e, n, sizeof *e, by_begin);
	uint64_t reach = 0;
	const char *last = NULL;
	for (size_t i = 0; i < n; i++) {
		if (e[i].begin == e[i].end)
			continue;
		if (e[i].begin < reach)
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': data overlaps tensor '%s'", c->path,
					   e[i].name, last);
		reach = e[i].end;
		last = e[i].name;
	}
	return SHRINK_OK;
}

static shrink_status parse_entries(ctx *c, const cJSON *root, entry *e, size_t *n)
{
	const cJSON *item;
	*n = 0;
	cJSON_ArrayForEach(item, root)
	{
		if (strcmp(item->string, "__metadata__") == 0) {
			shrink_status st = check_metadata(c, item);
			if (st)
				return st;
			continue;
		}
		shrink_status st = parse_entry(c, item, &e[*n]);
		if (st)
			return st;
		(*n)++;
	}
	return SHRINK_OK;
}

/* Drop the tensors added since n_old (owned copies included). */
static void roll_back(shrink_tensor_set *set, size_t n_old)
{
	for (size_t i = n_old; i < set->n; i++)
		free(set->tensors[i].owned);
	set->n = n_old;
}

/* Borrow the bytes when they are aligned for the dtype; older writers did not
 * pad the header, so misaligned tensors get an aligned owned copy. */
static shrink_status place_data(shrink_tensor *t, const uint8_t *p, shrink_error *err)
{
	int block_elems, block_bytes;
	shrink_dtype_block(t->dtype, &block_elems, &block_bytes);
	t->data = p;
	if (t->n_bytes == 0 || (uintptr_t)p % (uintptr_t)block_bytes == 0)
		return SHRINK_OK;
	if (!(t->owned = malloc(t->n_bytes)))
		return shrink_fail(err, SHRINK_EIO, "tensor '%s': out of memory", t->name);
	memcpy(t->owned, p, t->n_bytes);
	t->data = t->owned;
	return SHRINK_OK;
}

static shrink_status add_tensors(const entry *e, size_t n, const uint8_t *data, shrink_tensor_set *set,
				 shrink_error *err)
{
	for (size_t i = 0; i < n; i++) {
		shrink_tensor *t = shrink_tensor_set_add(set, err);
		if (!t)
			return SHRINK_EIO;
		snprintf(t->name, sizeof t->name, "%s", e[i].name);
		t->dtype = e[i].dtype;
		t->n_dims = e[i].n_dims;
		memcpy(t->shape, e[i].shape, sizeof t->shape);
		t->n_bytes = (size_t)(e[i].end - e[i].begin);
		shrink_status st = place_data(t, data + e[i].begin, err);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status header_length(const char *path, const shrink_mapping *m, uint64_t *len, shrink_error *err)
{
	if (m->n_bytes < 8)
		return shrink_fail(err, SHRINK_EINPUT, "%s: truncated safetensors file (%zu bytes, no header length)",
				   path, m->n_bytes);
	memcpy(len, m->addr, 8);
	uint64_t limit = shrink_limits_get()->header_bytes;
	if (*len > limit)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: safetensors header length %llu exceeds the %llu-byte limit (SHRINK_MAX_HEADER_BYTES)",
				   path, (unsigned long long)*len, (unsigned long long)limit);
	if (*len > m->n_bytes - 8)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: safetensors header length %llu runs past the end of the file (%zu bytes)", path,
				   (unsigned long long)*len, m->n_bytes);
	if (*len < 2)
		return shrink_fail(err, SHRINK_EINPUT, "%s: safetensors header is empty", path);
	return SHRINK_OK;
}

/* The header JSON; NULL when invalid or followed by anything but the padding spaces. */
static cJSON *parse_header(const char *text, size_t len)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	while (root && end < text + len && (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r'))
		end++;
	if (root && end != text + len) {
		cJSON_Delete(root);
		root = NULL;
	}
	return root;
}

static shrink_status export_metadata(const char *path, const cJSON *root, char **metadata, shrink_error *err)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
	if (!meta)
		return SHRINK_OK;
	*metadata = cJSON_PrintUnformatted(meta);
	return *metadata ? SHRINK_OK : shrink_fail(err, SHRINK_EIO, "%s: out of memory", path);
}

/* Validate the parsed header and append its tensors (all or nothing). */
static shrink_status load_header(ctx *c, const cJSON *root, const uint8_t *data, shrink_tensor_set *set)
{
	if (!cJSON_IsObject(root))
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: safetensors header is not a JSON object", c->path);
	size_t cap = (size_t)cJSON_GetArraySize(root), n;
	if (cap > shrink_limits_get()->tensors + 1) /* + __metadata__ */
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: %zu tensors, more than the limit of %llu (SHRINK_MAX_TENSORS)",
				   c->path, cap, (unsigned long long)shrink_limits_get()->tensors);
	entry *e = calloc(cap ? cap : 1, sizeof *e);
	if (!e)
		return shrink_fail(c->err, SHRINK_EIO, "%s: out of memory", c->path);
	size_t n_old = set->n;
	shrink_status st = parse_entries(c, root, e, &n);
	if (!st)
		st = check_layout(c, e, n, set, n_old);
	if (!st)
		st = add_tensors(e, n, data, set, c->err);
	if (st)
		roll_back(set, n_old);
	free(e);
	return st;
}

/* Takes ownership of the mapping m: kept by the set on success, released on failure. */
static shrink_status load_mapped(const char *path, shrink_mapping m, shrink_tensor_set *set, char **metadata,
				 shrink_error *err)
{
	uint64_t len = 0;
	shrink_status st;
	if ((st = header_length(path, &m, &len, err))) {
		shrink_unmap(&m);
		return st;
	}
	const uint8_t *base = m.addr;
	size_t n_old = set->n;
	ctx c = {path, m.n_bytes - 8 - len, err};
	cJSON *root = parse_header((const char *)base + 8, (size_t)len);
	if (!root)
		st = shrink_fail(err, SHRINK_EINPUT, "%s: safetensors header is not valid JSON", path);
	else
		st = load_header(&c, root, base + 8 + len, set);
	if (!st && metadata)
		st = export_metadata(path, root, metadata, err);
	cJSON_Delete(root);
	if (st)
		shrink_unmap(&m);
	else
		st = shrink_tensor_set_keep_mapping(set, m, err); /* unmaps on failure */
	if (st) {
		roll_back(set, n_old); /* no tensor may point into a released mapping */
		if (metadata) {
			free(*metadata);
			*metadata = NULL;
		}
	}
	return st;
}

shrink_status shrink_safetensors_load(const char *path, shrink_tensor_set *set, char **metadata, shrink_error *err)
{
	if (metadata)
		*metadata = NULL;
	shrink_mapping m;
	shrink_status st = shrink_map_file(path, &m, err);
	return st ? st : load_mapped(path, m, set, metadata, err);
}

shrink_status shrink_safetensors_load_memory(const void *data, size_t n, const char *name, shrink_tensor_set *set,
					     char **metadata, shrink_error *err)
{
	if (metadata)
		*metadata = NULL;
	shrink_mapping m;
	shrink_status st = shrink_map_memory(data, n, &m, err);
	return st ? shrink_fail_prefix(err, "%s: ", name) : load_mapped(name, m, set, metadata, err);
}
