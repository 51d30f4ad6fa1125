/* vocab_gguf.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_vocab_from_gguf(const shrink_gguf *g, shrink_vocab_spec *v, shrink_error *err) { (void)g; (void)v; return shrink_fail(err, SHRINK_EINPUT, "todo"); }
