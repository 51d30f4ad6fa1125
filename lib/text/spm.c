/* spm.c: SentencePiece-style score BPE with byte fallback (GGUF "llama" vocabs,
 * Llama 2 / Mistral / TinyLlama tokenizer.json). Spaces become U+2581 (one is
 * prepended when add_space_prefix), the text is cut into characters, and the
 * adjacent pair whose concatenation is a token with the highest score is merged
 * until none is left; a piece that is no token becomes <0xXX> byte tokens.
 * Same results as llama.cpp's SPM tokenizer. To keep the merge queue short the
 * text is cut where two adjacent characters occur side by side in no token:
 * no merge can cross such a cut, so the result is unchanged. It does not
 * implement Unigram models. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

typedef struct {
	const shrink_tokenizer *t;
	const char *text;
	shrink_symbol *sym;
	shrink_bigram_queue queue;
} spm_state;

size_t shrink_spm_max_ids(const char *text, size_t n_bytes)
{
	size_t spaces = 0;
	for (size_t i = 0; i < n_bytes; i++)
		spaces += text[i] == ' ';
	return n_bytes + 2 * spaces + 3;
}

/* Space -> U+2581, with one prepended when asked. */
static char *escape_spaces(const char *text, size_t n_bytes, bool space_prefix, size_t *out_n)
{
	char *buf = malloc(shrink_spm_max_ids(text, n_bytes) + 1);
	size_t n = 0;
	if (!buf)
		return NULL;
	if (space_prefix) {
		memcpy(buf, SPACE_MARK, 3);
		n = 3;
	}
	for (size_t i = 0; i < n_bytes; i++) {
		if (text[i] == ' ') {
			memcpy(buf + n, SPACE_MARK, 3);
			n += 3;
		} else {
			buf[n++] = text[i];
		}
	}
	*out_n = n;
	return buf;
}

/* The bytes of two adjacent characters packed into a key (UTF-8 keeps the split unambiguous; token
 * texts hold no NUL, so a pair that starts with one is never in the set, and key 0 never occurs). */
static uint64_t pack_pair(const char *s, int n_bytes)
{
	uint64_t key = 0;
	memcpy(&key, s, (size_t)n_bytes);
	return key;
}

static int char_len(const char *s, size_t left)
{
	size_t len = (size_t)shrink_utf8_seq_len((unsigned char)s[0]);
	return (int)(len < left ? len : left);
}

shrink_status shrink_spm_init(shrink_tokenizer *t, shrink_error *err)
{
	shrink_status st = shrink_keyset_init(&t->spm_pairs, err);
	for (int id = 0; !st && id < t->n_tokens; id++) {
		const char *s = shrink_tok_text(t, id);
		size_t n = t->len[id];
		if (shrink_strmap_find(&t->map, s, n) != id)
			continue; /* not a token the encoder can produce */
		for (size_t i = 0; i < n && !st;) {
			int a = char_len(s + i, n - i);
			if (i + (size_t)a >= n)
				break;
			int b = char_len(s + i + a, n - i - (size_t)a);
			if (!shrink_keyset_add(&t->spm_pairs, pack_pair(s + i, a + b)))
				st = shrink_fail(err, SHRINK_EIO, "out of memory");
			i += (size_t)a;
		}
	}
	return st;
}

/* Characters of text[off, off + n_bytes) as linked symbols. */
static int split_chars(spm_state *s, size_t off, size_t n_bytes)
{
	int n_sym = 0;
	for (size_t at = 0; at < n_bytes; n_sym++) {
		int len = char_len(s->text + off + at, n_bytes - at);
		shrink_symbol *y = &s->sym[n_sym];
		y->off = (int)(off + at);
		y->n = len;
		y->prev = n_sym - 1;
		at += (size_t)len;
		y->next = at == n_bytes ? -1 : n_sym + 1;
		y->id = shrink_strmap_find(&s->t->map, s->text + y->off, (size_t)len);
	}
	return n_sym;
}

static bool try_pair(spm_state *s, int left, int right)
{
	if (left < 0 || right < 0)
		return true;
	int n = s->sym[left].n + s->sym[right].n;
	if (n > s->t->max_token_bytes)
		return true;
	int id = shrink_strmap_find(&s->t->map, s->text + s->sym[left].off, (size_t)n);
	if (id < 0)
		return true;
	shrink_bigram b = {.key = s->t->scores[id], .left = left, .right = right, .a = n, .merged = id};
	return shrink_queue_push(&s->queue, &b);
}

static bool merge_all(spm_state *s, int n_sym)
{
	for (int i = 1; i < n_sym; i++)
		if (!try_pair(s, i - 1, i))
			return false;
	shrink_bigram b;
	while (shrink_queue_pop(&s->queue, &b)) {
		shrink_symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.a)
			continue; /* one side changed since the pair was queued */
		l->n += r->n;
		l->id = b.merged;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s->sym[r->next].prev = b.left;
		if (!try_pair(s, l->prev, b.left) || !try_pair(s, b.left, l->next))
			return false;
	}
	return true;
}

static shrink_status emit_symbol(const spm_state *s, const shrink_symbol *y, shrink_id_buf *out, shrink_error *err)
{
	const shrink_tokenizer *t = s->t;
	if (y->id >= 0) {
		shrink_ids_push(out, y->id);
		return SHRINK_OK;
	}
	for (int j = 0; j < y->n; j++) {
		unsigned char byte = (unsigned char)s->text[y->off + j];
		if (t->byte_id[byte] >= 0) {
			shrink_ids_push(out, t->byte_id[byte]);
		} else if (t->unk >= 0) {
			shrink_ids_push(out, t->unk);
			return SHRINK_OK;
		} else {
			return shrink_fail(err, SHRINK_EINPUT,
					   "text: byte 0x%02X has no token and the vocab has no unknown token", byte);
		}
	}
	return SHRINK_OK;
}

/* Merge and emit one segment; no token spans its ends, so it merges as it would inside the whole text. */
static shrink_status encode_segment(spm_state *s, size_t off, size_t n_bytes, shrink_id_buf *out, shrink_error *err)
{
	int n_sym = split_chars(s, off, n_bytes);
	s->queue.n = 0;
	if (!merge_all(s, n_sym))
		return shrink_fail(err, SHRINK_EIO, "out of memory (tokenizing)");
	shrink_status st = SHRINK_OK;
	for (int i = 0; st == SHRINK_OK && i != -1; i = s->sym[i].next)
		st = emit_symbol(s, &s->sym[i], out, err);
	return st;
}

/* Cut the text between two characters that no token has side by side, and encode the pieces. */
static shrink_status encode_segments(spm_state *s, size_t n_bytes, shrink_id_buf *out, shrink_error *err)
{
	size_t start = 0, at = 0;
	shrink_status st = SHRINK_OK;
	while (at < n_bytes && !st) {
		int a = char_len(s->text + at, n_bytes - at);
		if (at + (size_t)a >= n_bytes)
			break;
		int b = char_len(s->text + at + a, n_bytes - at - (size_t)a);
		at += (size_t)a;
		if (!shrink_keyset_has(&s->t->spm_pairs, pack_pair(s->text + at - a, a + b))) {
			st = encode_segment(s, start, at - start, out, err);
			start = at;
		}
	}
	return st ? st : encode_segment(s, start, n_bytes - start, out, err);
}

shrink_status shrink_spm_encode(const shrink_tokenizer *t, const char *text, size_t n_bytes, bool space_prefix,
				shrink_id_buf *out, shrink_error *err)
{
	if (n_bytes == 0)
		return SHRINK_OK;
	size_t n_esc;
	spm_state s = {.t = t};
	char *esc = escape_spaces(text, n_bytes, space_prefix, &n_esc);
	s.text = esc;
	s.sym = esc ? malloc(n_esc * sizeof *s.sym) : NULL;
	if (!s.sym) {
		free(esc);
		return shrink_fail(err, SHRINK_EIO, "out of memory (tokenizing %zu bytes)", n_bytes);
	}
	shrink_status st = encode_segments(&s, n_esc, out, err);
	shrink_queue_free(&s.queue);
	free(s.sym);
	free(esc);
	return st;
}
