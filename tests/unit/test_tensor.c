/* test_tensor.c: dequantization (hand-built blocks, range checks), the RoPE
 * row un-permutation, and the GGUF model reader on small GGUF files written
 * here (llama with Q8_0 weights, qwen2 with biases, per-layer dims, Llama-3
 * rope_freqs, bad shapes and missing tensors) plus the real stories260K.gguf
 * when the shared data folder is present.
 * Bit-exact agreement of every block type with the Python gguf package is
 * tests/ref/test_gguf_dequant.py's job, not this file's. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shrink/shrink.h"

/* ---- dequantization ---- */

Test(dequant, q4_0_block)
{
	uint8_t b[18] = {0x00, 0x38}; /* d = 0.5 */
	for (int j = 0; j < 16; j++)
		b[2 + j] = (uint8_t)(j | (15 - j) << 4);
	float y[32];
	cr_assert_eq(shrink_dequant_row(SHRINK_Q4_0, b, 0, 32, y, NULL), SHRINK_OK);
	for (int j = 0; j < 16; j++) {
		cr_assert_eq(y[j], 0.5f * (float)(j - 8));
		cr_assert_eq(y[j + 16], 0.5f * (float)(7 - j));
	}
}

Test(dequant, q8_0_second_block)
{
	uint8_t b[68] = {0};
	b[34] = 0x00, b[35] = 0x2c; /* block 1: d = 1/16 */
	for (int j = 0; j < 32; j++)
		b[36 + j] = (uint8_t)(int8_t)(j - 16);
	float y[32];
	cr_assert_eq(shrink_dequant_row(SHRINK_Q8_0, b, 32, 32, y, NULL), SHRINK_OK);
	for (int j = 0; j < 32; j++)
		cr_assert_eq(y[j], (float)(j - 16) / 16);
}

/* Q4_K sub-block 5 takes its 6-bit scale and min from the packed high bits. */
Test(dequant, q4_k_upper_scales)
{
	uint8_t b[144] = {0x00, 0x3c, 0x00, 0x38}; /* d = 1, dmin = 0.5 */
	uint8_t *s = b + 4;
	s[1] = 0x80;		       /* bits 6-7 of byte 1: high bits of scale 5 = 2 */
	s[5] = 0x40;		       /* bits 6-7 of byte 5: high bits of min 5 = 1 */
	s[9] = 0x3 | 0x7 << 4;	       /* low nibbles: scale 5 low = 3, min 5 low = 7 */
	memset(b + 16 + 64, 0x21, 32); /* sub-blocks 4 (low nibble 1) and 5 (high nibble 2) */
	float y[256];
	cr_assert_eq(shrink_dequant_row(SHRINK_Q4_K, b, 0, 256, y, NULL), SHRINK_OK);
	const int sc = 3 | 2 << 4, m = 7 | 1 << 4;
	for (int l = 0; l < 32; l++)
		cr_assert_eq(y[5 * 32 + l], (float)sc * 2 - 0.5f * (float)m, "y[%d] = %g", 160 + l, y[160 + l]);
}

Test(dequant, plain_types)
{
	const uint16_t h[4] = {0x3c00, 0x0001, 0xfc00, 0x8000};
	const double d[2] = {1.5, -1e300};
	const int32_t i[2] = {-7, 1 << 30};
	float y[4];
	cr_assert_eq(shrink_dequant_row(SHRINK_F16, h, 1, 3, y, NULL), SHRINK_OK);
	cr_assert(y[0] == 0x1p-24f && isinf(y[1]) && y[1] < 0 && y[2] == 0 && signbit(y[2]));
	cr_assert_eq(shrink_dequant_row(SHRINK_F64, d, 0, 2, y, NULL), SHRINK_OK);
	cr_assert(y[0] == 1.5f && isinf(y[1]));
	cr_assert_eq(shrink_dequant_row(SHRINK_I32, i, 0, 2, y, NULL), SHRINK_OK);
	cr_assert(y[0] == -7.0f && y[1] == 0x1p30f);
	const uint16_t bf[1] = {0xc000};
	cr_assert_eq(shrink_dequant_row(SHRINK_BF16, bf, 0, 1, y, NULL), SHRINK_OK);
	cr_assert_eq(y[0], -2.0f);
}

Test(dequant, rejects_partial_blocks)
{
	uint8_t b[210] = {0};
	float y[256];
	shrink_error err = {0};
	cr_assert_eq(shrink_dequant_row(SHRINK_Q6_K, b, 128, 256, y, &err), SHRINK_EINPUT);
	cr_assert(strstr(err.msg, "Q6_K"), "%s", err.msg);
	cr_assert_eq(shrink_dequant_row(SHRINK_Q4_0, b, 0, 48, y, &err), SHRINK_EINPUT);
	cr_assert_eq(shrink_dequant_row(SHRINK_DTYPE_COUNT, b, 0, 1, y, &err), SHRINK_EINPUT);
}

/* ---- RoPE un-permutation ---- */

/* llama.cpp's converter: reshape(n_heads, 2, head_dim/2, cols).swapaxes(1, 2). */
static void permute_rows(const float *hf, float *gguf, int n_heads, int head_dim, int cols)
{
	int half = head_dim / 2;
	for (int h = 0; h < n_heads; h++)
		for (int i = 0; i < half; i++)
			for (int s = 0; s < 2; s++)
				memcpy(gguf + (h * head_dim + 2 * i + s) * cols,
				       hf + (h * head_dim + s * half + i) * cols, (size_t)cols * sizeof(float));
}

Test(rope, unpermute_inverts_converter)
{
	enum { H = 3, D = 6, C = 5 };
	float hf[H * D * C], gguf[H * D * C], back[H * D * C];
	for (int i = 0; i < H * D * C; i++)
		hf[i] = (float)i;
	permute_rows(hf, gguf, H, D, C);
	cr_assert_eq(gguf[1 * C], hf[3 * C]); /* row 1 = pair 0, second half */
	shrink_unpermute_rope_rows(gguf, back, H, D, C);
	cr_assert_arr_eq(back, hf, sizeof hf);
}

/* ---- a minimal GGUF writer for reader tests ---- */

typedef struct {
	char name[64];
	int n_dims;
	int64_t shape[2]; /* outermost first */
	uint32_t ggml_type;
	void *data;
	size_t n_bytes;
} gt_tensor;

typedef struct {
	FILE *kv;
	char *kv_buf;
	size_t kv_len;
	uint64_t n_kv;
	gt_tensor t[80];
	int n_t;
} gguf_builder;

static void put(FILE *f, const void *p, size_t n)
{
	cr_assert_eq(fwrite(p, 1, n, f), n);
}

static void put_u32(FILE *f, uint32_t v)
{
	put(f, &v, 4);
}

static void put_u64(FILE *f, uint64_t v)
{
	put(f, &v, 8);
}

static void put_str(FILE *f, const char *s)
{
	put_u64(f, strlen(s));
	put(f, s, strlen(s));
}

static void gb_init(gguf_builder *b)
{
	memset(b, 0, sizeof *b);
	b->kv = open_memstream(&b->kv_buf, &b->kv_len);
}

static void kv_u32(gguf_builder *b, const char *key, uint32_t v)
{
	put_str(b->kv, key);
	put_u32(b->kv, GGUF_T_UINT32);
	put_u32(b->kv, v);
	b->n_kv++;
}

static void kv_f32(gguf_builder *b, const char *key, float v)
{
	put_str(b->kv, key);
	put_u32(b->kv, GGUF_T_FLOAT32);
	put(b->kv, &v, 4);
	b->n_kv++;
}

static void kv_str(gguf_builder *b, const char *key, const char *v)
{
	put_str(b->kv, key);
	put_u32(b->kv, GGUF_T_STRING);
	put_str(b->kv, v);
	b->n_kv++;
}

static void kv_arr_u32(gguf_builder *b, const char *key, const uint32_t *v, int n)
{
	put_str(b->kv, key);
	put_u32(b->kv, GGUF_T_ARRAY);
	put_u32(b->kv, GGUF_T_UINT32);
	put_u64(b->kv, (uint64_t)n);
	put(b->kv, v, (size_t)n * 4);
	b->n_kv++;
}

/* Test values: small multiples of 1/16, exact in F32 and in Q8_0 with d = 1/16. */
static int8_t pattern(int tensor, int64_t i)
{
	return (int8_t)((i * 7 + tensor * 13) % 31 - 15);
}

static void add_tensor(gguf_builder *b, const char *name, int64_t rows, int64_t cols, uint32_t type)
{
	gt_tensor *t = &b->t[b->n_t];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->n_dims = cols ? 2 : 1;
	t->shape[0] = rows;
	t->shape[1] = cols;
	t->ggml_type = type;
	int64_t n = rows * (cols ? cols : 1);
	if (type == 8) { /* Q8_0 */
		t->n_bytes = (size_t)(n / 32 * 34);
		uint8_t *q = calloc(1, t->n_bytes);
		for (int64_t blk = 0; blk < n / 32; blk++) {
			q[blk * 34 + 1] = 0x2c; /* d = 1/16 */
			for (int j = 0; j < 32; j++)
				q[blk * 34 + 2 + j] = (uint8_t)pattern(b->n_t, blk * 32 + j);
		}
		t->data = q;
	} else {
		t->n_bytes = (size_t)n * 4;
		float *f = malloc(t->n_bytes);
		for (int64_t i = 0; i < n; i++)
			f[i] = (float)pattern(b->n_t, i) / 16;
		t->data = f;
	}
	b->n_t++;
}

static void gb_write(gguf_builder *b, const char *path)
{
	fclose(b->kv);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	put(f, "GGUF", 4);
	put_u32(f, 3);
	put_u64(f, (uint64_t)b->n_t);
	put_u64(f, b->n_kv);
	put(f, b->kv_buf, b->kv_len);
	uint64_t offset = 0;
	for (int i = 0; i < b->n_t; i++) {
		const gt_tensor *t = &b->t[i];
		put_str(f, t->name);
		put_u32(f, (uint32_t)t->n_dims);
		for (int d = t->n_dims - 1; d >= 0; d--)
			put_u64(f, (uint64_t)t->shape[d]);
		put_u32(f, t->ggml_type);
		put_u64(f, offset);
		offset += (t->n_bytes + 31) / 32 * 32;
	}
	static const uint8_t zeros[32];
	put(f, zeros, (size_t)((32 - ftell(f) % 32) % 32));
	for (int i = 0; i < b->n_t; i++) {
		put(f, b->t[i].data, b->t[i].n_bytes);
		put(f, zeros, (32 - b->t[i].n_bytes % 32) % 32);
		free(b->t[i].data);
	}
	fclose(f);
	free(b->kv_buf);
}

/* ---- synthetic models ---- */

typedef struct {
	const char *arch;
	int dim, n_heads, head_dim_key; /* head_dim_key: write attention.key_length when > 0 */
	int rope_dims;			/* write rope.dimension_count when > 0 */
	uint32_t kv_heads[2], ffn[2];
	int per_layer_arrays, bias, untied, q8;
	const char *skip;	 /* GGUF tensor to leave out */
	const char *bad;	 /* GGUF tensor written one column short */
	const float *rope_freqs; /* head_dim/2 values, or NULL */
	float rope_theta;
} model_opts;

enum { VOCAB = 40, LAYERS = 2, CTX = 128 };

static void add_model_tensor(gguf_builder *b, const model_opts *o, const char *name, int64_t rows, int64_t cols,
			     uint32_t type)
{
	if (o->skip && strcmp(name, o->skip) == 0)
		return;
	add_tensor(b, name, rows, cols - (o->bad && strcmp(name, o->bad) == 0), type);
}

static void write_layer(gguf_builder *b, const model_opts *o, int l, int head_dim)
{
	char n[64];
	const int64_t dim = o->dim, q = (int64_t)o->n_heads * head_dim, kv = (int64_t)o->kv_heads[l] * head_dim,
		      ffn = o->ffn[l];
	const uint32_t wt = o->q8 ? 8 : 0;
#define T(suffix, rows, cols, type)                                                                                    \
	(snprintf(n, sizeof n, "blk.%d." suffix, l), add_model_tensor(b, o, n, rows, cols, type))
	T("attn_norm.weight", dim, 0, 0);
	T("attn_q.weight", q, dim, wt);
	T("attn_k.weight", kv, dim, 0);
	T("attn_v.weight", kv, dim, 0);
	if (o->bias) {
		T("attn_q.bias", q, 0, 0);
		T("attn_k.bias", kv, 0, 0);
		T("attn_v.bias", kv, 0, 0);
	}
	T("attn_output.weight", dim, q, 0);
	T("ffn_norm.weight", dim, 0, 0);
	T("ffn_gate.weight", ffn, dim, 0);
	T("ffn_up.weight", ffn, dim, 0);
	T("ffn_down.weight", dim, ffn, wt);
#undef T
}

static void write_metadata(gguf_builder *b, const model_opts *o)
{
	char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s." suffix, o->arch), k)
	kv_str(b, "general.architecture", o->arch);
	kv_u32(b, KEY("embedding_length"), (uint32_t)o->dim);
	kv_u32(b, KEY("block_count"), LAYERS);
	kv_u32(b, KEY("attention.head_count"), (uint32_t)o->n_heads);
	if (o->per_layer_arrays) {
		kv_arr_u32(b, KEY("attention.head_count_kv"), o->kv_heads, LAYERS);
		kv_arr_u32(b, KEY("feed_forward_length"), o->ffn, LAYERS);
	} else {
		kv_u32(b, KEY("attention.head_count_kv"), o->kv_heads[0]);
		kv_u32(b, KEY("feed_forward_length"), o->ffn[0]);
	}
	if (o->head_dim_key)
		kv_u32(b, KEY("attention.key_length"), (uint32_t)o->head_dim_key);
	if (o->rope_dims)
		kv_u32(b, KEY("rope.dimension_count"), (uint32_t)o->rope_dims);
	kv_u32(b, KEY("context_length"), CTX);
	kv_f32(b, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
	kv_f32(b, KEY("rope.freq_base"), o->rope_theta ? o->rope_theta : 10000);
	kv_u32(b, KEY("vocab_size"), VOCAB);
	kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
#undef KEY
}

static const char *write_model(const model_opts *o)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/shrink-test-gguf-%d.gguf", (int)getpid());
	const int head_dim = o->head_dim_key ? o->head_dim_key : o->dim / o->n_heads;
	gguf_builder b;
	gb_init(&b);
	write_metadata(&b, o);
	add_model_tensor(&b, o, "token_embd.weight", VOCAB, o->dim, 0);
	for (int l = 0; l < LAYERS; l++)
		write_layer(&b, o, l, head_dim);
	add_model_tensor(&b, o, "output_norm.weight", o->dim, 0, 0);
	if (o->untied)
		add_model_tensor(&b, o, "output.weight", VOCAB, o->dim, 0);
	if (o->rope_freqs) {
		add_tensor(&b, "rope_freqs.weight", head_dim / 2, 0, 0);
		memcpy(b.t[b.n_t - 1].data, o->rope_freqs, (size_t)head_dim / 2 * sizeof(float));
	}
	gb_write(&b, path);
	return path;
}

static const model_opts llama_opts = {
    .arch = "llama", .dim = 32, .n_heads = 4, .kv_heads = {2, 2}, .ffn = {64, 64}, .q8 = 1};

static const shrink_tensor *find(const shrink_model_file *mf, const char *name)
{
	const shrink_tensor *t = shrink_tensor_set_find(&mf->weights, name);
	cr_assert_not_null(t, "no tensor %s", name);
	return t;
}

static const float *raw_f32(const shrink_gguf *g, const char *name, float *buf, int64_t n)
{
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (strcmp(g->tensors[i].name, name) == 0) {
			cr_assert_eq(shrink_dequant_row(g->tensors[i].dtype, g->tensors[i].data, 0, n, buf, NULL), 0);
			return buf;
		}
	cr_assert_fail("no GGUF tensor %s", name);
	return NULL;
}

/* HF row h*hd + s*hd/2 + i must be GGUF row h*hd + 2*i + s. */
static void assert_unpermuted(const shrink_gguf *g, const char *gguf_name, const shrink_tensor *t, int head_dim)
{
	const int64_t rows = t->shape[0], cols = t->n_dims == 2 ? t->shape[1] : 1;
	float *raw = malloc((size_t)(rows * cols) * sizeof *raw);
	raw_f32(g, gguf_name, raw, rows * cols);
	const float *hf = t->data;
	cr_assert_eq(t->dtype, SHRINK_F32);
	for (int64_t r = 0; r < rows; r++) {
		int64_t h = r / head_dim, within = r % head_dim, s = within / (head_dim / 2),
			i = within % (head_dim / 2);
		int64_t src = h * head_dim + 2 * i + s;
		cr_assert_arr_eq(hf + r * cols, raw + src * cols, (size_t)cols * sizeof(float), "%s row %lld",
				 gguf_name, (long long)r);
	}
	free(raw);
}

static void assert_same(const shrink_gguf *g, const char *gguf_name, const shrink_tensor *t)
{
	int64_t n = shrink_tensor_numel(t);
	float *raw = malloc((size_t)n * sizeof *raw), *got = malloc((size_t)n * sizeof *got);
	raw_f32(g, gguf_name, raw, n);
	cr_assert_eq(shrink_dequant_row(t->dtype, t->data, 0, n, got, NULL), 0);
	cr_assert_arr_eq(got, raw, (size_t)n * sizeof *raw, "%s", gguf_name);
	free(raw);
	free(got);
}

static shrink_status load(const model_opts *o, shrink_model_file *mf, shrink_error *err)
{
	const char *path = write_model(o);
	shrink_status st = shrink_read_gguf_model(path, mf, err);
	unlink(path); /* the mapping stays valid */
	return st;
}

Test(gguf_model, llama_q8_unpermuted_and_tied)
{
	shrink_model_file mf;
	shrink_error err = {0};
	const char *path = write_model(&llama_opts);
	cr_assert_eq(shrink_read_gguf_model(path, &mf, &err), SHRINK_OK, "%s", err.msg);
	const shrink_config *c = &mf.config;
	cr_assert(c->dim == 32 && c->n_layers == 2 && c->head_dim == 8 && c->vocab_size == VOCAB && c->max_seq == CTX);
	cr_assert(c->layers[1].n_heads == 4 && c->layers[1].n_kv_heads == 2 && c->layers[1].ffn_dim == 64);
	cr_assert(c->tied_embeddings && !c->qkv_bias && c->bos_id == 1 && c->eos_id == -1);
	cr_assert(c->rope_theta == 10000 && c->norm_eps == 1e-6f && c->rope_scaling == SHRINK_ROPE_SCALING_NONE);
	cr_assert_eq(mf.format, SHRINK_FMT_GGUF);
	cr_assert_eq(mf.vocab.kind, SHRINK_VOCAB_NONE);
	cr_assert_null(shrink_tensor_set_find(&mf.weights, "lm_head.weight"));
	shrink_gguf g;
	cr_assert_eq(shrink_gguf_open(path, &g, &err), SHRINK_OK);
	unlink(path); /* both mappings stay valid */
	for (int l = 0; l < LAYERS; l++) {
		char hf[96], gn[64];
		snprintf(hf, sizeof hf, "model.layers.%d.self_attn.q_proj.weight", l);
		snprintf(gn, sizeof gn, "blk.%d.attn_q.weight", l);
		assert_unpermuted(&g, gn, find(&mf, hf), 8);
		snprintf(hf, sizeof hf, "model.layers.%d.self_attn.k_proj.weight", l);
		snprintf(gn, sizeof gn, "blk.%d.attn_k.weight", l);
		assert_unpermuted(&g, gn, find(&mf, hf), 8);
		snprintf(hf, sizeof hf, "model.layers.%d.mlp.down_proj.weight", l);
		snprintf(gn, sizeof gn, "blk.%d.ffn_down.weight", l);
		const shrink_tensor *down = find(&mf, hf);
		cr_assert(down->dtype == SHRINK_F32 && down->owned && down->shape[0] == 32 && down->shape[1] == 64);
		assert_same(&g, gn, down);
	}
	const shrink_tensor *v = find(&mf, "model.layers.1.self_attn.v_proj.weight");
	cr_assert(v->dtype == SHRINK_F32 && !v->owned && v->shape[0] == 16 && v->shape[1] == 32);
	assert_same(&g, "blk.1.attn_v.weight", v);
	assert_same(&g, "token_embd.weight", find(&mf, "model.embed_tokens.weight"));
	assert_same(&g, "output_norm.weight", find(&mf, "model.norm.weight"));
	shrink_gguf_close(&g);
	shrink_model_file_close(&mf);
}

Test(gguf_model, qwen2_bias_not_permuted)
{
	model_opts o = {
	    .arch = "qwen2", .dim = 32, .n_heads = 4, .kv_heads = {1, 1}, .ffn = {48, 48}, .bias = 1, .untied = 1};
	shrink_model_file mf;
	shrink_error err = {0};
	const char *path = write_model(&o);
	cr_assert_eq(shrink_read_gguf_model(path, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(mf.config.qkv_bias && !mf.config.tied_embeddings);
	shrink_gguf g;
	cr_assert_eq(shrink_gguf_open(path, &g, &err), SHRINK_OK);
	unlink(path);
	assert_same(&g, "blk.0.attn_q.weight", find(&mf, "model.layers.0.self_attn.q_proj.weight"));
	assert_same(&g, "blk.1.attn_k.bias", find(&mf, "model.layers.1.self_attn.k_proj.bias"));
	assert_same(&g, "output.weight", find(&mf, "lm_head.weight"));
	cr_assert_eq(find(&mf, "model.layers.1.self_attn.v_proj.bias")->shape[0], 8);
	shrink_gguf_close(&g);
	shrink_model_file_close(&mf);
}

Test(gguf_model, llama_bias_unpermuted_per_layer_dims)
{
	model_opts o = {.arch = "mistral",
			.dim = 32,
			.n_heads = 4,
			.kv_heads = {2, 1},
			.ffn = {64, 40},
			.per_layer_arrays = 1,
			.bias = 1};
	shrink_model_file mf;
	shrink_error err = {0};
	const char *path = write_model(&o);
	cr_assert_eq(shrink_read_gguf_model(path, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(mf.config.layers[0].n_kv_heads == 2 && mf.config.layers[1].n_kv_heads == 1);
	cr_assert(mf.config.layers[0].ffn_dim == 64 && mf.config.layers[1].ffn_dim == 40);
	cr_assert_eq(find(&mf, "model.layers.1.mlp.down_proj.weight")->shape[1], 40);
	shrink_gguf g;
	cr_assert_eq(shrink_gguf_open(path, &g, &err), SHRINK_OK);
	unlink(path);
	assert_unpermuted(&g, "blk.1.attn_k.weight", find(&mf, "model.layers.1.self_attn.k_proj.weight"), 8);
	assert_unpermuted(&g, "blk.0.attn_q.bias", find(&mf, "model.layers.0.self_attn.q_proj.bias"), 8);
	assert_unpermuted(&g, "blk.1.attn_k.bias", find(&mf, "model.layers.1.self_attn.k_proj.bias"), 8);
	shrink_gguf_close(&g);
	shrink_model_file_close(&mf);
}

static void expect_failure(const model_opts *o, const char *needle)
{
	shrink_model_file mf;
	shrink_error err = {0};
	const char *path = write_model(o);
	shrink_status st = shrink_read_gguf_model(path, &mf, &err);
	unlink(path);
	cr_assert_eq(st, SHRINK_EINPUT, "expected failure: %s", needle);
	cr_assert(strstr(err.msg, needle) && strstr(err.msg, path), "message: %s", err.msg);
	cr_assert_eq(mf.weights.n, 0);
}

Test(gguf_model, errors_name_file_and_tensor)
{
	model_opts o = llama_opts;
	o.bad = "blk.1.attn_q.weight";
	expect_failure(&o,
		       "tensor 'blk.1.attn_q.weight': shape [32, 31] does not match the config (expected [32, 32])");
	o.bad = NULL;
	o.skip = "blk.0.ffn_gate.weight";
	expect_failure(&o, "tensor 'blk.0.ffn_gate.weight' is missing");
	o.skip = NULL;
	o.arch = "gpt2";
	expect_failure(&o, "architecture 'gpt2' is not supported");
	o.arch = "llama";
	o.rope_dims = 4;
	expect_failure(&o, "partial rotary embeddings (rope.dimension_count 4, head size 8)");
}

/* Llama-3 factors the way llama.cpp's converter computes them. */
static void llama3_freqs(float *out, int head_dim, double theta, double factor, double lo, double hi, double orig)
{
	for (int i = 0; i < head_dim / 2; i++) {
		double wavelen = 2 * M_PI / pow(theta, -2.0 * i / head_dim);
		double smooth = (orig / wavelen - lo) / (hi - lo);
		out[i] = (float)(wavelen < orig / hi   ? 1
				 : wavelen > orig / lo ? factor
						       : 1 / ((1 - smooth) / factor + smooth));
	}
}

Test(gguf_model, llama3_rope_freqs)
{
	float f[16];
	model_opts o = {.arch = "llama",
			.dim = 64,
			.n_heads = 2,
			.kv_heads = {1, 1},
			.ffn = {32, 32},
			.rope_theta = 500000,
			.rope_freqs = f};
	llama3_freqs(f, 32, 500000, 8, 1, 8, 8192); /* two pairs in the smooth band: low/high solved */
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(load(&o, &mf, &err), SHRINK_OK, "%s", err.msg);
	const shrink_config *c = &mf.config;
	cr_assert_eq(c->rope_scaling, SHRINK_ROPE_SCALING_LLAMA3);
	cr_assert(c->rope_factor == 8 && c->rope_orig_max_pos == 8192);
	cr_assert(fabsf(c->rope_low_freq_factor - 1) < 1e-3 && fabsf(c->rope_high_freq_factor - 8) < 1e-3, "%g %g",
		  c->rope_low_freq_factor, c->rope_high_freq_factor);
	shrink_model_file_close(&mf);
	llama3_freqs(f, 32, 500000, 32, 1, 4, 8192); /* one pair in the band: defaults 1, 4 verified */
	cr_assert_eq(load(&o, &mf, &err), SHRINK_OK, "%s", err.msg);
	cr_assert(mf.config.rope_factor == 32 && mf.config.rope_high_freq_factor == 4);
	shrink_model_file_close(&mf);
	llama3_freqs(f, 32, 500000, 8, 1, 4, 64); /* tiny original context, not stored: fitted equivalently */
	cr_assert_eq(load(&o, &mf, &err), SHRINK_OK, "%s", err.msg);
	float g[16];
	const shrink_config *k = &mf.config;
	llama3_freqs(g, 32, 500000, k->rope_factor, k->rope_low_freq_factor, k->rope_high_freq_factor,
		     k->rope_orig_max_pos);
	for (int i = 0; i < 16; i++)
		cr_assert(fabsf(g[i] - f[i]) <= 1e-4f * f[i], "pair %d: %g vs %g", i, g[i], f[i]);
	shrink_model_file_close(&mf);
	f[8] = 0.5f;
	expect_failure(&o, "rope_freqs.weight' does not match Llama-3");
}

/* ---- the real stories260K.gguf ---- */

static int data_path(char *buf, size_t cap, const char *name)
{
	const char *dir = getenv("SHRINK_DATA"), *src = getenv("SHRINK_SRC");
	if (dir)
		snprintf(buf, cap, "%s/%s", dir, name);
	else
		snprintf(buf, cap, "%s/../shared/data/%s", src ? src : ".", name);
	return access(buf, R_OK) == 0;
}

Test(gguf_model, stories260k)
{
	char path[1024];
	if (!data_path(path, sizeof path, "stories260K.gguf"))
		cr_skip("%s not found (set SHRINK_DATA)", path);
	shrink_model_file mf;
	shrink_error err = {0};
	cr_assert_eq(shrink_read_gguf_model(path, &mf, &err), SHRINK_OK, "%s", err.msg);
	const shrink_config *c = &mf.config;
	cr_assert(c->dim == 64 && c->n_layers == 5 && c->head_dim == 8 && c->vocab_size == 512);
	for (int l = 0; l < 5; l++)
		cr_assert(c->layers[l].n_heads == 8 && c->layers[l].n_kv_heads == 4 && c->layers[l].ffn_dim == 172);
	cr_assert(!c->tied_embeddings && !c->qkv_bias && c->bos_id == 1 && c->eos_id == 2 && c->max_seq == 2048);
	shrink_gguf g;
	cr_assert_eq(shrink_gguf_open(path, &g, &err), SHRINK_OK);
	for (int l = 0; l < 5; l++) {
		char hf[96], gn[64];
		snprintf(hf, sizeof hf, "model.layers.%d.self_attn.q_proj.weight", l);
		snprintf(gn, sizeof gn, "blk.%d.attn_q.weight", l);
		assert_unpermuted(&g, gn, find(&mf, hf), 8);
		snprintf(hf, sizeof hf, "model.layers.%d.self_attn.k_proj.weight", l);
		snprintf(gn, sizeof gn, "blk.%d.attn_k.weight", l);
		assert_unpermuted(&g, gn, find(&mf, hf), 8);
	}
	const shrink_tensor *q = find(&mf, "model.layers.0.self_attn.q_proj.weight");
	float raw[64 * 64];
	raw_f32(&g, "blk.0.attn_q.weight", raw, 64 * 64);
	cr_assert(memcmp(q->data, raw, sizeof raw) != 0, "q_proj was not un-permuted");
	assert_same(&g, "blk.2.ffn_down.weight", find(&mf, "model.layers.2.mlp.down_proj.weight"));
	shrink_gguf_close(&g);
	shrink_model_file_close(&mf);
}
