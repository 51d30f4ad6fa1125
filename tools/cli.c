/* cli.c: shared program plumbing (see cli.h). Messages go to stderr as
 * "PROGRAM: message"; the exit code is the status code (see shrink.7). */
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *cli_prog = "shrink";

/* A positive decimal number from the environment, else the default. */
static uint64_t limit_from_env(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return dflt;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	return *end == '\0' && v > 0 ? (uint64_t)v : dflt;
}

void cli_start(const char *prog)
{
	cli_prog = prog;
	shrink_limits l = *shrink_limits_get();
	l.header_bytes = limit_from_env("SHRINK_MAX_HEADER_BYTES", l.header_bytes);
	l.tensors = limit_from_env("SHRINK_MAX_TENSORS", l.tensors);
	l.metadata = limit_from_env("SHRINK_MAX_METADATA", l.metadata);
	l.array_len = limit_from_env("SHRINK_MAX_ARRAY", l.array_len);
	l.text_bytes = limit_from_env("SHRINK_MAX_TEXT_BYTES", l.text_bytes);
	shrink_limits_set(&l);
}
bool cli_quiet, cli_progress_forced;

void cli_exit_error(const shrink_error *err)
{
	fprintf(stderr, "%s: %s\n", cli_prog, err->msg[0] ? err->msg : "unknown error");
	exit(err->code ? (int)err->code : SHRINK_EINTERNAL);
}

void cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", cli_prog);
	exit(SHRINK_EUSAGE);
}

long cli_long(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		cli_usage_error("%s %s: expected an integer in [%ld, %ld]", opt, s, lo, hi);
	return v;
}

double cli_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		cli_usage_error("%s %s: expected a number in [%g, %g]", opt, s, lo, hi);
	return v;
}

void cli_version(void)
{
	printf("%s (shrink) %s\n", cli_prog, shrink_version());
	exit(0);
}

void cli_progress(void *user, int done, int total)
{
	static double start;
	(void)user;
	if (cli_quiet || !(cli_progress_forced || isatty(2)))
		return;
	if (done <= 1 || start == 0)
		start = shrink_now();
	double el = shrink_now() - start, eta = done > 0 ? el / done * (total - done) : 0;
	int width = 30, fill = total ? done * width / total : 0;
	fprintf(stderr, "\r[%.*s%*s] %d/%d  %.0fs elapsed, ETA %.0fs ", fill, "##############################",
		width - fill, "", done, total, el, eta);
	if (done == total) {
		fputc('\n', stderr);
		start = 0;
	}
}

shrink_model *cli_load_model(const char *path, const char *tokenizer, bool need_tokenizer)
{
	shrink_error err = {0};
	shrink_model *m;
	if (shrink_model_load(path, tokenizer, &m, &err))
		cli_exit_error(&err);
	if (need_tokenizer && !m->tok) {
		shrink_fail(&err, SHRINK_EINPUT, "%s: the model has no tokenizer; pass --tokenizer FILE (a GGUF or tokenizer.json)",
			    path);
		shrink_model_free(m);
		cli_exit_error(&err);
	}
	return m;
}

int *cli_tokenize_file(const shrink_model *m, const char *path, bool add_bos, size_t *n)
{
	shrink_error err = {0};
	char *text;
	size_t len;
	int *ids = NULL;
	if (shrink_read_text(path, &text, &len, &err))
		cli_exit_error(&err);
	if (len == 0) {
		free(text);
		shrink_fail(&err, SHRINK_EINPUT, "%s: empty text", path);
		cli_exit_error(&err);
	}
	shrink_status st = shrink_tokenize(m->tok, text, len, add_bos, &ids, n, &err);
	free(text);
	if (st) {
		shrink_fail_prefix(&err, "%s: ", path);
		cli_exit_error(&err);
	}
	return ids;
}

int cli_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}
