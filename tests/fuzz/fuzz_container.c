/* fuzz_container.c: a shrink container (safetensors with shrink.* metadata:
 * config, tokenizer, quantization map, CRC-32s), read as shrink_model_file_open
 * reads one, then checked, dequantized and tokenized.
 * A mutated tensor byte almost always fails the CRC-32 check, which would hide
 * everything behind it from the fuzzer; so when the input's last byte is odd
 * the CRCs in the metadata are first recomputed from the data (the CRC check
 * itself is fuzzed by the even half). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"

/* meta with shrink.crc32 replaced by the CRCs of the set's tensors (or meta unchanged). */
static char *fix_crcs(char *meta, const shrink_tensor_set *set)
{
	cJSON *root = cJSON_Parse(meta), *crcs = cJSON_CreateObject();
	if (!cJSON_IsObject(root) || !crcs)
		goto out;
	for (size_t i = 0; i < set->n; i++) {
		const shrink_tensor *t = &set->tensors[i];
		char hex[16];
		snprintf(hex, sizeof hex, "%08x", (unsigned)crc32_z(crc32_z(0, Z_NULL, 0), t->data, t->n_bytes));
		cJSON_AddStringToObject(crcs, t->name, hex);
	}
	char *text = cJSON_PrintUnformatted(crcs);
	cJSON_DeleteItemFromObjectCaseSensitive(root, "shrink.crc32");
	if (text && cJSON_AddStringToObject(root, "shrink.crc32", text)) {
		char *fixed = cJSON_PrintUnformatted(root);
		if (fixed) {
			free(meta);
			meta = fixed;
		}
	}
	free(text);
out:
	cJSON_Delete(crcs);
	cJSON_Delete(root);
	return meta;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shrink_tensor_set set = {0};
	char *meta = NULL;
	shrink_error err;
	shrink_status st = shrink_safetensors_load_memory(data, size, "fuzz.shrink", &set, &meta, &err);
	fuzz_expect_message(st, &err);
	if (st || !meta) {
		free(meta);
		shrink_tensor_set_free(&set);
		return 0;
	}
	if (data[size - 1] & 1)
		meta = fix_crcs(meta, &set);
	shrink_model_file mf;
	memset(&mf, 0, sizeof mf);
	st = shrink_read_container("fuzz.shrink", &set, meta, &mf, &err); /* owns set and meta */
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK)
		fuzz_touch_model(&mf);
	shrink_model_file_close(&mf);
	return 0;
}
