/* util.c: shared checks of the fuzz targets (see util.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/quant.h"
#include "util.h"

#define MAX_TOUCH 4096 /* elements per tensor: enough to reach every block layout, fast */

static void touch_tensor(const shrink_tensor *t, float *buf)
{
	volatile float sink = 0;
	if (t->dtype == SHRINK_QPACKED) {
		const shrink_qmatrix *m = t->data;
		if (m->cols > 0 && m->cols <= MAX_TOUCH && m->rows > 0) {
			shrink_qmatrix_row(m, 0, buf);
			shrink_qmatrix_row(m, m->rows - 1, buf);
			sink += buf[0];
		}
		return;
	}
	/* the last byte a reader vouches for must be readable */
	if (t->n_bytes)
		sink += ((const volatile uint8_t *)t->data)[t->n_bytes - 1];
	int64_t numel = shrink_tensor_numel(t);
	int block_elems, block_bytes;
	shrink_dtype_block(t->dtype, &block_elems, &block_bytes);
	if (numel <= 0 || block_elems <= 0)
		return;
	int64_t n = numel < MAX_TOUCH ? numel : MAX_TOUCH;
	n -= n % block_elems;
	shrink_error err;
	if (n > 0 && shrink_dequant_row(t->dtype, t->data, 0, n, buf, &err) == SHRINK_OK)
		sink += buf[0];
	/* and the last block, through the same path a row reader takes */
	int64_t last = (numel - block_elems) / block_elems * block_elems;
	if (numel >= block_elems && shrink_dequant_row(t->dtype, t->data, last, block_elems, buf, &err) == SHRINK_OK)
		sink += buf[0];
	(void)sink;
}

void fuzz_touch_set(const shrink_tensor_set *set)
{
	float *buf = malloc(MAX_TOUCH * sizeof *buf);
	if (!buf)
		abort();
	for (size_t i = 0; i < set->n; i++)
		touch_tensor(&set->tensors[i], buf);
	free(buf);
}

void fuzz_tokenize(const shrink_vocab_spec *v)
{
	static const char text[] = "Hello world, \xc3\xbc\xc3\xaf 123\n\t  x\xf0\x9f\x98\x80  <s>\xe2\x96\x81y";
	shrink_tokenizer *t;
	shrink_error err;
	shrink_status st = shrink_tokenizer_new(v, &t, &err);
	fuzz_expect_message(st, &err);
	if (st)
		return;
	int *ids = NULL;
	size_t n = 0;
	st = shrink_tokenize(t, text, sizeof text - 1, true, &ids, &n, &err);
	fuzz_expect_message(st, &err);
	if (!st) {
		size_t cap = shrink_decoder_max_bytes(t);
		char *out = malloc(cap ? cap : 1);
		shrink_decoder d;
		shrink_decoder_init(&d, t);
		for (size_t i = 0; i < n; i++) {
			if (ids[i] < 0 || ids[i] >= shrink_tokenizer_n_vocab(t))
				abort(); /* an id outside the vocabulary */
			shrink_decoder_push(&d, ids[i], out, cap);
		}
		shrink_decoder_flush(&d, out, cap);
		free(out);
	}
	free(ids);
	shrink_tokenizer_free(t);
}

void fuzz_touch_model(const shrink_model_file *mf)
{
	shrink_error err;
	shrink_status st = shrink_check_weights(mf, "fuzz", &err);
	fuzz_expect_message(st, &err);
	fuzz_touch_set(&mf->weights);
	if (mf->vocab.kind != SHRINK_VOCAB_NONE)
		fuzz_tokenize(&mf->vocab);
}

void fuzz_expect_message(shrink_status st, const shrink_error *err)
{
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose && st != SHRINK_OK)
		fprintf(stderr, "fuzz: status %d: %s\n", (int)st, err->msg);
	if (st != SHRINK_OK && (err->code != st || err->msg[0] == '\0'))
		abort();
}
