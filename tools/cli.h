/* cli.h: what every program shares: option value parsing, error exits with
 * the documented codes, the progress bar, and loading a model + tokenizer. */
#ifndef SHRINK_TOOLS_CLI_H
#define SHRINK_TOOLS_CLI_H

#include <stdbool.h>

#include "shrink/shrink.h"

extern const char *cli_prog;
extern bool cli_quiet, cli_progress_forced;

/* set the program name for messages and the input limits from SHRINK_MAX_* in the environment */
void cli_start(const char *prog);
_Noreturn void cli_exit_error(const shrink_error *err);
_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long cli_long(const char *opt, const char *s, long lo, long hi);
double cli_double(const char *opt, const char *s, double lo, double hi);
_Noreturn void cli_version(void);
void cli_progress(void *user, int done, int total);
/* Load a model; exits with the right code and message on failure. With
 * need_tokenizer, a model without one is bad input (exit 3). */
shrink_model *cli_load_model(const char *path, const char *tokenizer, bool need_tokenizer);
/* Read a text file (.gz ok, "-" = stdin) and tokenize it; empty text is exit 3. */
int *cli_tokenize_file(const shrink_model *m, const char *path, bool add_bos, size_t *n);
int cli_default_threads(void);

#endif
