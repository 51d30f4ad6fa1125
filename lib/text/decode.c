/* decode.c: token ids back to text. Each token's bytes are worked out once
 * when the tokenizer is built (SPM: U+2581 -> space, <0xXX> -> the byte;
 * byte-level BPE: the GPT-2 alphabet back to bytes; control tokens: nothing).
 * The streaming decoder passes those bytes on as complete UTF-8 sequences,
 * holding back a sequence that a later token may finish, and drops the SPM
 * leading space of the first piece as sentencepiece does. It does not undo
 * normalizers or clean up spaces around punctuation. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

#define SPACE_MARK "\xe2\x96\x81"
#define UNKNOWN_PIECE " \xe2\x81\x87 " /* " ⁇ ", sentencepiece's rendering of <unk> */
#define REPLACEMENT "\xef\xbf\xbd"     /* U+FFFD */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int shrink_byte_token_value(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static size_t spm_piece(const shrink_tokenizer *t, int id, char *out, bool *is_text)
{
	const char *s = shrink_tok_text(t, id);
	size_t n = t->len[id], m = 0;
	int type = t->types[id];
	*is_text = false;
	if (type == SHRINK_TOKEN_CONTROL || type == SHRINK_TOKEN_UNUSED)
		return 0;
	if (type == SHRINK_TOKEN_UNKNOWN) {
		memcpy(out, UNKNOWN_PIECE, sizeof UNKNOWN_PIECE - 1);
		return sizeof UNKNOWN_PIECE - 1;
	}
	int byte = type == SHRINK_TOKEN_BYTE ? shrink_byte_token_value(s, n) : -1;
	if (byte >= 0) {
		out[0] = (char)byte;
		return 1;
	}
	if (type == SHRINK_TOKEN_USER_DEFINED) {
		memcpy(out, s, n);
		return n;
	}
	*is_text = true;
	for (size_t i = 0; i < n;) {
		if (n - i >= 3 && memcmp(s + i, SPACE_MARK, 3) == 0) {
			out[m++] = ' ';
			i += 3;
		} else {
			out[m++] = s[i++];
		}
	}
	return m;
}

static size_t bpe_piece(const shrink_tokenizer *t, int id, char *out)
{
	const char *s = shrink_tok_text(t, id);
	size_t n = t->len[id], m = 0;
	int type = t->types[id];
	if (type == SHRINK_TOKEN_CONTROL || type == SHRINK_TOKEN_UNUSED)
		return 0;
	if (type == SHRINK_TOKEN_USER_DEFINED) {
		memcpy(out, s, n);
		return n;
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int len = shrink_utf8_decode(s + i, n - i, &cp);
		int byte = len ? shrink_cp_to_byte(cp) : -1;
		if (byte >= 0) {
			out[m++] = (char)byte;
			i += (size_t)len;
		} else { /* outside the GPT-2 alphabet: pass through as is */
			size_t k = len ? (size_t)len : 1;
			memcpy(out + m, s + i, k);
			m += k;
			i += k;
		}
	}
	return m;
}

shrink_status shrink_decode_init(shrink_tokenizer *t, shrink_error *err)
{
	size_t total = t->off[t->n_tokens - 1] + t->len[t->n_tokens - 1] + 1;
	size_t cap = total + (sizeof UNKNOWN_PIECE) * (size_t)t->n_tokens;
	t->piece_arena = malloc(cap);
	t->piece_off = malloc((size_t)t->n_tokens * sizeof *t->piece_off);
	t->piece_len = malloc((size_t)t->n_tokens * sizeof *t->piece_len);
	t->piece_spm_text = malloc((size_t)t->n_tokens);
	if (!t->piece_arena || !t->piece_off || !t->piece_len || !t->piece_spm_text)
		return shrink_fail(err, SHRINK_EIO, "out of memory (decoder table)");
	size_t used = 0;
	for (int id = 0; id < t->n_tokens; id++) {
		bool is_text = false;
		char *out = t->piece_arena + used;
		size_t n = t->kind == SHRINK_VOCAB_SPM ? spm_piece(t, id, out, &is_text) : bpe_piece(t, id, out);
		t->piece_off[id] = used;
		t->piece_len[id] = (uint32_t)n;
		t->piece_spm_text[id] = is_text;
		used += n;
		if (n > t->max_piece_bytes)
			t->max_piece_bytes = n;
	}
	return SHRINK_OK;
}

size_t shrink_decoder_max_bytes(const shrink_tokenizer *t)
{
	/* held bytes plus the piece, every byte of which may turn into a 3-byte U+FFFD */
	return 3 * (t->max_piece_bytes + sizeof((shrink_decoder *)0)->pending);
}

void shrink_decoder_init(shrink_decoder *d, const shrink_tokenizer *t)
{
	memset(d, 0, sizeof *d);
	d->tok = t;
	d->at_start = true;
}

typedef struct {
	char *out;
	size_t cap, n;
} writer;

/* Whole sequences only: one that does not fit is dropped, never cut. */
static void put(writer *w, const void *s, size_t n)
{
	if (w->cap - w->n >= n) {
		memcpy(w->out + w->n, s, n);
		w->n += n;
	}
}

static void feed(shrink_decoder *d, writer *w, unsigned char b)
{
	if (d->n_pending > 0) {
		unsigned char lead = d->pending[0];
		if (shrink_utf8_cont_ok(lead, d->n_pending, b)) {
			d->pending[d->n_pending++] = b;
			if (d->n_pending == shrink_utf8_need(lead)) {
				put(w, d->pending, (size_t)d->n_pending);
				d->n_pending = 0;
			}
			return;
		}
		put(w, REPLACEMENT, 3); /* the held sequence can never complete */
		d->n_pending = 0;
	}
	int need = shrink_utf8_need(b);
	if (need == 1) {
		put(w, &b, 1);
	} else if (need == 0) {
		put(w, REPLACEMENT, 3);
	} else {
		d->pending[0] = b;
		d->n_pending = 1;
	}
}

size_t shrink_decoder_push(shrink_decoder *d, int id, char *out, size_t cap)
{
	const shrink_tokenizer *t = d->tok;
	if (!t || id < 0 || id >= t->n_tokens || t->piece_len[id] == 0)
		return 0;
	const char *p = t->piece_arena + t->piece_off[id];
	size_t n = t->piece_len[id];
	if (d->at_start) {
		if (t->kind == SHRINK_VOCAB_SPM && t->add_space_prefix && t->piece_spm_text[id] && p[0] == ' ') {
			p++;
			n--;
		}
		d->at_start = false;
	}
	writer w = {out, cap, 0};
	for (size_t i = 0; i < n; i++)
		feed(d, &w, (unsigned char)p[i]);
	return w.n;
}

size_t shrink_decoder_flush(shrink_decoder *d, char *out, size_t cap)
{
	writer w = {out, cap, 0};
	if (d->n_pending > 0)
		put(&w, REPLACEMENT, 3);
	d->n_pending = 0;
	return w.n;
}
