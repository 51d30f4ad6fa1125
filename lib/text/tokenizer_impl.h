/* tokenizer_impl.h: the tokenizer's private state and the pieces lib/text
 * shares between its files (hash tables, the merge queue, the pre-tokenizer).
 * Not installed; nothing outside lib/text includes it. */
#ifndef SHRINK_TEXT_TOKENIZER_IMPL_H
#define SHRINK_TEXT_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shrink/text.h"

/* ---- string -> token id (open addressing; keys live in the tokenizer's arena) ---- */
typedef struct {
	int32_t *ids; /* -1 marks an empty slot */
	uint64_t *hashes;
	size_t mask;
	const char *arena;
	const size_t *off;
	const uint32_t *len;
} shrink_strmap;

uint64_t shrink_hash_bytes(const char *s, size_t n);
shrink_status shrink_strmap_init(shrink_strmap *m, size_t n_keys, shrink_error *err);
void shrink_strmap_free(shrink_strmap *m);
/* Insert token `id` (its text is arena + off[id]); a later id with the same text replaces an earlier one. */
void shrink_strmap_put(shrink_strmap *m, int id);
int shrink_strmap_find(const shrink_strmap *m, const char *s, size_t n);

/* ---- (left id, right id) -> (rank, merged id) for byte-level BPE ---- */
typedef struct {
	uint64_t *keys; /* UINT64_MAX marks an empty slot */
	int32_t *rank, *merged;
	size_t mask;
} shrink_pairmap;

shrink_status shrink_pairmap_init(shrink_pairmap *m, size_t n_keys, shrink_error *err);
void shrink_pairmap_free(shrink_pairmap *m);
/* Keeps the first (best) rank when a pair is listed twice. */
void shrink_pairmap_put(shrink_pairmap *m, int left, int right, int rank, int merged);
bool shrink_pairmap_find(const shrink_pairmap *m, int left, int right, int *rank, int *merged);

/* ---- a set of nonzero 64-bit keys ---- */
typedef struct {
	uint64_t *keys; /* 0 marks an empty slot */
	size_t mask, n;
} shrink_keyset;

shrink_status shrink_keyset_init(shrink_keyset *s, shrink_error *err);
void shrink_keyset_free(shrink_keyset *s);
bool shrink_keyset_add(shrink_keyset *s, uint64_t key); /* false when out of memory; key 0 is ignored */
bool shrink_keyset_has(const shrink_keyset *s, uint64_t key);

/* ---- priority queue of candidate merges: larger key first, then leftmost ---- */
typedef struct {
	double key; /* SPM: score of the merged token; BPE: minus the merge rank */
	int left, right;
	int a, b;   /* SPM: a = merged byte length; BPE: the two ids the merge expects */
	int merged; /* id of the merged token */
} shrink_bigram;

typedef struct {
	shrink_bigram *v;
	size_t n, cap;
} shrink_bigram_queue;

bool shrink_queue_push(shrink_bigram_queue *q, const shrink_bigram *e);
bool shrink_queue_pop(shrink_bigram_queue *q, shrink_bigram *out);
void shrink_queue_free(shrink_bigram_queue *q);

/* ---- linked symbols both merge loops work on ---- */
typedef struct {
	int off, n; /* byte span in the text being merged; n == 0 once merged away */
	int prev, next;
	int id; /* token for the span, -1 when it has none */
} shrink_symbol;

/* ---- pre-tokenizer (byte-level BPE): regexes applied one after another ---- */
typedef struct shrink_pretok shrink_pretok;

typedef struct {
	size_t off, n;
} shrink_span;

shrink_status shrink_pretok_new(const char *name, shrink_pretok **out, shrink_error *err);
void shrink_pretok_free(shrink_pretok *p);
/* Split valid UTF-8 text into words (matches and the gaps between them, in order). *words is malloc'd. */
shrink_status shrink_pretok_split(const shrink_pretok *p, const char *text, size_t n_bytes, shrink_span **words,
				  size_t *n_words, shrink_error *err);

/* ---- user-defined tokens cut out of the text before encoding ---- */
typedef struct {
	size_t off, n;
	int id; /* the user-defined token, or -1 for plain text */
} shrink_fragment;

/* ---- the tokenizer ---- */
typedef struct {
	int *v;
	size_t n;
} shrink_id_buf; /* preallocated to an upper bound: appends never grow it */

struct shrink_tokenizer {
	shrink_vocab_kind kind;
	int n_tokens;
	char *arena; /* token texts, NUL-terminated, back to back */
	size_t *off;
	uint32_t *len;
	float *scores;
	unsigned char *types;
	shrink_strmap map; /* text -> id for encoding; CONTROL, UNUSED and (SPM) BYTE tokens left out */
	int max_token_bytes;
	int byte_id[256];	 /* SPM: <0xXX> token; BPE: token of the byte's mapped character; -1 if none */
	shrink_pairmap merges;	 /* BPE */
	shrink_keyset spm_pairs; /* SPM: adjacent character pairs found inside tokens, packed */
	shrink_pretok *pretok;
	bool ignore_merges; /* BPE: a word that is a token is taken whole (Llama 3) */
	int *user_ids;	    /* user-defined tokens, longest first */
	int n_user;
	/* decoding: the bytes each token stands for */
	char *piece_arena;
	size_t *piece_off;
	uint32_t *piece_len;
	unsigned char *piece_spm_text; /* SPM text piece: may lose its leading space at the start */
	size_t max_piece_bytes;
	int bos, eos, unk, pad;
	bool add_bos, add_eos, add_space_prefix;
};

static inline const char *shrink_tok_text(const shrink_tokenizer *t, int id)
{
	return t->arena + t->off[id];
}

static inline void shrink_ids_push(shrink_id_buf *b, int id)
{
	b->v[b->n++] = id;
}

/* GPT-2's byte <-> code point table. */
uint32_t shrink_byte_to_cp(unsigned char b);
int shrink_cp_to_byte(uint32_t cp); /* -1 if cp is not in the table */

/* The byte a "<0xXX>" token stands for, -1 when the text is not of that form. */
int shrink_byte_token_value(const char *s, size_t n);

shrink_status shrink_partition_init(shrink_tokenizer *t, shrink_error *err);
/* Plain text and user-defined tokens in order; *frags is malloc'd (NULL, 0 for empty text). */
shrink_status shrink_partition(const shrink_tokenizer *t, const char *text, size_t n_bytes, shrink_fragment **frags,
			       size_t *n_frags, shrink_error *err);

/* `space_prefix`: prepend U+2581 (the vocab asks for it and the text starts the input or follows a token). */
shrink_status shrink_spm_encode(const shrink_tokenizer *t, const char *text, size_t n_bytes, bool space_prefix,
				shrink_id_buf *out, shrink_error *err);
size_t shrink_spm_max_ids(const char *text, size_t n_bytes);
shrink_status shrink_spm_init(shrink_tokenizer *t, shrink_error *err);
shrink_status shrink_bpe_init(shrink_tokenizer *t, const shrink_vocab_spec *spec, shrink_error *err);
shrink_status shrink_bpe_encode(const shrink_tokenizer *t, const char *text, size_t n_bytes, shrink_id_buf *out,
				shrink_error *err);
shrink_status shrink_decode_init(shrink_tokenizer *t, shrink_error *err);

#endif
