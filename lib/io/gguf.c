/* gguf.c: GGUF v2/v3 container reader (metadata and tensor infos).
 * Every count and size is checked against the bytes left in the mapping
 * before anything is allocated, so a corrupt header cannot make us allocate
 * or read past the end. It does not interpret metadata (gguf_model.c does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/io.h"

typedef struct {
	const uint8_t *p, *end;
	const char *path;
	shrink_error *err;
} cursor;

static shrink_status truncated(cursor *c, const char *what)
{
	return shrink_fail(c->err, SHRINK_EINPUT, "%s: truncated GGUF file (reading %s)", c->path, what);
}

static int take(cursor *c, void *dst, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return 0;
	memcpy(dst, c->p, n);
	c->p += n;
	return 1;
}

static size_t left(const cursor *c)
{
	return (size_t)(c->end - c->p);
}

static shrink_status read_string(cursor *c, const char **s, size_t *len, const char *what)
{
	uint64_t n;
	if (!take(c, &n, 8) || n > left(c))
		return truncated(c, what);
	if (n > shrink_limits_get()->header_bytes)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: %s: string of %llu bytes exceeds the limit (SHRINK_MAX_HEADER_BYTES)",
				   c->path, what, (unsigned long long)n);
	*s = (const char *)c->p;
	*len = (size_t)n;
	c->p += n;
	return SHRINK_OK;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int scalar_size(shrink_gguf_type t)
{
	switch (t) {
	case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
	case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
	case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
	case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
	default: return 0;
	}
}

static void decode_scalar(shrink_gguf_type t, const uint8_t *p, shrink_gguf_kv *kv)
{
	switch (t) {
	case GGUF_T_UINT8: kv->v.u = p[0]; kv->v.i = p[0]; kv->v.f = p[0]; break;
	case GGUF_T_INT8: kv->v.i = (int8_t)p[0]; kv->v.f = (double)kv->v.i; break;
	case GGUF_T_BOOL: kv->v.b = p[0] != 0; kv->v.i = p[0] != 0; kv->v.f = kv->v.i; break;
	case GGUF_T_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.i = x; kv->v.f = x; break; }
	case GGUF_T_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; kv->v.f = x; break; }
	case GGUF_T_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.i = x; kv->v.f = x; break; }
	case GGUF_T_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; kv->v.f = x; break; }
	case GGUF_T_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
	case GGUF_T_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u = x; kv->v.i = (int64_t)x; kv->v.f = (double)x; break; }
	case GGUF_T_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i = x; kv->v.f = (double)x; break; }
	case GGUF_T_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f = x; break; }
	default: break;
	}
}

static shrink_status read_value(cursor *c, shrink_gguf_kv *kv, const char *key)
{
	uint32_t t;
	if (!take(c, &t, 4))
		return truncated(c, key);
	kv->type = (shrink_gguf_type)t;
	if (t == GGUF_T_STRING) {
		const char *s;
		size_t n;
		shrink_status st = read_string(c, &s, &n, key);
		if (st)
			return st;
		kv->str = dup_n(s, n);
		kv->str_len = n;
		return kv->str ? SHRINK_OK : shrink_fail(c->err, SHRINK_EIO, "out of memory");
	}
	if (t == GGUF_T_ARRAY) {
		uint32_t et;
		uint64_t n;
		if (!take(c, &et, 4) || !take(c, &n, 8))
			return truncated(c, key);
		kv->arr_type = (shrink_gguf_type)et;
		if (n > shrink_limits_get()->array_len)
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: metadata '%s': array of %llu elements exceeds the limit of %llu (SHRINK_MAX_ARRAY)",
					   c->path, key, (unsigned long long)n, (unsigned long long)shrink_limits_get()->array_len);
		kv->arr_n = n;
		if (et == GGUF_T_STRING) {
			/* each string needs at least its 8-byte length */
			if (n > left(c) / 8)
				return shrink_fail(c->err, SHRINK_EINPUT, "%s: metadata '%s': array of %llu strings exceeds the file",
						   c->path, key, (unsigned long long)n);
			kv->arr_str = calloc(n ? n : 1, sizeof(char *));
			if (!kv->arr_str)
				return shrink_fail(c->err, SHRINK_EIO, "out of memory");
			for (uint64_t i = 0; i < n; i++) {
				const char *s;
				size_t len;
				shrink_status st = read_string(c, &s, &len, key);
				if (st)
					return st;
				if (!(kv->arr_str[i] = dup_n(s, len)))
					return shrink_fail(c->err, SHRINK_EIO, "out of memory");
			}
			return SHRINK_OK;
		}
		int es = scalar_size((shrink_gguf_type)et);
		if (!es)
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: metadata '%s': unsupported array element type %u",
					   c->path, key, et);
		if (n > left(c) / (uint64_t)es)
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: metadata '%s': array of %llu elements exceeds the file",
					   c->path, key, (unsigned long long)n);
		kv->arr_data = c->p;
		c->p += n * (uint64_t)es;
		return SHRINK_OK;
	}
	int sz = scalar_size((shrink_gguf_type)t);
	if (!sz)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: metadata '%s': unknown value type %u", c->path, key, t);
	if (left(c) < (size_t)sz)
		return truncated(c, key);
	decode_scalar((shrink_gguf_type)t, c->p, kv);
	c->p += sz;
	return SHRINK_OK;
}

static int ggml_to_dtype(uint32_t t, shrink_dtype *d)
{
	static const int map[] = {
		[0] = SHRINK_F32,   [1] = SHRINK_F16,	[2] = SHRINK_Q4_0,  [3] = SHRINK_Q4_1,	[6] = SHRINK_Q5_0,
		[7] = SHRINK_Q5_1,  [8] = SHRINK_Q8_0,	[10] = SHRINK_Q2_K, [11] = SHRINK_Q3_K, [12] = SHRINK_Q4_K,
		[13] = SHRINK_Q5_K, [14] = SHRINK_Q6_K, [24] = SHRINK_I8,   [25] = SHRINK_I16,	[26] = SHRINK_I32,
		[27] = SHRINK_I64,  [28] = SHRINK_F64,	[30] = SHRINK_BF16,
	};
	if (t >= sizeof map / sizeof map[0] || (map[t] == 0 && t != 0))
		return 0;
	*d = (shrink_dtype)map[t];
	return 1;
}

static shrink_status read_tensor_info(cursor *c, shrink_gguf *g, uint64_t i, uint64_t *offset)
{
	shrink_tensor *t = &g->tensors[i];
	const char *name;
	size_t len;
	shrink_status st = read_string(c, &name, &len, "tensor name");
	if (st)
		return st;
	if (len >= SHRINK_NAME_MAX)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor %llu: name longer than %d bytes", c->path,
				   (unsigned long long)i, SHRINK_NAME_MAX - 1);
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	uint32_t n_dims, type;
	if (!take(c, &n_dims, 4))
		return truncated(c, t->name);
	if (n_dims == 0 || n_dims > SHRINK_MAX_DIMS)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': %u dimensions (1..4 allowed)", c->path, t->name,
				   n_dims);
	t->n_dims = (int)n_dims;
	for (uint32_t d = 0; d < n_dims; d++) {
		uint64_t dim;
		if (!take(c, &dim, 8))
			return truncated(c, t->name);
		if (dim == 0 || dim > (1ull << 40))
			return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': bad dimension %llu", c->path, t->name,
					   (unsigned long long)dim);
		t->shape[n_dims - 1 - d] = (int64_t)dim; /* GGUF lists the fastest dimension first */
	}
	if (!take(c, &type, 4) || !take(c, offset, 8))
		return truncated(c, t->name);
	if (!ggml_to_dtype(type, &t->dtype))
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': unsupported ggml type %u", c->path, t->name,
				   type);
	int64_t numel = shrink_tensor_numel(t);
	t->n_bytes = numel < 0 ? 0 : shrink_dtype_bytes(t->dtype, numel);
	if (t->n_bytes == 0)
		return shrink_fail(c->err, SHRINK_EINPUT, "%s: tensor '%s': shape does not fit type %s", c->path, t->name,
				   shrink_dtype_name(t->dtype));
	return SHRINK_OK;
}

static shrink_status parse(shrink_gguf *g, shrink_error *err)
{
	cursor c = {g->map.addr, (const uint8_t *)g->map.addr + g->map.n_bytes, g->path, err};
	char magic[4];
	uint64_t n_tensors, n_kv;
	if (!take(&c, magic, 4) || memcmp(magic, "GGUF", 4) != 0)
		return shrink_fail(err, SHRINK_EINPUT, "%s: not a GGUF file (bad magic)", g->path);
	if (!take(&c, &g->version, 4))
		return truncated(&c, "version");
	if (g->version != 2 && g->version != 3)
		return shrink_fail(err, SHRINK_EINPUT, "%s: unsupported GGUF version %u (2 and 3 are)", g->path, g->version);
	if (!take(&c, &n_tensors, 8) || !take(&c, &n_kv, 8))
		return truncated(&c, "header");
	/* a kv pair takes >= 8+1+4 bytes, a tensor info >= 8+4+8+4+8 */
	if (n_kv > left(&c) / 13 || n_tensors > left(&c) / 32)
		return shrink_fail(err, SHRINK_EINPUT, "%s: header declares %llu tensors and %llu metadata entries, more than the file holds",
				   g->path, (unsigned long long)n_tensors, (unsigned long long)n_kv);
	const shrink_limits *lim = shrink_limits_get();
	if (n_kv > lim->metadata || n_tensors > lim->tensors)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: header declares %llu tensors and %llu metadata entries, over the limits of %llu and %llu "
				   "(SHRINK_MAX_TENSORS, SHRINK_MAX_METADATA)",
				   g->path, (unsigned long long)n_tensors, (unsigned long long)n_kv,
				   (unsigned long long)lim->tensors, (unsigned long long)lim->metadata);
	g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
	g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
	if (!g->kv || !g->tensors)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	uint64_t alignment = 32;
	for (uint64_t i = 0; i < n_kv; i++) {
		const char *key;
		size_t len;
		shrink_status st = read_string(&c, &key, &len, "metadata key");
		if (st)
			return st;
		g->kv[i].key = dup_n(key, len);
		g->n_kv = i + 1;
		if (!g->kv[i].key)
			return shrink_fail(err, SHRINK_EIO, "out of memory");
		if ((st = read_value(&c, &g->kv[i], g->kv[i].key)))
			return st;
		if (strcmp(g->kv[i].key, "general.alignment") == 0) {
			alignment = (uint64_t)g->kv[i].v.i;
			if (alignment == 0 || alignment % 8 != 0 || alignment > 65536)
				return shrink_fail(err, SHRINK_EINPUT, "%s: bad general.alignment %llu", g->path,
						   (unsigned long long)alignment);
		}
	}
	uint64_t *offsets = calloc(n_tensors ? n_tensors : 1, sizeof *offsets);
	if (!offsets)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	shrink_status st = SHRINK_OK;
	for (uint64_t i = 0; i < n_tensors && !st; i++) {
		st = read_tensor_info(&c, g, i, &offsets[i]);
		g->n_tensors = i + 1;
	}
	size_t header = (size_t)(c.p - (const uint8_t *)g->map.addr);
	size_t data_start = header + (alignment - header % alignment) % alignment;
	for (uint64_t i = 0; i < n_tensors && !st; i++) {
		shrink_tensor *t = &g->tensors[i];
		if (offsets[i] % alignment != 0)
			st = shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': offset %llu not aligned to %llu", g->path, t->name,
					 (unsigned long long)offsets[i], (unsigned long long)alignment);
		else if (data_start > g->map.n_bytes || offsets[i] > g->map.n_bytes - data_start ||
			 t->n_bytes > g->map.n_bytes - data_start - offsets[i])
			st = shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%s': data (%zu bytes at offset %llu) runs past the end of the file",
					 g->path, t->name, t->n_bytes, (unsigned long long)offsets[i]);
		else
			t->data = (const uint8_t *)g->map.addr + data_start + offsets[i];
	}
	free(offsets);
	return st;
}

shrink_status shrink_gguf_open(const char *path, shrink_gguf *g, shrink_error *err)
{
	memset(g, 0, sizeof *g);
	snprintf(g->path, sizeof g->path, "%s", path);
	shrink_status st = shrink_map_file(path, &g->map, err);
	if (st == SHRINK_OK)
		st = parse(g, err);
	if (st)
		shrink_gguf_close(g);
	return st;
}

shrink_status shrink_gguf_open_memory(const void *data, size_t n, const char *name, shrink_gguf *g, shrink_error *err)
{
	memset(g, 0, sizeof *g);
	snprintf(g->path, sizeof g->path, "%s", name);
	shrink_status st = shrink_map_memory(data, n, &g->map, err);
	if (st == SHRINK_OK)
		st = parse(g, err);
	if (st)
		shrink_gguf_close(g);
	return st;
}

void shrink_gguf_close(shrink_gguf *g)
{
	for (uint64_t i = 0; i < g->n_kv; i++) {
		free((char *)g->kv[i].key);
		free((char *)g->kv[i].str);
		if (g->kv[i].arr_str)
			for (uint64_t j = 0; j < g->kv[i].arr_n; j++)
				free(g->kv[i].arr_str[j]);
		free(g->kv[i].arr_str);
	}
	free(g->kv);
	free(g->tensors);
	free(g->strings);
	shrink_unmap(&g->map);
	memset(g, 0, sizeof *g);
}

const shrink_gguf_kv *shrink_gguf_find(const shrink_gguf *g, const char *key)
{
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
			return &g->kv[i];
	return NULL;
}

int shrink_gguf_get_int(const shrink_gguf *g, const char *key, int64_t *out)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(g, key);
	if (!kv || !scalar_size(kv->type) || kv->type == GGUF_T_FLOAT32 || kv->type == GGUF_T_FLOAT64)
		return 0;
	*out = kv->v.i;
	return 1;
}

int shrink_gguf_get_float(const shrink_gguf *g, const char *key, double *out)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(g, key);
	if (!kv || !scalar_size(kv->type) || kv->type == GGUF_T_BOOL)
		return 0;
	*out = kv->v.f;
	return 1;
}

const char *shrink_gguf_get_str(const shrink_gguf *g, const char *key)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(g, key);
	return kv && kv->type == GGUF_T_STRING ? kv->str : NULL;
}

double shrink_gguf_arr_f64(const shrink_gguf_kv *kv, uint64_t i)
{
	shrink_gguf_kv tmp = {0};
	int es = scalar_size(kv->arr_type);
	if (!kv->arr_data || i >= kv->arr_n || !es)
		return 0;
	decode_scalar(kv->arr_type, kv->arr_data + i * (uint64_t)es, &tmp);
	return kv->arr_type == GGUF_T_FLOAT32 || kv->arr_type == GGUF_T_FLOAT64 ? tmp.v.f : (double)tmp.v.i;
}

int64_t shrink_gguf_arr_i64(const shrink_gguf_kv *kv, uint64_t i)
{
	shrink_gguf_kv tmp = {0};
	int es = scalar_size(kv->arr_type);
	if (!kv->arr_data || i >= kv->arr_n || !es)
		return 0;
	decode_scalar(kv->arr_type, kv->arr_data + i * (uint64_t)es, &tmp);
	if (kv->arr_type != GGUF_T_FLOAT32 && kv->arr_type != GGUF_T_FLOAT64)
		return tmp.v.i;
	/* a float outside int64 (or NaN) has no conversion: saturate instead of undefined behaviour */
	if (!(tmp.v.f > -9223372036854775808.0))
		return tmp.v.f != tmp.v.f ? 0 : INT64_MIN;
	return tmp.v.f >= 9223372036854775808.0 ? INT64_MAX : (int64_t)tmp.v.f;
}
