/* dump_tensor.c: test helper. `dump_tensor FILE TENSOR_NAME` writes the named
 * tensor of a GGUF file (name as stored), dequantized row by row with
 * shrink_dequant_row (so the `first` offset is exercised), to stdout as raw
 * little-endian float32 in storage order.
 * Exit codes follow the project: 2 usage, 3 bad input, 4 I/O. It does not
 * rename, reshape or un-permute anything (that is shrink_read_gguf_model's job). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

static int fail(const shrink_error *err)
{
	fprintf(stderr, "dump_tensor: %s\n", err->msg);
	return err->code;
}

static const shrink_tensor *find(const shrink_gguf *g, const char *name)
{
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (strcmp(g->tensors[i].name, name) == 0)
			return &g->tensors[i];
	return NULL;
}

static int dump(const shrink_gguf *g, const shrink_tensor *t, shrink_error *err)
{
	int64_t numel = shrink_tensor_numel(t), cols = t->shape[t->n_dims - 1];
	float *buf = malloc((size_t)numel * sizeof *buf + 1);
	if (!buf)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	shrink_status st = SHRINK_OK;
	for (int64_t first = 0; !st && first < numel; first += cols)
		st = shrink_dequant_row(t->dtype, t->data, first, cols, buf + first, err);
	if (st)
		shrink_fail_prefix(err, "%s: tensor '%s': ", g->path, t->name);
	else if (fwrite(buf, sizeof *buf, (size_t)numel, stdout) != (size_t)numel || fflush(stdout) != 0)
		st = shrink_fail(err, SHRINK_EIO, "writing to stdout failed");
	free(buf);
	return st;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dump_tensor FILE.gguf TENSOR_NAME\n");
		return SHRINK_EUSAGE;
	}
	shrink_error err = {0};
	shrink_gguf g;
	if (shrink_gguf_open(argv[1], &g, &err))
		return fail(&err);
	const shrink_tensor *t = find(&g, argv[2]);
	int rc = SHRINK_OK;
	if (!t)
		rc = shrink_fail(&err, SHRINK_EINPUT, "%s: no tensor named '%s'", argv[1], argv[2]);
	else
		rc = dump(&g, t, &err);
	shrink_gguf_close(&g);
	return rc ? fail(&err) : 0;
}
