/* hf_dir.c: reader for a Hugging Face model directory: config.json,
 * optional generation_config.json (BOS/EOS), weights in model.safetensors or
 * in shards named by model.safetensors.index.json, optional tokenizer.json.
 * Each shard is mapped once; every weight_map entry must be found in the shard
 * it names, and shard names may not leave the directory.
 * It does not read PyTorch .bin weights, and does not check tensor shapes
 * (shrink_check_weights does, for every reader). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "shrink/io.h"

#define PATH_CAP 4096

static shrink_status join(char *out, const char *dir, const char *name, shrink_error *err)
{
	int n = snprintf(out, PATH_CAP, "%s/%s", dir, name);
	if (n < 0 || n >= PATH_CAP)
		return shrink_fail(err, SHRINK_EINPUT, "%s: path too long", dir);
	return SHRINK_OK;
}

static int is_file(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static shrink_status read_json(const char *path, cJSON **out, shrink_error *err)
{
	char *text;
	size_t n_bytes;
	*out = NULL;
	shrink_status st = shrink_read_text(path, &text, &n_bytes, err);
	if (st)
		return st;
	*out = cJSON_ParseWithLength(text, n_bytes);
	free(text);
	if (!*out)
		return shrink_fail(err, SHRINK_EINPUT, "%s: not valid JSON", path);
	if (!cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		return shrink_fail(err, SHRINK_EINPUT, "%s: not a JSON object", path);
	}
	return SHRINK_OK;
}

static shrink_status read_config(const char *dir, shrink_config *c, shrink_error *err)
{
	char path[PATH_CAP];
	shrink_status st = join(path, dir, "config.json", err);
	if (st)
		return st;
	if (!is_file(path))
		return shrink_fail(err, SHRINK_EINPUT, "%s: no config.json (not a Hugging Face model directory)", dir);
	char *text;
	size_t n_bytes;
	if ((st = shrink_read_text(path, &text, &n_bytes, err)))
		return st;
	st = shrink_config_from_hf_json(text, path, c, err);
	free(text);
	return st;
}

/* generation_config.json token ids: an integer or a list (first element); others leave *id alone. */
static shrink_status override_token(const cJSON *root, const char *key, const char *path, int *id, shrink_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	if (cJSON_IsArray(v))
		v = cJSON_GetArrayItem(v, 0);
	if (!v || cJSON_IsNull(v))
		return SHRINK_OK;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
	    (double)(int)v->valuedouble != v->valuedouble)
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"%s\" must be a token id", path, key);
	*id = (int)v->valuedouble;
	return SHRINK_OK;
}

static shrink_status read_generation_config(const char *dir, shrink_config *c, shrink_error *err)
{
	char path[PATH_CAP];
	cJSON *root;
	shrink_status st = join(path, dir, "generation_config.json", err);
	if (st || !is_file(path))
		return st;
	if ((st = read_json(path, &root, err)))
		return st;
	st = override_token(root, "bos_token_id", path, &c->bos_id, err);
	if (!st)
		st = override_token(root, "eos_token_id", path, &c->eos_id, err);
	cJSON_Delete(root);
	return st ? st : shrink_config_validate(c, path, err);
}

/* ---- sharded weights ---- */

typedef struct {
	const char *file;  /* shard file name (owned by the index JSON) */
	size_t first, end; /* its tensors in the set: [first, end) */
} shard;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static shrink_status check_shard_name(const char *index, const cJSON *v, shrink_error *err)
{
	if (!cJSON_IsString(v))
		return shrink_fail(err, SHRINK_EINPUT, "%s: weight_map entry '%.100s' does not name a file", index,
				   v->string);
	const char *s = v->valuestring;
	if (!*s || strchr(s, '/') || strstr(s, "..") || strlen(s) > 255)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: tensor '%.100s': shard name '%.100s' is not a plain file name", index,
				   v->string, s);
	return SHRINK_OK;
}

/* The distinct shard names of the weight map, sorted. */
static shrink_status list_shards(const char *index, const cJSON *map, shard **out, size_t *n_out, shrink_error *err)
{
	size_t n = (size_t)cJSON_GetArraySize(map), k = 0;
	const char **names = calloc(n ? n : 1, sizeof *names);
	*out = calloc(n ? n : 1, sizeof **out);
	if (!names || !*out) {
		free(names);
		return shrink_fail(err, SHRINK_EIO, "%s: out of memory", index);
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, map)
	{
		shrink_status st = check_shard_name(index, v, err);
		if (st) {
			free(names);
			return st;
		}
		names[k++] = v->valuestring;
	}
	qsort(names, n, sizeof *names, cmp_str);
	*n_out = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			(*out)[(*n_out)++].file = names[i];
	free(names);
	return SHRINK_OK;
}

static shrink_status load_shards(const char *dir, shard *shards, size_t n, shrink_tensor_set *set, shrink_error *err)
{
	char path[PATH_CAP];
	for (size_t i = 0; i < n; i++) {
		shrink_status st = join(path, dir, shards[i].file, err);
		shards[i].first = set->n;
		if (!st)
			st = shrink_safetensors_load(path, set, NULL, err);
		if (st)
			return st;
		shards[i].end = set->n;
	}
	return SHRINK_OK;
}

/* A tensor name with its index in the set; sorted by name (the first member) with cmp_str. */
typedef struct {
	const char *name;
	size_t index;
} named;

static const shard *find_shard(const shard *shards, size_t n, const char *file)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(shards[i].file, file) == 0)
			return &shards[i];
	return NULL;
}

static shrink_status check_map(const char *index, const cJSON *map, const shard *shards, size_t n_shards,
			       const shrink_tensor_set *set, shrink_error *err)
{
	named *order = malloc((set->n ? set->n : 1) * sizeof *order);
	if (!order)
		return shrink_fail(err, SHRINK_EIO, "%s: out of memory", index);
	for (size_t i = 0; i < set->n; i++)
		order[i] = (named){set->tensors[i].name, i};
	qsort(order, set->n, sizeof *order, cmp_str);
	shrink_status st = SHRINK_OK;
	const cJSON *v;
	cJSON_ArrayForEach(v, map)
	{
		const shard *s = find_shard(shards, n_shards, v->valuestring);
		named key = {v->string, 0};
		const named *hit = bsearch(&key, order, set->n, sizeof *order, cmp_str);
		if (!hit || hit->index < s->first || hit->index >= s->end) {
			st = shrink_fail(err, SHRINK_EINPUT, "%s: tensor '%.100s' is not in shard '%s'", index,
					 v->string, v->valuestring);
			break;
		}
	}
	free(order);
	return st;
}

static shrink_status load_sharded(const char *dir, const char *index, shrink_tensor_set *set, shrink_error *err)
{
	cJSON *root;
	shard *shards = NULL;
	size_t n_shards = 0;
	shrink_status st = read_json(index, &root, err);
	if (st)
		return st;
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(map) || !map->child)
		st = shrink_fail(err, SHRINK_EINPUT, "%s: no \"weight_map\" object", index);
	if (!st)
		st = list_shards(index, map, &shards, &n_shards, err);
	if (!st)
		st = load_shards(dir, shards, n_shards, set, err);
	if (!st)
		st = check_map(index, map, shards, n_shards, set, err);
	free(shards);
	cJSON_Delete(root);
	return st;
}

static shrink_status load_weights(const char *dir, shrink_tensor_set *set, shrink_error *err)
{
	char path[PATH_CAP];
	shrink_status st = join(path, dir, "model.safetensors.index.json", err);
	if (st)
		return st;
	if (is_file(path))
		return load_sharded(dir, path, set, err);
	if ((st = join(path, dir, "model.safetensors", err)))
		return st;
	if (!is_file(path))
		return shrink_fail(err, SHRINK_EINPUT, "%s: no model.safetensors or model.safetensors.index.json", dir);
	return shrink_safetensors_load(path, set, NULL, err);
}

static shrink_status read_tokenizer(const char *dir, shrink_vocab_spec *v, shrink_error *err)
{
	char path[PATH_CAP];
	shrink_status st = join(path, dir, "tokenizer.json", err);
	v->kind = SHRINK_VOCAB_NONE;
	if (st || !is_file(path))
		return st;
	if ((st = shrink_vocab_from_tokenizer_json(path, v, err)) && !strstr(err->msg, path))
		shrink_fail_prefix(err, "%s: ", path);
	return st;
}

shrink_status shrink_read_hf_dir(const char *dir, shrink_model_file *mf, shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	mf->format = SHRINK_FMT_HF_DIR;
	shrink_status st = read_config(dir, &mf->config, err);
	if (!st)
		st = read_generation_config(dir, &mf->config, err);
	if (!st)
		st = load_weights(dir, &mf->weights, err);
	if (!st)
		st = read_tokenizer(dir, &mf->vocab, err);
	if (st) {
		shrink_model_file_close(mf);
		return st;
	}
	if (!shrink_tensor_set_find(&mf->weights, "lm_head.weight"))
		mf->config.tied_embeddings = true;
	return SHRINK_OK;
}
