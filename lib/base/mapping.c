/* mapping.c: read-only memory mapping of input files (weights stay on disk
 * and are paged in on demand; nothing ever writes through a mapping). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shrink/base.h"

shrink_status shrink_map_file(const char *path, shrink_mapping *m, shrink_error *err)
{
	m->addr = NULL;
	m->n_bytes = 0;
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

void shrink_unmap(shrink_mapping *m)
{
	if (m && m->addr) {
		munmap(m->addr, m->n_bytes);
		m->addr = NULL;
		m->n_bytes = 0;
	}
}
