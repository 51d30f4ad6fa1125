/* utf8.h: the few UTF-8 helpers the tokenizers need (internal to lib/text).
 * Strict validation (no overlongs, no surrogates, nothing above U+10FFFF) for
 * text handed to the encoder, and the per-byte rules the streaming decoder uses.
 * It does not normalize (NFC/NFKC) or classify characters; PCRE2 does that. */
#ifndef SHRINK_TEXT_UTF8_H
#define SHRINK_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the sequence a lead byte announces, as llama.cpp counts it:
 * 1 for ASCII and for bytes that cannot start a sequence. */
int shrink_utf8_seq_len(unsigned char lead);
/* Bytes a valid sequence starting with `lead` has in all (1..4), 0 if `lead` cannot start one. */
int shrink_utf8_need(unsigned char lead);
/* Whether `b` may be continuation byte number `pos` (1..3) after `lead`. */
int shrink_utf8_cont_ok(unsigned char lead, int pos, unsigned char b);
/* Offset of the first byte that is not part of a valid sequence; n_bytes when all is valid. */
size_t shrink_utf8_check(const char *s, size_t n_bytes);
/* Decode one valid sequence; returns its length, or 0 when s does not start with one. */
int shrink_utf8_decode(const char *s, size_t n_bytes, uint32_t *cp);
/* Encode a code point (<= U+10FFFF); returns the number of bytes written (1..4). */
int shrink_utf8_encode(uint32_t cp, char *out);

#endif
