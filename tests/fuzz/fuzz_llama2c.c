/* fuzz_llama2c.c: a llama2.c checkpoint (7-int header, float32 tensors whose
 * sizes the header implies; negative vocab means an untied classifier).
 * The file size must match the header exactly, so a mutated header is almost
 * always refused at that check; when the input's last byte is odd, the input
 * is first cut or zero-padded to the size its header implies (up to 4 MB), so
 * the fuzzer also reaches the config and tensor layout behind that check. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The size the header implies, by llama2.c's layout (0 when not plausible). */
static size_t implied_size(const uint8_t *data, size_t size)
{
	int32_t h[7];
	if (size < sizeof h)
		return 0;
	memcpy(h, data, sizeof h);
	for (int i = 0; i < 7; i++)
		if (i != 5 && (h[i] <= 0 || h[i] > 4096))
			return 0;
	if (h[5] == 0 || h[5] < -4096 || h[5] > 4096 || h[0] % h[3] != 0)
		return 0;
	int64_t dim = h[0], hidden = h[1], layers = h[2], head = h[0] / h[3], kv = head * h[4];
	int64_t vocab = h[5] < 0 ? -(int64_t)h[5] : h[5];
	int64_t floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) + dim +
			 (int64_t)h[6] * head + (h[5] < 0 ? vocab * dim : 0);
	return floats > 0 && floats <= (1 << 20) ? 28 + 4 * (size_t)floats : 0;
}

static void read_one(const uint8_t *data, size_t size)
{
	shrink_model_file mf;
	shrink_error err;
	shrink_status st = shrink_read_llama2c_memory(data, size, "fuzz.bin", &mf, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK) {
		fuzz_touch_model(&mf);
		shrink_model_file_close(&mf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t want = size && (data[size - 1] & 1) ? implied_size(data, size) : 0;
	if (want == 0 || want == size) {
		read_one(data, size);
		return 0;
	}
	uint8_t *fit = calloc(1, want);
	if (!fit)
		return 0;
	memcpy(fit, data, size < want ? size : want);
	read_one(fit, want);
	free(fit);
	return 0;
}
