/* vocab_json.c: shrink_vocab_spec's own life cycle: freeing, the consistency
 * check every reader ends with, and the compact JSON form the shrink container
 * embeds (shrink.tokenizer):
 *   {"kind":"spm"|"bpe","pre":"...","bos":1,"eos":2,"unk":0,"pad":-1,
 *    "add_bos":true,"add_eos":false,"add_space_prefix":true,
 *    "tokens":[...],"types":"3361...","scores":[...],"merges":["a b",...]}
 * types is one digit per token; scores and merges are left out when absent;
 * a score of -inf is written as null. It does not read Hugging Face or GGUF
 * files (tokenizer_json.c and vocab_gguf.c do). */
#define _GNU_SOURCE /* hsearch_r */
#include <cjson/cJSON.h>
#include <search.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/io.h"

#define MAX_TOKENS (1 << 24)
#define MAX_MERGES (1 << 25)

void shrink_vocab_spec_free(shrink_vocab_spec *v)
{
	if (!v)
		return;
	if (v->tokens)
		for (int i = 0; i < v->n_tokens; i++)
			free(v->tokens[i]);
	if (v->merges)
		for (int i = 0; i < v->n_merges; i++)
			free(v->merges[i]);
	free(v->tokens);
	free(v->scores);
	free(v->types);
	free(v->merges);
	memset(v, 0, sizeof *v);
	v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
}

/* ---- check ---- */

static shrink_status check_id(const shrink_vocab_spec *v, int id, const char *name, const char *what, shrink_error *err)
{
	if (id < -1 || id >= v->n_tokens)
		return shrink_fail(err, SHRINK_EINPUT, "%s: %s id %d is outside the vocabulary of %d tokens", what,
				   name, id, v->n_tokens);
	return SHRINK_OK;
}

static shrink_status check_tokens(const shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	if (v->n_tokens < 1 || v->n_tokens > MAX_TOKENS || !v->tokens)
		return shrink_fail(err, SHRINK_EINPUT, "%s: %d tokens (1..%d allowed)", what, v->n_tokens, MAX_TOKENS);
	for (int i = 0; i < v->n_tokens; i++) {
		if (!v->tokens[i])
			return shrink_fail(err, SHRINK_EINPUT, "%s: token %d has no text", what, i);
		if (v->types && (v->types[i] < 0 || v->types[i] > SHRINK_TOKEN_BYTE))
			return shrink_fail(err, SHRINK_EINPUT, "%s: token %d has type %d (0..6 allowed)", what, i,
					   v->types[i]);
		if (v->scores && (isnan(v->scores[i]) || v->scores[i] == INFINITY))
			return shrink_fail(err, SHRINK_EINPUT, "%s: token %d has score %g", what, i,
					   (double)v->scores[i]);
	}
	shrink_status st = check_id(v, v->bos_id, "BOS", what, err);
	if (!st)
		st = check_id(v, v->eos_id, "EOS", what, err);
	if (!st)
		st = check_id(v, v->unk_id, "unknown-token", what, err);
	if (!st)
		st = check_id(v, v->pad_id, "padding", what, err);
	return st;
}

static bool has_token(struct hsearch_data *tab, const char *text)
{
	ENTRY *found, want = {(char *)text, NULL};
	return hsearch_r(want, FIND, &found, tab) != 0;
}

/* "left right": both and their concatenation must be tokens. */
static bool merge_ok(struct hsearch_data *tab, const char *m, char *buf)
{
	const char *sp = m[0] ? strchr(m + 1, ' ') : NULL;
	if (!sp)
		return false;
	size_t n_left = (size_t)(sp - m), n_right = strlen(sp + 1);
	memcpy(buf, m, n_left);
	buf[n_left] = '\0';
	if (!has_token(tab, buf) || !has_token(tab, sp + 1))
		return false;
	memcpy(buf + n_left, sp + 1, n_right + 1);
	return has_token(tab, buf);
}

static bool fill_table(struct hsearch_data *tab, const shrink_vocab_spec *v)
{
	if (!hcreate_r((size_t)v->n_tokens * 2, tab))
		return false;
	for (int i = 0; i < v->n_tokens; i++) {
		ENTRY *e, item = {v->tokens[i], NULL};
		if (!hsearch_r(item, ENTER, &e, tab))
			return false;
	}
	return true;
}

static shrink_status check_merges(const shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	if (v->n_merges < 0 || v->n_merges > MAX_MERGES || (v->n_merges > 0 && !v->merges))
		return shrink_fail(err, SHRINK_EINPUT, "%s: %d merges (0..%d allowed)", what, v->n_merges, MAX_MERGES);
	if (v->kind != SHRINK_VOCAB_BPE || v->n_merges == 0)
		return SHRINK_OK;
	size_t longest = 0;
	for (int i = 0; i < v->n_merges && v->merges[i]; i++)
		if (strlen(v->merges[i]) > longest)
			longest = strlen(v->merges[i]);
	struct hsearch_data tab = {0};
	char *buf = malloc(longest + 1);
	shrink_status st = SHRINK_OK;
	if (!buf || !fill_table(&tab, v))
		st = shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < v->n_merges && !st; i++)
		if (!v->merges[i] || !merge_ok(&tab, v->merges[i], buf))
			st = shrink_fail(
			    err, SHRINK_EINPUT,
			    "%s: merges entry %d '%s' does not name two tokens whose concatenation is a token", what, i,
			    v->merges[i] ? v->merges[i] : "(null)");
	hdestroy_r(&tab);
	free(buf);
	return st;
}

shrink_status shrink_vocab_spec_check(const shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	if (v->kind != SHRINK_VOCAB_SPM && v->kind != SHRINK_VOCAB_BPE)
		return shrink_fail(err, SHRINK_EINPUT, "%s: no tokenizer (kind %d)", what, (int)v->kind);
	if (!memchr(v->pre, '\0', sizeof v->pre))
		return shrink_fail(err, SHRINK_EINPUT, "%s: pre-tokenizer name is not terminated", what);
	uint64_t limit = shrink_limits_get()->array_len;
	if ((uint64_t)v->n_tokens > limit || (uint64_t)v->n_merges > limit)
		return shrink_fail(err, SHRINK_EINPUT, "%s: %d tokens and %d merges, over the limit of %llu (SHRINK_MAX_ARRAY)",
				   what, v->n_tokens, v->n_merges, (unsigned long long)limit);
	shrink_status st = check_tokens(v, what, err);
	return st ? st : check_merges(v, what, err);
}

/* ---- to JSON ---- */

static bool add_strings(cJSON *obj, const char *name, char **s, int n)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, name);
	for (int i = 0; arr && i < n; i++) {
		cJSON *item = cJSON_CreateString(s[i]);
		if (!item || !cJSON_AddItemToArray(arr, item))
			return false;
	}
	return arr != NULL;
}

static bool add_scores(cJSON *obj, const float *scores, int n)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, "scores");
	for (int i = 0; arr && i < n; i++) {
		cJSON *item = isfinite(scores[i]) ? cJSON_CreateNumber(scores[i]) : cJSON_CreateNull();
		if (!item || !cJSON_AddItemToArray(arr, item))
			return false;
	}
	return arr != NULL;
}

static bool add_types(cJSON *obj, const int *types, int n)
{
	char *digits = malloc((size_t)n + 1);
	if (!digits)
		return false;
	for (int i = 0; i < n; i++)
		digits[i] = (char)('0' + (types[i] >= 0 && types[i] <= 9 ? types[i] : 0));
	digits[n] = '\0';
	bool ok = cJSON_AddStringToObject(obj, "types", digits) != NULL;
	free(digits);
	return ok;
}

static bool add_header(cJSON *o, const shrink_vocab_spec *v)
{
	return cJSON_AddStringToObject(o, "kind", v->kind == SHRINK_VOCAB_SPM ? "spm" : "bpe") &&
	       cJSON_AddStringToObject(o, "pre", v->pre) && cJSON_AddNumberToObject(o, "bos", v->bos_id) &&
	       cJSON_AddNumberToObject(o, "eos", v->eos_id) && cJSON_AddNumberToObject(o, "unk", v->unk_id) &&
	       cJSON_AddNumberToObject(o, "pad", v->pad_id) && cJSON_AddBoolToObject(o, "add_bos", v->add_bos) &&
	       cJSON_AddBoolToObject(o, "add_eos", v->add_eos) &&
	       cJSON_AddBoolToObject(o, "add_space_prefix", v->add_space_prefix);
}

char *shrink_vocab_spec_to_json(const shrink_vocab_spec *v)
{
	if (v->kind != SHRINK_VOCAB_SPM && v->kind != SHRINK_VOCAB_BPE)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	bool ok = o && add_header(o, v) && add_strings(o, "tokens", v->tokens, v->n_tokens);
	if (ok && v->types)
		ok = add_types(o, v->types, v->n_tokens);
	if (ok && v->scores)
		ok = add_scores(o, v->scores, v->n_tokens);
	if (ok && v->n_merges > 0)
		ok = add_strings(o, "merges", v->merges, v->n_merges);
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

/* ---- from JSON ---- */

static shrink_status get_int(const cJSON *o, const char *key, int *out, const char *what, shrink_error *err)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!x)
		return SHRINK_OK;
	if (!cJSON_IsNumber(x) || !(x->valuedouble >= INT_MIN && x->valuedouble <= INT_MAX) ||
	    x->valuedouble != floor(x->valuedouble))
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"%s\" is not an integer", what, key);
	*out = (int)x->valuedouble;
	return SHRINK_OK;
}

static shrink_status get_bool(const cJSON *o, const char *key, bool *out, const char *what, shrink_error *err)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!x)
		return SHRINK_OK;
	if (!cJSON_IsBool(x))
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"%s\" is not true or false", what, key);
	*out = cJSON_IsTrue(x);
	return SHRINK_OK;
}

static shrink_status get_strings(const cJSON *arr, const char *key, char ***out, int *n, const char *what,
				 shrink_error *err)
{
	if (!cJSON_IsArray(arr))
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"%s\" is not an array", what, key);
	int count = cJSON_GetArraySize(arr);
	*out = calloc(count ? (size_t)count : 1, sizeof(char *));
	if (!*out)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	*n = count;
	int i = 0;
	for (const cJSON *x = arr->child; x; x = x->next, i++) {
		if (!cJSON_IsString(x))
			return shrink_fail(err, SHRINK_EINPUT, "%s: \"%s\"[%d] is not a string", what, key, i);
		if (!((*out)[i] = strdup(x->valuestring)))
			return shrink_fail(err, SHRINK_EIO, "out of memory");
	}
	return SHRINK_OK;
}

static shrink_status get_types(const cJSON *o, shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "types");
	if (!x)
		return SHRINK_OK;
	if (!cJSON_IsString(x) || strlen(x->valuestring) != (size_t)v->n_tokens)
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"types\" is not a string of %d digits", what, v->n_tokens);
	v->types = malloc((size_t)v->n_tokens * sizeof *v->types);
	if (!v->types)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < v->n_tokens; i++) {
		char c = x->valuestring[i];
		if (c < '0' || c > '9')
			return shrink_fail(err, SHRINK_EINPUT, "%s: \"types\"[%d] is not a digit", what, i);
		v->types[i] = c - '0';
	}
	return SHRINK_OK;
}

static shrink_status get_scores(const cJSON *o, shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "scores");
	if (!x)
		return SHRINK_OK;
	if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != v->n_tokens)
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"scores\" is not an array of %d numbers", what,
				   v->n_tokens);
	v->scores = malloc((size_t)v->n_tokens * sizeof *v->scores);
	if (!v->scores)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	int i = 0;
	for (const cJSON *s = x->child; s; s = s->next, i++) {
		if (!cJSON_IsNumber(s) && !cJSON_IsNull(s))
			return shrink_fail(err, SHRINK_EINPUT, "%s: \"scores\"[%d] is not a number", what, i);
		v->scores[i] = cJSON_IsNull(s) ? -INFINITY : (float)s->valuedouble;
	}
	return SHRINK_OK;
}

static shrink_status get_header(const cJSON *o, shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
	const cJSON *pre = cJSON_GetObjectItemCaseSensitive(o, "pre");
	const char *k = cJSON_GetStringValue(kind);
	if (!k || (strcmp(k, "spm") != 0 && strcmp(k, "bpe") != 0))
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"kind\" is not \"spm\" or \"bpe\"", what);
	v->kind = strcmp(k, "spm") == 0 ? SHRINK_VOCAB_SPM : SHRINK_VOCAB_BPE;
	if (pre && (!cJSON_IsString(pre) || strlen(pre->valuestring) >= sizeof v->pre))
		return shrink_fail(err, SHRINK_EINPUT, "%s: \"pre\" is not a short string", what);
	snprintf(v->pre, sizeof v->pre, "%s", pre ? pre->valuestring : "default");
	shrink_status st = get_int(o, "bos", &v->bos_id, what, err);
	if (!st)
		st = get_int(o, "eos", &v->eos_id, what, err);
	if (!st)
		st = get_int(o, "unk", &v->unk_id, what, err);
	if (!st)
		st = get_int(o, "pad", &v->pad_id, what, err);
	if (!st)
		st = get_bool(o, "add_bos", &v->add_bos, what, err);
	if (!st)
		st = get_bool(o, "add_eos", &v->add_eos, what, err);
	if (!st)
		st = get_bool(o, "add_space_prefix", &v->add_space_prefix, what, err);
	return st;
}

static shrink_status from_object(const cJSON *o, shrink_vocab_spec *v, const char *what, shrink_error *err)
{
	if (!cJSON_IsObject(o))
		return shrink_fail(err, SHRINK_EINPUT, "%s: tokenizer is not a JSON object", what);
	shrink_status st = get_header(o, v, what, err);
	if (!st)
		st = get_strings(cJSON_GetObjectItemCaseSensitive(o, "tokens"), "tokens", &v->tokens, &v->n_tokens,
				 what, err);
	if (!st)
		st = get_types(o, v, what, err);
	if (!st)
		st = get_scores(o, v, what, err);
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(o, "merges");
	if (!st && merges)
		st = get_strings(merges, "merges", &v->merges, &v->n_merges, what, err);
	return st ? st : shrink_vocab_spec_check(v, what, err);
}

shrink_status shrink_vocab_spec_from_json(const char *json, const char *what, shrink_vocab_spec *v, shrink_error *err)
{
	memset(v, 0, sizeof *v);
	v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	if (!o)
		return shrink_fail(err, SHRINK_EINPUT, "%s: tokenizer is not valid JSON", what);
	shrink_status st = from_object(o, v, what, err);
	cJSON_Delete(o);
	if (st)
		shrink_vocab_spec_free(v);
	return st;
}
