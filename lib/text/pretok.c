/* pretok.c: the byte-level BPE pre-tokenizer: named lists of PCRE2 (UTF + UCP)
 * regexes that cut text into words before merging. Each regex splits every
 * piece the previous one left; both the matches and the text between them are
 * kept, so no byte is ever dropped. The patterns are those of the GPT-2,
 * Llama 3, Qwen2 and SmolLM tokenizers. It does not normalize text and does
 * not map bytes to the GPT-2 alphabet (bpe.c does). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

#define MAX_REGEXES 2

static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
				"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
			       "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const struct {
	const char *name;
	const char *re[MAX_REGEXES];
} known[] = {
    {"default", {GPT2_RE}},	     /* a GGUF without tokenizer.ggml.pre */
    {"gpt2", {GPT2_RE}},	     /* GPT-2, MPT, OLMo, Phi-2 */
    {"llama3", {LLAMA3_RE}},	     /* Llama 3, Falcon 3, DBRX */
    {"qwen2", {QWEN2_RE}},	     /* Qwen2, Qwen2.5 */
    {"smollm", {"\\p{N}", GPT2_RE}}, /* SmolLM, StarCoder, Refact: digits one by one first */
};

struct shrink_pretok {
	pcre2_code *re[MAX_REGEXES];
	int n_re;
};

void shrink_pretok_free(shrink_pretok *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n_re; i++)
		pcre2_code_free(p->re[i]);
	free(p);
}

static shrink_status compile(const char *pattern, pcre2_code **out, shrink_error *err)
{
	int code;
	PCRE2_SIZE at;
	*out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
	if (!*out) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof msg);
		return shrink_fail(err, SHRINK_EINTERNAL, "pre-tokenizer regex: %s at offset %zu", (char *)msg,
				   (size_t)at);
	}
	pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is unavailable */
	return SHRINK_OK;
}

shrink_status shrink_pretok_new(const char *name, shrink_pretok **out, shrink_error *err)
{
	*out = NULL;
	size_t k = 0;
	while (k < sizeof known / sizeof known[0] && strcmp(known[k].name, name) != 0)
		k++;
	if (k == sizeof known / sizeof known[0])
		return shrink_fail(err, SHRINK_EINPUT,
				   "unsupported pre-tokenizer '%s' (default, gpt2, llama3, qwen2, smollm are)", name);
	shrink_pretok *p = calloc(1, sizeof *p);
	if (!p)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; i < MAX_REGEXES && known[k].re[i]; i++) {
		shrink_status st = compile(known[k].re[i], &p->re[i], err);
		if (st) {
			shrink_pretok_free(p);
			return st;
		}
		p->n_re = i + 1;
	}
	*out = p;
	return SHRINK_OK;
}

typedef struct {
	shrink_span *v;
	size_t n, cap;
} span_list;

static bool add_span(span_list *l, size_t off, size_t n)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		shrink_span *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (shrink_span){off, n};
	return true;
}

/* Split text[seg.off, seg.off + seg.n) by one regex; the regex sees only that piece. */
static shrink_status split_one(const pcre2_code *re, pcre2_match_data *md, const char *text, shrink_span seg,
			       span_list *out, shrink_error *err)
{
	PCRE2_SPTR subject = (PCRE2_SPTR)(text + seg.off);
	size_t pos = 0, last = 0;
	bool ok = true;
	while (pos < seg.n && ok) {
		int rc = pcre2_match(re, subject, seg.n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0)
			return shrink_fail(err, SHRINK_EINPUT, "text: pre-tokenizer regex failed (PCRE2 error %d)", rc);
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		if (ov[1] <= ov[0]) { /* empty match: step over one character */
			if (ov[0] >= seg.n)
				break;
			pos = ov[0] + (size_t)shrink_utf8_seq_len(subject[ov[0]]);
			continue;
		}
		if (ov[0] > last)
			ok = add_span(out, seg.off + last, ov[0] - last);
		ok = ok && add_span(out, seg.off + ov[0], ov[1] - ov[0]);
		last = pos = ov[1];
	}
	if (ok && last < seg.n)
		ok = add_span(out, seg.off + last, seg.n - last);
	return ok ? SHRINK_OK : shrink_fail(err, SHRINK_EIO, "out of memory (pre-tokenizing)");
}

static shrink_status split_all(const pcre2_code *re, const char *text, span_list *in, span_list *out, shrink_error *err)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!md)
		return shrink_fail(err, SHRINK_EIO, "out of memory (pre-tokenizing)");
	shrink_status st = SHRINK_OK;
	out->n = 0;
	for (size_t i = 0; i < in->n && !st; i++)
		st = split_one(re, md, text, in->v[i], out, err);
	pcre2_match_data_free(md);
	return st;
}

shrink_status shrink_pretok_split(const shrink_pretok *p, const char *text, size_t n_bytes, shrink_span **words,
				  size_t *n_words, shrink_error *err)
{
	span_list cur = {0}, next = {0};
	*words = NULL;
	*n_words = 0;
	if (n_bytes == 0)
		return SHRINK_OK;
	if (!add_span(&cur, 0, n_bytes))
		return shrink_fail(err, SHRINK_EIO, "out of memory (pre-tokenizing)");
	for (int i = 0; i < p->n_re; i++) {
		shrink_status st = split_all(p->re[i], text, &cur, &next, err);
		span_list tmp = cur;
		cur = next;
		next = tmp;
		if (st) {
			free(cur.v);
			free(next.v);
			return st;
		}
	}
	free(next.v);
	*words = cur.v;
	*n_words = cur.n;
	return SHRINK_OK;
}
