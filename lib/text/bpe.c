/* bpe.c: byte-level BPE (GPT-2, Llama 3, Qwen2): the pre-tokenizer cuts the
 * text into words, each byte of a word starts as the token of its GPT-2
 * alphabet character, and the adjacent pair with the lowest merge rank is
 * merged until no listed pair is left. Same results as llama.cpp and Hugging
 * Face tokenizers for these vocabs. It does not cache words or apply
 * normalizers (Qwen2's NFC is left out, as llama.cpp does). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

/* GPT-2's table: printable Latin-1 bytes stand for themselves; the other 68 (0x00-0x20, 0x7F-0xA0, 0xAD)
 * take U+0100 to U+0143 in byte order. */
static bool byte_is_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

uint32_t shrink_byte_to_cp(unsigned char b)
{
	if (byte_is_printable(b))
		return b;
	if (b <= 0x20)
		return 0x100 + b;
	return b == 0xAD ? 0x143 : 0x121 + (uint32_t)(b - 0x7F);
}

int shrink_cp_to_byte(uint32_t cp)
{
	if (cp < 0x100)
		return byte_is_printable(cp) ? (int)cp : -1;
	if (cp <= 0x120)
		return (int)(cp - 0x100);
	if (cp <= 0x142)
		return (int)(cp - 0x121 + 0x7F);
	return cp == 0x143 ? 0xAD : -1;
}

static shrink_status add_merge(shrink_tokenizer *t, const char *m, int rank, char *buf, shrink_error *err)
{
	const char *sp = m[0] ? strchr(m + 1, ' ') : NULL;
	if (!sp)
		return shrink_fail(err, SHRINK_EINPUT, "merges entry %d '%s' is not two tokens separated by a space",
				   rank, m);
	size_t n_left = (size_t)(sp - m), n_right = strlen(sp + 1);
	if (n_left + n_right > (size_t)t->max_token_bytes)
		return shrink_fail(err, SHRINK_EINPUT, "merges entry %d '%s' names a token the vocab does not have",
				   rank, m);
	memcpy(buf, m, n_left);
	memcpy(buf + n_left, sp + 1, n_right);
	int a = shrink_strmap_find(&t->map, buf, n_left);
	int b = shrink_strmap_find(&t->map, sp + 1, n_right);
	int ab = shrink_strmap_find(&t->map, buf, n_left + n_right);
	if (a < 0 || b < 0 || ab < 0)
		return shrink_fail(err, SHRINK_EINPUT, "merges entry %d '%s' names a token the vocab does not have",
				   rank, m);
	shrink_pairmap_put(&t->merges, a, b, rank, ab);
	return SHRINK_OK;
}

shrink_status shrink_bpe_init(shrink_tokenizer *t, const shrink_vocab_spec *spec, shrink_error *err)
{
	shrink_status st = shrink_pairmap_init(&t->merges, (size_t)spec->n_merges, err);
	if (!st)
		st = shrink_pretok_new(spec->pre, &t->pretok, err);
	char *buf = st ? NULL : malloc((size_t)t->max_token_bytes + 1);
	if (!st && !buf)
		st = shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int i = 0; !st && i < spec->n_merges; i++)
		st = add_merge(t, spec->merges[i], i, buf, err);
	free(buf);
	for (int b = 0; !st && b < 256; b++) {
		char s[4];
		int n = shrink_utf8_encode(shrink_byte_to_cp((unsigned char)b), s);
		t->byte_id[b] = shrink_strmap_find(&t->map, s, (size_t)n);
	}
	t->ignore_merges = strcmp(spec->pre, "llama3") == 0;
	return st;
}

typedef struct {
	const shrink_tokenizer *t;
	shrink_symbol *sym;
	size_t cap_sym;
	char *mapped; /* the word in the GPT-2 alphabet (ignore_merges lookups) */
	shrink_bigram_queue queue;
} bpe_state;

static bool try_pair(bpe_state *s, int left, int right)
{
	if (left < 0 || right < 0 || s->sym[left].id < 0 || s->sym[right].id < 0)
		return true;
	int rank, merged;
	if (!shrink_pairmap_find(&s->t->merges, s->sym[left].id, s->sym[right].id, &rank, &merged))
		return true;
	shrink_bigram b = {.key = -(double)rank,
			   .left = left,
			   .right = right,
			   .a = s->sym[left].id,
			   .b = s->sym[right].id,
			   .merged = merged};
	return shrink_queue_push(&s->queue, &b);
}

static bool merge_word(bpe_state *s, int n_sym)
{
	s->queue.n = 0;
	for (int i = 1; i < n_sym; i++)
		if (!try_pair(s, i - 1, i))
			return false;
	shrink_bigram b;
	while (shrink_queue_pop(&s->queue, &b)) {
		shrink_symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
		if (l->n == 0 || r->n == 0 || l->id != b.a || r->id != b.b)
			continue;
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

/* Llama 3 takes a word whole when it is a token. */
static int whole_word(const bpe_state *s, const unsigned char *w, size_t n)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += (size_t)shrink_utf8_encode(shrink_byte_to_cp(w[i]), s->mapped + m);
	return shrink_strmap_find(&s->t->map, s->mapped, m);
}

static bool grow(bpe_state *s, size_t n)
{
	if (n <= s->cap_sym)
		return true;
	shrink_symbol *sym = realloc(s->sym, n * sizeof *sym);
	char *mapped = sym ? realloc(s->mapped, 2 * n) : NULL;
	if (sym)
		s->sym = sym;
	if (mapped)
		s->mapped = mapped;
	if (!sym || !mapped)
		return false;
	s->cap_sym = n;
	return true;
}

static bool encode_word(bpe_state *s, const unsigned char *w, size_t n, shrink_id_buf *out)
{
	const shrink_tokenizer *t = s->t;
	if (!grow(s, n))
		return false;
	int whole = t->ignore_merges && (int)n <= t->max_token_bytes ? whole_word(s, w, n) : -1;
	if (whole >= 0) {
		shrink_ids_push(out, whole);
		return true;
	}
	for (size_t i = 0; i < n; i++)
		s->sym[i] = (shrink_symbol){(int)i, 1, (int)i - 1, i + 1 == n ? -1 : (int)i + 1, t->byte_id[w[i]]};
	if (!merge_word(s, (int)n))
		return false;
	for (int i = 0; i != -1; i = s->sym[i].next) {
		int id = s->sym[i].id >= 0 ? s->sym[i].id : t->unk;
		if (id >= 0)
			shrink_ids_push(out, id);
	}
	return true;
}

shrink_status shrink_bpe_encode(const shrink_tokenizer *t, const char *text, size_t n_bytes, shrink_id_buf *out,
				shrink_error *err)
{
	shrink_span *words;
	size_t n_words;
	shrink_status st = shrink_pretok_split(t->pretok, text, n_bytes, &words, &n_words, err);
	if (st)
		return st;
	bpe_state s = {.t = t};
	for (size_t i = 0; i < n_words && !st; i++)
		if (!encode_word(&s, (const unsigned char *)text + words[i].off, words[i].n, out))
			st = shrink_fail(err, SHRINK_EIO, "out of memory (tokenizing %zu bytes)", n_bytes);
	shrink_queue_free(&s.queue);
	free(s.sym);
	free(s.mapped);
	free(words);
	return st;
}
