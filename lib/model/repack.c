/* repack.c: the CPU kernels want 4/8-bit matrices in an interleaved layout
 * (kernels.h shrink_kqx), the container stores them row by row, and DESIGN.md
 * says kernels repack at load. The copies live in a registry keyed by the
 * tensor's shrink_qmatrix: the forward pass hands op_linear a tensor only,
 * the tensor and the matrix types belong to other parts of the library, and
 * code that swaps a tensor's data for a while (sensitivity, GPTQ) or copies
 * tensors into a shadow model keeps working, since the key goes with the
 * data. Once a matrix is repacked its container pages are given back to the
 * page cache (they stay mapped and valid: the GPU upload, prefill of other
 * schemes or an export still read them, and the kernel pages them in again). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "repack.h"
#include "shrink/quant.h"

/* The packed arrays follow the descriptor in one 64-byte aligned block. */
#define HEAD 128
_Static_assert(sizeof(shrink_kqx) <= HEAD, "the descriptor fits before the arrays");

typedef struct {
	const shrink_qmatrix *key; /* the tensor's matrix */
	shrink_qmatrix seen;	   /* what it held when packed */
	const shrink_kqx *x;	   /* the block: stays put while the registry moves */
} entry;

/* sorted by key */
static entry *reg;
static size_t n_reg, cap_reg;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static size_t lower_bound(const shrink_qmatrix *key)
{
	size_t lo = 0, hi = n_reg;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if ((uintptr_t)reg[mid].key < (uintptr_t)key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int insert(const entry *e)
{
	pthread_mutex_lock(&lock);
	if (n_reg == cap_reg) {
		size_t cap = cap_reg ? 2 * cap_reg : 256;
		entry *p = realloc(reg, cap * sizeof *p);
		if (!p) {
			pthread_mutex_unlock(&lock);
			return -1;
		}
		reg = p, cap_reg = cap;
	}
	size_t i = lower_bound(e->key);
	memmove(reg + i + 1, reg + i, (n_reg - i) * sizeof *reg);
	reg[i] = *e;
	n_reg++;
	pthread_mutex_unlock(&lock);
	return 0;
}

static bool same_matrix(const shrink_qmatrix *a, const shrink_qmatrix *b)
{
	return a->qweight == b->qweight && a->scales == b->scales && a->zeros == b->zeros && a->rows == b->rows &&
	       a->cols == b->cols && a->scheme.bits == b->scheme.bits && a->scheme.group_size == b->scheme.group_size &&
	       a->scheme.symmetric == b->scheme.symmetric;
}

const shrink_kqx *repack_find(const shrink_qmatrix *m)
{
	const shrink_kqx *x = NULL;
	pthread_mutex_lock(&lock);
	size_t i = lower_bound(m);
	/* a matrix made later at a freed one's address is not its copy */
	if (i < n_reg && reg[i].key == m && same_matrix(&reg[i].seen, m))
		x = reg[i].x;
	pthread_mutex_unlock(&lock);
	return x;
}

static void remove_key(const shrink_qmatrix *key)
{
	pthread_mutex_lock(&lock);
	size_t i = lower_bound(key);
	if (i < n_reg && reg[i].key == key) {
		free((void *)reg[i].x);
		memmove(reg + i, reg + i + 1, (n_reg - i - 1) * sizeof *reg);
		n_reg--;
	}
	if (!n_reg) {
		free(reg);
		reg = NULL, cap_reg = 0;
	}
	pthread_mutex_unlock(&lock);
}

shrink_kq repack_kq_of(const shrink_qmatrix *m)
{
	return (shrink_kq){.bits = m->scheme.bits,
			   .group = m->scheme.group_size ? m->scheme.group_size : (int)m->cols,
			   .rows = m->rows,
			   .cols = m->cols,
			   .n_groups = shrink_qscheme_groups(&m->scheme, m->cols),
			   .row_bytes = shrink_qrow_bytes(m->scheme.bits, m->cols),
			   .q = m->qweight,
			   .scales = m->scales,
			   .zeros = m->zeros};
}

/* Drop [p, p+n) from the process's resident pages where it lies in a file
 * mapping of the set (never in memory of our own: there MADV_DONTNEED would
 * zero the data); the pages are read again from the file if touched. */
static void release_pages(const shrink_tensor_set *set, const void *p, size_t n)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p, e = a + n;
	for (size_t i = 0; i < set->n_maps; i++) {
		uintptr_t m0 = (uintptr_t)set->maps[i].addr, m1 = m0 + set->maps[i].n_bytes;
		if (set->maps[i].guard || a < m0 || e > m1)
			continue;
		uintptr_t s = (a + page - 1) / page * page, t = e / page * page;
		if (s < t)
			madvise((void *)s, t - s, MADV_DONTNEED);
	}
}

static shrink_status repack_one(const shrink_tensor_set *set, const shrink_tensor *t, shrink_error *err)
{
	const shrink_qmatrix *m = t->data;
	shrink_kq kq = repack_kq_of(m);
	if (!shrink_kernel_qx_ok(&kq) || repack_find(m))
		return SHRINK_OK;
	size_t n = shrink_kernel_qx_bytes(&kq);
	void *mem = aligned_alloc(64, HEAD + n);
	if (!mem)
		return shrink_fail(err, SHRINK_EIO, "out of memory repacking tensor '%s'", t->name);
	shrink_kqx *x = mem;
	shrink_kernel_qx_pack(&kq, (char *)mem + HEAD, x);
	if (insert(&(entry){m, *m, x})) {
		free(mem);
		return shrink_fail(err, SHRINK_EIO, "out of memory repacking tensor '%s'", t->name);
	}
	release_pages(set, kq.q, (size_t)kq.rows * kq.row_bytes);
	release_pages(set, kq.scales, (size_t)(kq.rows * kq.n_groups) * sizeof(uint16_t));
	if (kq.zeros)
		release_pages(set, kq.zeros, (size_t)(kq.rows * kq.n_groups));
	return SHRINK_OK;
}

shrink_status repack_model(const shrink_model *m, shrink_error *err)
{
	const shrink_tensor_set *set = &m->file.weights;
	shrink_status st = SHRINK_OK;
	for (size_t i = 0; i < set->n && !st; i++)
		if (set->tensors[i].dtype == SHRINK_QPACKED)
			st = repack_one(set, &set->tensors[i], err);
	return st;
}

void repack_release(const shrink_model *m)
{
	const shrink_tensor_set *set = &m->file.weights;
	for (size_t i = 0; i < set->n; i++)
		if (set->tensors[i].dtype == SHRINK_QPACKED)
			remove_key(set->tensors[i].data);
}
