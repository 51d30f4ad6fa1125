/* text.h: tokenizers and datasets.
 * Two algorithms behind one handle: SentencePiece-style score BPE with byte
 * fallback (GGUF "llama" vocab, Llama 2 / Mistral tokenizer.json) and byte-level
 * BPE with a PCRE2 pre-tokenizer (GPT-2, Llama 3, Qwen2). Decoding is streaming:
 * a token that ends inside a UTF-8 sequence is held until the sequence completes. */
#ifndef SHRINK_TEXT_H
#define SHRINK_TEXT_H

#include "io.h"

typedef struct shrink_tokenizer shrink_tokenizer;

/* The tokenizer keeps its own copy of everything it needs from `spec`. */
shrink_status shrink_tokenizer_new(const shrink_vocab_spec *spec, shrink_tokenizer **out, shrink_error *err);
void shrink_tokenizer_free(shrink_tokenizer *t);

/* Encode `text` (n_bytes long). Adds BOS when add_bos is true and the vocab has one.
 * *ids is malloc'd; caller frees. Special-token text in the input is treated as plain text. */
shrink_status shrink_tokenize(const shrink_tokenizer *t, const char *text, size_t n_bytes, bool add_bos, int **ids,
			      size_t *n_ids, shrink_error *err);

int shrink_tokenizer_n_vocab(const shrink_tokenizer *t);
int shrink_tokenizer_bos(const shrink_tokenizer *t);
int shrink_tokenizer_eos(const shrink_tokenizer *t);
bool shrink_tokenizer_is_control(const shrink_tokenizer *t, int id);

/* Streaming decoder: feed tokens one at a time, get the complete UTF-8 bytes
 * they produce. `first` strips the SPM leading space of the very first piece. */
typedef struct {
	const shrink_tokenizer *tok;
	unsigned char pending[8];
	int n_pending;
	bool at_start;
} shrink_decoder;

void shrink_decoder_init(shrink_decoder *d, const shrink_tokenizer *t);
/* Writes up to cap bytes into out; returns the number of bytes written (holds
 * incomplete UTF-8 back); control tokens (BOS/EOS) produce nothing. */
size_t shrink_decoder_push(shrink_decoder *d, int id, char *out, size_t cap);
/* Flush held bytes (invalid sequences become U+FFFD). */
size_t shrink_decoder_flush(shrink_decoder *d, char *out, size_t cap);
/* The most bytes one push or flush can write: a cap this large never drops output. */
size_t shrink_decoder_max_bytes(const shrink_tokenizer *t);

#endif
