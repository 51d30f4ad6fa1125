/* tokenizer_json.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_vocab_from_tokenizer_json(const char *path, shrink_vocab_spec *v, shrink_error *err) { (void)v; return shrink_fail(err, SHRINK_EINPUT, "%s: todo", path); }
