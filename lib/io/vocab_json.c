/* vocab_json.c: placeholder until implemented. */
#include "shrink/shrink.h"
void shrink_vocab_spec_free(shrink_vocab_spec *v) { (void)v; }
