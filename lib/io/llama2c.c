/* llama2c.c: reader for llama2.c checkpoints (the legacy "version 0" export:
 * a header of 7 int32, then float32 arrays stacked over layers, then the
 * unused RoPE tables and, when vocab_size < 0, a separate classifier).
 * The file size must match the header exactly. Weights are borrowed from the
 * mapping as per-layer slices; Q and K are copied and un-permuted from
 * llama2.c's interleaved RoPE pairs to the Hugging Face half-split layout.
 * It does not read the versioned (magic "ak42") exports or tokenizer.bin:
 * the tokenizer comes from elsewhere (shrink_model_file_open). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/io.h"

typedef struct {
	int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} header;

typedef struct {
	const char *path;
	const float *p; /* next unread float */
	header h;
	int vocab, head_dim, kv_dim;
	shrink_tensor_set *set;
	shrink_error *err;
} reader;

#define HEADER_BYTES 28

static int in_range(int32_t v, int32_t lo, int32_t hi)
{
	return v >= lo && v <= hi;
}

static shrink_status check_header(const char *path, const header *h, shrink_error *err)
{
	if (!in_range(h->dim, 1, 65536) || !in_range(h->hidden_dim, 1, 1 << 20) ||
	    !in_range(h->n_layers, 1, SHRINK_MAX_LAYERS) || !in_range(h->n_heads, 1, h->dim) ||
	    !in_range(h->n_kv_heads, 1, h->n_heads) || h->vocab_size == 0 ||
	    !in_range(h->vocab_size, -(4 << 20), 4 << 20) || !in_range(h->seq_len, 1, 1 << 24))
		return shrink_fail(
		    err, SHRINK_EINPUT,
		    "%s: not a llama2.c checkpoint: header dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
		    "n_kv_heads %d, vocab_size %d, seq_len %d out of range",
		    path, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab_size, h->seq_len);
	if (h->dim % h->n_heads != 0 || (h->dim / h->n_heads) % 2 != 0 || h->n_heads % h->n_kv_heads != 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: llama2.c header: dim %d, %d heads, %d KV heads do not give an even head size "
				   "shared by whole KV groups",
				   path, h->dim, h->n_heads, h->n_kv_heads);
	return SHRINK_OK;
}

/* Bytes the file must have; the header bounds keep every product far below 2^63. */
static uint64_t expected_bytes(const header *h)
{
	uint64_t dim = (uint64_t)h->dim, hidden = (uint64_t)h->hidden_dim, layers = (uint64_t)h->n_layers;
	uint64_t vocab = (uint64_t)(h->vocab_size < 0 ? -(int64_t)h->vocab_size : h->vocab_size);
	uint64_t head = dim / (uint64_t)h->n_heads, kv_dim = head * (uint64_t)h->n_kv_heads;
	uint64_t per_layer = 2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim;
	uint64_t floats = vocab * dim + layers * per_layer + dim + (uint64_t)h->seq_len * head;
	if (h->vocab_size < 0)
		floats += vocab * dim;
	return HEADER_BYTES + 4 * floats;
}

static shrink_status add_tensor(reader *r, const char *name, const float *data, int64_t rows, int64_t cols)
{
	shrink_tensor *t = shrink_tensor_set_add(r->set, r->err);
	if (!t)
		return SHRINK_EIO;
	snprintf(t->name, sizeof t->name, "%s", name);
	t->dtype = SHRINK_F32;
	t->n_dims = cols ? 2 : 1;
	t->shape[0] = rows;
	t->shape[1] = cols;
	t->data = data;
	t->n_bytes = (size_t)(rows * (cols ? cols : 1)) * sizeof(float);
	return SHRINK_OK;
}

/* Q/K: an owned copy with each head's interleaved RoPE pairs regrouped into halves. */
static shrink_status add_unpermuted(reader *r, const char *name, const float *src, int n_heads)
{
	int64_t rows = (int64_t)n_heads * r->head_dim, cols = r->h.dim;
	float *dst = malloc((size_t)(rows * cols) * sizeof *dst);
	if (!dst)
		return shrink_fail(r->err, SHRINK_EIO, "%s: out of memory", r->path);
	shrink_unpermute_rope_rows(src, dst, n_heads, r->head_dim, cols);
	shrink_status st = add_tensor(r, name, dst, rows, cols);
	if (st) {
		free(dst);
		return st;
	}
	r->set->tensors[r->set->n - 1].owned = dst;
	return SHRINK_OK;
}

/* Take the next stacked array of n_layers * per_layer floats. */
static const float *take(reader *r, int64_t per_layer)
{
	const float *p = r->p;
	r->p += per_layer * r->h.n_layers;
	return p;
}

typedef struct {
	const char *name; /* printf pattern with the layer number */
	int64_t rows, cols;
	int rope_heads; /* > 0: un-permute Q/K with this many heads */
} layer_array;

static shrink_status add_stacked(reader *r, const layer_array *a)
{
	int64_t per_layer = a->rows * (a->cols ? a->cols : 1);
	const float *base = take(r, per_layer);
	char name[SHRINK_NAME_MAX];
	for (int l = 0; l < r->h.n_layers; l++) {
		snprintf(name, sizeof name, a->name, l);
		const float *src = base + per_layer * l;
		shrink_status st = a->rope_heads ? add_unpermuted(r, name, src, a->rope_heads)
						 : add_tensor(r, name, src, a->rows, a->cols);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status add_all(reader *r)
{
	const int64_t dim = r->h.dim, hidden = r->h.hidden_dim, kv_dim = r->kv_dim;
	const layer_array arrays[] = {
	    {"model.layers.%d.input_layernorm.weight", dim, 0, 0},
	    {"model.layers.%d.self_attn.q_proj.weight", dim, dim, r->h.n_heads},
	    {"model.layers.%d.self_attn.k_proj.weight", kv_dim, dim, r->h.n_kv_heads},
	    {"model.layers.%d.self_attn.v_proj.weight", kv_dim, dim, 0},
	    {"model.layers.%d.self_attn.o_proj.weight", dim, dim, 0},
	    {"model.layers.%d.post_attention_layernorm.weight", dim, 0, 0},
	    {"model.layers.%d.mlp.gate_proj.weight", hidden, dim, 0}, /* w1 */
	    {"model.layers.%d.mlp.down_proj.weight", dim, hidden, 0}, /* w2 */
	    {"model.layers.%d.mlp.up_proj.weight", hidden, dim, 0},   /* w3 */
	};
	shrink_status st = add_tensor(r, "model.embed_tokens.weight", r->p, r->vocab, dim);
	r->p += r->vocab * dim;
	for (size_t i = 0; !st && i < sizeof arrays / sizeof arrays[0]; i++)
		st = add_stacked(r, &arrays[i]);
	if (st)
		return st;
	if ((st = add_tensor(r, "model.norm.weight", r->p, dim, 0)))
		return st;
	r->p += dim + (int64_t)r->h.seq_len * r->head_dim; /* final norm, then freq_cis real and imag halves */
	if (r->h.vocab_size < 0)
		st = add_tensor(r, "lm_head.weight", r->p, r->vocab, dim);
	return st;
}

static void fill_config(const header *h, shrink_config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->arch, sizeof c->arch, "llama");
	c->dim = h->dim;
	c->n_layers = h->n_layers;
	c->head_dim = h->dim / h->n_heads;
	c->vocab_size = h->vocab_size < 0 ? -h->vocab_size : h->vocab_size;
	c->max_seq = h->seq_len;
	shrink_config_set_uniform(c, h->n_heads, h->n_kv_heads, h->hidden_dim);
	c->norm_eps = 1e-5f;	  /* run.c's rmsnorm */
	c->rope_theta = 10000.0f; /* run.c's RoPE base */
	c->tied_embeddings = h->vocab_size > 0;
	c->bos_id = c->vocab_size > 1 ? 1 : -1; /* llama2.c's SentencePiece ids */
	c->eos_id = c->vocab_size > 2 ? 2 : -1;
}

static shrink_status read_header(const char *path, const shrink_mapping *m, header *h, shrink_error *err)
{
	if (m->n_bytes < HEADER_BYTES)
		return shrink_fail(err, SHRINK_EINPUT, "%s: %zu bytes, too small for a llama2.c checkpoint", path,
				   m->n_bytes);
	memcpy(h, m->addr, HEADER_BYTES);
	shrink_status st = check_header(path, h, err);
	if (st)
		return st;
	uint64_t want = expected_bytes(h);
	if (want != m->n_bytes)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: file is %zu bytes but its llama2.c header (dim %d, hidden_dim %d, %d layers, "
				   "%d heads, %d KV heads, vocab %d, seq_len %d) implies %llu",
				   path, m->n_bytes, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads,
				   h->vocab_size, h->seq_len, (unsigned long long)want);
	return SHRINK_OK;
}

/* Takes ownership of the mapping m (released on failure). */
static shrink_status read_mapped(const char *path, shrink_mapping m, shrink_model_file *mf, shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	mf->format = SHRINK_FMT_LLAMA2C;
	reader r = {.path = path, .set = &mf->weights, .err = err};
	shrink_status st;
	if ((st = read_header(path, &m, &r.h, err))) {
		shrink_unmap(&m);
		return st;
	}
	const float *data = (const float *)((const uint8_t *)m.addr + HEADER_BYTES);
	if ((st = shrink_tensor_set_keep_mapping(&mf->weights, m, err)))
		return st;
	fill_config(&r.h, &mf->config);
	r.p = data;
	r.vocab = mf->config.vocab_size;
	r.head_dim = mf->config.head_dim;
	r.kv_dim = r.head_dim * r.h.n_kv_heads;
	st = shrink_config_validate(&mf->config, path, err);
	if (!st)
		st = add_all(&r);
	if (st)
		shrink_model_file_close(mf);
	return st;
}

shrink_status shrink_read_llama2c(const char *path, shrink_model_file *mf, shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	shrink_mapping m;
	shrink_status st = shrink_map_file(path, &m, err);
	return st ? st : read_mapped(path, m, mf, err);
}

shrink_status shrink_read_llama2c_memory(const void *data, size_t n, const char *name, shrink_model_file *mf,
					 shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	shrink_mapping m;
	shrink_status st = shrink_map_memory(data, n, &m, err);
	return st ? shrink_fail_prefix(err, "%s: ", name) : read_mapped(name, m, mf, err);
}
