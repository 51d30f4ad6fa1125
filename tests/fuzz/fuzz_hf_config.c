/* fuzz_hf_config.c: a Hugging Face config.json; an accepted and valid config
 * must survive the round trip through the container's own config JSON. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size + 1);
	if (!json)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	shrink_config c, back;
	shrink_error err;
	shrink_status st = shrink_config_from_hf_json(json, "config.json", &c, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK && (st = shrink_config_validate(&c, "config.json", &err)) == SHRINK_OK) {
		char *again = shrink_config_to_json(&c);
		if (!again || shrink_config_from_hf_json(again, "round trip", &back, &err) != SHRINK_OK ||
		    back.dim != c.dim || back.n_layers != c.n_layers || back.vocab_size != c.vocab_size ||
		    shrink_config_validate(&back, "round trip", &err) != SHRINK_OK)
			abort(); /* the writer produced what the reader refuses */
		free(again);
	}
	fuzz_expect_message(st, &err);
	free(json);
	return 0;
}
