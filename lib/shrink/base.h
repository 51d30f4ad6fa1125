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
	size_t guard; /* inaccessible bytes after the data (shrink_map_memory), else 0 */
} shrink_mapping;

shrink_status shrink_map_file(const char *path, shrink_mapping *m, shrink_error *err);
/* A read-only private copy of n bytes in fresh pages, for readers of in-memory
 * files (fuzzing, tests). The copy starts 64-byte aligned and ends less than 64
 * bytes before an inaccessible guard page, so reading past its end faults
 * instead of silently reading neighbouring memory. shrink_unmap releases it. */
shrink_status shrink_map_memory(const void *data, size_t n, shrink_mapping *m, shrink_error *err);
void shrink_unmap(shrink_mapping *m);

/* Crash-safe output: data goes to a temporary file beside the target
 * (".NAME.tmp-PID"), which commit fsyncs and renames over the target, so an
 * interrupted run never leaves a partial file under the target name and an
 * existing target is replaced only on success. Temporaries left by a killed
 * run are removed by the next open of the same target. The first open makes
 * SIGINT/SIGTERM/SIGHUP remove open temporaries and SIGXFSZ a write error
 * (where the program kept the default action). An existing device or pipe
 * (/dev/null, a FIFO) is written in place instead. */
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

/* Ceilings for untrusted input, checked before anything is allocated, on top
 * of the rule that no declared size may exceed the file. The defaults admit
 * the largest real models; environment variables SHRINK_MAX_HEADER_BYTES,
 * SHRINK_MAX_TENSORS, SHRINK_MAX_METADATA, SHRINK_MAX_ARRAY, SHRINK_MAX_TEXT_BYTES
 * override them (read once), and a program may set its own. */
typedef struct {
	uint64_t header_bytes; /* a safetensors JSON header, one GGUF string (default 100 MB) */
	uint64_t tensors;      /* tensors in one file (default 1M) */
	uint64_t metadata;     /* GGUF metadata entries (default 1M) */
	uint64_t array_len;    /* elements of one GGUF metadata array; tokens and merges of a vocabulary (default 64M) */
	uint64_t text_bytes;   /* a JSON or text file read whole, after gunzip (default 4 GB) */
} shrink_limits;
const shrink_limits *shrink_limits_get(void);
void shrink_limits_set(const shrink_limits *l);

/* Read a whole file (.gz decompressed transparently) into a NUL-terminated buffer;
 * more than shrink_limits_get()->text_bytes is SHRINK_EINPUT (a gzip bomb, say). */
shrink_status shrink_read_text(const char *path, char **out, size_t *n_bytes, shrink_error *err);

/* Peak resident set size of this process in bytes (0 if unknown). */
size_t shrink_peak_rss(void);
double shrink_now(void); /* monotonic seconds */

#endif
