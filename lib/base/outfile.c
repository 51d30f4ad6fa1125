/* outfile.c: crash-safe output files (see base.h). A small fixed registry of
 * open temporaries lets a signal handler unlink them without allocating.
 * The first open installs that handler for SIGINT, SIGTERM and SIGHUP, and
 * ignores SIGXFSZ (a file size limit then fails the write: exit 4, not a
 * kill), each only where the program left the default disposition, so every
 * program that writes files gets the cleanup without asking for it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shrink/base.h"

#define MAX_OPEN 16
static char registry[MAX_OPEN][4096];
static volatile sig_atomic_t in_use[MAX_OPEN];

static int reserve(const char *tmp)
{
	for (int i = 0; i < MAX_OPEN; i++)
		if (!in_use[i]) {
			snprintf(registry[i], sizeof registry[i], "%s", tmp);
			__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the name is complete before a handler can see the slot */
			in_use[i] = 1;
			return i;
		}
	return -1;
}

static void release(int slot)
{
	if (slot >= 0)
		in_use[slot] = 0;
}

void shrink_outfile_unlink_all(void)
{
	for (int i = 0; i < MAX_OPEN; i++)
		if (in_use[i])
			unlink(registry[i]);
}

/* Remove our temporaries, then die of the same signal as we would have. */
static void on_fatal_signal(int sig)
{
	shrink_outfile_unlink_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_handlers(void)
{
	static const int fatal[] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
		struct sigaction old;
		if (sigaction(fatal[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = on_fatal_signal;
			sigemptyset(&sa.sa_mask);
			sigaction(fatal[i], &sa, NULL);
		}
	}
	struct sigaction old;
	if (sigaction(SIGXFSZ, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
		signal(SIGXFSZ, SIG_IGN);
}

static void split_path(const char *path, char *dir, size_t cap, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
		*base = path;
	} else {
		snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
		*base = slash + 1;
	}
}

/* Remove ".BASE.tmp-PID" files whose process is gone (left by kill -9). */
static void remove_stale(const char *dir, const char *base)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char prefix[4200];
	int np = snprintf(prefix, sizeof prefix, ".%s.tmp-", base);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, (size_t)np) != 0)
			continue;
		long pid = strtol(e->d_name + np, NULL, 10);
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		char full[8400];
		snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
		unlink(full);
	}
	closedir(d);
}

shrink_status shrink_outfile_open(shrink_outfile *f, const char *path, shrink_error *err)
{
	char dir[4096];
	const char *base;
	memset(f, 0, sizeof *f);
	f->fd = -1;
	f->slot = -1;
	split_path(path, dir, sizeof dir, &base);
	if (!*base || strlen(path) >= sizeof f->path - 64)
		return shrink_fail(err, SHRINK_EUSAGE, "%s: not a file name", path);
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, install_handlers);
	/* a device, pipe or socket (/dev/null, /dev/stdout, a FIFO) is written in
	 * place: renaming a temporary over it would replace the device itself */
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
		snprintf(f->path, sizeof f->path, "%s", path);
		f->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (f->fd < 0)
			return shrink_fail(err, SHRINK_EIO, "%s: %s", path, strerror(errno));
		return SHRINK_OK;
	}
	remove_stale(dir, base);
	snprintf(f->path, sizeof f->path, "%s", path);
	snprintf(f->tmp_path, sizeof f->tmp_path, "%s/.%s.tmp-%ld", dir, base, (long)getpid());
	f->slot = reserve(f->tmp_path);
	f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		release(f->slot);
		f->slot = -1;
		f->tmp_path[0] = '\0';
		return shrink_fail(err, SHRINK_EIO, "%s: cannot create %s: %s", path, f->tmp_path, strerror(errno));
	}
	return SHRINK_OK;
}

static shrink_status write_error(shrink_outfile *f, int e, shrink_error *err)
{
	const char *why = e == ENOSPC ? "no space left on device" : e == EFBIG ? "file size limit exceeded" : strerror(e);
	return shrink_fail(err, SHRINK_EIO, "%s: write failed: %s", f->path, why);
}

shrink_status shrink_outfile_write(shrink_outfile *f, const void *buf, size_t n, shrink_error *err)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(f->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return write_error(f, w < 0 ? errno : ENOSPC, err);
		p += w;
		n -= (size_t)w;
	}
	return SHRINK_OK;
}

shrink_status shrink_outfile_pwrite(shrink_outfile *f, const void *buf, size_t n, uint64_t offset, shrink_error *err)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(f->fd, p, n, (off_t)offset);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return write_error(f, w < 0 ? errno : ENOSPC, err);
		p += w;
		n -= (size_t)w;
		offset += (uint64_t)w;
	}
	return SHRINK_OK;
}

shrink_status shrink_outfile_commit(shrink_outfile *f, shrink_error *err)
{
	if (!f->tmp_path[0]) { /* written in place (a device or pipe) */
		int rc = close(f->fd);
		f->fd = -1;
		return rc == 0 ? SHRINK_OK : write_error(f, errno, err);
	}
	if (fsync(f->fd) != 0) {
		int e = errno;
		shrink_outfile_abort(f);
		return write_error(f, e, err);
	}
	if (close(f->fd) != 0) {
		int e = errno;
		f->fd = -1;
		shrink_outfile_abort(f);
		return write_error(f, e, err);
	}
	f->fd = -1;
	if (rename(f->tmp_path, f->path) != 0) {
		int e = errno;
		shrink_outfile_abort(f);
		return shrink_fail(err, SHRINK_EIO, "%s: cannot rename the temporary file: %s", f->path, strerror(e));
	}
	release(f->slot);
	char dir[4096];
	const char *base;
	split_path(f->path, dir, sizeof dir, &base);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* make the rename durable */
		close(dfd);
	}
	return SHRINK_OK;
}

void shrink_outfile_abort(shrink_outfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp_path[0])
		unlink(f->tmp_path);
	release(f->slot);
	f->slot = -1;
}
