/* mapping.c: read-only memory mapping of input files (weights stay on disk
 * and are paged in on demand; nothing ever writes through a mapping). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shrink/base.h"

shrink_status shrink_map_file(const char *path, shrink_mapping *m, shrink_error *err)
{
	m->addr = NULL;
	m->n_bytes = 0;
	m->guard = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return shrink_fail(err, errno == ENOENT || errno == ENOTDIR ? SHRINK_EINPUT : SHRINK_EIO, "%s: %s",
				   path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return shrink_fail(err, SHRINK_EINPUT, "%s: not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		return shrink_fail(err, SHRINK_EINPUT, "%s: empty file", path);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int saved = errno;
	close(fd);
	if (p == MAP_FAILED)
		return shrink_fail(err, SHRINK_EIO, "%s: mmap: %s", path, strerror(saved));
	m->addr = p;
	m->n_bytes = (size_t)st.st_size;
	return SHRINK_OK;
}

shrink_status shrink_map_memory(const void *data, size_t n, shrink_mapping *m, shrink_error *err)
{
	m->addr = NULL;
	m->n_bytes = 0;
	m->guard = 0;
	if (n == 0)
		return shrink_fail(err, SHRINK_EINPUT, "empty input");
	size_t page = (size_t)sysconf(_SC_PAGESIZE), span;
	if (!shrink_add_size(n, 2 * page - 1, &span))
		return shrink_fail(err, SHRINK_EINPUT, "input of %zu bytes is too large", n);
	span = span / page * page; /* the data's pages plus one guard page */
	uint8_t *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return shrink_fail(err, SHRINK_EIO, "mmap of %zu bytes: %s", span, strerror(errno));
	size_t data_end = span - page, start = (data_end - n) / 64 * 64;
	memcpy(base + start, data, n);
	if (mprotect(base, data_end, PROT_READ) != 0 || mprotect(base + data_end, page, PROT_NONE) != 0) {
		int saved = errno;
		munmap(base, span);
		return shrink_fail(err, SHRINK_EIO, "mprotect: %s", strerror(saved));
	}
	m->addr = base + start;
	m->n_bytes = n;
	m->guard = span - start - n;
	return SHRINK_OK;
}

/* File mappings start on a page; memory copies may not, and own a guard page. */
void shrink_unmap(shrink_mapping *m)
{
	if (m && m->addr) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		uintptr_t start = (uintptr_t)m->addr / page * page;
		munmap((void *)start, (uintptr_t)m->addr - start + m->n_bytes + m->guard);
		m->addr = NULL;
		m->n_bytes = 0;
		m->guard = 0;
	}
}
