/* tokenizer_json.c: Hugging Face tokenizer.json -> shrink_vocab_spec, with
 * tokenizer_config.json and generation_config.json beside it (when present)
 * for BOS/EOS and add_bos. Two kinds of model.type "BPE" are understood:
 * SentencePiece-style (byte_fallback, Metaspace or a "▁" normalizer: Llama 2,
 * Mistral, TinyLlama), whose merge ranks become scores (the token a merge makes
 * scores minus its rank), and byte-level (a ByteLevel pre-tokenizer: GPT-2,
 * Llama 3, Qwen2, SmolLM), whose Split regex must be one of the patterns
 * lib/text implements. It does not read Unigram or WordPiece models, apply
 * normalizers, or keep chat templates. */
#define _GNU_SOURCE /* qsort_r */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shrink/io.h"

#define MAX_TOKENS (1 << 24)
#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

typedef struct {
	const char *path;
	const cJSON *root, *model;
	shrink_vocab_spec *v;
	shrink_error *err;
	int *order; /* token ids sorted by text, for lookups */
} reader;

static shrink_status bad(reader *r, const char *key, const char *what)
{
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: %s: %s", r->path, key, what);
}

static const char *type_of(const cJSON *node)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "type"));
}

static bool is_type(const cJSON *node, const char *type)
{
	const char *t = type_of(node);
	return t && strcmp(t, type) == 0;
}

/* Calls visit on node and, for a Sequence, on each member (normalizers, pretokenizers, decoders, processors). */
static bool any_member(const cJSON *node, bool (*visit)(const cJSON *, void *), void *arg)
{
	static const char *const lists[] = {"normalizers", "pretokenizers", "decoders", "processors"};
	if (!cJSON_IsObject(node))
		return false;
	if (visit(node, arg))
		return true;
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(node, lists[i]);
		const cJSON *x;
		cJSON_ArrayForEach(x, list)
		{
			if (any_member(x, visit, arg))
				return true;
		}
	}
	return false;
}

static bool visit_type(const cJSON *node, void *type)
{
	return is_type(node, type);
}

static bool has_member(const reader *r, const char *where, const char *type)
{
	return any_member(cJSON_GetObjectItemCaseSensitive(r->root, where), visit_type, (void *)type);
}

/* ---- token lookup by text ---- */

static int by_text(const void *a, const void *b, void *v)
{
	char **tokens = ((const shrink_vocab_spec *)v)->tokens;
	return strcmp(tokens[*(const int *)a], tokens[*(const int *)b]);
}

static shrink_status build_index(reader *r)
{
	int n = r->v->n_tokens;
	r->order = malloc((size_t)n * sizeof(int));
	if (!r->order)
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < n; i++)
		r->order[i] = i;
	qsort_r(r->order, (size_t)n, sizeof(int), by_text, r->v);
	return SHRINK_OK;
}

static int find_token(const reader *r, const char *text)
{
	if (!text)
		return -1;
	size_t lo = 0, hi = (size_t)r->v->n_tokens;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(r->v->tokens[r->order[mid]], text);
		if (c == 0)
			return r->order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- vocabulary ---- */

static shrink_status read_id(reader *r, const cJSON *x, const char *key, int *id)
{
	if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble < MAX_TOKENS) ||
	    x->valuedouble != floor(x->valuedouble))
		return bad(r, key, "token id is not an integer in 0..16777215");
	*id = (int)x->valuedouble;
	return SHRINK_OK;
}

static shrink_status count_tokens(reader *r, const cJSON *vocab, const cJSON *added, int *n)
{
	const cJSON *x;
	int id, given = 0;
	*n = 0;
	cJSON_ArrayForEach(x, vocab)
	{
		shrink_status st = read_id(r, x, "model.vocab", &id);
		if (st)
			return st;
		*n = id + 1 > *n ? id + 1 : *n;
		given++;
	}
	cJSON_ArrayForEach(x, added)
	{
		shrink_status st = read_id(r, cJSON_GetObjectItemCaseSensitive(x, "id"), "added_tokens", &id);
		if (st)
			return st;
		*n = id + 1 > *n ? id + 1 : *n;
		given++;
	}
	if (*n <= 0)
		return bad(r, "model.vocab", "empty");
	/* holes become unused tokens: a few ids in a vast range would allocate far more than the file holds */
	if (*n > 2 * given + 1024)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: token ids run up to %d but only %d tokens are given", r->path,
				   *n - 1, given);
	return SHRINK_OK;
}

static shrink_status set_token(reader *r, int id, const char *text, int type)
{
	free(r->v->tokens[id]);
	if (!(r->v->tokens[id] = strdup(text)))
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	r->v->types[id] = type;
	return SHRINK_OK;
}

static shrink_status read_added(reader *r, const cJSON *added)
{
	const cJSON *x;
	cJSON_ArrayForEach(x, added)
	{
		const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "content"));
		int id;
		if (!content)
			return bad(r, "added_tokens", "entry without \"content\"");
		bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "special"));
		shrink_status st = read_id(r, cJSON_GetObjectItemCaseSensitive(x, "id"), "added_tokens", &id);
		if (!st)
			st = set_token(r, id, content, special ? SHRINK_TOKEN_CONTROL : SHRINK_TOKEN_USER_DEFINED);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static bool is_byte_piece(const char *s)
{
	return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>';
}

static shrink_status read_vocab(reader *r)
{
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(r->model, "vocab");
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(r->root, "added_tokens");
	shrink_vocab_spec *v = r->v;
	int n;
	if (!cJSON_IsObject(vocab))
		return bad(r, "model.vocab", "missing or not an object");
	if (added && !cJSON_IsArray(added))
		return bad(r, "added_tokens", "not an array");
	shrink_status st = count_tokens(r, vocab, added, &n);
	if (st)
		return st;
	v->tokens = calloc((size_t)n, sizeof(char *));
	v->types = calloc((size_t)n, sizeof(int));
	v->n_tokens = n;
	if (!v->tokens || !v->types)
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	bool bytes = v->kind == SHRINK_VOCAB_SPM;
	const cJSON *x;
	cJSON_ArrayForEach(x, vocab)
	{
		int id = (int)x->valuedouble;
		if (v->tokens[id])
			return shrink_fail(r->err, SHRINK_EINPUT, "%s: model.vocab: id %d is given twice", r->path, id);
		st = set_token(r, id, x->string,
			       bytes && is_byte_piece(x->string) ? SHRINK_TOKEN_BYTE : SHRINK_TOKEN_NORMAL);
		if (st)
			return st;
	}
	st = read_added(r, added);
	for (int i = 0; i < n && !st; i++)
		if (!v->tokens[i])
			st = set_token(r, i, "", SHRINK_TOKEN_UNUSED); /* a hole in the id range */
	return st ? st : build_index(r);
}

/* ---- merges ---- */

static char *merge_string(const cJSON *m)
{
	if (cJSON_IsString(m))
		return strdup(m->valuestring);
	if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2)
		return NULL;
	const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(m, 0));
	const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(m, 1));
	if (!a || !b || !a[0] || !b[0])
		return NULL;
	size_t na = strlen(a), nb = strlen(b);
	char *s = malloc(na + nb + 2);
	if (s) {
		memcpy(s, a, na);
		s[na] = ' ';
		memcpy(s + na + 1, b, nb + 1);
	}
	return s;
}

static shrink_status read_merges(reader *r)
{
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(r->model, "merges");
	if (!merges)
		return SHRINK_OK;
	if (!cJSON_IsArray(merges))
		return bad(r, "model.merges", "not an array");
	int n = cJSON_GetArraySize(merges), i = 0;
	r->v->merges = calloc(n ? (size_t)n : 1, sizeof(char *));
	r->v->n_merges = n;
	if (!r->v->merges)
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	const cJSON *m;
	cJSON_ArrayForEach(m, merges)
	{
		if (!(r->v->merges[i] = merge_string(m)))
			return shrink_fail(r->err, SHRINK_EINPUT, "%s: model.merges[%d]: not \"a b\" or [\"a\", \"b\"]",
					   r->path, i);
		i++;
	}
	return SHRINK_OK;
}

/* The id of the token merge m makes, -1 when m does not name two tokens whose concatenation is one. */
static int merge_result(const reader *r, const char *m)
{
	const char *sp = m[0] ? strchr(m + 1, ' ') : NULL;
	if (!sp)
		return -1;
	size_t n_left = (size_t)(sp - m);
	char *buf = malloc(strlen(m));
	if (!buf)
		return -1;
	memcpy(buf, m, n_left);
	buf[n_left] = '\0';
	int id = find_token(r, buf) >= 0 && find_token(r, sp + 1) >= 0 ? 0 : -1;
	strcpy(buf + n_left, sp + 1);
	if (id == 0)
		id = find_token(r, buf);
	free(buf);
	return id;
}

/* SPM scores: the token merge k makes scores -k; longer tokens no merge makes come last. */
static shrink_status merges_to_scores(reader *r)
{
	shrink_vocab_spec *v = r->v;
	v->scores = malloc((size_t)v->n_tokens * sizeof(float));
	if (!v->scores)
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < v->n_tokens; i++)
		v->scores[i] = -1e30f;
	for (int k = 0; k < v->n_merges; k++) {
		int id = merge_result(r, v->merges[k]);
		if (id < 0)
			return shrink_fail(
			    r->err, SHRINK_EINPUT,
			    "%s: model.merges[%d] '%s' does not name two tokens whose concatenation is a token",
			    r->path, k, v->merges[k]);
		if (v->scores[id] == -1e30f)
			v->scores[id] = -(float)k;
	}
	for (int k = 0; k < v->n_merges; k++)
		free(v->merges[k]);
	free(v->merges);
	v->merges = NULL;
	v->n_merges = 0;
	return SHRINK_OK;
}

/* ---- model kind and pre-tokenizer ---- */

static bool visit_space_mark(const cJSON *node, void *unused)
{
	const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "content"));
	const char *prepend = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "prepend"));
	return (is_type(node, "Replace") && content && strcmp(content, SPACE_MARK) == 0) ||
	       (is_type(node, "Prepend") && prepend && strcmp(prepend, SPACE_MARK) == 0);
}

static shrink_status read_kind(reader *r)
{
	if (!cJSON_IsObject(r->model))
		return bad(r, "model", "missing or not an object");
	const char *type = type_of(r->model);
	if (type && strcmp(type, "BPE") != 0)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: model.type '%s' is not supported (BPE is)", r->path,
				   type);
	bool byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->model, "byte_fallback"));
	if (has_member(r, "pre_tokenizer", "ByteLevel") || has_member(r, "decoder", "ByteLevel"))
		r->v->kind = SHRINK_VOCAB_BPE;
	else if (byte_fallback || has_member(r, "pre_tokenizer", "Metaspace") ||
		 has_member(r, "decoder", "Metaspace") ||
		 any_member(cJSON_GetObjectItemCaseSensitive(r->root, "normalizer"), visit_space_mark, NULL))
		r->v->kind = SHRINK_VOCAB_SPM;
	else
		return bad(r, "model", "BPE that is neither byte-level nor SentencePiece-style is not supported");
	return SHRINK_OK;
}

typedef struct {
	const char *regex;
	bool byte_level_regex, digits, other, prefix_space;
} pretok_parts;

static bool visit_pretok(const cJSON *node, void *arg)
{
	pretok_parts *p = arg;
	const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(node, "use_regex");
	if (is_type(node, "ByteLevel")) {
		p->byte_level_regex |= !cJSON_IsFalse(use_regex);
		p->prefix_space |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "add_prefix_space"));
	} else if (is_type(node, "Split")) {
		const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(node, "pattern");
		const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pattern, "Regex"));
		const char *behavior = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "behavior"));
		p->other |= !re || p->regex || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "invert")) ||
			    (behavior && strcmp(behavior, "Isolated") != 0);
		p->regex = re;
	} else if (is_type(node, "Digits")) {
		p->digits = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(node, "individual_digits"));
		p->other |= !p->digits;
	} else if (!is_type(node, "Sequence")) {
		p->other = true;
	}
	return false;
}

static const char *regex_name(const char *re)
{
	static const char *const known[][2] = {
	    {"gpt2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
	    {"llama3", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
		       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
		      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(known[i][1], re) == 0)
			return known[i][0];
	return NULL;
}

static shrink_status read_pretok(reader *r)
{
	pretok_parts p = {0};
	const char *name = NULL;
	if (r->v->kind == SHRINK_VOCAB_SPM) {
		snprintf(r->v->pre, sizeof r->v->pre, "default");
		return SHRINK_OK;
	}
	any_member(cJSON_GetObjectItemCaseSensitive(r->root, "pre_tokenizer"), visit_pretok, &p);
	if (p.prefix_space)
		return bad(r, "pre_tokenizer", "ByteLevel with add_prefix_space is not supported");
	if (p.regex && !p.byte_level_regex && !p.digits && !p.other)
		name = regex_name(p.regex);
	else if (!p.regex && p.byte_level_regex && !p.other)
		name = p.digits ? "smollm" : "gpt2";
	if (!name && p.regex && !p.other)
		return shrink_fail(
		    r->err, SHRINK_EINPUT,
		    "%s: pre_tokenizer: Split regex '%s' is not one we implement (GPT-2, Llama 3, Qwen2)", r->path,
		    p.regex);
	if (!name)
		return bad(r, "pre_tokenizer", "not a pre-tokenizer we implement (GPT-2, Llama 3, Qwen2, SmolLM)");
	snprintf(r->v->pre, sizeof r->v->pre, "%s", name);
	return SHRINK_OK;
}

/* ---- special tokens ---- */

static bool visit_metaspace(const cJSON *node, void *prefix)
{
	if (!is_type(node, "Metaspace"))
		return false;
	const char *scheme = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "prepend_scheme"));
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(node, "add_prefix_space");
	*(bool *)prefix = scheme ? strcmp(scheme, "never") != 0 : !cJSON_IsFalse(old);
	return true;
}

static bool visit_prepend(const cJSON *node, void *unused)
{
	const char *prepend = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "prepend"));
	return is_type(node, "Prepend") && prepend && strcmp(prepend, SPACE_MARK) == 0;
}

static bool visit_template(const cJSON *node, void *r_)
{
	reader *r = r_;
	const cJSON *single = cJSON_GetObjectItemCaseSensitive(node, "single");
	if (!is_type(node, "TemplateProcessing") || !cJSON_IsArray(single))
		return false;
	int n = cJSON_GetArraySize(single);
	const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
	const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
	int bos = first ? find_token(r, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "id"))) : -1;
	int eos =
	    last && n > 1 ? find_token(r, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "id"))) : -1;
	r->v->add_bos = bos >= 0;
	r->v->add_eos = eos >= 0;
	if (bos >= 0)
		r->v->bos_id = bos;
	if (eos >= 0)
		r->v->eos_id = eos;
	return true;
}

static int first_found(const reader *r, const char *const *names)
{
	for (; *names; names++) {
		int id = find_token(r, *names);
		if (id >= 0)
			return id;
	}
	return -1;
}

static void read_specials(reader *r)
{
	static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", NULL};
	static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
	shrink_vocab_spec *v = r->v;
	const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->model, "unk_token"));
	v->unk_id = unk ? find_token(r, unk) : -1;
	if (v->unk_id >= 0)
		v->types[v->unk_id] = SHRINK_TOKEN_UNKNOWN;
	v->bos_id = first_found(r, bos_names);
	v->eos_id = first_found(r, eos_names);
	v->pad_id = -1;
	v->add_bos = v->kind == SHRINK_VOCAB_SPM;
	v->add_eos = false;
	any_member(cJSON_GetObjectItemCaseSensitive(r->root, "post_processor"), visit_template, r);
	if (v->kind == SHRINK_VOCAB_SPM) {
		v->add_space_prefix =
		    any_member(cJSON_GetObjectItemCaseSensitive(r->root, "normalizer"), visit_prepend, NULL);
		any_member(cJSON_GetObjectItemCaseSensitive(r->root, "pre_tokenizer"), visit_metaspace,
			   &v->add_space_prefix);
	}
}

/* ---- tokenizer_config.json and generation_config.json ---- */

static cJSON *read_sibling(reader *r, const char *name, shrink_status *st)
{
	const char *slash = strrchr(r->path, '/');
	int dir_len = slash ? (int)(slash - r->path) : 1;
	char path[4096];
	struct stat sb;
	*st = SHRINK_OK;
	snprintf(path, sizeof path, "%.*s/%s", dir_len, slash ? r->path : ".", name);
	if (stat(path, &sb) != 0)
		return NULL;
	char *text;
	size_t n;
	if ((*st = shrink_read_text(path, &text, &n, r->err)))
		return NULL;
	cJSON *o = cJSON_ParseWithLength(text, n);
	free(text);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		*st = shrink_fail(r->err, SHRINK_EINPUT, "%s: not a JSON object", path);
	}
	return o;
}

static shrink_status config_token(reader *r, const cJSON *cfg, const char *key, int *id)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
	const char *text = cJSON_IsObject(x) ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "content"))
					     : cJSON_GetStringValue(x);
	if (!text)
		return SHRINK_OK;
	int found = find_token(r, text);
	if (found < 0 && (strcmp(key, "unk_token") == 0 || strcmp(key, "pad_token") == 0))
		return SHRINK_OK; /* optional ones: a name the vocabulary lacks is left unset */
	if (found < 0)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "tokenizer_config.json beside %s: %s '%s' is not in the vocabulary", r->path, key,
				   text);
	*id = found;
	return SHRINK_OK;
}

static shrink_status config_id(reader *r, const cJSON *cfg, const char *key, int *id)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (cJSON_IsArray(x))
		x = cJSON_GetArrayItem(x, 0);
	if (!x || cJSON_IsNull(x))
		return SHRINK_OK;
	if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble < r->v->n_tokens))
		return shrink_fail(r->err, SHRINK_EINPUT, "generation_config.json beside %s: %s is not a token id",
				   r->path, key);
	*id = (int)x->valuedouble;
	return SHRINK_OK;
}

static void config_bool(const cJSON *cfg, const char *key, bool *out)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (cJSON_IsBool(x))
		*out = cJSON_IsTrue(x);
}

static shrink_status read_configs(reader *r)
{
	shrink_vocab_spec *v = r->v;
	shrink_status st;
	cJSON *gen = read_sibling(r, "generation_config.json", &st);
	if (!st && gen)
		st = config_id(r, gen, "bos_token_id", &v->bos_id);
	if (!st && gen)
		st = config_id(r, gen, "eos_token_id", &v->eos_id);
	cJSON_Delete(gen);
	cJSON *tc = st ? NULL : read_sibling(r, "tokenizer_config.json", &st);
	const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
	int *ids[] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id};
	for (int i = 0; i < 4 && tc && !st; i++)
		st = config_token(r, tc, keys[i], ids[i]);
	config_bool(tc, "add_bos_token", &v->add_bos);
	config_bool(tc, "add_eos_token", &v->add_eos);
	cJSON_Delete(tc);
	return st;
}

static shrink_status read_all(reader *r)
{
	shrink_status st = read_kind(r);
	if (!st)
		st = read_pretok(r);
	if (!st)
		st = read_vocab(r);
	if (!st)
		st = read_merges(r);
	if (!st && r->v->kind == SHRINK_VOCAB_SPM)
		st = merges_to_scores(r);
	if (!st) {
		read_specials(r);
		st = read_configs(r);
	}
	return st ? st : shrink_vocab_spec_check(r->v, r->path, r->err);
}

shrink_status shrink_vocab_from_tokenizer_json(const char *path, shrink_vocab_spec *v, shrink_error *err)
{
	memset(v, 0, sizeof *v);
	char *text;
	size_t n;
	shrink_status st = shrink_read_text(path, &text, &n, err);
	if (st)
		return st;
	st = shrink_vocab_from_tokenizer_json_text(text, n, path, v, err);
	free(text);
	return st;
}

shrink_status shrink_vocab_from_tokenizer_json_text(const char *json, size_t n, const char *path, shrink_vocab_spec *v,
						    shrink_error *err)
{
	memset(v, 0, sizeof *v);
	shrink_status st;
	cJSON *root = cJSON_ParseWithLength(json, n);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return shrink_fail(err, SHRINK_EINPUT, "%s: not a JSON object", path);
	}
	reader r = {path, root, cJSON_GetObjectItemCaseSensitive(root, "model"), v, err, NULL};
	st = read_all(&r);
	free(r.order);
	cJSON_Delete(root);
	if (st)
		shrink_vocab_spec_free(v);
	return st;
}
