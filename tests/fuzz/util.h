/* util.h: what every fuzz target does with a successfully read model: read
 * every byte a reader claims is there (so ASan sees a bad range), check the
 * model's own consistency and run a tokenizer on a fixed string. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>

#include "shrink/text.h"

/* Dequantize the first rows of every tensor (block, float and packed types). */
void fuzz_touch_set(const shrink_tensor_set *set);
/* Build a tokenizer from v, encode and decode a short mixed-script string. */
void fuzz_tokenize(const shrink_vocab_spec *v);
/* Everything above plus shrink_check_weights on a whole model file. */
void fuzz_touch_model(const shrink_model_file *mf);
/* abort() (a libFuzzer crash) when a failed call left no message: the library
 * promises one naming the file. */
void fuzz_expect_message(shrink_status st, const shrink_error *err);
#endif
