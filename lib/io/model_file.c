/* model_file.c: open any supported model: detect the format (Hugging Face
 * directory, GGUF, safetensors, llama2.c checkpoint), read it, optionally
 * replace its tokenizer with one from another file, and check that every
 * tensor the config implies is present with the right shape
 * (shrink_check_weights, shared by all readers).
 * It does not parse any format itself (the readers do) and does not build a
 * runnable model (lib/model does). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "shrink/io.h"

#define PATH_CAP 4096

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Make sure a reader's message names the file it was given. */
static shrink_status name_file(shrink_status st, const char *path, shrink_error *err)
{
	if (st && err && !strstr(err->msg, path))
		shrink_fail_prefix(err, "%s: ", path);
	return st;
}

/* The first bytes of a file (fewer when it is shorter); 0 when it cannot be read. */
static size_t read_head(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static int looks_like_safetensors(const uint8_t *head, size_t n_head, size_t n_bytes)
{
	uint64_t len;
	if (n_head < 9)
		return 0;
	memcpy(&len, head, 8);
	return len >= 2 && len <= n_bytes - 8 && head[8] == '{';
}

static int is_container(const char *meta)
{
	cJSON *root = meta ? cJSON_Parse(meta) : NULL;
	int yes = cJSON_GetObjectItemCaseSensitive(root, "shrink.version") != NULL;
	cJSON_Delete(root);
	return yes;
}

/* A lone .safetensors file: our container, or one file of a Hugging Face directory. */
static shrink_status read_safetensors_file(const char *path, shrink_model_file *mf, shrink_error *err)
{
	shrink_tensor_set set = {0};
	char *meta = NULL;
	shrink_status st = shrink_safetensors_load(path, &set, &meta, err);
	if (st)
		return st;
	if (is_container(meta))
		return shrink_read_container(path, &set, meta, mf, err);
	shrink_tensor_set_free(&set);
	free(meta);
	char dir[PATH_CAP], config[PATH_CAP];
	const char *slash = strrchr(path, '/');
	int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) : snprintf(dir, sizeof dir, ".");
	struct stat sb;
	if (n < 0 || n >= PATH_CAP || snprintf(config, sizeof config, "%s/config.json", dir) >= PATH_CAP ||
	    stat(config, &sb) != 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: a .safetensors file needs a config.json beside it (or give its directory)",
				   path);
	return shrink_read_hf_dir(slash == path ? "/" : dir, mf, err);
}

static shrink_status read_file(const char *path, size_t n_bytes, shrink_model_file *mf, shrink_error *err)
{
	uint8_t head[16];
	if (n_bytes == 0)
		return shrink_fail(err, SHRINK_EINPUT, "%s: empty file", path);
	size_t n_head = read_head(path, head, sizeof head);
	if ((n_head >= 4 && memcmp(head, "GGUF", 4) == 0) || ends_with(path, ".gguf"))
		return name_file(shrink_read_gguf_model(path, mf, err), path, err);
	if (ends_with(path, ".safetensors") || looks_like_safetensors(head, n_head, n_bytes))
		return read_safetensors_file(path, mf, err);
	shrink_status st = shrink_read_llama2c(path, mf, err);
	if (st == SHRINK_EINPUT && !ends_with(path, ".bin"))
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: unrecognised model format (not a Hugging Face directory, GGUF, safetensors or "
				   "llama2.c checkpoint)",
				   path);
	return st;
}

static shrink_status read_any(const char *path, shrink_model_file *mf, shrink_error *err)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return shrink_fail(err, errno == ENOENT || errno == ENOTDIR ? SHRINK_EINPUT : SHRINK_EIO, "%s: %s",
				   path, strerror(errno));
	if (S_ISDIR(sb.st_mode))
		return shrink_read_hf_dir(path, mf, err);
	if (!S_ISREG(sb.st_mode))
		return shrink_fail(err, SHRINK_EINPUT, "%s: not a regular file or directory", path);
	return read_file(path, (size_t)sb.st_size, mf, err);
}

static shrink_status vocab_from_gguf(const char *path, shrink_vocab_spec *v, shrink_error *err)
{
	shrink_gguf g;
	shrink_status st = shrink_gguf_open(path, &g, err);
	if (st)
		return st;
	st = shrink_vocab_from_gguf(&g, v, err);
	shrink_gguf_close(&g);
	return st;
}

static shrink_status load_tokenizer(const char *path, shrink_vocab_spec *v, shrink_error *err)
{
	uint8_t head[4];
	shrink_vocab_spec_free(v);
	memset(v, 0, sizeof *v);
	shrink_status st;
	if (read_head(path, head, sizeof head) == 4 && memcmp(head, "GGUF", 4) == 0)
		st = vocab_from_gguf(path, v, err);
	else
		st = shrink_vocab_from_tokenizer_json(path, v, err);
	return name_file(st, path, err);
}

static shrink_status check_vocab(const shrink_model_file *mf, const char *path, const char *tokenizer_path,
				 shrink_error *err)
{
	if (mf->vocab.kind == SHRINK_VOCAB_NONE || mf->vocab.n_tokens <= mf->config.vocab_size)
		return SHRINK_OK;
	return shrink_fail(err, SHRINK_EINPUT, "%s: tokenizer has %d tokens, more than the model's %d",
			   tokenizer_path ? tokenizer_path : path, mf->vocab.n_tokens, mf->config.vocab_size);
}

shrink_status shrink_model_file_open(const char *path, const char *tokenizer_path, shrink_model_file *mf,
				     shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	shrink_status st = read_any(path, mf, err);
	if (!st && tokenizer_path)
		st = load_tokenizer(tokenizer_path, &mf->vocab, err);
	if (!st)
		st = check_vocab(mf, path, tokenizer_path, err);
	if (!st)
		st = shrink_check_weights(mf, path, err);
	if (st)
		shrink_model_file_close(mf);
	return st;
}

void shrink_model_file_close(shrink_model_file *mf)
{
	if (!mf)
		return;
	shrink_vocab_spec_free(&mf->vocab);
	shrink_tensor_set_free(&mf->weights);
	free(mf->container_meta);
	memset(mf, 0, sizeof *mf);
}

/* ---- weight check ---- */

typedef struct {
	const shrink_tensor_set *set;
	const char *what;
	shrink_error *err;
} checker;

static void format_shape(char *buf, size_t cap, int n_dims, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, cap, "[");
	for (int d = 0; d < n_dims && used < cap; d++)
		used += (size_t)snprintf(buf + used, cap - used, d ? ", %lld" : "%lld", (long long)shape[d]);
	if (used < cap)
		snprintf(buf + used, cap - used, "]");
}

static int weight_dtype(shrink_dtype t)
{
	return shrink_dtype_is_float(t) || (t >= SHRINK_Q4_0 && t < SHRINK_DTYPE_COUNT);
}

/* A quantized X.weight in our container is stored as X.qweight (+ scales); its reader checks it. */
static int stored_quantized(const checker *k, const char *name)
{
	char q[SHRINK_NAME_MAX + 8];
	size_t n = strlen(name);
	if (!ends_with(name, ".weight"))
		return 0;
	snprintf(q, sizeof q, "%.*s.qweight", (int)(n - 7), name);
	return shrink_tensor_set_find(k->set, q) != NULL;
}

/* `name` must exist with shape [rows] (cols == 0) or [rows, cols]. */
static shrink_status expect(checker *k, const char *name, int64_t rows, int64_t cols)
{
	const shrink_tensor *t = shrink_tensor_set_find(k->set, name);
	if (!t)
		return stored_quantized(k, name)
			   ? SHRINK_OK
			   : shrink_fail(k->err, SHRINK_EINPUT, "%s: missing tensor '%s'", k->what, name);
	int64_t want[2] = {rows, cols};
	int want_dims = cols ? 2 : 1;
	if (t->n_dims != want_dims || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
		char have[96], need[96];
		format_shape(have, sizeof have, t->n_dims, t->shape);
		format_shape(need, sizeof need, want_dims, want);
		return shrink_fail(k->err, SHRINK_EINPUT, "%s: tensor '%s' has shape %s, the config implies %s",
				   k->what, name, have, need);
	}
	if (!weight_dtype(t->dtype))
		return shrink_fail(k->err, SHRINK_EINPUT, "%s: tensor '%s': dtype %s is not a weight type", k->what,
				   name, shrink_dtype_name(t->dtype));
	if (!t->data || (t->dtype != SHRINK_QPACKED && t->n_bytes != shrink_dtype_bytes(t->dtype, rows * (cols ? cols : 1))))
		return shrink_fail(k->err, SHRINK_EINPUT, "%s: tensor '%s': %zu bytes of data do not fit its shape",
				   k->what, name, t->n_bytes);
	return SHRINK_OK;
}

static shrink_status expect_layer(checker *k, const shrink_config *c, int i, const char *suffix, int64_t rows,
				  int64_t cols)
{
	char name[SHRINK_NAME_MAX];
	snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);
	return expect(k, name, rows, cols);
}

static shrink_status check_layer(checker *k, const shrink_config *c, int i)
{
	const shrink_layer_config *l = &c->layers[i];
	const int64_t dim = c->dim, q = (int64_t)l->n_heads * c->head_dim, kv = (int64_t)l->n_kv_heads * c->head_dim;
	const int64_t ffn = l->ffn_dim;
	shrink_status st = expect_layer(k, c, i, "input_layernorm.weight", dim, 0);
	if (!st)
		st = expect_layer(k, c, i, "self_attn.q_proj.weight", q, dim);
	if (!st)
		st = expect_layer(k, c, i, "self_attn.k_proj.weight", kv, dim);
	if (!st)
		st = expect_layer(k, c, i, "self_attn.v_proj.weight", kv, dim);
	if (!st)
		st = expect_layer(k, c, i, "self_attn.o_proj.weight", dim, q);
	if (!st)
		st = expect_layer(k, c, i, "post_attention_layernorm.weight", dim, 0);
	if (!st)
		st = expect_layer(k, c, i, "mlp.gate_proj.weight", ffn, dim);
	if (!st)
		st = expect_layer(k, c, i, "mlp.up_proj.weight", ffn, dim);
	if (!st)
		st = expect_layer(k, c, i, "mlp.down_proj.weight", dim, ffn);
	if (!st && c->qkv_bias) {
		st = expect_layer(k, c, i, "self_attn.q_proj.bias", q, 0);
		if (!st)
			st = expect_layer(k, c, i, "self_attn.k_proj.bias", kv, 0);
		if (!st)
			st = expect_layer(k, c, i, "self_attn.v_proj.bias", kv, 0);
	}
	return st;
}

shrink_status shrink_check_weights(const shrink_model_file *mf, const char *what, shrink_error *err)
{
	const shrink_config *c = &mf->config;
	checker k = {&mf->weights, what, err};
	shrink_status st = shrink_config_validate(c, what, err);
	if (!st)
		st = expect(&k, "model.embed_tokens.weight", c->vocab_size, c->dim);
	for (int i = 0; !st && i < c->n_layers; i++)
		st = check_layer(&k, c, i);
	if (!st)
		st = expect(&k, "model.norm.weight", c->dim, 0);
	if (!st && !c->tied_embeddings)
		st = expect(&k, "lm_head.weight", c->vocab_size, c->dim);
	return st;
}
