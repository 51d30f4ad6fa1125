/* config.h: the normalized model configuration (Llama family).
 * Every reader (HF config.json, GGUF metadata, llama2.c header, the shrink
 * container) fills this one struct; per-layer dimensions are allowed so that
 * pruned models fit. RoPE is always the Hugging Face (half-split) layout:
 * readers un-permute GGUF/llama2.c Q and K weights on load. */
#ifndef SHRINK_CONFIG_H
#define SHRINK_CONFIG_H

#include <stdbool.h>
#include "base.h"

typedef enum {
	SHRINK_ROPE_SCALING_NONE,
	SHRINK_ROPE_SCALING_LINEAR,
	SHRINK_ROPE_SCALING_LLAMA3,
} shrink_rope_scaling;

typedef struct {
	int n_heads;
	int n_kv_heads;
	int ffn_dim;
} shrink_layer_config;

#define SHRINK_MAX_LAYERS 512

typedef struct {
	char arch[32]; /* "llama", "mistral", "qwen2" */
	int dim;
	int n_layers;
	int head_dim;
	int vocab_size;
	int max_seq;
	shrink_layer_config layers[SHRINK_MAX_LAYERS];
	float norm_eps;
	float rope_theta;
	shrink_rope_scaling rope_scaling;
	float rope_factor;
	float rope_low_freq_factor;
	float rope_high_freq_factor;
	int rope_orig_max_pos;
	bool tied_embeddings;
	bool qkv_bias;
	int bos_id, eos_id; /* -1 when unknown */
} shrink_config;

/* Fill uniform per-layer dims. */
void shrink_config_set_uniform(shrink_config *c, int n_heads, int n_kv_heads, int ffn_dim);
/* Check internal consistency; message names `what` (a file). */
shrink_status shrink_config_validate(const shrink_config *c, const char *what, shrink_error *err);
/* Serialize / parse the normalized config as JSON (HF-compatible keys). */
char *shrink_config_to_json(const shrink_config *c);
shrink_status shrink_config_from_hf_json(const char *json, const char *what, shrink_config *c, shrink_error *err);

#endif
