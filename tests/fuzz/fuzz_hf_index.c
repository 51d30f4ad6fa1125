/* fuzz_hf_index.c: the shard index of a Hugging Face model directory
 * (model.safetensors.index.json: weight_map of tensor -> shard file). The
 * fuzzed bytes become the index of a fixed directory made once per process,
 * holding a config.json and two small shards, so that names, duplicate and
 * missing tensors and hostile shard names all reach the real directory reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char dir[64];
static char index_path[128];

static void put(const char *name, const void *data, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		abort();
}

/* A safetensors file: 8-byte little-endian header length, header, data. */
static void put_shard(const char *name, const char *header, size_t data_bytes)
{
	size_t h = strlen(header);
	uint8_t buf[512] = {0};
	uint64_t len = h;
	memcpy(buf, &len, 8);
	memcpy(buf + 8, header, h);
	for (size_t i = 0; i < data_bytes; i++)
		buf[8 + h + i] = (uint8_t)(0x3c + i % 3);
	put(name, buf, 8 + h + data_bytes);
}

static void cleanup(void)
{
	const char *names[] = {"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
			       "model.safetensors.index.json"};
	char path[128];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* one file is rewritten per input: memory-backed /dev/shm keeps that fast */
	const char *tmp = getenv("TMPDIR");
	if (!tmp || strlen(tmp) >= 40)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/shrink-fuzz-XXXXXX", tmp);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	static const char config[] =
		"{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":8,"
		"\"intermediate_size\":16,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"num_hidden_layers\":1,"
		"\"vocab_size\":4,\"max_position_embeddings\":16,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}";
	put("config.json", config, sizeof config - 1);
	put_shard("model-00001-of-00002.safetensors",
		  "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[0,128]},"
		  "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[128,160]}}",
		  160);
	put_shard("model-00002-of-00002.safetensors",
		  "{\"__metadata__\":{\"format\":\"pt\"},"
		  "\"model.layers.0.input_layernorm.weight\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[0,16]}}",
		  16);
	snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	put("model.safetensors.index.json", data, size);
	shrink_model_file mf;
	shrink_error err;
	shrink_status st = shrink_read_hf_dir(dir, &mf, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK) {
		fuzz_touch_model(&mf);
		shrink_model_file_close(&mf);
	}
	return 0;
}
