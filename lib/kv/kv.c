/* kv.c: KV cache factory: parses the --kv spec (kv_spec.c) and builds the
 * matching implementation. Each implementation lives in its own file. */
#include "kv_impl.h"

shrink_status shrink_kv_new(const char *spec, const shrink_config *c, int max_tokens, shrink_kv **out,
			    shrink_error *err)
{
	*out = NULL;
	if (max_tokens <= 0)
		return shrink_fail(err, SHRINK_EUSAGE, "KV cache: context must be positive (got %d)", max_tokens);
	shrink_kv_params p;
	shrink_status st = shrink_kv_parse_spec(spec, &p, err);
	if (st)
		return st;
	if (p.kind == SHRINK_KV_F32 || p.kind == SHRINK_KV_F16)
		return shrink_kv_float_new(c, max_tokens, p.kind == SHRINK_KV_F16, out, err);
	return shrink_kv_stream_new(&p, spec, c, max_tokens, out, err);
}

void shrink_kv_free(shrink_kv *kv)
{
	if (kv)
		kv->ops->free(kv);
}

void shrink_kv_end_forward(shrink_kv *kv)
{
	if (kv && kv->ops->end_forward)
		kv->ops->end_forward(kv);
}

int shrink_kv_max_kv_dim(const shrink_config *c)
{
	int m = 0;
	for (int l = 0; l < c->n_layers; l++)
		if (c->layers[l].n_kv_heads * c->head_dim > m)
			m = c->layers[l].n_kv_heads * c->head_dim;
	return m;
}
