/* kv_impl.h: constructors of the KV cache implementations (internal). */
#ifndef SHRINK_KV_IMPL_H
#define SHRINK_KV_IMPL_H

#include "shrink/kv.h"

shrink_status shrink_kv_float_new(const shrink_config *c, int max_tokens, bool half, shrink_kv **out,
				  shrink_error *err);
int shrink_kv_max_kv_dim(const shrink_config *c);

#endif
