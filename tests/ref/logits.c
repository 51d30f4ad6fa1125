/* logits: test helper that prints a model's logits for given token ids as
 * raw little-endian float32 [n_tokens, vocab], for the NumPy reference tests.
 * usage: logits MODEL --tokens 1,2,3 [--tokenizer F] [--batch N] [--kv T] [--threads N] [-o FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

static int fail(const shrink_error *err)
{
	fprintf(stderr, "logits: %s\n", err->msg);
	return err->code ? (int)err->code : 5;
}

static int parse_tokens(const char *s, int **out)
{
	int n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	int *ids = malloc((size_t)n * sizeof *ids);
	char *end;
	for (int i = 0; i < n; i++) {
		ids[i] = (int)strtol(s, &end, 10);
		s = end + (*end == ',');
	}
	*out = ids;
	return n;
}

int main(int argc, char **argv)
{
	const char *model = NULL, *tokens = NULL, *tokenizer = NULL, *out = NULL, *kv = NULL;
	int batch = 0, threads = 0;
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--tokens") == 0)
			tokens = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--tokenizer") == 0)
			tokenizer = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "-o") == 0)
			out = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--kv") == 0)
			kv = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
			batch = atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[++i]);
		else
			model = argv[i];
	}
	if (!model || !tokens) {
		fprintf(stderr, "usage: logits MODEL --tokens 1,2,3 [--tokenizer F] [--batch N] [--kv T] [-o FILE]\n");
		return 2;
	}
	if (threads > 0)
		shrink_set_threads(threads);
	shrink_error err = {0};
	shrink_model *m;
	shrink_state *s;
	int *ids, n = parse_tokens(tokens, &ids);
	if (batch <= 0 || batch > n)
		batch = n;
	if (shrink_model_load(model, tokenizer, &m, &err) || shrink_state_new(m, n, batch, kv, &s, &err))
		return fail(&err);
	size_t vocab = (size_t)m->config->vocab_size;
	float *logits = malloc((size_t)n * vocab * sizeof(float));
	for (int i = 0; i < n; i += batch) {
		int k = n - i < batch ? n - i : batch;
		if (shrink_forward(m, s, ids + i, k, logits + (size_t)i * vocab, true, &err))
			return fail(&err);
	}
	FILE *f = out ? fopen(out, "wb") : stdout;
	if (!f || fwrite(logits, sizeof(float), (size_t)n * vocab, f) != (size_t)n * vocab) {
		perror("logits: write");
		return 4;
	}
	if (out)
		fclose(f);
	free(logits);
	free(ids);
	shrink_state_free(s);
	shrink_model_free(m);
	return 0;
}
