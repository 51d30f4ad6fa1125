/* tensor_set.c: a growable array of named tensors plus the file mappings
 * that back borrowed tensor data. Lookup is linear: models have < 2000 tensors
 * and lookups happen once, at bind time. */
#include <stdlib.h>
#include <string.h>

#include "shrink/tensor.h"

void shrink_tensor_set_free(shrink_tensor_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->tensors[i].owned);
	free(s->tensors);
	for (size_t i = 0; i < s->n_maps; i++)
		shrink_unmap(&s->maps[i]);
	free(s->maps);
	memset(s, 0, sizeof *s);
}

shrink_tensor *shrink_tensor_set_add(shrink_tensor_set *s, shrink_error *err)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		shrink_tensor *t = realloc(s->tensors, cap * sizeof *t);
		if (!t) {
			shrink_fail(err, SHRINK_EIO, "out of memory");
			return NULL;
		}
		s->tensors = t;
		s->cap = cap;
	}
	shrink_tensor *t = &s->tensors[s->n++];
	memset(t, 0, sizeof *t);
	return t;
}

const shrink_tensor *shrink_tensor_set_find(const shrink_tensor_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->tensors[i].name, name) == 0)
			return &s->tensors[i];
	return NULL;
}

shrink_tensor *shrink_tensor_set_find_mut(shrink_tensor_set *s, const char *name)
{
	return (shrink_tensor *)shrink_tensor_set_find(s, name);
}

shrink_status shrink_tensor_set_keep_mapping(shrink_tensor_set *s, shrink_mapping m, shrink_error *err)
{
	shrink_mapping *maps = realloc(s->maps, (s->n_maps + 1) * sizeof *maps);
	if (!maps) {
		shrink_unmap(&m);
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	}
	s->maps = maps;
	s->maps[s->n_maps++] = m;
	return SHRINK_OK;
}
