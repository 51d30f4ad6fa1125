/* container_write.c: writer of the shrink container, a .safetensors file any
 * safetensors reader can open (man/shrink-format.5). The header is laid out
 * from the declared plan before any data, with CRC-32 placeholders of fixed
 * width; commit rewrites the header in place with the real CRCs (same length)
 * and renames the temporary file over the target. Tensors are ordered by
 * element size (8/4/2/1 bytes) so every tensor starts aligned for its dtype
 * without leaving holes in the byte buffer. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shrink/io.h"

struct shrink_container_writer {
	shrink_outfile out;
	shrink_tensor *plan; /* in file order */
	uint64_t *offset;    /* relative to the byte buffer */
	uint32_t *crc;
	bool *done;
	size_t n;
	cJSON *meta;
	uint64_t data_start;
	size_t header_len;
};

static const char *st_dtype(shrink_dtype t)
{
	switch (t) {
	case SHRINK_F32: return "F32";
	case SHRINK_F16: return "F16";
	case SHRINK_BF16: return "BF16";
	case SHRINK_F64: return "F64";
	case SHRINK_I8: return "I8";
	case SHRINK_U8: return "U8";
	case SHRINK_I16: return "I16";
	case SHRINK_U16: return "U16";
	case SHRINK_I32: return "I32";
	case SHRINK_U32: return "U32";
	case SHRINK_I64: return "I64";
	case SHRINK_U64: return "U64";
	case SHRINK_BOOL: return "BOOL";
	default: return NULL;
	}
}

static int elem_size(shrink_dtype t)
{
	int be, bb;
	return shrink_dtype_block(t, &be, &bb) && be == 1 ? bb : 0;
}

static int by_elem_size_desc(const void *a, const void *b)
{
	int x = elem_size(((const shrink_tensor *)a)->dtype), y = elem_size(((const shrink_tensor *)b)->dtype);
	return y - x; /* qsort is not stable: names break ties below */
}

static int plan_order(const void *a, const void *b)
{
	int c = by_elem_size_desc(a, b);
	return c ? c : strcmp(((const shrink_tensor *)a)->name, ((const shrink_tensor *)b)->name);
}

static char *crc_json(const shrink_container_writer *w)
{
	cJSON *o = cJSON_CreateObject();
	char hex[16];
	for (size_t i = 0; i < w->n; i++) {
		snprintf(hex, sizeof hex, "%08x", w->crc[i]);
		cJSON_AddStringToObject(o, w->plan[i].name, hex);
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* The JSON header with the current CRCs, padded with spaces so the buffer starts 8-aligned. */
static char *header_json(const shrink_container_writer *w, size_t *len)
{
	cJSON *root = cJSON_CreateObject(), *meta = cJSON_Duplicate(w->meta, 1);
	char *crcs = crc_json(w);
	cJSON_AddStringToObject(meta, "shrink.crc32", crcs);
	free(crcs);
	cJSON_AddItemToObject(root, "__metadata__", meta);
	for (size_t i = 0; i < w->n; i++) {
		const shrink_tensor *t = &w->plan[i];
		cJSON *e = cJSON_AddObjectToObject(root, t->name), *shape = cJSON_AddArrayToObject(e, "shape");
		cJSON_AddStringToObject(e, "dtype", st_dtype(t->dtype));
		for (int d = 0; d < t->n_dims; d++)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
		cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
		cJSON_AddItemToArray(off, cJSON_CreateNumber((double)w->offset[i]));
		cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(w->offset[i] + t->n_bytes)));
	}
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	size_t n = strlen(s), padded = n + (8 - (8 + n) % 8) % 8;
	char *out = malloc(padded + 1);
	memcpy(out, s, n);
	memset(out + n, ' ', padded - n);
	out[padded] = '\0';
	free(s);
	*len = padded;
	return out;
}

static shrink_status write_header(shrink_container_writer *w, shrink_error *err)
{
	size_t len;
	char *h = header_json(w, &len);
	if (w->header_len && len != w->header_len) {
		free(h);
		return shrink_fail(err, SHRINK_EINTERNAL, "%s: header length changed while writing", w->out.path);
	}
	uint64_t len64 = len;
	shrink_status st = shrink_outfile_pwrite(&w->out, &len64, 8, 0, err);
	if (!st)
		st = shrink_outfile_pwrite(&w->out, h, len, 8, err);
	free(h);
	w->header_len = len;
	w->data_start = 8 + len;
	return st;
}

static shrink_status check_plan(const shrink_tensor *plan, size_t n, const char *path, shrink_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const shrink_tensor *t = &plan[i];
		int64_t numel = shrink_tensor_numel(t);
		if (!st_dtype(t->dtype) || numel < 0 || t->n_bytes != shrink_dtype_bytes(t->dtype, numel))
			return shrink_fail(err, SHRINK_EINTERNAL, "%s: tensor '%s': dtype %s / size cannot be stored", path,
					   t->name, shrink_dtype_name(t->dtype));
		for (size_t j = 0; j < i; j++)
			if (strcmp(plan[j].name, t->name) == 0)
				return shrink_fail(err, SHRINK_EINTERNAL, "%s: tensor '%s' declared twice", path, t->name);
	}
	return SHRINK_OK;
}

shrink_status shrink_container_begin(const char *path, const char *metadata_json, const shrink_tensor *plan, size_t n,
				     shrink_container_writer **out, shrink_error *err)
{
	*out = NULL;
	shrink_status st = check_plan(plan, n, path, err);
	if (st)
		return st;
	shrink_container_writer *w = calloc(1, sizeof *w);
	if (!w)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	w->n = n;
	w->plan = malloc((n ? n : 1) * sizeof *w->plan);
	w->offset = calloc(n ? n : 1, sizeof *w->offset);
	w->crc = calloc(n ? n : 1, sizeof *w->crc);
	w->done = calloc(n ? n : 1, sizeof *w->done);
	w->meta = cJSON_Parse(metadata_json ? metadata_json : "{}");
	w->out.fd = -1;
	if (!w->plan || !w->offset || !w->crc || !w->done || !cJSON_IsObject(w->meta)) {
		shrink_container_abort(w);
		return shrink_fail(err, SHRINK_EINTERNAL, "%s: bad container metadata or out of memory", path);
	}
	memcpy(w->plan, plan, n * sizeof *plan);
	qsort(w->plan, n, sizeof *w->plan, plan_order);
	for (size_t i = 1; i < n; i++)
		w->offset[i] = w->offset[i - 1] + w->plan[i - 1].n_bytes;
	if ((st = shrink_outfile_open(&w->out, path, err)) || (st = write_header(w, err))) {
		shrink_container_abort(w);
		return st;
	}
	*out = w;
	return SHRINK_OK;
}

shrink_status shrink_container_put(shrink_container_writer *w, const char *name, const void *data, size_t n_bytes,
				   shrink_error *err)
{
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->plan[i].name, name) != 0)
			continue;
		if (w->done[i] || n_bytes != w->plan[i].n_bytes)
			return shrink_fail(err, SHRINK_EINTERNAL, "%s: tensor '%s' written twice or with %zu bytes instead of %zu",
					   w->out.path, name, n_bytes, w->plan[i].n_bytes);
		w->crc[i] = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), data, n_bytes);
		w->done[i] = true;
		return shrink_outfile_pwrite(&w->out, data, n_bytes, w->data_start + w->offset[i], err);
	}
	return shrink_fail(err, SHRINK_EINTERNAL, "%s: tensor '%s' was not declared", w->out.path, name);
}

shrink_status shrink_container_commit(shrink_container_writer *w, shrink_error *err)
{
	shrink_status st = SHRINK_OK;
	for (size_t i = 0; i < w->n && !st; i++)
		if (!w->done[i])
			st = shrink_fail(err, SHRINK_EINTERNAL, "%s: tensor '%s' was never written", w->out.path,
					 w->plan[i].name);
	if (!st)
		st = write_header(w, err);
	if (!st)
		st = shrink_outfile_commit(&w->out, err);
	if (st)
		shrink_outfile_abort(&w->out);
	w->out.fd = -1;
	w->out.tmp_path[0] = '\0';
	shrink_container_abort(w);
	return st;
}

void shrink_container_abort(shrink_container_writer *w)
{
	if (!w)
		return;
	if (w->out.fd >= 0 || w->out.tmp_path[0])
		shrink_outfile_abort(&w->out);
	cJSON_Delete(w->meta);
	free(w->plan), free(w->offset), free(w->crc), free(w->done);
	free(w);
}
