/* hash.c: the hash tables the tokenizers look things up in: token text -> id,
 * (left id, right id) -> merge rank, and a set of 64-bit keys. Open addressing
 * with linear probing; the first two are sized once at twice the key count,
 * the set grows as it fills. None of them deletes. Hand-written because the
 * C libraries we already depend on have no hash table fit for hot loops. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

uint64_t shrink_hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t x)
{
	x ^= x >> 33; /* splitmix64 finalizer */
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static size_t table_size(size_t n_keys)
{
	size_t cap = 16;
	while (cap < 2 * n_keys)
		cap *= 2;
	return cap;
}

shrink_status shrink_strmap_init(shrink_strmap *m, size_t n_keys, shrink_error *err)
{
	size_t cap = table_size(n_keys);
	m->ids = malloc(cap * sizeof *m->ids);
	m->hashes = malloc(cap * sizeof *m->hashes);
	m->mask = cap - 1;
	if (!m->ids || !m->hashes)
		return shrink_fail(err, SHRINK_EIO, "out of memory (token table)");
	memset(m->ids, 0xff, cap * sizeof *m->ids);
	return SHRINK_OK;
}

void shrink_strmap_free(shrink_strmap *m)
{
	free(m->ids);
	free(m->hashes);
	m->ids = NULL;
	m->hashes = NULL;
}

static bool same_text(const shrink_strmap *m, int id, const char *s, size_t n)
{
	return m->len[id] == n && memcmp(m->arena + m->off[id], s, n) == 0;
}

void shrink_strmap_put(shrink_strmap *m, int id)
{
	const char *s = m->arena + m->off[id];
	uint64_t h = shrink_hash_bytes(s, m->len[id]);
	size_t i = h & m->mask;
	while (m->ids[i] >= 0 && !(m->hashes[i] == h && same_text(m, m->ids[i], s, m->len[id])))
		i = (i + 1) & m->mask;
	m->ids[i] = id;
	m->hashes[i] = h;
}

int shrink_strmap_find(const shrink_strmap *m, const char *s, size_t n)
{
	uint64_t h = shrink_hash_bytes(s, n);
	for (size_t i = h & m->mask; m->ids[i] >= 0; i = (i + 1) & m->mask)
		if (m->hashes[i] == h && same_text(m, m->ids[i], s, n))
			return m->ids[i];
	return -1;
}

shrink_status shrink_pairmap_init(shrink_pairmap *m, size_t n_keys, shrink_error *err)
{
	size_t cap = table_size(n_keys);
	m->keys = malloc(cap * sizeof *m->keys);
	m->rank = malloc(cap * sizeof *m->rank);
	m->merged = malloc(cap * sizeof *m->merged);
	m->mask = cap - 1;
	if (!m->keys || !m->rank || !m->merged)
		return shrink_fail(err, SHRINK_EIO, "out of memory (merge table)");
	memset(m->keys, 0xff, cap * sizeof *m->keys);
	return SHRINK_OK;
}

void shrink_pairmap_free(shrink_pairmap *m)
{
	free(m->keys);
	free(m->rank);
	free(m->merged);
	memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int left, int right)
{
	return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

void shrink_pairmap_put(shrink_pairmap *m, int left, int right, int rank, int merged)
{
	uint64_t k = pair_key(left, right);
	size_t i = hash_pair(k) & m->mask;
	while (m->keys[i] != UINT64_MAX && m->keys[i] != k)
		i = (i + 1) & m->mask;
	if (m->keys[i] == k)
		return;
	m->keys[i] = k;
	m->rank[i] = rank;
	m->merged[i] = merged;
}

bool shrink_pairmap_find(const shrink_pairmap *m, int left, int right, int *rank, int *merged)
{
	uint64_t k = pair_key(left, right);
	for (size_t i = hash_pair(k) & m->mask; m->keys[i] != UINT64_MAX; i = (i + 1) & m->mask)
		if (m->keys[i] == k) {
			*rank = m->rank[i];
			*merged = m->merged[i];
			return true;
		}
	return false;
}

shrink_status shrink_keyset_init(shrink_keyset *s, shrink_error *err)
{
	s->keys = calloc(1024, sizeof *s->keys);
	s->mask = 1023;
	s->n = 0;
	return s->keys ? SHRINK_OK : shrink_fail(err, SHRINK_EIO, "out of memory");
}

void shrink_keyset_free(shrink_keyset *s)
{
	free(s->keys);
	s->keys = NULL;
}

static void keyset_insert(uint64_t *keys, size_t mask, uint64_t key)
{
	size_t i = hash_pair(key) & mask;
	while (keys[i] != 0 && keys[i] != key)
		i = (i + 1) & mask;
	keys[i] = key;
}

static bool keyset_grow(shrink_keyset *s)
{
	size_t cap = 2 * (s->mask + 1);
	uint64_t *keys = calloc(cap, sizeof *keys);
	if (!keys)
		return false;
	for (size_t i = 0; i <= s->mask; i++)
		if (s->keys[i])
			keyset_insert(keys, cap - 1, s->keys[i]);
	free(s->keys);
	s->keys = keys;
	s->mask = cap - 1;
	return true;
}

bool shrink_keyset_add(shrink_keyset *s, uint64_t key)
{
	if (key == 0 || shrink_keyset_has(s, key))
		return true;
	if (2 * (s->n + 1) > s->mask + 1 && !keyset_grow(s))
		return false;
	keyset_insert(s->keys, s->mask, key);
	s->n++;
	return true;
}

bool shrink_keyset_has(const shrink_keyset *s, uint64_t key)
{
	for (size_t i = hash_pair(key) & s->mask; s->keys[i] != 0; i = (i + 1) & s->mask)
		if (s->keys[i] == key)
			return true;
	return false;
}
