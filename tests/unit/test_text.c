/* test_text.c: the tokenizers and their readers.
 * - llama.cpp's tokenizer test vectors (ggml-vocab-llama-spm, ggml-vocab-gpt-2),
 *   encoded without BOS exactly as test-tokenizer-0 does, from the GGUF files and
 *   from tokenizer.json files written from them (SPM merges made the way Hugging
 *   Face's SentencePiece converter makes them);
 * - SPM encoding cross-checked against a naive reference (rescans every pair
 *   after every merge) on TinyStories lines, with stories260K's and Llama's vocabs;
 * - decode(encode(s)) == s on fixed, random and WikiText strings, and the
 *   streaming decoder holding back split UTF-8 sequences;
 * - user-defined tokens cut out whole, control-token text kept as plain text;
 * - the compact JSON form, tokenizer.json files written here (both kinds), and
 *   bad GGUF / JSON / text input, which must fail with SHRINK_EINPUT.
 * Files from the shared data folder are skipped with a message when absent. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "shrink/shrink.h"

/* ---- files ---- */

static char tmp[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void make_tmp(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/shrink-test-text-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void remove_tmp(void)
{
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(text, .init = make_tmp, .fini = remove_tmp);

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

/* A file of the shared data folder: $SHRINK_DATA, else ../shared/data beside the source tree. Skips when absent. */
static const char *data_file(const char *name)
{
	static char paths[4][1024];
	static int next;
	char *p = paths[next++ % 4];
	const char *dir = getenv("SHRINK_DATA");
	if (dir) {
		snprintf(p, 1024, "%s/%s", dir, name);
	} else {
		char src[1024];
		snprintf(src, sizeof src, "%s", __FILE__);
		snprintf(p, 1024, "%s/../../../shared/data/%s", dirname(src), name);
	}
	if (access(p, R_OK) != 0)
		cr_skip_test("%s not found (set SHRINK_DATA)", p);
	return p;
}

static char *slurp(const char *path, size_t *n)
{
	char *text;
	shrink_error err = {0};
	cr_assert_eq(shrink_read_text(path, &text, n, &err), SHRINK_OK, "%s", err.msg);
	return text;
}

/* ---- tokenizer helpers ---- */

static shrink_tokenizer *from_spec(const shrink_vocab_spec *spec)
{
	shrink_tokenizer *t;
	shrink_error err = {0};
	cr_assert_eq(shrink_tokenizer_new(spec, &t, &err), SHRINK_OK, "%s", err.msg);
	return t;
}

static void load_gguf_spec(const char *path, shrink_vocab_spec *spec)
{
	shrink_gguf g;
	shrink_error err = {0};
	cr_assert_eq(shrink_gguf_open(path, &g, &err), SHRINK_OK, "%s", err.msg);
	shrink_status st = shrink_vocab_from_gguf(&g, spec, &err);
	shrink_gguf_close(&g);
	cr_assert_eq(st, SHRINK_OK, "%s", err.msg);
}

static shrink_tokenizer *load_gguf(const char *name)
{
	shrink_vocab_spec spec;
	load_gguf_spec(data_file(name), &spec);
	shrink_tokenizer *t = from_spec(&spec);
	shrink_vocab_spec_free(&spec);
	return t;
}

static int *encode(const shrink_tokenizer *t, const char *s, size_t n, bool bos, size_t *n_ids)
{
	int *ids;
	shrink_error err = {0};
	cr_assert_eq(shrink_tokenize(t, s, n, bos, &ids, n_ids, &err), SHRINK_OK, "%s", err.msg);
	return ids;
}

/* Whole decode through the streaming decoder; caller frees. */
static char *decode(const shrink_tokenizer *t, const int *ids, size_t n_ids, size_t *n_out)
{
	size_t cap = shrink_decoder_max_bytes(t), n = 0;
	char *out = malloc(cap * (n_ids + 1) + 1);
	shrink_decoder d;
	shrink_decoder_init(&d, t);
	for (size_t i = 0; i < n_ids; i++)
		n += shrink_decoder_push(&d, ids[i], out + n, cap);
	n += shrink_decoder_flush(&d, out + n, cap);
	out[n] = '\0';
	*n_out = n;
	return out;
}

static void expect_round_trip(const shrink_tokenizer *t, const char *s, size_t n, bool bos)
{
	size_t n_ids, n_out;
	int *ids = encode(t, s, n, bos, &n_ids);
	char *back = decode(t, ids, n_ids, &n_out);
	cr_expect(n_out == n && memcmp(back, s, n) == 0, "round trip of '%.*s' gave '%s'", (int)n, s, back);
	free(back);
	free(ids);
}

static shrink_tokenizer *load_json(const char *path, shrink_vocab_spec *spec);

/* ---- llama.cpp test vectors ---- */

/* Inputs are separated by "\n__ggml_vocab_test__\n"; expected ids are one line each. */
static void check_vectors_with(const shrink_tokenizer *t, const char *vocab)
{
	char name[256];
	size_t n_inp, n_outf;
	snprintf(name, sizeof name, "%s.inp", vocab);
	char *inp = slurp(data_file(name), &n_inp);
	snprintf(name, sizeof name, "%s.out", vocab);
	char *outf = slurp(data_file(name), &n_outf);
	const char *sep = "\n__ggml_vocab_test__\n";
	char *p = inp, *line = outf;
	int n_cases = 0;
	while (p < inp + n_inp) {
		char *end = strstr(p, sep), *eol = strchr(line, '\n');
		cr_assert_not_null(end);
		cr_assert_not_null(eol, "fewer expected lines than inputs");
		*eol = '\0';
		size_t n_ids;
		int *ids = encode(t, p, (size_t)(end - p), false, &n_ids);
		char got[8192] = "";
		for (size_t i = 0; i < n_ids; i++)
			snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
		cr_expect_str_eq(got, line, "%s case %d '%.*s'", vocab, n_cases, (int)(end - p), p);
		expect_round_trip(t, p, (size_t)(end - p), false);
		free(ids);
		p = end + strlen(sep);
		line = eol + 1;
		n_cases++;
	}
	cr_expect_eq(*line, '\0', "more expected lines than inputs");
	cr_expect_eq(n_cases, 46);
	free(inp);
	free(outf);
}

static void check_vectors(const char *vocab)
{
	shrink_tokenizer *t = load_gguf(vocab);
	check_vectors_with(t, vocab);
	shrink_tokenizer_free(t);
}

Test(text, llama_spm_vectors)
{
	check_vectors("ggml-vocab-llama-spm.gguf");
}

Test(text, gpt2_vectors)
{
	check_vectors("ggml-vocab-gpt-2.gguf");
}

/* The same vocabs as tokenizer.json files: the SPM merges are made the way Hugging Face's
 * SentencePiece converter makes them (every split of a piece into two pieces, best score first). */

typedef struct {
	int left, right, merged;
	float score;
} hf_merge;

static int hf_merge_order(const void *a, const void *b)
{
	const hf_merge *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->merged != y->merged)
		return x->merged - y->merged;
	return x->left != y->left ? x->left - y->left : x->right - y->right;
}

static int utf8_char_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static int find_in(const shrink_vocab_spec *v, const int *order, const char *s)
{
	int lo = 0, hi = v->n_tokens;
	while (lo < hi) {
		int mid = (lo + hi) / 2, c = strcmp(v->tokens[order[mid]], s);
		if (c == 0)
			return order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int cmp_text(const void *a, const void *b, void *v)
{
	char **tokens = ((const shrink_vocab_spec *)v)->tokens;
	return strcmp(tokens[*(const int *)a], tokens[*(const int *)b]);
}

static cJSON *hf_spm_merges(const shrink_vocab_spec *v)
{
	int *order = malloc((size_t)v->n_tokens * sizeof(int));
	hf_merge *m = NULL;
	size_t n = 0, cap = 0;
	for (int i = 0; i < v->n_tokens; i++)
		order[i] = i;
	qsort_r(order, (size_t)v->n_tokens, sizeof(int), cmp_text, (void *)v);
	for (int id = 0; id < v->n_tokens; id++) {
		const char *s = v->tokens[id];
		if (v->types[id] != SHRINK_TOKEN_NORMAL)
			continue;
		for (size_t cut = (size_t)utf8_char_len((unsigned char)s[0]); cut < strlen(s);
		     cut += (size_t)utf8_char_len((unsigned char)s[cut])) {
			char left[256];
			snprintf(left, sizeof left, "%.*s", (int)cut, s);
			int l = find_in(v, order, left), r = find_in(v, order, s + cut);
			if (l < 0 || r < 0)
				continue;
			if (n == cap)
				m = realloc(m, (cap = cap ? 2 * cap : 1024) * sizeof *m);
			m[n++] = (hf_merge){l, r, id, v->scores[id]};
		}
	}
	qsort(m, n, sizeof *m, hf_merge_order);
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *pair = cJSON_CreateArray();
		cJSON_AddItemToArray(pair, cJSON_CreateString(v->tokens[m[i].left]));
		cJSON_AddItemToArray(pair, cJSON_CreateString(v->tokens[m[i].right]));
		cJSON_AddItemToArray(arr, pair);
	}
	free(m);
	free(order);
	return arr;
}

static void write_hf_json(const shrink_vocab_spec *v, const char *path)
{
	cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
	cJSON *model = cJSON_CreateObject(), *vocab = cJSON_AddObjectToObject(model, "vocab");
	bool spm = v->kind == SHRINK_VOCAB_SPM;
	for (int id = 0; id < v->n_tokens; id++) {
		cJSON_AddNumberToObject(vocab, v->tokens[id], id);
		if (v->types[id] != SHRINK_TOKEN_CONTROL && v->types[id] != SHRINK_TOKEN_UNKNOWN)
			continue;
		cJSON *a = cJSON_CreateObject();
		cJSON_AddNumberToObject(a, "id", id);
		cJSON_AddStringToObject(a, "content", v->tokens[id]);
		cJSON_AddBoolToObject(a, "special", true);
		cJSON_AddItemToArray(added, a);
	}
	cJSON_AddStringToObject(model, "type", "BPE");
	if (spm) {
		cJSON_AddBoolToObject(model, "byte_fallback", true);
		cJSON_AddStringToObject(model, "unk_token", v->tokens[v->unk_id]);
		cJSON_AddItemToObject(model, "merges", hf_spm_merges(v));
		cJSON_AddItemToObject(
		    root, "normalizer",
		    cJSON_Parse("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
				"\"\xe2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
				"\"content\":\"\xe2\x96\x81\"}]}"));
	} else {
		cJSON *merges = cJSON_AddArrayToObject(model, "merges");
		for (int i = 0; i < v->n_merges; i++)
			cJSON_AddItemToArray(merges, cJSON_CreateString(v->merges[i]));
		cJSON_AddItemToObject(root, "pre_tokenizer",
				      cJSON_Parse("{\"type\":\"ByteLevel\",\"use_regex\":true}"));
	}
	cJSON_AddItemToObject(root, "model", model);
	char *json = cJSON_PrintUnformatted(root);
	write_text(path, json);
	free(json);
	cJSON_Delete(root);
}

static void check_vectors_via_json(const char *vocab)
{
	shrink_vocab_spec from_gguf, from_json;
	load_gguf_spec(data_file(vocab), &from_gguf);
	write_hf_json(&from_gguf, at("tokenizer.json"));
	shrink_tokenizer *t = load_json(at("tokenizer.json"), &from_json);
	cr_expect_eq(from_json.kind, from_gguf.kind);
	cr_expect_eq(from_json.n_tokens, from_gguf.n_tokens);
	for (int i = 0; i < from_gguf.n_tokens; i++)
		cr_expect_eq(from_json.types[i], from_gguf.types[i], "token %d '%s'", i, from_gguf.tokens[i]);
	check_vectors_with(t, vocab);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&from_gguf);
	shrink_vocab_spec_free(&from_json);
}

Test(text, llama_spm_vectors_via_tokenizer_json)
{
	check_vectors_via_json("ggml-vocab-llama-spm.gguf");
}

Test(text, gpt2_vectors_via_tokenizer_json)
{
	check_vectors_via_json("ggml-vocab-gpt-2.gguf");
}

/* ---- naive SPM reference ---- */

typedef struct {
	const shrink_vocab_spec *v;
	int *order;
} ref_vocab;

static int ref_cmp(const void *a, const void *b, void *v)
{
	return strcmp(((shrink_vocab_spec *)v)->tokens[*(const int *)a],
		      ((shrink_vocab_spec *)v)->tokens[*(const int *)b]);
}

static int ref_find(const ref_vocab *r, const char *s)
{
	int lo = 0, hi = r->v->n_tokens, found = -1;
	while (lo < hi) {
		int mid = (lo + hi) / 2, c = strcmp(r->v->tokens[r->order[mid]], s);
		if (c == 0)
			found = r->order[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (found >= 0 && (r->v->types[found] == SHRINK_TOKEN_CONTROL || r->v->types[found] == SHRINK_TOKEN_BYTE))
		return -1;
	return found;
}

/* Rescan all pairs after every merge: best score wins, leftmost on ties. */
static size_t ref_spm(const ref_vocab *r, const char *text, int *out)
{
	char *sym[4096];
	int n = 0;
	char esc[4096] = "\xe2\x96\x81";
	for (const char *c = text; *c; c++)
		strcat(esc, *c == ' ' ? "\xe2\x96\x81" : (char[]){*c, 0});
	for (size_t i = 0; esc[i];) {
		size_t len = (unsigned char)esc[i] < 0x80   ? 1
			     : (unsigned char)esc[i] < 0xE0 ? 2
			     : (unsigned char)esc[i] < 0xF0 ? 3
							    : 4;
		sym[n++] = strndup(esc + i, len);
		i += len;
	}
	for (;;) {
		int best = -1;
		float best_score = 0;
		for (int i = 0; i + 1 < n; i++) {
			char buf[1024];
			snprintf(buf, sizeof buf, "%s%s", sym[i], sym[i + 1]);
			int id = ref_find(r, buf);
			if (id >= 0 && (best < 0 || r->v->scores[id] > best_score)) {
				best = i;
				best_score = r->v->scores[id];
			}
		}
		if (best < 0)
			break;
		char *m = malloc(strlen(sym[best]) + strlen(sym[best + 1]) + 1);
		strcpy(m, sym[best]);
		strcat(m, sym[best + 1]);
		free(sym[best]);
		free(sym[best + 1]);
		sym[best] = m;
		memmove(sym + best + 1, sym + best + 2, (size_t)(n - best - 2) * sizeof *sym);
		n--;
	}
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		int id = ref_find(r, sym[i]);
		if (id >= 0) {
			out[k++] = id;
		} else {
			for (const unsigned char *b = (const unsigned char *)sym[i]; *b; b++)
				out[k++] = 3 + *b; /* <0x00> is token 3 in both vocabs */
		}
		free(sym[i]);
	}
	return k;
}

static void check_against_reference(const char *vocab, int n_lines)
{
	shrink_vocab_spec spec;
	load_gguf_spec(data_file(vocab), &spec);
	shrink_tokenizer *t = from_spec(&spec);
	ref_vocab r = {&spec, malloc((size_t)spec.n_tokens * sizeof(int))};
	for (int i = 0; i < spec.n_tokens; i++)
		r.order[i] = i;
	qsort_r(r.order, (size_t)spec.n_tokens, sizeof(int), ref_cmp, &spec);
	size_t n_text;
	char *text = slurp(data_file("tinystories.txt"), &n_text);
	char *save, *line = strtok_r(text, "\n", &save);
	for (int i = 0; line && i < n_lines; line = strtok_r(NULL, "\n", &save), i++) {
		if (strlen(line) > 900)
			continue;
		int want[4096];
		size_t n_want = ref_spm(&r, line, want), n_got;
		int *got = encode(t, line, strlen(line), false, &n_got);
		cr_expect(n_got == n_want && memcmp(got, want, n_got * sizeof(int)) == 0, "%s: '%s'", vocab, line);
		free(got);
	}
	free(text);
	free(r.order);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&spec);
}

Test(text, spm_matches_naive_reference_stories260k)
{
	check_against_reference("stories260K.gguf", 120);
}

Test(text, spm_matches_naive_reference_llama)
{
	check_against_reference("ggml-vocab-llama-spm.gguf", 40);
}

/* ---- round trips ---- */

static const char *const samples[] = {
    "",
    " ",
    "  ",
    "a",
    "Hello world",
    " Hello world",
    "Hello  world\n\n\tend ",
    "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9",
    "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c",			   /* 你好，世界 */
    "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x87\xa9\xf0\x9f\x87\xaa",   /* emoji, skin tone, flag */
    "e\xcc\x81 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", /* combining mark, Hebrew,
											      Arabic */
    "\xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b",					   /* Khmer */
    "tab\there\r\nwindows\rline",
    "<s> </s> <unk> <|endoftext|> <0x41>",
    "1234567890 3.14159 1,000,000",
    "'s 't 're 've 'm 'll 'd I'M YOU'LL",
    "\xf4\x8f\xbf\xbf\xef\xbf\xbf\xe2\x80\x8b\xc2\xa0", /* U+10FFFF, U+FFFF, ZWSP, NBSP */
};

static void round_trip_all(const shrink_tokenizer *t)
{
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		expect_round_trip(t, samples[i], strlen(samples[i]), false);
		expect_round_trip(t, samples[i], strlen(samples[i]), true);
	}
	expect_round_trip(t, "a\0b", 3, false); /* a NUL byte is text too */
}

Test(text, round_trip_llama_spm)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-llama-spm.gguf");
	round_trip_all(t);
	shrink_tokenizer_free(t);
}

Test(text, round_trip_gpt2)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-gpt-2.gguf");
	round_trip_all(t);
	shrink_tokenizer_free(t);
}

Test(text, round_trip_stories260k)
{
	shrink_tokenizer *t = load_gguf("stories260K.gguf");
	round_trip_all(t);
	shrink_tokenizer_free(t);
}

Test(text, round_trip_wikitext, .timeout = 120)
{
	const char *vocabs[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"};
	size_t n;
	char *text = slurp(data_file("wiki.test.raw"), &n);
	for (int v = 0; v < 2; v++) {
		shrink_tokenizer *t = load_gguf(vocabs[v]);
		size_t n_ids, n_out;
		int *ids = encode(t, text, n, false, &n_ids);
		cr_expect(n_ids > n / 8 && n_ids < n / 2, "%s: %zu tokens for %zu bytes", vocabs[v], n_ids, n);
		char *back = decode(t, ids, n_ids, &n_out);
		cr_expect(n_out == n && memcmp(back, text, n) == 0, "%s: wiki.test.raw does not round-trip", vocabs[v]);
		free(back);
		free(ids);
		shrink_tokenizer_free(t);
	}
	free(text);
}

/* Random strings of ASCII, whitespace and 2-, 3- and 4-byte characters (fixed seed). */
static size_t random_text(unsigned *seed, char *out)
{
	size_t n = 0;
	int n_chars = (int)(rand_r(seed) % 40);
	for (int i = 0; i < n_chars; i++) {
		unsigned kind = (unsigned)rand_r(seed) % 10, r = (unsigned)rand_r(seed);
		uint32_t cp = kind < 5	 ? 0x20 + r % 95
			      : kind < 6 ? (uint32_t) " \t\n\r"[r % 4]
			      : kind < 7 ? 0x80 + r % 0x780
			      : kind < 9 ? 0x800 + r % 0xF800
					 : 0x10000 + r % 0x100000;
		if (cp >= 0xD800 && cp < 0xE000)
			cp = 'x';
		if (cp < 0x80) {
			out[n++] = (char)cp;
		} else if (cp < 0x800) {
			out[n++] = (char)(0xC0 | cp >> 6);
			out[n++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out[n++] = (char)(0xE0 | cp >> 12);
			out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[n++] = (char)(0x80 | (cp & 0x3F));
		} else {
			out[n++] = (char)(0xF0 | cp >> 18);
			out[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
			out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
			out[n++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	return n;
}

Test(text, round_trip_random)
{
	const char *vocabs[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "stories260K.gguf"};
	for (int v = 0; v < 3; v++) {
		shrink_tokenizer *t = load_gguf(vocabs[v]);
		unsigned seed = 12345;
		for (int i = 0; i < 300; i++) {
			char s[256];
			size_t n = random_text(&seed, s);
			expect_round_trip(t, s, n, i % 2 == 0);
		}
		shrink_tokenizer_free(t);
	}
}

/* ---- stories260K ---- */

Test(text, stories260k_once_upon_a_time)
{
	shrink_tokenizer *t = load_gguf("stories260K.gguf");
	cr_assert_eq(shrink_tokenizer_n_vocab(t), 512);
	cr_assert_eq(shrink_tokenizer_bos(t), 1);
	cr_assert_eq(shrink_tokenizer_eos(t), 2);
	cr_assert(shrink_tokenizer_is_control(t, 1));
	cr_assert(!shrink_tokenizer_is_control(t, 300));
	size_t n_ids, n_out;
	int *ids = encode(t, "Once upon a time", 16, true, &n_ids);
	cr_assert_geq(n_ids, 3);
	cr_assert_leq(n_ids, 8, "%zu tokens: the merges did not apply", n_ids);
	cr_assert_eq(ids[0], 1);
	for (size_t i = 1; i < n_ids; i++)
		cr_expect_geq(ids[i], 259, "token %zu is %d, a byte or control token", i, ids[i]);
	char *back = decode(t, ids, n_ids, &n_out);
	cr_expect_str_eq(back, "Once upon a time");
	/* one token a word: <s> ▁Once ▁upon ▁a ▁time */
	cr_expect(n_ids == 5 && memcmp(ids, (int[]){1, 403, 407, 261, 378}, 5 * sizeof(int)) == 0);
	free(back);
	free(ids);
	shrink_tokenizer_free(t);
}

/* ---- streaming decode ---- */

Test(text, stream_holds_split_utf8_bpe)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-gpt-2.gguf");
	const char *s = "\xf0\x9f\x98\x81";
	size_t n_ids;
	int *ids = encode(t, s, strlen(s), false, &n_ids);
	cr_assert_gt(n_ids, 1, "the emoji should take several byte-level tokens");
	shrink_decoder d;
	shrink_decoder_init(&d, t);
	char out[64];
	for (size_t i = 0; i + 1 < n_ids; i++)
		cr_expect_eq(shrink_decoder_push(&d, ids[i], out, sizeof out), 0,
			     "bytes came out before the sequence ended");
	size_t n = shrink_decoder_push(&d, ids[n_ids - 1], out, sizeof out);
	cr_expect(n == 4 && memcmp(out, s, 4) == 0);
	cr_expect_eq(shrink_decoder_flush(&d, out, sizeof out), 0);
	free(ids);
	shrink_tokenizer_free(t);
}

Test(text, stream_holds_split_utf8_spm_bytes)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-llama-spm.gguf");
	const int byte0 = 3; /* <0x00> */
	shrink_decoder d;
	char out[64];
	shrink_decoder_init(&d, t);
	cr_expect_eq(shrink_decoder_push(&d, 1, out, sizeof out), 0, "BOS prints nothing");
	cr_expect_eq(shrink_decoder_push(&d, byte0 + 0xE4, out, sizeof out), 0);
	cr_expect_eq(shrink_decoder_push(&d, byte0 + 0xBD, out, sizeof out), 0);
	size_t n = shrink_decoder_push(&d, byte0 + 0xA0, out, sizeof out);
	cr_expect(n == 3 && memcmp(out, "\xe4\xbd\xa0", 3) == 0);
	/* an unfinished sequence is flushed as U+FFFD */
	cr_expect_eq(shrink_decoder_push(&d, byte0 + 0xF0, out, sizeof out), 0);
	cr_expect_eq(shrink_decoder_push(&d, byte0 + 0x9F, out, sizeof out), 0);
	n = shrink_decoder_flush(&d, out, sizeof out);
	cr_expect(n == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0);
	/* a sequence cut short by an ASCII byte: U+FFFD, then the byte */
	shrink_decoder_push(&d, byte0 + 0xE4, out, sizeof out);
	n = shrink_decoder_push(&d, byte0 + 'A', out, sizeof out);
	cr_expect(n == 4 && memcmp(out,
				   "\xef\xbf\xbd"
				   "A",
				   4) == 0);
	/* a stray continuation byte */
	n = shrink_decoder_push(&d, byte0 + 0x80, out, sizeof out);
	cr_expect(n == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0);
	cr_expect_eq(shrink_decoder_push(&d, -1, out, sizeof out), 0);
	cr_expect_eq(shrink_decoder_push(&d, 1 << 30, out, sizeof out), 0);
	shrink_tokenizer_free(t);
}

Test(text, stream_spm_leading_space)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-llama-spm.gguf");
	shrink_decoder d;
	char out[64];
	shrink_decoder_init(&d, t);
	shrink_decoder_push(&d, 1, out, sizeof out);
	size_t n = shrink_decoder_push(&d, 15043, out, sizeof out); /* "▁Hello" */
	cr_expect(n == 5 && memcmp(out, "Hello", 5) == 0);
	n = shrink_decoder_push(&d, 3186, out, sizeof out); /* "▁world" */
	cr_expect(n == 6 && memcmp(out, " world", 6) == 0);
	shrink_tokenizer_free(t);
}

/* ---- compact JSON ---- */

static void expect_same_spec(const shrink_vocab_spec *a, const shrink_vocab_spec *b)
{
	cr_assert_eq(a->kind, b->kind);
	cr_assert_eq(a->n_tokens, b->n_tokens);
	cr_assert_eq(a->n_merges, b->n_merges);
	cr_assert_str_eq(a->pre, b->pre);
	cr_assert(a->bos_id == b->bos_id && a->eos_id == b->eos_id && a->unk_id == b->unk_id && a->pad_id == b->pad_id);
	cr_assert(a->add_bos == b->add_bos && a->add_eos == b->add_eos && a->add_space_prefix == b->add_space_prefix);
	cr_assert_eq(!a->scores, !b->scores);
	cr_assert_eq(!a->types, !b->types);
	for (int i = 0; i < a->n_tokens; i++) {
		cr_assert_str_eq(a->tokens[i], b->tokens[i]);
		cr_assert(!a->scores || a->scores[i] == b->scores[i], "score %d: %g vs %g", i, a->scores[i],
			  b->scores[i]);
		cr_assert(!a->types || a->types[i] == b->types[i]);
	}
	for (int i = 0; i < a->n_merges; i++)
		cr_assert_str_eq(a->merges[i], b->merges[i]);
}

static void json_round_trip(const char *vocab)
{
	shrink_vocab_spec a, b;
	shrink_error err = {0};
	load_gguf_spec(data_file(vocab), &a);
	char *json = shrink_vocab_spec_to_json(&a);
	cr_assert_not_null(json);
	cr_assert_eq(shrink_vocab_spec_from_json(json, "test", &b, &err), SHRINK_OK, "%s", err.msg);
	expect_same_spec(&a, &b);
	free(json);
	shrink_vocab_spec_free(&a);
	shrink_vocab_spec_free(&b);
}

Test(text, vocab_json_round_trip)
{
	json_round_trip("stories260K.gguf");
	json_round_trip("ggml-vocab-llama-spm.gguf");
	json_round_trip("ggml-vocab-gpt-2.gguf");
}

Test(text, vocab_json_bad)
{
	static const char *const bad[] = {
	    "not json",
	    "[]",
	    "{\"kind\":\"unigram\",\"tokens\":[\"a\"]}",
	    "{\"kind\":\"spm\"}",
	    "{\"kind\":\"spm\",\"tokens\":[]}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",1]}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"types\":\"1\"}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"types\":\"17\"}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"scores\":[1]}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"bos\":2}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"bos\":1e30}",
	    "{\"kind\":\"spm\",\"tokens\":[\"a\",\"b\"],\"add_bos\":1}",
	    "{\"kind\":\"bpe\",\"tokens\":[\"a\",\"b\"],\"merges\":[\"a c\"]}",
	    "{\"kind\":\"bpe\",\"tokens\":[\"a\",\"b\"],\"merges\":[\"a b\"]}",
	    "{\"kind\":\"bpe\",\"tokens\":[\"a\",\"b\",\"ab\"],\"merges\":[\"ab\"]}",
	    "{\"kind\":\"bpe\",\"pre\":\"a name far too long for the field\",\"tokens\":[\"a\"]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		shrink_vocab_spec v;
		shrink_error err = {0};
		cr_expect_eq(shrink_vocab_spec_from_json(bad[i], "shrink.tokenizer", &v, &err), SHRINK_EINPUT, "%s",
			     bad[i]);
		cr_expect(strncmp(err.msg, "shrink.tokenizer: ", 18) == 0, "message '%s'", err.msg);
	}
}

/* ---- tokenizer.json written here ---- */

static char *byte_vocab_entries(void)
{
	static char buf[256 * 24];
	buf[0] = '\0';
	for (int b = 0; b < 256; b++)
		sprintf(buf + strlen(buf), "\"<0x%02X>\":%d,", b, 3 + b);
	return buf;
}

/* Llama 2 style: <unk> <s> </s>, 256 byte tokens, then pieces; merges give the scores. */
static void write_spm_json(const char *path, bool metaspace)
{
	char json[16384];
	snprintf(
	    json, sizeof json,
	    "{\"version\":\"1.0\",\"added_tokens\":["
	    "{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
	    "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true},"
	    "{\"id\":268,\"content\":\"<t>\",\"special\":false}],"
	    "\"normalizer\":%s,\"pre_tokenizer\":%s,"
	    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_"
	    "id\":0}},"
	    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
	    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\"},{\"type\":\"ByteFallback\"}]},"
	    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"vocab\":{"
	    "\"<unk>\":0,\"<s>\":1,\"</s>\":2,%s"
	    "\"\xe2\x96\x81\":259,\"a\":260,\"b\":261,\"c\":262,\"\xe2\x96\x81"
	    "a\":263,\"ab\":264,"
	    "\"\xe2\x96\x81"
	    "ab\":265,\"abc\":266,\"\xe2\x96\x81"
	    "c\":267},"
	    "\"merges\":[\"a b\",[\"\xe2\x96\x81\",\"ab\"],\"\xe2\x96\x81 a\",\"ab c\",\"\xe2\x96\x81 c\"]}}",
	    metaspace ? "null"
		      : "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
			"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}",
	    metaspace ? "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
			"\"split\":false}"
		      : "null",
	    byte_vocab_entries());
	write_text(path, json);
}

static shrink_tokenizer *load_json(const char *path, shrink_vocab_spec *spec)
{
	shrink_error err = {0};
	cr_assert_eq(shrink_vocab_from_tokenizer_json(path, spec, &err), SHRINK_OK, "%s", err.msg);
	return from_spec(spec);
}

static void expect_ids(const shrink_tokenizer *t, const char *s, bool bos, const int *want, size_t n_want)
{
	size_t n;
	int *ids = encode(t, s, strlen(s), bos, &n);
	char got[512] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
	cr_expect(n == n_want && (n == 0 || memcmp(ids, want, n * sizeof(int)) == 0), "'%s' gave%s", s, got);
	free(ids);
}

static void check_spm_json(bool metaspace)
{
	shrink_vocab_spec spec;
	write_spm_json(at("tokenizer.json"), metaspace);
	shrink_tokenizer *t = load_json(at("tokenizer.json"), &spec);
	cr_expect_eq(spec.kind, SHRINK_VOCAB_SPM);
	cr_expect(spec.add_space_prefix && spec.add_bos);
	cr_expect(spec.bos_id == 1 && spec.eos_id == 2 && spec.unk_id == 0);
	cr_expect_eq(spec.types[3 + 'x'], SHRINK_TOKEN_BYTE);
	cr_expect_eq(spec.types[1], SHRINK_TOKEN_CONTROL);
	/* "▁ab c": "a b" (rank 0) first, then "▁ ab" (rank 1); "abc" would need "ab c" (rank 3) */
	expect_ids(t, "ab c", true, (int[]){1, 265, 267}, 3);
	expect_ids(t, "abc", false, (int[]){265, 262}, 2);
	expect_ids(t, "ca", false, (int[]){267, 260}, 2);
	expect_ids(t, "x\xc3\xa9", false, (int[]){259, 3 + 'x', 3 + 0xC3, 3 + 0xA9}, 4);
	/* a user-defined token is cut out whole (and the text after it gets the space prefix, as in llama.cpp);
	 * control-token text stays plain text */
	cr_expect_eq(spec.types[268], SHRINK_TOKEN_USER_DEFINED);
	expect_ids(t, "ab<t>c", false, (int[]){265, 268, 267}, 3);
	expect_ids(t, "<s>", false, (int[]){259, 3 + '<', 3 + 's', 3 + '>'}, 4);
	expect_round_trip(t, "ab c x\xc3\xa9 \xf0\x9f\x98\x80", strlen("ab c x\xc3\xa9 \xf0\x9f\x98\x80"), true);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&spec);
}

Test(text, tokenizer_json_spm_normalizer)
{
	check_spm_json(false);
}

Test(text, tokenizer_json_spm_metaspace)
{
	check_spm_json(true);
}

/* GPT-2 alphabet for one byte, as a JSON-ready UTF-8 string (quotes and backslashes escaped). */
static const char *byte_char(int b)
{
	static char s[8];
	int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
	unsigned cp = (unsigned)b;
	if (!printable) {
		cp = 0x100;
		for (int i = 0; i < b; i++)
			cp += !((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE);
	}
	if (cp == '"' || cp == '\\')
		snprintf(s, sizeof s, "\\%c", cp);
	else if (cp < 0x80)
		snprintf(s, sizeof s, "%c", cp);
	else
		snprintf(s, sizeof s, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
	return s;
}

/* Byte-level: the 256 byte characters, then merged tokens; Ġ is U+0120 (space). */
static void write_bpe_json(const char *path, const char *pre_tokenizer)
{
	static char json[32768];
	char *p = json;
	p += sprintf(p,
		     "{\"added_tokens\":[{\"id\":262,\"content\":\"<|endoftext|>\",\"special\":true}],"
		     "\"normalizer\":null,\"pre_tokenizer\":%s,"
		     "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
		     "\"model\":{\"type\":\"BPE\",\"vocab\":{",
		     pre_tokenizer);
	for (int b = 0; b < 256; b++)
		p += sprintf(p, "\"%s\":%d,", byte_char(b), b);
	p += sprintf(
	    p, "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xc4\xa0w\":260,\"\xc4\xa0wo\":261,"
	       "\"<|endoftext|>\":262,\"12\":263,\"\xc4\xa0wor\":264},"
	       "\"merges\":[\"h e\",[\"l\",\"l\"],\"he ll\",\"\xc4\xa0 w\",\"hell o\",\"\xc4\xa0w o\",\"1 2\"]}}");
	write_text(path, json);
}

static const char *llama3_split =
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}";

Test(text, tokenizer_json_bpe_gpt2)
{
	shrink_vocab_spec spec;
	write_bpe_json(at("tokenizer.json"), "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}");
	shrink_tokenizer *t = load_json(at("tokenizer.json"), &spec);
	cr_expect_eq(spec.kind, SHRINK_VOCAB_BPE);
	cr_expect_str_eq(spec.pre, "gpt2");
	cr_expect(!spec.add_bos);
	cr_expect_eq(spec.types[262], SHRINK_TOKEN_CONTROL);
	cr_expect_eq(spec.eos_id, 262);
	/* "hello" "Ġwo" "r" "ld" ... gpt2 splits " world" as one word */
	expect_ids(t, "hello world", false, (int[]){259, 261, 'r', 'l', 'd'}, 5);
	expect_ids(t, "hell\xc3\xa9", false, (int[]){258, 0xC3, 0xA9}, 3);
	expect_ids(t, "1234", false, (int[]){263, '3', '4'}, 3);
	expect_ids(t, "hello wor", false, (int[]){259, 261, 'r'}, 3);
	expect_round_trip(t, "hello world \xf0\x9f\x98\x80 1234\n", strlen("hello world \xf0\x9f\x98\x80 1234\n"),
			  false);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&spec);
}

Test(text, tokenizer_json_bpe_llama3_with_configs)
{
	shrink_vocab_spec spec;
	write_bpe_json(at("tokenizer.json"), llama3_split);
	write_text(at("tokenizer_config.json"),
		   "{\"add_bos_token\":true,\"bos_token\":\"<|endoftext|>\",\"eos_token\":{\"content\":\"hello\"}}");
	write_text(at("generation_config.json"), "{\"bos_token_id\":5,\"eos_token_id\":[7,8]}");
	shrink_tokenizer *t = load_json(at("tokenizer.json"), &spec);
	cr_expect_str_eq(spec.pre, "llama3");
	cr_expect(spec.add_bos && spec.bos_id == 262 && spec.eos_id == 259);
	/* Llama 3 splits digits in threes and takes a word that is a token whole, merges or not */
	expect_ids(t, "1234 hello", true, (int[]){262, 263, '3', '4', ' ', 259}, 6);
	expect_ids(t, "hello wor", false, (int[]){259, 264}, 2);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&spec);
}

/* ---- bad input ---- */

/* A metadata-only GGUF v3 file built key by key. */
typedef struct {
	char buf[1 << 16];
	size_t n;
	uint64_t n_kv;
} gguf_writer;

static void gw_raw(gguf_writer *w, const void *p, size_t n)
{
	cr_assert_leq(w->n + n, sizeof w->buf);
	memcpy(w->buf + w->n, p, n);
	w->n += n;
}

static void gw_str(gguf_writer *w, const char *s)
{
	uint64_t n = strlen(s);
	gw_raw(w, &n, 8);
	gw_raw(w, s, n);
}

static void gw_key(gguf_writer *w, const char *key, uint32_t type)
{
	gw_str(w, key);
	gw_raw(w, &type, 4);
	w->n_kv++;
}

static void gw_string(gguf_writer *w, const char *key, const char *value)
{
	gw_key(w, key, 8);
	gw_str(w, value);
}

static void gw_u32(gguf_writer *w, const char *key, uint32_t value)
{
	gw_key(w, key, 4);
	gw_raw(w, &value, 4);
}

static void gw_strings(gguf_writer *w, const char *key, const char *const *s, uint64_t n)
{
	uint32_t t = 8;
	gw_key(w, key, 9);
	gw_raw(w, &t, 4);
	gw_raw(w, &n, 8);
	for (uint64_t i = 0; i < n; i++)
		gw_str(w, s[i]);
}

static void gw_numbers(gguf_writer *w, const char *key, uint32_t type, const void *v, uint64_t n)
{
	gw_key(w, key, 9);
	gw_raw(w, &type, 4);
	gw_raw(w, &n, 8);
	gw_raw(w, v, n * 4);
}

static shrink_status gw_read(gguf_writer *w, shrink_vocab_spec *spec, shrink_error *err)
{
	char head[24] = "GGUF";
	uint32_t version = 3;
	uint64_t n_tensors = 0;
	memcpy(head + 4, &version, 4);
	memcpy(head + 8, &n_tensors, 8);
	memcpy(head + 16, &w->n_kv, 8);
	FILE *f = fopen(at("vocab.gguf"), "wb");
	cr_assert_not_null(f);
	fwrite(head, 1, 24, f);
	fwrite(w->buf, 1, w->n, f);
	fclose(f);
	shrink_gguf g;
	cr_assert_eq(shrink_gguf_open(at("vocab.gguf"), &g, err), SHRINK_OK, "%s", err->msg);
	shrink_status st = shrink_vocab_from_gguf(&g, spec, err);
	shrink_gguf_close(&g);
	return st;
}

static const char *const bpe_tokens[] = {"a", "b", "ab", "<|endoftext|>"};

/* A valid gpt2 vocab, then `broken` (0 = none) spoils one thing. */
static shrink_status small_gguf(int broken, shrink_vocab_spec *spec, shrink_error *err)
{
	gguf_writer *w = calloc(1, sizeof *w);
	const char *merges[] = {"a b", broken == 4 ? "a c" : "b a"};
	int32_t types[] = {1, 1, 1, broken == 5 ? 9 : 3};
	float scores[] = {0, 0, 0, 0, 0};
	if (broken != 1)
		gw_string(w, "tokenizer.ggml.model", broken == 7 ? "bert" : "gpt2");
	gw_string(w, "tokenizer.ggml.pre", broken == 8 ? "no-such-pre" : "gpt-2");
	if (broken == 11)
		gw_numbers(w, "tokenizer.ggml.tokens", 5, types, 4);
	else if (broken != 2)
		gw_strings(w, "tokenizer.ggml.tokens", bpe_tokens, 4);
	gw_numbers(w, "tokenizer.ggml.token_type", 5, types, broken == 3 ? 3 : 4);
	gw_numbers(w, "tokenizer.ggml.scores", 6, scores, broken == 10 ? 5 : 4);
	gw_strings(w, "tokenizer.ggml.merges", merges, broken == 4 ? 2 : 1);
	gw_u32(w, "tokenizer.ggml.eos_token_id", broken == 6 ? 4 : 3);
	if (broken == 9)
		gw_string(w, "tokenizer.ggml.bos_token_id", "1");
	shrink_status st = gw_read(w, spec, err);
	free(w);
	return st;
}

Test(text, gguf_vocab_small_and_bad)
{
	shrink_vocab_spec spec;
	shrink_error err = {0};
	cr_assert_eq(small_gguf(0, &spec, &err), SHRINK_OK, "%s", err.msg);
	cr_expect(spec.kind == SHRINK_VOCAB_BPE && spec.n_tokens == 4 && spec.n_merges == 1 && spec.eos_id == 3);
	cr_expect(spec.bos_id == -1 && !spec.add_bos);
	shrink_tokenizer *t = from_spec(&spec);
	expect_ids(t, "abba", false, (int[]){2, 1, 0}, 3);
	shrink_tokenizer_free(t);
	shrink_vocab_spec_free(&spec);
	static const char *const what[] = {"",
					   "tokenizer.ggml.model",
					   "tokenizer.ggml.tokens",
					   "token_type",
					   "merges",
					   "token_type",
					   "eos_token_id",
					   "bert",
					   "no-such-pre",
					   "bos_token_id",
					   "tokenizer.ggml.scores",
					   "tokenizer.ggml.tokens"};
	for (int broken = 1; broken <= 11; broken++) {
		shrink_error e = {0};
		cr_expect_eq(small_gguf(broken, &spec, &e), SHRINK_EINPUT, "case %d", broken);
		cr_expect(strstr(e.msg, "vocab.gguf") && strstr(e.msg, what[broken]), "case %d: '%s'", broken, e.msg);
		cr_expect_null(spec.tokens);
	}
}

static void expect_bad_json(const char *json, const char *why)
{
	shrink_vocab_spec spec;
	shrink_error err = {0};
	write_text(at("bad.json"), json);
	cr_expect_eq(shrink_vocab_from_tokenizer_json(at("bad.json"), &spec, &err), SHRINK_EINPUT, "%s: %s", why, json);
	cr_expect(strstr(err.msg, "bad.json"), "%s: message '%s'", why, err.msg);
}

Test(text, tokenizer_json_bad)
{
	const char *bl = "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},";
	char buf[1024];
	expect_bad_json("{", "not JSON");
	expect_bad_json("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "Unigram");
	expect_bad_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", "neither kind");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\"}}", bl);
	expect_bad_json(buf, "no vocab");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}}}", bl);
	expect_bad_json(buf, "negative id");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e9}}}", bl);
	expect_bad_json(buf, "absurd id");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0}}}", bl);
	expect_bad_json(buf, "id twice");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
		 bl);
	expect_bad_json(buf, "merge result not a token");
	snprintf(buf, sizeof buf, "{%s\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\"]]}}",
		 bl);
	expect_bad_json(buf, "merge array of one");
	expect_bad_json(
	    "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"a\":0},\"merges\":[\"a x\"]}}",
	    "SPM merge naming an unknown token");
	expect_bad_json("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"}},"
			"\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}",
			"unknown regex");
	expect_bad_json("{\"pre_tokenizer\":{\"type\":\"Whitespace\"},"
			"\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}",
			"unknown pre-tokenizer");
	shrink_vocab_spec spec;
	shrink_error err = {0};
	cr_expect_eq(shrink_vocab_from_tokenizer_json(at("missing.json"), &spec, &err), SHRINK_EINPUT);
}

Test(text, tokenizer_json_bad_config)
{
	shrink_vocab_spec spec;
	shrink_error err = {0};
	write_bpe_json(at("tokenizer.json"), "{\"type\":\"ByteLevel\"}");
	write_text(at("tokenizer_config.json"), "{\"eos_token\":\"<|no such token|>\"}");
	cr_expect_eq(shrink_vocab_from_tokenizer_json(at("tokenizer.json"), &spec, &err), SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "eos_token"), "'%s'", err.msg);
	write_text(at("tokenizer_config.json"), "not json");
	cr_expect_eq(shrink_vocab_from_tokenizer_json(at("tokenizer.json"), &spec, &err), SHRINK_EINPUT);
	write_text(at("tokenizer_config.json"), "{}");
	write_text(at("generation_config.json"), "{\"eos_token_id\":100000}");
	cr_expect_eq(shrink_vocab_from_tokenizer_json(at("tokenizer.json"), &spec, &err), SHRINK_EINPUT);
}

Test(text, bad_spec_rejected_by_tokenizer_new)
{
	char *tokens[] = {"a", "b", "ab"};
	char *merges[] = {"a b", "b c"};
	int types[] = {1, 1, 1};
	shrink_vocab_spec spec = {.kind = SHRINK_VOCAB_BPE,
				  .n_tokens = 3,
				  .tokens = tokens,
				  .types = types,
				  .n_merges = 2,
				  .merges = merges,
				  .pre = "gpt2",
				  .bos_id = -1,
				  .eos_id = -1,
				  .unk_id = -1,
				  .pad_id = -1};
	shrink_tokenizer *t;
	shrink_error err = {0};
	cr_expect_eq(shrink_tokenizer_new(&spec, &t, &err), SHRINK_EINPUT);
	cr_expect_null(t);
	spec.n_merges = 1;
	snprintf(spec.pre, sizeof spec.pre, "tekken");
	cr_expect_eq(shrink_tokenizer_new(&spec, &t, &err), SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "tekken"), "'%s'", err.msg);
	snprintf(spec.pre, sizeof spec.pre, "gpt2");
	spec.n_tokens = 0;
	cr_expect_eq(shrink_tokenizer_new(&spec, &t, &err), SHRINK_EINPUT);
	spec.n_tokens = 3;
	spec.eos_id = 3;
	cr_expect_eq(shrink_tokenizer_new(&spec, &t, &err), SHRINK_EINPUT);
	spec.eos_id = -1;
	spec.kind = SHRINK_VOCAB_NONE;
	cr_expect_eq(shrink_tokenizer_new(&spec, &t, &err), SHRINK_EINPUT);
}

Test(text, invalid_utf8_text)
{
	shrink_tokenizer *t = load_gguf("stories260K.gguf");
	static const char *const bad[] = {"\xff",	  "ab\x80",	      "\xc3",	    "\xc0\xaf",
					  "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \xe2\x82"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int *ids = (int *)1;
		size_t n = 99;
		shrink_error err = {0};
		cr_expect_eq(shrink_tokenize(t, bad[i], strlen(bad[i]), true, &ids, &n, &err), SHRINK_EINPUT,
			     "case %zu", i);
		cr_expect(ids == NULL && n == 0);
		cr_expect(strstr(err.msg, "UTF-8"), "'%s'", err.msg);
	}
	shrink_tokenizer_free(t);
}

Test(text, empty_text)
{
	shrink_tokenizer *t = load_gguf("ggml-vocab-llama-spm.gguf");
	expect_ids(t, "", false, NULL, 0);
	expect_ids(t, "", true, (int[]){1}, 1);
	shrink_tokenizer_free(t);
}
