/* partition.c: cuts user-defined tokens (Hugging Face's non-special added
 * tokens, GGUF token type 4) out of the text before the model sees it, the way
 * llama.cpp does: tokens are tried longest first, each one splitting every
 * stretch of plain text that is left. Control tokens are not matched: their
 * text in the input stays plain text. It does not honour lstrip/rstrip flags. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

static int longer_first(const void *a, const void *b, void *t)
{
	const uint32_t *len = ((const shrink_tokenizer *)t)->len;
	int x = *(const int *)a, y = *(const int *)b;
	if (len[x] != len[y])
		return len[x] > len[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

shrink_status shrink_partition_init(shrink_tokenizer *t, shrink_error *err)
{
	int n = 0;
	for (int id = 0; id < t->n_tokens; id++)
		n += t->types[id] == SHRINK_TOKEN_USER_DEFINED && t->len[id] > 0;
	t->user_ids = malloc((n ? (size_t)n : 1) * sizeof *t->user_ids);
	if (!t->user_ids)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	for (int id = 0; id < t->n_tokens; id++)
		if (t->types[id] == SHRINK_TOKEN_USER_DEFINED && t->len[id] > 0)
			t->user_ids[t->n_user++] = id;
	qsort_r(t->user_ids, (size_t)t->n_user, sizeof *t->user_ids, longer_first, t);
	return SHRINK_OK;
}

typedef struct {
	shrink_fragment *v;
	size_t n, cap;
} frag_list;

static bool add(frag_list *l, size_t off, size_t n, int id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		shrink_fragment *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (shrink_fragment){off, n, id};
	return true;
}

/* Split the plain-text fragments of `in` at every occurrence of token id. */
static bool split_at(const shrink_tokenizer *t, const char *text, int id, const frag_list *in, frag_list *out)
{
	const char *tok = shrink_tok_text(t, id);
	size_t len = t->len[id];
	out->n = 0;
	for (size_t i = 0; i < in->n; i++) {
		shrink_fragment f = in->v[i];
		const char *p = text + f.off, *end = p + f.n, *hit;
		if (f.id >= 0) {
			if (!add(out, f.off, f.n, f.id))
				return false;
			continue;
		}
		while ((hit = memmem(p, (size_t)(end - p), tok, len))) {
			if ((hit > p && !add(out, (size_t)(p - text), (size_t)(hit - p), -1)) ||
			    !add(out, (size_t)(hit - text), len, id))
				return false;
			p = hit + len;
		}
		if (p < end && !add(out, (size_t)(p - text), (size_t)(end - p), -1))
			return false;
	}
	return true;
}

shrink_status shrink_partition(const shrink_tokenizer *t, const char *text, size_t n_bytes, shrink_fragment **frags,
			       size_t *n_frags, shrink_error *err)
{
	frag_list cur = {0}, next = {0};
	*frags = NULL;
	*n_frags = 0;
	if (n_bytes == 0)
		return SHRINK_OK;
	bool ok = add(&cur, 0, n_bytes, -1);
	for (int k = 0; ok && k < t->n_user; k++) {
		int id = t->user_ids[k];
		if (!memmem(text, n_bytes, shrink_tok_text(t, id), t->len[id]))
			continue;
		ok = split_at(t, text, id, &cur, &next);
		frag_list tmp = cur;
		cur = next;
		next = tmp;
	}
	free(next.v);
	if (!ok) {
		free(cur.v);
		return shrink_fail(err, SHRINK_EIO, "out of memory (tokenizing %zu bytes)", n_bytes);
	}
	*frags = cur.v;
	*n_frags = cur.n;
	return SHRINK_OK;
}
