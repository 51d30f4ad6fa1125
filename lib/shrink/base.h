/* base.h: status codes and the error record every libshrink function fills.
 * Library code never prints or exits: it returns a shrink_status and, on
 * failure, writes a message naming the file and tensor into a shrink_error.
 * The programs map statuses to exit codes (they are the same numbers). */
#ifndef SHRINK_BASE_H
#define SHRINK_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	SHRINK_OK = 0,
	SHRINK_EGATE = 1,     /* a quality gate failed */
	SHRINK_EUSAGE = 2,    /* bad arguments */
	SHRINK_EINPUT = 3,    /* bad or unsupported input */
	SHRINK_EIO = 4,       /* I/O or resource failure, no device */
	SHRINK_EINTERNAL = 5, /* a bug */
} shrink_status;

typedef struct {
	shrink_status code;
	char msg[1024];
} shrink_error;

/* Record a failure; returns code so callers can `return shrink_fail(...)`. */
shrink_status shrink_fail(shrink_error *err, shrink_status code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix an existing message with context ("FILE: "). */
shrink_status shrink_fail_prefix(shrink_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void shrink_error_clear(shrink_error *err);

/* Overflow-checked size arithmetic: return 0 on overflow. */
int shrink_mul_size(size_t a, size_t b, size_t *out);
int shrink_add_size(size_t a, size_t b, size_t *out);

/* A read-only file mapping. */
typedef struct {
	void *addr;
	size_t n_bytes;
} shrink_mapping;

shrink_status shrink_map_file(const char *path, shrink_mapping *m, shrink_error *err);
void shrink_unmap(shrink_mapping *m);

/* Crash-safe output: data goes to a temporary file beside the target
 * (".NAME.tmp-PID"), which commit fsyncs and renames over the target, so an
 * interrupted run never leaves a partial file under the target name and an
 * existing target is replaced only on success. Temporaries left by a killed
 * run are removed by the next open of the same target. */
typedef struct {
	int fd;
	char path[4096];
	char tmp_path[4096];
	int slot; /* registry slot for signal-time cleanup */
} shrink_outfile;

shrink_status shrink_outfile_open(shrink_outfile *f, const char *path, shrink_error *err);
/* A short write (disk full, file size limit) is SHRINK_EIO naming the file. */
shrink_status shrink_outfile_write(shrink_outfile *f, const void *buf, size_t n, shrink_error *err);
shrink_status shrink_outfile_pwrite(shrink_outfile *f, const void *buf, size_t n, uint64_t offset, shrink_error *err);
shrink_status shrink_outfile_commit(shrink_outfile *f, shrink_error *err);
void shrink_outfile_abort(shrink_outfile *f);
/* Async-signal-safe: unlink every temporary file still open (for the programs' SIGINT/SIGTERM handlers). */
void shrink_outfile_unlink_all(void);

/* Read a whole file (.gz decompressed transparently) into a NUL-terminated buffer. */
shrink_status shrink_read_text(const char *path, char **out, size_t *n_bytes, shrink_error *err);

/* Peak resident set size of this process in bytes (0 if unknown). */
size_t shrink_peak_rss(void);
double shrink_now(void); /* monotonic seconds */

#endif
