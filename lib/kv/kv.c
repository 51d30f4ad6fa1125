/* kv.c: KV cache factory: parses the --kv spec and builds the matching
 * implementation. Each implementation lives in its own file. */
#include <string.h>

#include "kv_impl.h"

shrink_status shrink_kv_new(const char *spec, const shrink_config *c, int max_tokens, shrink_kv **out,
			    shrink_error *err)
{
	*out = NULL;
	if (max_tokens <= 0)
		return shrink_fail(err, SHRINK_EUSAGE, "KV cache: context must be positive (got %d)", max_tokens);
	if (!spec || strcmp(spec, "f32") == 0)
		return shrink_kv_float_new(c, max_tokens, false, out, err);
	if (strcmp(spec, "f16") == 0)
		return shrink_kv_float_new(c, max_tokens, true, out, err);
	return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: unknown KV cache type (f32, f16)", spec);
}

void shrink_kv_free(shrink_kv *kv)
{
	if (kv)
		kv->ops->free(kv);
}

int shrink_kv_max_kv_dim(const shrink_config *c)
{
	int m = 0;
	for (int l = 0; l < c->n_layers; l++)
		if (c->layers[l].n_kv_heads * c->head_dim > m)
			m = c->layers[l].n_kv_heads * c->head_dim;
	return m;
}
