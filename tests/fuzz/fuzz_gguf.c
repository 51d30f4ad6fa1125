/* fuzz_gguf.c: one GGUF file: header, metadata, tensor infos and data ranges,
 * every block type dequantized, then the whole-model reader (config, Q/K
 * un-permutation, tokenizer.ggml.* vocabulary) and a tokenizer built from it. */
#include <stdlib.h>

#include "util.h"

static void touch_metadata(const shrink_gguf *g)
{
	volatile double sink = 0;
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const shrink_gguf_kv *kv = &g->kv[i];
		if (kv->type == GGUF_T_ARRAY && kv->arr_n && kv->arr_type != GGUF_T_STRING)
			sink += shrink_gguf_arr_f64(kv, kv->arr_n - 1) + (double)shrink_gguf_arr_i64(kv, 0);
		if (kv->type == GGUF_T_ARRAY && kv->arr_type == GGUF_T_STRING && kv->arr_n)
			sink += kv->arr_str[kv->arr_n - 1][0];
	}
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shrink_gguf g;
	shrink_error err;
	shrink_status st = shrink_gguf_open_memory(data, size, "fuzz.gguf", &g, &err);
	fuzz_expect_message(st, &err);
	if (st)
		return 0;
	touch_metadata(&g);
	shrink_tensor_set view = {.tensors = g.tensors, .n = g.n_tensors};
	fuzz_touch_set(&view);
	if (shrink_gguf_find(&g, "tokenizer.ggml.model")) {
		shrink_vocab_spec v;
		st = shrink_vocab_from_gguf(&g, &v, &err);
		fuzz_expect_message(st, &err);
		if (st == SHRINK_OK)
			fuzz_tokenize(&v);
		shrink_vocab_spec_free(&v);
	}
	shrink_gguf_close(&g);

	shrink_model_file mf;
	st = shrink_read_gguf_model_memory(data, size, "fuzz.gguf", &mf, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK) {
		fuzz_touch_model(&mf);
		shrink_model_file_close(&mf);
	}
	return 0;
}
