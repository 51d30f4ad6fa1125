/* io.h: model file readers. lib/io knows formats, never algorithms.
 * Each reader fills a shrink_tensor_set with Hugging Face Llama names
 * (model.layers.N.self_attn.q_proj.weight, ...), a shrink_config and, where the
 * file has one, a shrink_vocab_spec. Weights stay memory-mapped when their
 * dtype allows; GGUF/llama2.c Q/K rows are un-permuted into owned copies. */
#ifndef SHRINK_IO_H
#define SHRINK_IO_H

#include "config.h"
#include "tensor.h"

/* ---- tokenizer description (consumed by lib/text) ---- */
typedef enum {
	SHRINK_VOCAB_NONE,
	SHRINK_VOCAB_SPM, /* SentencePiece-style score BPE with byte fallback */
	SHRINK_VOCAB_BPE, /* byte-level BPE (GPT-2 style) */
} shrink_vocab_kind;

typedef enum {
	SHRINK_TOKEN_NORMAL = 1,
	SHRINK_TOKEN_UNKNOWN = 2,
	SHRINK_TOKEN_CONTROL = 3,
	SHRINK_TOKEN_USER_DEFINED = 4,
	SHRINK_TOKEN_UNUSED = 5,
	SHRINK_TOKEN_BYTE = 6,
} shrink_token_type; /* GGUF's numbering */

typedef struct {
	shrink_vocab_kind kind;
	int n_tokens;
	char **tokens;  /* UTF-8 token text as stored (SPM uses U+2581 for space; BPE the byte-to-unicode map) */
	float *scores;  /* SPM: merge priority; may be NULL for BPE */
	int *types;     /* shrink_token_type per token */
	int n_merges;
	char **merges;  /* BPE: "left right", highest priority first */
	char pre[32];   /* pre-tokenizer: "default", "gpt2", "llama3", "qwen2" */
	int bos_id, eos_id, unk_id, pad_id;
	bool add_bos, add_eos, add_space_prefix;
} shrink_vocab_spec;

void shrink_vocab_spec_free(shrink_vocab_spec *v);
/* Serialize to / parse from the shrink container's own compact JSON. */
char *shrink_vocab_spec_to_json(const shrink_vocab_spec *v);
shrink_status shrink_vocab_spec_from_json(const char *json, const char *what, shrink_vocab_spec *v,
					  shrink_error *err);
/* Consistency check (sizes, types, ids in range, merges naming known tokens); messages start with `what`. */
shrink_status shrink_vocab_spec_check(const shrink_vocab_spec *v, const char *what, shrink_error *err);

/* ---- GGUF ---- */
typedef enum {
	GGUF_T_UINT8 = 0, GGUF_T_INT8, GGUF_T_UINT16, GGUF_T_INT16, GGUF_T_UINT32, GGUF_T_INT32,
	GGUF_T_FLOAT32, GGUF_T_BOOL, GGUF_T_STRING, GGUF_T_ARRAY, GGUF_T_UINT64, GGUF_T_INT64, GGUF_T_FLOAT64,
} shrink_gguf_type;

typedef struct {
	const char *key;
	shrink_gguf_type type;
	/* scalars */
	struct { uint64_t u; int64_t i; double f; bool b; } v; /* every view a scalar converts to */
	const char *str; size_t str_len;             /* GGUF_T_STRING (not NUL-terminated in file; copied here) */
	shrink_gguf_type arr_type; uint64_t arr_n;   /* GGUF_T_ARRAY */
	const uint8_t *arr_data;                     /* raw array payload in the mapping (non-string arrays) */
	char **arr_str;                              /* string arrays, copied and NUL-terminated */
} shrink_gguf_kv;

typedef struct {
	char path[512];
	uint32_t version;
	shrink_mapping map;
	shrink_gguf_kv *kv;
	uint64_t n_kv;
	shrink_tensor *tensors; /* GGUF names, shapes reversed to outermost-first */
	uint64_t n_tensors;
	char *strings; /* arena for copied strings */
} shrink_gguf;

shrink_status shrink_gguf_open(const char *path, shrink_gguf *g, shrink_error *err);
/* The same from bytes in memory (copied; `name` stands for the file in messages). */
shrink_status shrink_gguf_open_memory(const void *data, size_t n, const char *name, shrink_gguf *g, shrink_error *err);
void shrink_gguf_close(shrink_gguf *g);
const shrink_gguf_kv *shrink_gguf_find(const shrink_gguf *g, const char *key);
/* Typed getters: return 0 if missing or of a non-convertible type. */
int shrink_gguf_get_int(const shrink_gguf *g, const char *key, int64_t *out);
int shrink_gguf_get_float(const shrink_gguf *g, const char *key, double *out);
const char *shrink_gguf_get_str(const shrink_gguf *g, const char *key);
/* Element i of a numeric array as double / int64. */
double shrink_gguf_arr_f64(const shrink_gguf_kv *kv, uint64_t i);
int64_t shrink_gguf_arr_i64(const shrink_gguf_kv *kv, uint64_t i);

/* GGUF metadata -> vocab (tokenizer.ggml.*) */
shrink_status shrink_vocab_from_gguf(const shrink_gguf *g, shrink_vocab_spec *v, shrink_error *err);
/* tokenizer.json (Hugging Face tokenizers) -> vocab */
shrink_status shrink_vocab_from_tokenizer_json(const char *path, shrink_vocab_spec *v, shrink_error *err);
/* The same from JSON text in memory; generation_config.json and tokenizer_config.json
 * are still looked for beside `path` (a name that is no file skips them). */
shrink_status shrink_vocab_from_tokenizer_json_text(const char *json, size_t n, const char *path, shrink_vocab_spec *v,
						    shrink_error *err);

/* ---- safetensors ---- */
/* Map one .safetensors file and append its tensors to `set` (names as stored).
 * `metadata` (optional) receives the __metadata__ object as a cJSON string (malloc'd). */
shrink_status shrink_safetensors_load(const char *path, shrink_tensor_set *set, char **metadata, shrink_error *err);
/* The same from n bytes in memory (copied into a private mapping the set keeps). */
shrink_status shrink_safetensors_load_memory(const void *data, size_t n, const char *name, shrink_tensor_set *set,
					     char **metadata, shrink_error *err);

/* ---- whole models ---- */
typedef enum { SHRINK_FMT_UNKNOWN, SHRINK_FMT_HF_DIR, SHRINK_FMT_GGUF, SHRINK_FMT_LLAMA2C, SHRINK_FMT_SHRINK } shrink_format;

typedef struct {
	shrink_format format;
	shrink_config config;
	shrink_tensor_set weights; /* HF names */
	shrink_vocab_spec vocab;   /* kind NONE when the file had no tokenizer */
	char *container_meta;      /* shrink container __metadata__ JSON, else NULL */
} shrink_model_file;

/* Detect the format of `path` and read it. `tokenizer_path` (may be NULL) names a
 * GGUF or tokenizer.json to take the tokenizer from (required for llama2.c). */
shrink_status shrink_model_file_open(const char *path, const char *tokenizer_path, shrink_model_file *mf,
				     shrink_error *err);
void shrink_model_file_close(shrink_model_file *mf);

shrink_status shrink_read_hf_dir(const char *dir, shrink_model_file *mf, shrink_error *err);
shrink_status shrink_read_gguf_model(const char *path, shrink_model_file *mf, shrink_error *err);
shrink_status shrink_read_llama2c(const char *path, shrink_model_file *mf, shrink_error *err);
/* Readers of a whole GGUF / llama2.c file already in memory (copied; `name` starts messages). */
shrink_status shrink_read_gguf_model_memory(const void *data, size_t n, const char *name, shrink_model_file *mf,
					    shrink_error *err);
shrink_status shrink_read_llama2c_memory(const void *data, size_t n, const char *name, shrink_model_file *mf,
					 shrink_error *err);

/* Check that every tensor the config implies is present with the shape it
 * implies (HF names; biases when qkv_bias; lm_head unless tied) and a weight
 * dtype. Runs shrink_config_validate first. `what` (a file) starts messages. */
shrink_status shrink_check_weights(const shrink_model_file *mf, const char *what, shrink_error *err);

/* Un-permute rows of a GGUF/Meta interleaved-RoPE projection into the HF
 * half-split layout (rows = n_heads*head_dim, cols). Floats only. */
void shrink_unpermute_rope_rows(const float *src, float *dst, int n_heads, int head_dim, int64_t cols);

/* ---- the shrink container (man/shrink-format.5) ---- */
/* Writer: declare every tensor first (name, dtype, shape; data ignored), then
 * put each tensor's bytes once, in any order, then commit. metadata_json is a
 * JSON object of string values (shrink.version, shrink.config, ...); the
 * writer adds shrink.crc32. Output is crash-safe (shrink_outfile). */
typedef struct shrink_container_writer shrink_container_writer;
shrink_status shrink_container_begin(const char *path, const char *metadata_json, const shrink_tensor *plan, size_t n,
				     shrink_container_writer **out, shrink_error *err);
shrink_status shrink_container_put(shrink_container_writer *w, const char *name, const void *data, size_t n_bytes,
				   shrink_error *err);
shrink_status shrink_container_commit(shrink_container_writer *w, shrink_error *err); /* frees w */
void shrink_container_abort(shrink_container_writer *w);                              /* frees w */
/* Reader: the tensors and metadata of a container already loaded with
 * shrink_safetensors_load (takes ownership of set and meta). Verifies every
 * tensor's CRC-32 and builds a SHRINK_QPACKED X.weight for each quantized one. */
/* True for X.qweight / X.scales / X.zeros whose X.weight is a SHRINK_QPACKED
 * tensor of the set: parts that X.weight already stands for. */
bool shrink_is_container_part(const shrink_tensor_set *set, const char *name);
shrink_status shrink_read_container(const char *path, shrink_tensor_set *set, char *meta, shrink_model_file *mf,
				    shrink_error *err);


#endif
