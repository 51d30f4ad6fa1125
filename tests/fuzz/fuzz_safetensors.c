/* fuzz_safetensors.c: one .safetensors file (header length, JSON header,
 * tensor byte ranges); every tensor it accepts is read to its last byte. */
#include <stdlib.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shrink_tensor_set set = {0};
	char *meta = NULL;
	shrink_error err;
	shrink_status st = shrink_safetensors_load_memory(data, size, "fuzz.safetensors", &set, &meta, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK)
		fuzz_touch_set(&set);
	else if (set.n || meta)
		abort(); /* a failed load must add nothing */
	free(meta);
	shrink_tensor_set_free(&set);
	return 0;
}
