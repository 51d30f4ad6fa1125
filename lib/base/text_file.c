/* text_file.c: read a whole text file; gzip input is detected by its magic
 * and inflated with zlib (gzread passes plain files through unchanged). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "shrink/base.h"

shrink_status shrink_read_text(const char *path, char **out, size_t *n_bytes, shrink_error *err)
{
	*out = NULL;
	*n_bytes = 0;
	gzFile f = strcmp(path, "-") == 0 ? gzdopen(0, "rb") : gzopen(path, "rb");
	if (!f)
		return shrink_fail(err, errno == ENOENT ? SHRINK_EINPUT : SHRINK_EIO, "%s: %s", path,
				   errno ? strerror(errno) : "cannot open");
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf) {
			gzclose(f);
			return shrink_fail(err, SHRINK_EIO, "%s: out of memory", path);
		}
		int got = gzread(f, buf + n, (unsigned)(cap - n));
		if (got < 0) {
			int zerr;
			const char *msg = gzerror(f, &zerr);
			shrink_status st = shrink_fail(err, SHRINK_EINPUT, "%s: %s", path, msg);
			free(buf);
			gzclose(f);
			return st;
		}
		n += (size_t)got;
		if (got == 0)
			break;
		if (n > shrink_limits_get()->text_bytes) {
			free(buf);
			gzclose(f);
			return shrink_fail(err, SHRINK_EINPUT, "%s: more than %llu bytes (SHRINK_MAX_TEXT_BYTES)", path,
					   (unsigned long long)shrink_limits_get()->text_bytes);
		}
		if (n == cap) {
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	gzclose(f);
	buf[n] = '\0';
	*out = buf;
	*n_bytes = n;
	return SHRINK_OK;
}
