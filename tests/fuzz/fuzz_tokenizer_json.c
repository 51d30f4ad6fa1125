/* fuzz_tokenizer_json.c: a Hugging Face tokenizer.json (BPE or SentencePiece
 * style model, pre-tokenizer, vocab, merges, added tokens), then a tokenizer
 * built from it encoding and decoding a short string. */
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shrink_vocab_spec v;
	shrink_error err;
	/* a name that is no file: the sibling tokenizer_config.json is not looked up */
	shrink_status st = shrink_vocab_from_tokenizer_json_text((const char *)data, size, "/nonexistent/tokenizer.json",
								 &v, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK) {
		fuzz_tokenize(&v);
		shrink_vocab_spec_free(&v);
	}
	return 0;
}
