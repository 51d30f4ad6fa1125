/* test_io.c: the model readers on small files written by the test itself:
 * safetensors (valid, and one invalid header per rule), config.json parsing
 * and its round trip, Hugging Face directories (single file, shards, bad
 * indexes, missing or misshapen tensors), llama2.c checkpoints (layout, the
 * Q/K un-permutation, bad headers) and format detection; plus the real
 * stories260K.bin when the shared data folder is present.
 * It does not test GGUF parsing or tokenizers (their own tests do). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "shrink/shrink.h"

/* ---- temp dir and file helpers ---- */

static char tmp[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void make_tmp(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/shrink-test-io-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void remove_tmp(void)
{
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(io, .init = make_tmp, .fini = remove_tmp);

static const char *at(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, 512, "%s/%s", tmp, name);
	return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "cannot write %s", path);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void write_text(const char *path, const char *text)
{
	write_bytes(path, text, strlen(text));
}

static void mkdir_at(const char *name)
{
	cr_assert_eq(mkdir(at(name), 0700), 0);
}

/* A safetensors file with a verbatim header and n_data zero bytes after it. */
static void write_raw_st(const char *path, const char *header, size_t n_data)
{
	uint64_t len = strlen(header);
	size_t n = 8 + len + n_data;
	uint8_t *buf = calloc(1, n);
	memcpy(buf, &len, 8);
	memcpy(buf + 8, header, len);
	write_bytes(path, buf, n);
	free(buf);
}

/* ---- safetensors writer ---- */

typedef struct {
	cJSON *header;
	uint8_t *data;
	size_t n_data;
} st_writer;

static void stw_init(st_writer *w)
{
	w->header = cJSON_CreateObject();
	w->data = NULL;
	w->n_data = 0;
}

static void stw_add(st_writer *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
		    const void *bytes, size_t n)
{
	cJSON *e = cJSON_AddObjectToObject(w->header, name);
	cJSON_AddStringToObject(e, "dtype", dtype);
	cJSON *s = cJSON_AddArrayToObject(e, "shape");
	for (int d = 0; d < n_dims; d++)
		cJSON_AddItemToArray(s, cJSON_CreateNumber((double)shape[d]));
	cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
	cJSON_AddItemToArray(o, cJSON_CreateNumber((double)w->n_data));
	cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(w->n_data + n)));
	w->data = realloc(w->data, w->n_data + n + 1);
	memcpy(w->data + w->n_data, bytes, n);
	w->n_data += n;
}

/* F32 [rows] (cols == 0) or [rows, cols], element i = seed + i / 1024. */
static void stw_add_f32(st_writer *w, const char *name, int64_t rows, int64_t cols, float seed)
{
	int64_t n = rows * (cols ? cols : 1), shape[2] = {rows, cols};
	float *v = malloc((size_t)n * sizeof *v + 1);
	for (int64_t i = 0; i < n; i++)
		v[i] = seed + (float)i / 1024;
	stw_add(w, name, "F32", cols ? 2 : 1, shape, v, (size_t)n * sizeof *v);
	free(v);
}

static void stw_write(st_writer *w, const char *path, const char *metadata_json)
{
	if (metadata_json)
		cJSON_AddItemToObject(w->header, "__metadata__", cJSON_Parse(metadata_json));
	char *h = cJSON_PrintUnformatted(w->header);
	uint64_t len = strlen(h), padded = (len + 7) / 8 * 8; /* as the reference writer does: data starts aligned */
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(&padded, 8, 1, f);
	fwrite(h, 1, len, f);
	fwrite("       ", 1, padded - len, f);
	fwrite(w->data, 1, w->n_data, f);
	fclose(f);
	free(h);
	free(w->data);
	cJSON_Delete(w->header);
}

/* ---- tiny Hugging Face model ---- */

typedef struct {
	int dim, n_layers, n_heads, n_kv_heads, ffn, vocab, head_dim;
	bool lm_head, bias;
	const char *model_type;
} tiny;

static const tiny TINY = {8, 2, 2, 1, 12, 16, 4, true, false, "llama"};

static void tiny_config(const tiny *t, const char *path, const char *extra)
{
	char buf[2048];
	snprintf(
	    buf, sizeof buf,
	    "{\"model_type\": \"%s\", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
	    "\"num_key_value_heads\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, \"head_dim\": %d, "
	    "\"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 64, \"bos_token_id\": 1, \"eos_token_id\": 2%s}",
	    t->model_type, t->dim, t->n_layers, t->n_heads, t->n_kv_heads, t->ffn, t->vocab, t->head_dim,
	    extra ? extra : "");
	write_text(path, buf);
}

/* Layer tensors go to w[l % n_w]; the rest to w[0] (embedding) and w[n_w - 1] (norm, lm_head). */
static void tiny_weights(const tiny *t, st_writer *w, int n_w, const char *skip)
{
	const int64_t dim = t->dim, q = (int64_t)t->n_heads * t->head_dim, kv = (int64_t)t->n_kv_heads * t->head_dim;
	const struct {
		const char *suffix;
		int64_t rows, cols;
		bool bias;
	} parts[] = {
	    {"input_layernorm.weight", dim, 0, 0},    {"self_attn.q_proj.weight", q, dim, 0},
	    {"self_attn.k_proj.weight", kv, dim, 0},  {"self_attn.v_proj.weight", kv, dim, 0},
	    {"self_attn.o_proj.weight", dim, q, 0},   {"post_attention_layernorm.weight", dim, 0, 0},
	    {"mlp.gate_proj.weight", t->ffn, dim, 0}, {"mlp.up_proj.weight", t->ffn, dim, 0},
	    {"mlp.down_proj.weight", dim, t->ffn, 0}, {"self_attn.q_proj.bias", q, 0, 1},
	    {"self_attn.k_proj.bias", kv, 0, 1},      {"self_attn.v_proj.bias", kv, 0, 1},
	};
	char name[SHRINK_NAME_MAX];
	if (!skip || strcmp(skip, "model.embed_tokens.weight"))
		stw_add_f32(&w[0], "model.embed_tokens.weight", t->vocab, dim, 0);
	for (int l = 0; l < t->n_layers; l++)
		for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
			snprintf(name, sizeof name, "model.layers.%d.%s", l, parts[i].suffix);
			if ((!parts[i].bias || t->bias) && (!skip || strcmp(skip, name)))
				stw_add_f32(&w[l % n_w], name, parts[i].rows, parts[i].cols, (float)(l * 100 + i));
		}
	stw_add_f32(&w[n_w - 1], "model.norm.weight", dim, 0, 7);
	if (t->lm_head)
		stw_add_f32(&w[n_w - 1], "lm_head.weight", t->vocab, dim, 9);
}

static void make_hf(const tiny *t, const char *dir, const char *skip)
{
	char path[512];
	st_writer w;
	mkdir_at(dir);
	snprintf(path, sizeof path, "%s/config.json", at(dir));
	tiny_config(t, path, NULL);
	stw_init(&w);
	tiny_weights(t, &w, 1, skip);
	snprintf(path, sizeof path, "%s/model.safetensors", at(dir));
	stw_write(&w, path, NULL);
}

static void expect_fail(shrink_status st, const shrink_error *err, const char *want1, const char *want2)
{
	cr_assert_eq(st, SHRINK_EINPUT, "status %d, message: %s", st, err->msg);
	cr_assert_not_null(strstr(err->msg, want1), "'%s' not in: %s", want1, err->msg);
	if (want2)
		cr_assert_not_null(strstr(err->msg, want2), "'%s' not in: %s", want2, err->msg);
}

/* ---- safetensors ---- */

Test(io, safetensors_valid)
{
	st_writer w;
	int64_t shape_bf16[1] = {4}, shape_scalar[1] = {0};
	uint16_t bf16[4] = {0x3f80, 0x4000, 0xbf80, 0};
	stw_init(&w);
	stw_add_f32(&w, "a", 2, 3, 1);
	stw_add(&w, "b", "BF16", 1, shape_bf16, bf16, sizeof bf16);
	stw_add(&w, "scalar", "I64", 0, shape_scalar, "\1\0\0\0\0\0\0\0", 8);
	stw_add(&w, "empty", "U8", 1, shape_scalar, "", 0);
	stw_write(&w, at("ok.safetensors"), "{\"format\": \"pt\"}");

	shrink_tensor_set set = {0};
	shrink_error err = {0};
	char *meta;
	cr_assert_eq(shrink_safetensors_load(at("ok.safetensors"), &set, &meta, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(set.n, 4);
	cr_assert_eq(set.n_maps, 1);
	cr_assert_null(set.tensors[0].owned, "aligned data is borrowed");
	const shrink_tensor *a = shrink_tensor_set_find(&set, "a"), *b = shrink_tensor_set_find(&set, "b");
	cr_assert(a && b);
	cr_assert(a->dtype == SHRINK_F32 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3);
	cr_assert_eq(a->n_bytes, 24);
	cr_assert_float_eq(((const float *)a->data)[5], 1 + 5.0f / 1024, 1e-7);
	cr_assert(b->dtype == SHRINK_BF16 && b->n_bytes == 8);
	cr_assert_float_eq(shrink_bf16_to_f32(((const uint16_t *)b->data)[1]), 2.0f, 0);
	cr_assert_eq(shrink_tensor_set_find(&set, "scalar")->n_dims, 0);
	cr_assert_eq(shrink_tensor_set_find(&set, "empty")->n_bytes, 0);
	cr_assert_str_eq(meta, "{\"format\":\"pt\"}");
	free(meta);
	shrink_tensor_set_free(&set);
}

/* Criterion copies parameters into another process: strings are stored inline, not as pointers. */
typedef struct {
	char header[320];
	size_t n_data;
	char want1[48], want2[48];
} bad_header;

static const bad_header bad_headers[] = {
    {"{not json", 0, "not valid JSON", ""},
    {"[1, 2]", 0, "not a JSON object", ""},
    {"{} trailing", 0, "not valid JSON", ""},
    {"{\"t\": {\"dtype\": \"F8\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "'t'", "unknown dtype"},
    {"{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'t'", "dtype"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [-1, 4], \"data_offsets\": [0, 16]}}", 16, "'t'", "negative"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "'t'", "fractional"},
    {"{\"t\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1, "'t'", "5 dimensions"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": \"x\", \"data_offsets\": [0, 4]}}", 4, "'t'", "shape"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, "'t'", "outside the data area"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8, "'t'", "outside the data area"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "'t'", "data_offsets"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "'t'", "need 12 bytes"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [100000, 250000], \"data_offsets\": [0, 100000000000]}}", 1000, "'t'",
     "outside the data area"},
    {"{\"t\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", 8, "'t'",
     "overflows"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     12, "'b'", "overlaps tensor 'a'"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8, "'t'", "twice"},
    {"{\"__metadata__\": {\"k\": 3}}", 0, "__metadata__", "'k'"},
    {"{\"__metadata__\": [1]}", 0, "__metadata__", ""},
    {"{\"t\": 5}", 0, "'t'", "not an object"},
};

ParameterizedTestParameters(io, safetensors_bad_header)
{
	return cr_make_param_array(bad_header, bad_headers, sizeof bad_headers / sizeof bad_headers[0]);
}

ParameterizedTest(const bad_header *c, io, safetensors_bad_header, .init = make_tmp, .fini = remove_tmp)
{
	const char *path = at("bad.safetensors");
	write_raw_st(path, c->header, c->n_data);
	shrink_tensor_set set = {0};
	shrink_error err = {0};
	char *meta = (char *)"untouched";
	expect_fail(shrink_safetensors_load(path, &set, &meta, &err), &err, c->want1, c->want2[0] ? c->want2 : NULL);
	cr_assert_not_null(strstr(err.msg, path), "file not named: %s", err.msg);
	cr_assert(set.n == 0 && set.n_maps == 0 && meta == NULL);
}

Test(io, safetensors_unaligned_is_copied)
{
	const char *path = at("odd.safetensors");
	const char *header = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	size_t len = strlen(header);
	uint8_t buf[128];
	float v[2] = {1.5f, -2.25f};
	cr_assert_neq(len % 4, 0);
	memcpy(buf, &(uint64_t){len}, 8);
	memcpy(buf + 8, header, len);
	memcpy(buf + 8 + len, v, sizeof v);
	write_bytes(path, buf, 8 + len + sizeof v);
	shrink_tensor_set set = {0};
	shrink_error err = {0};
	cr_assert_eq(shrink_safetensors_load(path, &set, NULL, &err), SHRINK_OK, "%s", err.msg);
	const shrink_tensor *t = shrink_tensor_set_find(&set, "t");
	cr_assert(t && t->owned == t->data && (uintptr_t)t->data % 4 == 0);
	cr_assert(((const float *)t->data)[0] == 1.5f && ((const float *)t->data)[1] == -2.25f);
	shrink_tensor_set_free(&set);
}

Test(io, safetensors_bad_length)
{
	uint8_t buf[64] = {0};
	shrink_tensor_set set = {0};
	shrink_error err = {0};
	uint64_t huge = 1000000000000000ull, past = 1000;
	write_bytes(at("short"), buf, 5);
	expect_fail(shrink_safetensors_load(at("short"), &set, NULL, &err), &err, at("short"), "truncated");
	memcpy(buf, &huge, 8);
	write_bytes(at("huge"), buf, sizeof buf);
	expect_fail(shrink_safetensors_load(at("huge"), &set, NULL, &err), &err, at("huge"), "limit");
	memcpy(buf, &past, 8);
	write_bytes(at("past"), buf, sizeof buf);
	expect_fail(shrink_safetensors_load(at("past"), &set, NULL, &err), &err, at("past"), "past the end");
	write_bytes(at("empty"), buf, 0);
	expect_fail(shrink_safetensors_load(at("empty"), &set, NULL, &err), &err, at("empty"), "empty");
	cr_assert_eq(set.n, 0);
}

Test(io, safetensors_duplicate_across_files)
{
	st_writer w;
	shrink_tensor_set set = {0};
	shrink_error err = {0};
	for (int i = 0; i < 2; i++) {
		stw_init(&w);
		stw_add_f32(&w, i ? "x" : "y", 1, 0, 0);
		stw_add_f32(&w, "same", 1, 0, 0);
		stw_write(&w, at(i ? "b.safetensors" : "a.safetensors"), NULL);
	}
	cr_assert_eq(shrink_safetensors_load(at("a.safetensors"), &set, NULL, &err), SHRINK_OK);
	expect_fail(shrink_safetensors_load(at("b.safetensors"), &set, NULL, &err), &err, "'same'", "already loaded");
	cr_assert(set.n == 2 && set.n_maps == 1);
	shrink_tensor_set_free(&set);
}

/* ---- config ---- */

static const char *LLAMA3_JSON =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 2048,"
    " \"num_hidden_layers\": 16, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
    " \"intermediate_size\": 8192, \"vocab_size\": 128256, \"max_position_embeddings\": 131072,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
    " \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009], \"torch_dtype\": \"bfloat16\"}";

Test(io, config_llama3)
{
	shrink_config c;
	shrink_error err = {0};
	cr_assert_eq(shrink_config_from_hf_json(LLAMA3_JSON, "cfg", &c, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_str_eq(c.arch, "llama");
	cr_assert(c.dim == 2048 && c.n_layers == 16 && c.head_dim == 64 && c.vocab_size == 128256);
	cr_assert(c.layers[15].n_heads == 32 && c.layers[15].n_kv_heads == 8 && c.layers[15].ffn_dim == 8192);
	cr_assert(c.max_seq == 131072 && c.tied_embeddings && !c.qkv_bias);
	cr_assert_float_eq(c.norm_eps, 1e-5f, 0);
	cr_assert_float_eq(c.rope_theta, 500000.0f, 0);
	cr_assert_eq(c.rope_scaling, SHRINK_ROPE_SCALING_LLAMA3);
	cr_assert(c.rope_factor == 32 && c.rope_low_freq_factor == 1 && c.rope_high_freq_factor == 4);
	cr_assert_eq(c.rope_orig_max_pos, 8192);
	cr_assert(c.bos_id == 128000 && c.eos_id == 128001);
}

Test(io, config_defaults_and_qwen2)
{
	const char *json = "{\"model_type\": \"qwen2\", \"hidden_size\": 896, \"num_hidden_layers\": 24,"
			   " \"num_attention_heads\": 14, \"intermediate_size\": 4864, \"vocab_size\": 151936}";
	shrink_config c;
	shrink_error err = {0};
	cr_assert_eq(shrink_config_from_hf_json(json, "cfg", &c, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(c.qkv_bias && !c.tied_embeddings && c.head_dim == 64 && c.layers[0].n_kv_heads == 14);
	cr_assert(c.rope_theta == 10000 && c.rope_scaling == SHRINK_ROPE_SCALING_NONE && c.bos_id == -1);
}

Test(io, config_by_architecture_and_head_dim)
{
	const char *json =
	    "{\"model_type\": \"smollm\", \"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 96,"
	    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 32,"
	    " \"intermediate_size\": 64, \"vocab_size\": 100, \"rope_scaling\": {\"type\": \"linear\","
	    " \"factor\": 2}, \"attention_bias\": true}";
	shrink_config c;
	shrink_error err = {0};
	cr_assert_eq(shrink_config_from_hf_json(json, "cfg", &c, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(!strcmp(c.arch, "llama") && c.head_dim == 32 && c.qkv_bias);
	cr_assert(c.rope_scaling == SHRINK_ROPE_SCALING_LINEAR && c.rope_factor == 2);
}

static void round_trip(const shrink_config *c)
{
	shrink_config back;
	shrink_error err = {0};
	char *json = shrink_config_to_json(c);
	cr_assert_not_null(json);
	cr_assert_eq(shrink_config_from_hf_json(json, "round trip", &back, &err), SHRINK_OK, "%s\n%s", err.msg, json);
	cr_assert_eq(memcmp(c, &back, sizeof back), 0, "differs after round trip:\n%s", json);
	free(json);
}

Test(io, config_round_trip)
{
	shrink_config c;
	shrink_error err = {0};
	cr_assert_eq(shrink_config_from_hf_json(LLAMA3_JSON, "cfg", &c, &err), SHRINK_OK);
	round_trip(&c);
	c.layers[3].n_heads = 16;
	c.layers[3].n_kv_heads = 4;
	c.layers[7].ffn_dim = 1234;
	c.rope_scaling = SHRINK_ROPE_SCALING_LINEAR;
	c.rope_low_freq_factor = c.rope_high_freq_factor = 0;
	c.rope_orig_max_pos = 0;
	c.norm_eps = 1e-6f;
	c.rope_theta = 1234567.0f;
	c.bos_id = -1;
	c.tied_embeddings = false;
	round_trip(&c);
	char *json = shrink_config_to_json(&c);
	cr_assert_not_null(strstr(json, "\"shrink_layers\""));
	cr_assert_not_null(strstr(json, "1e-06"), "%s", json);
	free(json);
	cr_assert_eq(
	    shrink_config_from_hf_json("{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"num_hidden_layers\": 1,"
				       " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"vocab_size\": 9}",
				       "cfg", &c, &err),
	    SHRINK_OK);
	round_trip(&c);
}

typedef struct {
	char json[320], want[48];
} bad_config;

static const bad_config bad_configs[] = {
    {"{", "not valid JSON"},
    {"[]", "not a JSON object"},
    {"{\"model_type\": \"gpt2\"}", "unsupported model_type 'gpt2'"},
    {"{\"model_type\": \"llama\", \"num_hidden_layers\": 2}", "hidden_size"},
    {"{\"model_type\": \"llama\", \"hidden_act\": \"gelu\"}", "hidden_act"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 0}", "num_hidden_layers"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8.5, \"num_hidden_layers\": 1}", "hidden_size"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"num_key_value_heads\": 3, \"intermediate_size\": 8, \"vocab_size\": 9}",
     "not a multiple of 3 KV heads"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 10, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9}",
     "not a multiple of num_attention_heads"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9, \"rope_scaling\": {\"rope_type\": \"yarn\"}}",
     "'yarn'"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9, \"rms_norm_eps\": 0}",
     "epsilon"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 100000, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9}",
     "hidden size"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9, \"shrink_layers\": [{\"n_heads\": 4}]}",
     "shrink_layers"},
    {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
     " \"intermediate_size\": 8, \"vocab_size\": 9, \"eos_token_id\": 9}",
     "outside the vocabulary"},
};

ParameterizedTestParameters(io, config_bad)
{
	return cr_make_param_array(bad_config, bad_configs, sizeof bad_configs / sizeof bad_configs[0]);
}

ParameterizedTest(const bad_config *b, io, config_bad)
{
	shrink_config c;
	shrink_error err = {0};
	expect_fail(shrink_config_from_hf_json(b->json, "dir/config.json", &c, &err), &err, "dir/config.json", b->want);
}

Test(io, config_validate_per_layer)
{
	shrink_config c = {.arch = "llama",
			   .dim = 8,
			   .n_layers = 3,
			   .head_dim = 16,
			   .vocab_size = 10,
			   .max_seq = 4,
			   .norm_eps = 1e-5f,
			   .rope_theta = 1e4f,
			   .bos_id = -1,
			   .eos_id = -1};
	shrink_error err = {0};
	shrink_config_set_uniform(&c, 4, 2, 32);
	cr_assert_eq(shrink_config_validate(&c, "m", &err), SHRINK_OK, "%s",
		     err.msg); /* head_dim*heads != dim is fine */
	cr_assert_eq(c.layers[3].n_heads, 0);
	c.layers[2].n_kv_heads = 3;
	expect_fail(shrink_config_validate(&c, "m", &err), &err, "m: layer 2", NULL);
	c.layers[2].n_kv_heads = 2;
	c.n_layers = SHRINK_MAX_LAYERS + 1;
	expect_fail(shrink_config_validate(&c, "m", &err), &err, "layers", NULL);
	c.n_layers = 3;
	c.rope_scaling = SHRINK_ROPE_SCALING_LLAMA3;
	c.rope_factor = 8;
	c.rope_low_freq_factor = 4;
	c.rope_high_freq_factor = 1;
	c.rope_orig_max_pos = 8192;
	expect_fail(shrink_config_validate(&c, "m", &err), &err, "llama3", NULL);
}

/* ---- Hugging Face directories ---- */

Test(io, hf_dir_single_file)
{
	tiny t = TINY;
	t.lm_head = false;
	make_hf(&t, "m", NULL);
	write_text(at("m/generation_config.json"), "{\"bos_token_id\": 3, \"eos_token_id\": [5, 6]}");
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(at("m"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(mf.format, SHRINK_FMT_HF_DIR);
	cr_assert_eq(mf.vocab.kind, SHRINK_VOCAB_NONE);
	cr_assert(mf.config.dim == 8 && mf.config.n_layers == 2 && mf.config.vocab_size == 16);
	cr_assert(mf.config.tied_embeddings, "no lm_head.weight means tied");
	cr_assert(mf.config.bos_id == 3 && mf.config.eos_id == 5);
	cr_assert_eq(mf.weights.n, 1 + 2 * 9 + 1);
	const shrink_tensor *k = shrink_tensor_set_find(&mf.weights, "model.layers.1.self_attn.k_proj.weight");
	cr_assert(k && k->shape[0] == 4 && k->shape[1] == 8);
	cr_assert_float_eq(((const float *)k->data)[3], 102 + 3.0f / 1024, 1e-6);
	shrink_model_file_close(&mf);
	cr_assert_null(mf.weights.tensors);
}

Test(io, hf_dir_untied_qwen2)
{
	tiny t = TINY;
	t.bias = true;
	t.model_type = "qwen2";
	make_hf(&t, "m", NULL);
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(at("m"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(!mf.config.tied_embeddings && mf.config.qkv_bias);
	shrink_model_file_close(&mf);
	/* the same directory through its weights file */
	cr_assert_eq(shrink_model_file_open(at("m/model.safetensors"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(mf.format, SHRINK_FMT_HF_DIR);
	shrink_model_file_close(&mf);
}

Test(io, hf_dir_missing_and_misshapen)
{
	tiny t = TINY;
	shrink_model_file mf;
	shrink_error err = {0};
	make_hf(&t, "a", "model.layers.1.mlp.down_proj.weight");
	expect_fail(shrink_model_file_open(at("a"), NULL, &mf, &err), &err,
		    "missing tensor 'model.layers.1.mlp.down_proj.weight'", at("a"));
	t.bias = true;
	t.model_type = "qwen2";
	make_hf(&t, "b", "model.layers.0.self_attn.v_proj.bias");
	expect_fail(shrink_model_file_open(at("b"), NULL, &mf, &err), &err, "'model.layers.0.self_attn.v_proj.bias'",
		    NULL);
	t = TINY;
	make_hf(&t, "c", NULL);
	t.ffn = 10; /* config says 10, weights have 12 */
	tiny_config(&t, at("c/config.json"), NULL);
	expect_fail(shrink_model_file_open(at("c"), NULL, &mf, &err), &err, "'model.layers.0.mlp.gate_proj.weight'",
		    "[12, 8], the config implies [10, 8]");
	cr_assert_null(mf.weights.tensors);
}

Test(io, hf_dir_bad_directories)
{
	shrink_model_file mf;
	shrink_error err = {0};
	mkdir_at("empty");
	expect_fail(shrink_model_file_open(at("empty"), NULL, &mf, &err), &err, at("empty"), "no config.json");
	make_hf(&TINY, "badcfg", NULL);
	write_text(at("badcfg/config.json"), "{\"model_type\": \"llama\",");
	expect_fail(shrink_model_file_open(at("badcfg"), NULL, &mf, &err), &err, "badcfg/config.json", "JSON");
	mkdir_at("noweights");
	tiny_config(&TINY, at("noweights/config.json"), NULL);
	expect_fail(shrink_model_file_open(at("noweights"), NULL, &mf, &err), &err, "noweights", "model.safetensors");
	make_hf(&TINY, "badtok", NULL);
	write_text(at("badtok/tokenizer.json"), "{ not json");
	cr_assert_neq(shrink_model_file_open(at("badtok"), NULL, &mf, &err), SHRINK_OK);
	cr_assert_not_null(strstr(err.msg, "tokenizer.json"), "%s", err.msg);
	make_hf(&TINY, "badgen", NULL);
	write_text(at("badgen/generation_config.json"), "{\"eos_token_id\": \"x\"}");
	expect_fail(shrink_model_file_open(at("badgen"), NULL, &mf, &err), &err, "generation_config.json", "eos");
}

/* Shards: layer 0 + embedding in shard 1, layer 1 + norm + lm_head in shard 2. */
static void make_sharded(const char *dir, const char *index_extra)
{
	char path[512];
	st_writer w[2];
	mkdir_at(dir);
	snprintf(path, sizeof path, "%s/config.json", at(dir));
	tiny_config(&TINY, path, NULL);
	stw_init(&w[0]);
	stw_init(&w[1]);
	tiny_weights(&TINY, w, 2, NULL);
	cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
	for (int s = 0; s < 2; s++) {
		char file[64];
		snprintf(file, sizeof file, "model-0000%d-of-00002.safetensors", s + 1);
		for (cJSON *e = w[s].header->child; e; e = e->next)
			cJSON_AddStringToObject(map, e->string, file);
		snprintf(path, sizeof path, "%s/%s", at(dir), file);
		stw_write(&w[s], path, NULL);
	}
	if (index_extra)
		cJSON_AddItemToObject(map, "extra", cJSON_CreateString(index_extra));
	char *text = cJSON_Print(index);
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", at(dir));
	write_text(path, text);
	free(text);
	cJSON_Delete(index);
}

Test(io, hf_dir_sharded)
{
	shrink_model_file mf;
	shrink_error err = {0};
	make_sharded("m", NULL);
	cr_assert_eq(shrink_model_file_open(at("m"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(mf.weights.n_maps, 2);
	cr_assert_eq(mf.weights.n, 1 + 2 * 9 + 2);
	cr_assert_not_null(shrink_tensor_set_find(&mf.weights, "lm_head.weight"));
	shrink_model_file_close(&mf);
}

Test(io, hf_dir_sharded_bad_index)
{
	shrink_model_file mf;
	shrink_error err = {0};
	make_sharded("missing", "model-00003-of-00003.safetensors");
	expect_fail(shrink_model_file_open(at("missing"), NULL, &mf, &err), &err, "model-00003-of-00003.safetensors",
		    NULL);
	make_sharded("escape", "../evil.safetensors");
	expect_fail(shrink_model_file_open(at("escape"), NULL, &mf, &err), &err, "'../evil.safetensors'",
		    "not a plain file name");
	make_sharded("wrong", "model-00001-of-00002.safetensors");
	expect_fail(shrink_model_file_open(at("wrong"), NULL, &mf, &err), &err, "tensor 'extra'",
		    "not in shard 'model-00001-of-00002.safetensors'");
	make_sharded("moved", NULL);
	write_text(at("moved/model.safetensors.index.json"),
		   "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
	expect_fail(shrink_model_file_open(at("moved"), NULL, &mf, &err), &err, "'model.norm.weight'", "not in shard");
	write_text(at("moved/model.safetensors.index.json"), "{\"weight_map\": {}}");
	expect_fail(shrink_model_file_open(at("moved"), NULL, &mf, &err), &err, "weight_map", NULL);
}

Test(io, safetensors_alone_and_container)
{
	st_writer w;
	shrink_model_file mf;
	shrink_error err = {0};
	stw_init(&w);
	stw_add_f32(&w, "x", 2, 2, 0);
	stw_write(&w, at("plain.safetensors"), NULL);
	expect_fail(shrink_model_file_open(at("plain.safetensors"), NULL, &mf, &err), &err, "plain.safetensors",
		    "config.json");
	stw_init(&w);
	stw_add_f32(&w, "x", 2, 2, 0);
	stw_write(&w, at("ours.safetensors"), "{\"shrink.version\": \"1\"}");
	expect_fail(shrink_model_file_open(at("ours.safetensors"), NULL, &mf, &err), &err, "ours.safetensors",
		    "shrink.config is missing");
}

/* ---- llama2.c ---- */

typedef struct {
	int32_t dim, hidden, layers, heads, kv_heads, vocab, seq;
} l2c_header;

/* Writes a llama2.c file whose float k holds k (so offsets can be checked); returns its float count. */
static size_t write_llama2c(const char *path, l2c_header h, long extra_floats)
{
	size_t vocab = (size_t)(h.vocab < 0 ? -h.vocab : h.vocab), dim = (size_t)h.dim, head = dim / (size_t)h.heads;
	size_t kv = head * (size_t)h.kv_heads, L = (size_t)h.layers, hid = (size_t)h.hidden;
	size_t n = vocab * dim + L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hid * dim) + dim +
		   (size_t)h.seq * head + (h.vocab < 0 ? vocab * dim : 0);
	n = (size_t)((long)n + extra_floats);
	float *v = malloc(n * sizeof *v + 1);
	for (size_t i = 0; i < n; i++)
		v[i] = (float)i;
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(&h, sizeof h, 1, f);
	fwrite(v, sizeof *v, n, f);
	fclose(f);
	free(v);
	return n;
}

static const l2c_header L2C = {8, 12, 2, 2, 1, -16, 4};

static float at_index(const shrink_model_file *mf, const char *name, size_t i)
{
	const shrink_tensor *t = shrink_tensor_set_find(&mf->weights, name);
	cr_assert_not_null(t, "no %s", name);
	return ((const float *)t->data)[i];
}

Test(io, llama2c_layout)
{
	const size_t dim = 8, vocab = 16, L = 2, kv = 4, hid = 12;
	size_t n = write_llama2c(at("m.bin"), L2C, 0);
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(at("m.bin"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(mf.format, SHRINK_FMT_LLAMA2C);
	cr_assert(mf.config.head_dim == 4 && !mf.config.tied_embeddings && mf.config.vocab_size == 16);
	cr_assert(mf.config.layers[1].ffn_dim == 12 && mf.config.max_seq == 4 && mf.vocab.kind == SHRINK_VOCAB_NONE);
	size_t rms_att = vocab * dim, wq = rms_att + L * dim, wk = wq + L * dim * dim, wv = wk + L * kv * dim;
	size_t wo = wv + L * kv * dim, rms_ffn = wo + L * dim * dim, w1 = rms_ffn + L * dim, w2 = w1 + L * hid * dim;
	size_t w3 = w2 + L * dim * hid, fin = w3 + L * hid * dim;
	cr_assert_float_eq(at_index(&mf, "model.embed_tokens.weight", 5), 5, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.1.input_layernorm.weight", 0), rms_att + dim, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.1.self_attn.v_proj.weight", 0), wv + kv * dim, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.0.self_attn.o_proj.weight", 9), wo + 9, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.1.post_attention_layernorm.weight", 1), rms_ffn + dim + 1, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.0.mlp.gate_proj.weight", 0), w1, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.1.mlp.down_proj.weight", 0), w2 + dim * hid, 0);
	cr_assert_float_eq(at_index(&mf, "model.layers.0.mlp.up_proj.weight", 0), w3, 0);
	cr_assert_float_eq(at_index(&mf, "model.norm.weight", 0), fin, 0);
	cr_assert_float_eq(at_index(&mf, "lm_head.weight", 0), n - vocab * dim, 0);
	shrink_model_file_close(&mf);
}

/* Per head of 4 rows, llama2.c rows (0,1) and (2,3) are RoPE pairs; HF wants rows 0,2 then 1,3. */
Test(io, llama2c_unpermutes_q_and_k)
{
	const size_t dim = 8, vocab = 16, L = 2, kv = 4;
	write_llama2c(at("m.bin"), L2C, 0);
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(at("m.bin"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	size_t wq = vocab * dim + L * dim, wk1 = wq + L * dim * dim + kv * dim;
	const int order[4] = {0, 2, 1, 3};
	for (int head = 0; head < 2; head++)
		for (int r = 0; r < 4; r++)
			cr_assert_float_eq(
			    at_index(&mf, "model.layers.0.self_attn.q_proj.weight", (head * 4 + r) * dim + 1),
			    wq + (head * 4 + order[r]) * dim + 1, 0, "q head %d row %d", head, r);
	for (int r = 0; r < 4; r++)
		cr_assert_float_eq(at_index(&mf, "model.layers.1.self_attn.k_proj.weight", r * dim),
				   wk1 + order[r] * dim, 0, "k row %d", r);
	cr_assert_not_null(shrink_tensor_set_find(&mf.weights, "model.layers.1.self_attn.q_proj.weight")->owned);
	shrink_model_file_close(&mf);
}

Test(io, llama2c_bad)
{
	shrink_model_file mf;
	shrink_error err = {0};
	write_llama2c(at("long.bin"), L2C, 1);
	expect_fail(shrink_model_file_open(at("long.bin"), NULL, &mf, &err), &err, "long.bin", "implies");
	write_llama2c(at("short.bin"), L2C, -1);
	expect_fail(shrink_read_llama2c(at("short.bin"), &mf, &err), &err, "short.bin", "implies");
	l2c_header zero = L2C, neg = L2C, odd = L2C;
	zero.layers = 0;
	neg.dim = -8;
	odd.heads = 3;
	write_bytes(at("zero.bin"), &zero, sizeof zero);
	expect_fail(shrink_model_file_open(at("zero.bin"), NULL, &mf, &err), &err, "zero.bin", "out of range");
	write_bytes(at("neg.bin"), &neg, sizeof neg);
	expect_fail(shrink_model_file_open(at("neg.bin"), NULL, &mf, &err), &err, "neg.bin", "out of range");
	write_bytes(at("odd.bin"), &odd, sizeof odd);
	expect_fail(shrink_model_file_open(at("odd.bin"), NULL, &mf, &err), &err, "odd.bin", "head size");
	write_bytes(at("tiny.bin"), "abc", 3);
	expect_fail(shrink_model_file_open(at("tiny.bin"), NULL, &mf, &err), &err, "tiny.bin", "too small");
}

/* ---- format detection ---- */

Test(io, unrecognised_inputs)
{
	shrink_model_file mf;
	shrink_error err = {0};
	write_text(at("notes.txt"), "hello, this is not a model at all");
	expect_fail(shrink_model_file_open(at("notes.txt"), NULL, &mf, &err), &err, "notes.txt", "unrecognised");
	write_text(at("empty.gguf"), "");
	expect_fail(shrink_model_file_open(at("empty.gguf"), NULL, &mf, &err), &err, "empty.gguf", "empty");
	expect_fail(shrink_model_file_open(at("nothing-here"), NULL, &mf, &err), &err, "nothing-here", NULL);
	write_text(at("bad.gguf"), "GGUX and more bytes here");
	expect_fail(shrink_model_file_open(at("bad.gguf"), NULL, &mf, &err), &err, "bad.gguf", NULL);
}

Test(io, check_weights_dtype)
{
	shrink_model_file mf;
	shrink_error err = {0};
	make_hf(&TINY, "m", NULL);
	cr_assert_eq(shrink_read_hf_dir(at("m"), &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(shrink_check_weights(&mf, "m", &err), SHRINK_OK, "%s", err.msg);
	shrink_tensor_set_find_mut(&mf.weights, "model.norm.weight")->dtype = SHRINK_I32;
	expect_fail(shrink_check_weights(&mf, "m", &err), &err, "'model.norm.weight'", "I32");
	shrink_model_file_close(&mf);
}

/* ---- real data ---- */

static const char *data_file(const char *name)
{
	static char path[1024];
	const char *dir = getenv("SHRINK_DATA"), *src = getenv("SHRINK_SRC");
	if (dir)
		snprintf(path, sizeof path, "%s/%s", dir, name);
	else
		snprintf(path, sizeof path, "%s/../shared/data/%s", src ? src : "..", name);
	if (access(path, R_OK) != 0)
		cr_skip_test("%s not found (set SHRINK_DATA)", path);
	return path;
}

Test(io, stories260k_bin)
{
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(data_file("stories260K.bin"), NULL, &mf, &err), SHRINK_OK, "%s", err.msg);
	const shrink_config *c = &mf.config;
	cr_assert(c->dim == 64 && c->n_layers == 5 && c->head_dim == 8 && c->vocab_size == 512 && c->max_seq == 512);
	cr_assert(c->layers[4].n_heads == 8 && c->layers[4].n_kv_heads == 4 && c->layers[4].ffn_dim == 172);
	cr_assert(c->tied_embeddings && mf.vocab.kind == SHRINK_VOCAB_NONE);
	cr_assert_eq(mf.weights.n, 1 + 5 * 9 + 1);
	shrink_model_file_close(&mf);
}

Test(io, stories260k_bin_with_gguf_tokenizer)
{
	char bin[1024];
	shrink_model_file mf;
	shrink_error err = {0};
	snprintf(bin, sizeof bin, "%s", data_file("stories260K.bin"));
	cr_assert_eq(shrink_model_file_open(bin, data_file("stories260K.gguf"), &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(mf.vocab.kind == SHRINK_VOCAB_SPM && mf.vocab.n_tokens == 512);
	shrink_model_file_close(&mf);
	expect_fail(shrink_model_file_open(bin, data_file("ggml-vocab-llama-spm.gguf"), &mf, &err), &err,
		    "ggml-vocab-llama-spm.gguf", "32000 tokens");
}

/* Write `t` (F32, HF half-split rows when heads > 0) as llama2.c stores it: Q/K rows back in interleaved pairs. */
static void put_llama2c(FILE *f, const shrink_tensor *t, int heads, int head_dim)
{
	cr_assert_eq(t->dtype, SHRINK_F32, "%s is not F32", t->name);
	const float *src = t->data;
	int64_t cols = t->n_dims == 2 ? t->shape[1] : 1, half = head_dim / 2;
	if (!heads) {
		fwrite(src, sizeof(float), (size_t)(t->n_bytes / sizeof(float)), f);
		return;
	}
	for (int h = 0; h < heads; h++)
		for (int64_t r = 0; r < head_dim; r++) /* interleaved row r = 2i + s holds HF row s*half + i */
			fwrite(src + (h * head_dim + (r % 2) * half + r / 2) * cols, sizeof(float), (size_t)cols, f);
}

static void put_layers(FILE *f, const shrink_model_file *g, const char *suffix, int heads)
{
	char name[SHRINK_NAME_MAX];
	for (int l = 0; l < g->config.n_layers; l++) {
		snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);
		const shrink_tensor *t = shrink_tensor_set_find(&g->weights, name);
		cr_assert_not_null(t, "no %s", name);
		put_llama2c(f, t, heads, g->config.head_dim);
	}
}

/* A llama2.c checkpoint written from the GGUF's tensors (stories260K.gguf was converted from llama2.c
 * weights) must read back as exactly the same tensors: this checks the llama2.c layout and that both
 * readers un-permute Q and K the same way. */
Test(io, llama2c_written_from_gguf_reads_back_the_same)
{
	shrink_model_file g, m;
	shrink_error err = {0};
	cr_assert_eq(shrink_model_file_open(data_file("stories260K.gguf"), NULL, &g, &err), SHRINK_OK, "%s", err.msg);
	const shrink_config *c = &g.config;
	int heads = c->layers[0].n_heads, kv_heads = c->layers[0].n_kv_heads;
	int32_t header[7] = {c->dim,	  c->layers[0].ffn_dim,
			     c->n_layers, heads,
			     kv_heads,	  c->tied_embeddings ? c->vocab_size : -c->vocab_size,
			     c->max_seq};
	FILE *f = fopen(at("from_gguf.bin"), "wb");
	cr_assert_not_null(f);
	fwrite(header, sizeof header, 1, f);
	put_llama2c(f, shrink_tensor_set_find(&g.weights, "model.embed_tokens.weight"), 0, 0);
	put_layers(f, &g, "input_layernorm.weight", 0);
	put_layers(f, &g, "self_attn.q_proj.weight", heads);
	put_layers(f, &g, "self_attn.k_proj.weight", kv_heads);
	put_layers(f, &g, "self_attn.v_proj.weight", 0);
	put_layers(f, &g, "self_attn.o_proj.weight", 0);
	put_layers(f, &g, "post_attention_layernorm.weight", 0);
	put_layers(f, &g, "mlp.gate_proj.weight", 0);
	put_layers(f, &g, "mlp.down_proj.weight", 0);
	put_layers(f, &g, "mlp.up_proj.weight", 0);
	put_llama2c(f, shrink_tensor_set_find(&g.weights, "model.norm.weight"), 0, 0);
	for (int64_t i = 0; i < (int64_t)c->max_seq * c->head_dim; i++) /* the unused RoPE tables */
		fwrite(&(float){0}, sizeof(float), 1, f);
	if (!c->tied_embeddings)
		put_llama2c(f, shrink_tensor_set_find(&g.weights, "lm_head.weight"), 0, 0);
	fclose(f);
	cr_assert_eq(shrink_model_file_open(at("from_gguf.bin"), NULL, &m, &err), SHRINK_OK, "%s", err.msg);
	cr_assert_eq(m.weights.n, g.weights.n);
	for (size_t i = 0; i < m.weights.n; i++) {
		const shrink_tensor *a = &m.weights.tensors[i], *b = shrink_tensor_set_find(&g.weights, a->name);
		cr_assert_not_null(b, "%s not in the GGUF", a->name);
		cr_assert(a->n_bytes == b->n_bytes && memcmp(a->data, b->data, a->n_bytes) == 0, "%s differs", a->name);
	}
	shrink_model_file_close(&m);
	shrink_model_file_close(&g);
}
