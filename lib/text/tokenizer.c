/* tokenizer.c: builds a tokenizer from a shrink_vocab_spec (its own copy of
 * the token texts, lookup tables, decode pieces) and runs encoding: checks the
 * text is valid UTF-8, adds BOS (when the caller asks and the vocab adds one),
 * cuts out user-defined tokens (partition.c) and hands each stretch of plain
 * text to spm.c or bpe.c. It does not read files (lib/io does), does not add
 * EOS, and does not match control-token text (that stays plain text). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "utf8.h"

#define MAX_TEXT_BYTES ((size_t)INT_MAX / 4)

void shrink_tokenizer_free(shrink_tokenizer *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->off);
	free(t->len);
	free(t->scores);
	free(t->types);
	shrink_strmap_free(&t->map);
	shrink_pairmap_free(&t->merges);
	shrink_keyset_free(&t->spm_pairs);
	shrink_pretok_free(t->pretok);
	free(t->piece_arena);
	free(t->piece_off);
	free(t->piece_len);
	free(t->piece_spm_text);
	free(t->user_ids);
	free(t);
}

static int token_type(const shrink_vocab_spec *spec, int id)
{
	if (spec->types && spec->types[id] != 0)
		return spec->types[id];
	if (!spec->types && spec->kind == SHRINK_VOCAB_SPM &&
	    shrink_byte_token_value(spec->tokens[id], strlen(spec->tokens[id])) >= 0)
		return SHRINK_TOKEN_BYTE;
	return SHRINK_TOKEN_NORMAL;
}

static shrink_status copy_tokens(shrink_tokenizer *t, const shrink_vocab_spec *spec, shrink_error *err)
{
	size_t n = (size_t)spec->n_tokens, total = 0;
	for (size_t i = 0; i < n; i++)
		total += strlen(spec->tokens[i]) + 1;
	t->arena = malloc(total);
	t->off = malloc(n * sizeof *t->off);
	t->len = malloc(n * sizeof *t->len);
	t->scores = calloc(n, sizeof *t->scores);
	t->types = malloc(n);
	if (!t->arena || !t->off || !t->len || !t->scores || !t->types)
		return shrink_fail(err, SHRINK_EIO, "out of memory (%zu tokens)", n);
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(spec->tokens[i]);
		memcpy(t->arena + used, spec->tokens[i], len + 1);
		t->off[i] = used;
		t->len[i] = (uint32_t)len;
		used += len + 1;
		t->types[i] = (unsigned char)token_type(spec, (int)i);
		if (spec->scores)
			t->scores[i] = spec->scores[i];
	}
	return SHRINK_OK;
}

/* Token texts the encoder may produce: no control or unused tokens, and for SPM no <0xXX> pieces. */
static bool encodable(const shrink_tokenizer *t, int id)
{
	int type = t->types[id];
	if (t->len[id] == 0 || type == SHRINK_TOKEN_CONTROL || type == SHRINK_TOKEN_UNUSED)
		return false;
	return !(t->kind == SHRINK_VOCAB_SPM && type == SHRINK_TOKEN_BYTE);
}

static shrink_status build_map(shrink_tokenizer *t, shrink_error *err)
{
	t->map.arena = t->arena;
	t->map.off = t->off;
	t->map.len = t->len;
	shrink_status st = shrink_strmap_init(&t->map, (size_t)t->n_tokens, err);
	for (int id = 0; !st && id < t->n_tokens; id++) {
		if (!encodable(t, id))
			continue;
		shrink_strmap_put(&t->map, id);
		if ((int)t->len[id] > t->max_token_bytes)
			t->max_token_bytes = (int)t->len[id];
	}
	return st;
}

/* SPM byte fallback: <0xXX> tokens, else (ASCII only) a token that is the byte itself. */
static void spm_byte_ids(shrink_tokenizer *t)
{
	for (int id = 0; id < t->n_tokens; id++) {
		int byte = shrink_byte_token_value(shrink_tok_text(t, id), t->len[id]);
		if (t->types[id] == SHRINK_TOKEN_BYTE && byte >= 0)
			t->byte_id[byte] = id;
	}
	for (int b = 0; b < 0x80; b++) {
		char c = (char)b;
		if (t->byte_id[b] < 0)
			t->byte_id[b] = shrink_strmap_find(&t->map, &c, 1);
	}
}

static shrink_status build(shrink_tokenizer *t, const shrink_vocab_spec *spec, shrink_error *err)
{
	t->kind = spec->kind;
	t->n_tokens = spec->n_tokens;
	t->bos = spec->bos_id;
	t->eos = spec->eos_id;
	t->unk = spec->unk_id;
	t->pad = spec->pad_id;
	t->add_bos = spec->add_bos;
	t->add_eos = spec->add_eos;
	t->add_space_prefix = spec->add_space_prefix;
	memset(t->byte_id, 0xff, sizeof t->byte_id);
	shrink_status st = copy_tokens(t, spec, err);
	if (!st)
		st = build_map(t, err);
	if (!st && t->kind == SHRINK_VOCAB_SPM) {
		spm_byte_ids(t);
		st = shrink_spm_init(t, err);
	}
	if (!st && t->kind == SHRINK_VOCAB_BPE)
		st = shrink_bpe_init(t, spec, err);
	if (!st)
		st = shrink_partition_init(t, err);
	if (!st)
		st = shrink_decode_init(t, err);
	return st;
}

shrink_status shrink_tokenizer_new(const shrink_vocab_spec *spec, shrink_tokenizer **out, shrink_error *err)
{
	*out = NULL;
	shrink_status st = shrink_vocab_spec_check(spec, "vocabulary", err);
	if (st)
		return st;
	shrink_tokenizer *t = calloc(1, sizeof *t);
	if (!t)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	st = build(t, spec, err);
	if (st) {
		shrink_tokenizer_free(t);
		return st;
	}
	*out = t;
	return SHRINK_OK;
}

/* Plain-text fragments go to the model; a fragment after a user-defined token gets the SPM space prefix again. */
static shrink_status encode_fragments(const shrink_tokenizer *t, const char *text, const shrink_fragment *frags,
				      size_t n_frags, shrink_id_buf *out, shrink_error *err)
{
	bool after_token = true;
	shrink_status st = SHRINK_OK;
	for (size_t i = 0; i < n_frags && !st; i++) {
		const shrink_fragment *f = &frags[i];
		if (f->id >= 0)
			shrink_ids_push(out, f->id);
		else if (t->kind == SHRINK_VOCAB_SPM)
			st = shrink_spm_encode(t, text + f->off, f->n, t->add_space_prefix && after_token, out, err);
		else
			st = shrink_bpe_encode(t, text + f->off, f->n, out, err);
		after_token = f->id >= 0;
	}
	return st;
}

static shrink_status check_text(const char *text, size_t n_bytes, shrink_error *err)
{
	if (n_bytes > MAX_TEXT_BYTES)
		return shrink_fail(err, SHRINK_EINPUT, "text: %zu bytes is more than can be tokenized at once (%zu)",
				   n_bytes, MAX_TEXT_BYTES);
	size_t bad = shrink_utf8_check(text, n_bytes);
	if (bad != n_bytes)
		return shrink_fail(err, SHRINK_EINPUT, "text: invalid UTF-8 at byte %zu", bad);
	return SHRINK_OK;
}

shrink_status shrink_tokenize(const shrink_tokenizer *t, const char *text, size_t n_bytes, bool add_bos, int **ids,
			      size_t *n_ids, shrink_error *err)
{
	*ids = NULL;
	*n_ids = 0;
	shrink_fragment *frags = NULL;
	size_t n_frags = 0;
	shrink_status st = check_text(text, n_bytes, err);
	if (!st)
		st = shrink_partition(t, text, n_bytes, &frags, &n_frags, err);
	if (st)
		return st;
	/* every byte gives at most one id; SPM adds up to two per space and three per fragment (U+2581) */
	size_t cap = (t->kind == SHRINK_VOCAB_SPM ? shrink_spm_max_ids(text, n_bytes) + 3 * n_frags : n_bytes) + 1;
	shrink_id_buf out = {malloc(cap * sizeof(int)), 0};
	if (!out.v)
		st = shrink_fail(err, SHRINK_EIO, "out of memory (tokenizing %zu bytes)", n_bytes);
	if (!st && add_bos && t->add_bos && t->bos >= 0)
		shrink_ids_push(&out, t->bos);
	if (!st)
		st = encode_fragments(t, text, frags, n_frags, &out, err);
	free(frags);
	if (st) {
		free(out.v);
		return st;
	}
	int *shrunk = realloc(out.v, (out.n ? out.n : 1) * sizeof(int));
	*ids = shrunk ? shrunk : out.v;
	*n_ids = out.n;
	return SHRINK_OK;
}

int shrink_tokenizer_n_vocab(const shrink_tokenizer *t)
{
	return t->n_tokens;
}

int shrink_tokenizer_bos(const shrink_tokenizer *t)
{
	return t->bos;
}

int shrink_tokenizer_eos(const shrink_tokenizer *t)
{
	return t->eos;
}

bool shrink_tokenizer_is_control(const shrink_tokenizer *t, int id)
{
	return id >= 0 && id < t->n_tokens && t->types[id] == SHRINK_TOKEN_CONTROL;
}
