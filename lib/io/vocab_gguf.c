/* vocab_gguf.c: GGUF tokenizer.ggml.* metadata -> shrink_vocab_spec.
 * Reads the "llama" (SentencePiece-style) and "gpt2" (byte-level BPE) models,
 * fills in llama.cpp's defaults for keys that are missing and maps the
 * tokenizer.ggml.pre names llama.cpp knows onto our pre-tokenizer names. It
 * does not read other tokenizer models (bert, t5, rwkv) or chat templates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/io.h"

#define MAX_TOKENS (1 << 24)
#define MAX_MERGES (1 << 25)

typedef struct {
	const shrink_gguf *g;
	shrink_vocab_spec *v;
	shrink_error *err;
} reader;

static shrink_status bad(reader *r, const char *key, const char *what)
{
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: %s: %s", r->g->path, key, what);
}

/* An array of n elements (n == 0: any length up to MAX_TOKENS), strings or numbers as asked. */
static shrink_status find_array(reader *r, const char *key, uint64_t n, bool strings, const shrink_gguf_kv **out)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(r->g, key);
	*out = kv;
	if (!kv)
		return SHRINK_OK;
	if (kv->type != GGUF_T_ARRAY || (strings ? kv->arr_type != GGUF_T_STRING || !kv->arr_str
						 : kv->arr_type == GGUF_T_STRING || kv->arr_type == GGUF_T_ARRAY))
		return bad(r, key, strings ? "not an array of strings" : "not an array of numbers");
	if (n ? kv->arr_n != n : kv->arr_n == 0 || kv->arr_n > MAX_TOKENS)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: %s: %llu entries where %llu were expected", r->g->path,
				   key, (unsigned long long)kv->arr_n, (unsigned long long)(n ? n : 1));
	return SHRINK_OK;
}

static shrink_status copy_strings(reader *r, const shrink_gguf_kv *kv, char ***out, int *n)
{
	*out = calloc(kv->arr_n ? kv->arr_n : 1, sizeof(char *));
	if (!*out)
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	*n = (int)kv->arr_n;
	for (uint64_t i = 0; i < kv->arr_n; i++)
		if (!((*out)[i] = strdup(kv->arr_str[i])))
			return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	return SHRINK_OK;
}

static shrink_status read_tokens(reader *r)
{
	const shrink_gguf_kv *kv;
	shrink_status st = find_array(r, "tokenizer.ggml.tokens", 0, true, &kv);
	if (!st && !kv)
		st = bad(r, "tokenizer.ggml.tokens", "missing");
	return st ? st : copy_strings(r, kv, &r->v->tokens, &r->v->n_tokens);
}

static shrink_status read_scores_types(reader *r)
{
	shrink_vocab_spec *v = r->v;
	const shrink_gguf_kv *scores, *types;
	shrink_status st = find_array(r, "tokenizer.ggml.scores", (uint64_t)v->n_tokens, false, &scores);
	if (!st)
		st = find_array(r, "tokenizer.ggml.token_type", (uint64_t)v->n_tokens, false, &types);
	if (st)
		return st;
	if (scores && !(v->scores = malloc((size_t)v->n_tokens * sizeof *v->scores)))
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	if (types && !(v->types = malloc((size_t)v->n_tokens * sizeof *v->types)))
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < v->n_tokens; i++) {
		if (scores)
			v->scores[i] = (float)shrink_gguf_arr_f64(scores, (uint64_t)i);
		if (!types)
			continue;
		int64_t t = shrink_gguf_arr_i64(types, (uint64_t)i);
		if (t < 0 || t > SHRINK_TOKEN_BYTE)
			return shrink_fail(r->err, SHRINK_EINPUT,
					   "%s: tokenizer.ggml.token_type: token %d has type %lld", r->g->path, i,
					   (long long)t);
		v->types[i] = (int)t;
	}
	return SHRINK_OK;
}

static shrink_status read_merges(reader *r)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(r->g, "tokenizer.ggml.merges");
	if (!kv)
		return bad(r, "tokenizer.ggml.merges", "missing (a gpt2 tokenizer needs its merges)");
	if (kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING || !kv->arr_str)
		return bad(r, "tokenizer.ggml.merges", "not an array of strings");
	if (kv->arr_n > MAX_MERGES)
		return bad(r, "tokenizer.ggml.merges", "more entries than any vocabulary needs");
	return copy_strings(r, kv, &r->v->merges, &r->v->n_merges);
}

/* A special token id; 0xFFFFFFFF and -1 mean "none". */
static shrink_status read_id(reader *r, const char *key, int *id)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(r->g, key);
	int64_t x;
	if (!kv)
		return SHRINK_OK;
	if (kv->type == GGUF_T_BOOL || !shrink_gguf_get_int(r->g, key, &x))
		return bad(r, key, "not an integer");
	if (x == -1 || x == 0xFFFFFFFFll) {
		*id = -1;
		return SHRINK_OK;
	}
	if (x < 0 || x >= r->v->n_tokens)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: %s: id %lld is outside the vocabulary of %d tokens",
				   r->g->path, key, (long long)x, r->v->n_tokens);
	*id = (int)x;
	return SHRINK_OK;
}

static shrink_status read_bool(reader *r, const char *key, bool *out)
{
	const shrink_gguf_kv *kv = shrink_gguf_find(r->g, key);
	if (!kv)
		return SHRINK_OK;
	if (kv->type != GGUF_T_BOOL)
		return bad(r, key, "not a boolean");
	*out = kv->v.b;
	return SHRINK_OK;
}

/* llama.cpp's pre-tokenizer names -> ours (same regexes). */
static const char *pre_name(const char *gguf_name)
{
	static const char *const table[][2] = {
	    {"default", "default"},  {"gpt-2", "gpt2"},	      {"gpt2", "gpt2"},
	    {"phi-2", "gpt2"},	     {"roberta-bpe", "gpt2"}, {"olmo", "gpt2"},
	    {"mpt", "gpt2"},	     {"llama3", "llama3"},    {"llama-v3", "llama3"},
	    {"llama-bpe", "llama3"}, {"falcon3", "llama3"},   {"dbrx", "llama3"},
	    {"smaug-bpe", "llama3"}, {"qwen2", "qwen2"},      {"deepseek-r1-qwen", "qwen2"},
	    {"smollm", "smollm"},    {"starcoder", "smollm"}, {"refact", "smollm"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strcmp(table[i][0], gguf_name) == 0)
			return table[i][1];
	return NULL;
}

static shrink_status read_kind(reader *r)
{
	const char *model = shrink_gguf_get_str(r->g, "tokenizer.ggml.model");
	if (!model)
		return bad(r, "tokenizer.ggml.model", "missing");
	if (strcmp(model, "llama") == 0)
		r->v->kind = SHRINK_VOCAB_SPM;
	else if (strcmp(model, "gpt2") == 0)
		r->v->kind = SHRINK_VOCAB_BPE;
	else
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: tokenizer.ggml.model: '%s' is not supported (llama, gpt2 are)", r->g->path,
				   model);
	const char *pre = shrink_gguf_get_str(r->g, "tokenizer.ggml.pre");
	const char *ours = r->v->kind == SHRINK_VOCAB_SPM || !pre ? "default" : pre_name(pre);
	if (!ours)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: tokenizer.ggml.pre: pre-tokenizer '%s' is not supported",
				   r->g->path, pre);
	snprintf(r->v->pre, sizeof r->v->pre, "%s", ours);
	return SHRINK_OK;
}

static void set_defaults(shrink_vocab_spec *v)
{
	bool spm = v->kind == SHRINK_VOCAB_SPM;
	v->bos_id = spm && v->n_tokens > 1 ? 1 : -1;
	v->eos_id = spm && v->n_tokens > 2 ? 2 : -1;
	v->unk_id = spm ? 0 : -1;
	v->pad_id = -1;
	v->add_bos = spm || strcmp(v->pre, "llama3") == 0;
	v->add_eos = false;
	v->add_space_prefix = spm;
}

static shrink_status read_specials(reader *r)
{
	static const char *const id_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
					      "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
	shrink_vocab_spec *v = r->v;
	int *ids[] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
	set_defaults(v);
	shrink_status st = SHRINK_OK;
	for (int i = 0; i < 4 && !st; i++)
		st = read_id(r, id_keys[i], ids[i]);
	if (!st)
		st = read_bool(r, "tokenizer.ggml.add_bos_token", &v->add_bos);
	if (!st)
		st = read_bool(r, "tokenizer.ggml.add_eos_token", &v->add_eos);
	if (!st)
		st = read_bool(r, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
	return st;
}

shrink_status shrink_vocab_from_gguf(const shrink_gguf *g, shrink_vocab_spec *v, shrink_error *err)
{
	reader r = {g, v, err};
	memset(v, 0, sizeof *v);
	shrink_status st = read_kind(&r);
	if (!st)
		st = read_tokens(&r);
	if (!st)
		st = read_scores_types(&r);
	if (!st && v->kind == SHRINK_VOCAB_BPE)
		st = read_merges(&r);
	if (!st)
		st = read_specials(&r);
	if (!st)
		st = shrink_vocab_spec_check(v, g->path, err);
	if (st)
		shrink_vocab_spec_free(v);
	return st;
}
