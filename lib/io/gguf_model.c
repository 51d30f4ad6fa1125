/* gguf_model.c: read a Llama-family GGUF model (general.architecture "llama",
 * "mistral" or "qwen2") into a shrink_model_file: the config from {arch}.*
 * metadata, every tensor under its Hugging Face name with a PyTorch shape, and
 * the tokenizer through shrink_vocab_from_gguf.
 * F32/F16/BF16 tensors stay borrowed from the file mapping, which moves into
 * mf->weights; block-quantized (and F64) tensors become owned F32 copies. For
 * llama/mistral, llama.cpp's converter permuted Q and K rows for interleaved
 * RoPE (conversion/llama.py, LlamaModel.permute); they are un-permuted back to
 * the half-split layout. qwen2 files are not permuted (Qwen2Model does not
 * override modify_tensors that way, and llama.cpp runs qwen2 with NEOX RoPE).
 * A rope_freqs.weight tensor (Llama-3 scaling) is accepted only when its values
 * are reproduced by Llama-3 parameters fitted to it (see fit_llama3).
 * It does not read other architectures, MoE, partial rotary embeddings, YaRN
 * or LongRoPE scaling, or split files (*-00001-of-N.gguf). Extra tensors that
 * are not part of the Llama layout are ignored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shrink/io.h"

#define MAX_DIM (1 << 24)

typedef struct {
	const shrink_gguf *g;
	const char *path;
	const char *arch; /* general.architecture as stored */
	char key[128];
	shrink_config *c;
	shrink_tensor_set *set;
	shrink_error *err;
} reader;

/* ---- metadata ---- */

static const char *arch_key(reader *r, const char *suffix)
{
	snprintf(r->key, sizeof r->key, "%s.%s", r->arch, suffix);
	return r->key;
}

static shrink_status bad_value(reader *r, const char *key, long long v)
{
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: metadata '%s' = %lld is out of range", r->path, key, v);
}

/* A required (or, with fallback >= 0, optional) positive integer key. */
static shrink_status get_count(reader *r, const char *key, int64_t max, int fallback, int *out)
{
	int64_t v;
	if (!shrink_gguf_get_int(r->g, key, &v)) {
		if (fallback >= 0 && !shrink_gguf_find(r->g, key)) {
			*out = fallback;
			return SHRINK_OK;
		}
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: metadata '%s' is %s", r->path, key,
				   shrink_gguf_find(r->g, key) ? "not an integer" : "missing");
	}
	if (v < 1 || v > max)
		return bad_value(r, key, (long long)v);
	*out = (int)v;
	return SHRINK_OK;
}

/* {arch}.suffix as one integer or as an array with one per layer, into out[].
 * When the key is missing, `fallback` (if not NULL) is copied instead. */
static shrink_status get_per_layer(reader *r, const char *suffix, int64_t max, const int *fallback, int *out)
{
	const int n_layers = r->c->n_layers;
	const char *key = arch_key(r, suffix);
	const shrink_gguf_kv *kv = shrink_gguf_find(r->g, key);
	if (!kv && fallback) {
		memcpy(out, fallback, (size_t)n_layers * sizeof *out);
		return SHRINK_OK;
	}
	if (!kv || kv->type != GGUF_T_ARRAY) {
		shrink_status st = get_count(r, key, max, -1, &out[0]);
		for (int l = 1; !st && l < n_layers; l++)
			out[l] = out[0];
		return st;
	}
	if (kv->arr_n != (uint64_t)n_layers || !kv->arr_data || kv->arr_type == GGUF_T_FLOAT32 ||
	    kv->arr_type == GGUF_T_FLOAT64)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: metadata '%s': expected one integer per layer (%d), found an array of %llu",
				   r->path, key, n_layers, (unsigned long long)kv->arr_n);
	for (int l = 0; l < n_layers; l++) {
		int64_t v = shrink_gguf_arr_i64(kv, (uint64_t)l);
		if (v < 1 || v > max)
			return bad_value(r, key, (long long)v);
		out[l] = (int)v;
	}
	return SHRINK_OK;
}

static shrink_status get_float(reader *r, const char *key, double fallback, float *out)
{
	double v;
	if (!shrink_gguf_get_float(r->g, key, &v)) {
		if (!shrink_gguf_find(r->g, key) && fallback >= 0) {
			*out = (float)fallback;
			return SHRINK_OK;
		}
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: metadata '%s' is %s", r->path, key,
				   shrink_gguf_find(r->g, key) ? "not a number" : "missing");
	}
	if (!isfinite(v) || v <= 0)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: metadata '%s' = %g must be positive", r->path, key, v);
	*out = (float)v;
	return SHRINK_OK;
}

static const shrink_tensor *gguf_tensor(const shrink_gguf *g, const char *name)
{
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (strcmp(g->tensors[i].name, name) == 0)
			return &g->tensors[i];
	return NULL;
}

static shrink_status read_layers(reader *r)
{
	int heads[SHRINK_MAX_LAYERS], kv_heads[SHRINK_MAX_LAYERS], ffn[SHRINK_MAX_LAYERS];
	shrink_status st = get_per_layer(r, "attention.head_count", 1 << 16, NULL, heads);
	if (!st)
		st = get_per_layer(r, "attention.head_count_kv", 1 << 16, heads, kv_heads);
	if (!st)
		st = get_per_layer(r, "feed_forward_length", MAX_DIM, NULL, ffn);
	for (int l = 0; !st && l < r->c->n_layers; l++)
		r->c->layers[l] =
		    (shrink_layer_config){.n_heads = heads[l], .n_kv_heads = kv_heads[l], .ffn_dim = ffn[l]};
	return st;
}

static shrink_status read_head_dim(reader *r)
{
	shrink_config *c = r->c;
	int n_heads = c->layers[0].n_heads, v_len;
	shrink_status st = get_count(r, arch_key(r, "attention.key_length"), MAX_DIM, 0, &c->head_dim);
	if (st)
		return st;
	if (c->head_dim == 0) {
		if (c->dim % n_heads != 0)
			return shrink_fail(r->err, SHRINK_EINPUT,
					   "%s: embedding length %d is not a multiple of %d heads", r->path, c->dim,
					   n_heads);
		c->head_dim = c->dim / n_heads;
	}
	if ((st = get_count(r, arch_key(r, "attention.value_length"), MAX_DIM, c->head_dim, &v_len)))
		return st;
	if (v_len != c->head_dim)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: value head size %d differs from key head size %d",
				   r->path, v_len, c->head_dim);
	if (c->head_dim % 2 != 0)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: head size %d is odd; RoPE needs pairs", r->path,
				   c->head_dim);
	int rot;
	if ((st = get_count(r, arch_key(r, "rope.dimension_count"), MAX_DIM, c->head_dim, &rot)))
		return st;
	if (rot != c->head_dim)
		return shrink_fail(
		    r->err, SHRINK_EINPUT,
		    "%s: partial rotary embeddings (rope.dimension_count %d, head size %d) are not supported", r->path,
		    rot, c->head_dim);
	return SHRINK_OK;
}

/* {arch}.vocab_size, else the tokenizer's token count, else token_embd's rows. */
static shrink_status read_vocab_size(reader *r)
{
	const shrink_gguf_kv *tokens = shrink_gguf_find(r->g, "tokenizer.ggml.tokens");
	const shrink_tensor *embd = gguf_tensor(r->g, "token_embd.weight");
	int fallback = -1;
	if (tokens && tokens->type == GGUF_T_ARRAY && tokens->arr_n <= MAX_DIM)
		fallback = (int)tokens->arr_n;
	else if (embd && embd->n_dims == 2 && embd->shape[0] <= MAX_DIM)
		fallback = (int)embd->shape[0];
	return get_count(r, arch_key(r, "vocab_size"), MAX_DIM, fallback, &r->c->vocab_size);
}

/* A token id from tokenizer.ggml.*, or -1 when absent or outside the vocabulary. */
static int token_id(const reader *r, const char *key)
{
	int64_t v;
	return shrink_gguf_get_int(r->g, key, &v) && v >= 0 && v < r->c->vocab_size ? (int)v : -1;
}

/* ---- RoPE scaling ---- */

/* Llama-3 factor for a frequency whose wavelength is orig/x (x = orig/wavelen). */
static double llama3_factor(double x, double factor, double low, double high)
{
	if (x > high)
		return 1;
	if (x < low)
		return factor;
	double smooth = (x - low) / (high - low);
	return 1 / ((1 - smooth) / factor + smooth);
}

typedef struct {
	int n;
	const float *f; /* stored factors, one per rotary pair */
	double *x;	/* orig_max_pos / wavelength per pair */
	double factor, low, high;
} llama3_fit;

static int llama3_matches(const llama3_fit *fit)
{
	if (!(fit->low > 0 && fit->high > fit->low))
		return 0;
	for (int i = 0; i < fit->n; i++)
		if (!(fabs(llama3_factor(fit->x[i], fit->factor, fit->low, fit->high) - fit->f[i]) <= 1e-4 * fit->f[i]))
			return 0;
	return 1;
}

static int llama3_try(llama3_fit *fit, double low, double high)
{
	fit->low = low;
	fit->high = high;
	return llama3_matches(fit);
}

/* Fit low/high to the stored factors (x falls as the pair index rises): from
 * two entries in the smoothly scaled band; from one, with high = 4 * low as in
 * Llama 3.x; from none, inside the gap between the unscaled entries (x > high)
 * and the fully scaled ones (x < low). Only orig/low and orig/high matter. */
static void llama3_solve(llama3_fit *fit)
{
	int a = -1, b = -1, last_one = -1, first_full = -1;
	for (int i = 0; i < fit->n; i++) {
		if (fit->f[i] <= 1 + 1e-5)
			last_one = i;
		else if (fit->f[i] >= fit->factor * (1 - 1e-5))
			first_full = first_full < 0 ? i : first_full;
		else
			b = i, a = a < 0 ? i : a;
	}
	const double inv = 1 / fit->factor;
	if (a >= 0) {
		double sa = (1 / fit->f[a] - inv) / (1 - inv), sb = (1 / fit->f[b] - inv) / (1 - inv);
		double span = a == b ? 0 : (fit->x[b] - fit->x[a]) / (sb - sa);
		fit->low = a == b ? fit->x[a] / (1 + 3 * sa) : fit->x[a] - sa * span;
		fit->high = a == b ? 4 * fit->low : fit->low + span;
		return;
	}
	double lower = first_full >= 0 ? fit->x[first_full] : fit->x[fit->n - 1] / 4;
	double upper = last_one >= 0 ? fit->x[last_one] : fit->x[0] * 4;
	fit->low = lower * cbrt(upper / lower);
	fit->high = fit->low * cbrt(upper / lower);
}

/* rope_freqs.weight holds, per rotary pair, the factor that Llama-3 scaling
 * divides the frequency by. GGUF does not store the parameters, so they are
 * fitted: factor = the largest value; orig = original_context_length or the
 * converter's default 8192; low/high = the converter's defaults (1, 4) if they
 * reproduce the tensor, else llama3_solve's. Whatever is chosen must reproduce
 * every stored value to 1e-4, so the forward pass sees the same frequencies. */
static shrink_status fit_llama3(reader *r, const shrink_tensor *t)
{
	shrink_config *c = r->c;
	const int n = c->head_dim / 2;
	if (t->dtype != SHRINK_F32 || shrink_tensor_numel(t) != n)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: tensor 'rope_freqs.weight': expected %d F32 values (%s, %lld)", r->path, n,
				   shrink_dtype_name(t->dtype), (long long)shrink_tensor_numel(t));
	int orig;
	shrink_status st = get_count(r, arch_key(r, "rope.scaling.original_context_length"), MAX_DIM, 8192, &orig);
	if (st)
		return st;
	float *f = malloc((size_t)n * sizeof *f);
	double *x = malloc((size_t)n * sizeof *x);
	if (!f || !x) {
		free(f);
		free(x);
		return shrink_fail(r->err, SHRINK_EIO, "out of memory");
	}
	memcpy(f, t->data, (size_t)n * sizeof *f);
	llama3_fit fit = {.n = n, .f = f, .x = x, .factor = 1};
	for (int i = 0; i < n; i++) {
		x[i] = orig * pow(c->rope_theta, -2.0 * i / c->head_dim) / (2 * M_PI);
		fit.factor = isfinite(f[i]) && f[i] > fit.factor ? f[i] : fit.factor;
	}
	int ok = llama3_try(&fit, 1, 4);
	if (!ok) {
		llama3_solve(&fit);
		ok = llama3_matches(&fit);
	}
	free(f);
	free(x);
	if (!ok)
		return shrink_fail(
		    r->err, SHRINK_EINPUT,
		    "%s: tensor 'rope_freqs.weight' does not match Llama-3 RoPE scaling (best fit: factor %g, "
		    "low_freq_factor %g, high_freq_factor %g, original context %d)",
		    r->path, fit.factor, fit.low, fit.high, orig);
	if (fit.factor == 1)
		return SHRINK_OK; /* all ones: no scaling */
	c->rope_scaling = SHRINK_ROPE_SCALING_LLAMA3;
	c->rope_factor = (float)fit.factor;
	c->rope_low_freq_factor = (float)fit.low;
	c->rope_high_freq_factor = (float)fit.high;
	c->rope_orig_max_pos = orig;
	return SHRINK_OK;
}

static shrink_status read_rope_scaling(reader *r)
{
	shrink_config *c = r->c;
	c->rope_scaling = SHRINK_ROPE_SCALING_NONE;
	c->rope_factor = 1;
	const char *type = shrink_gguf_get_str(r->g, arch_key(r, "rope.scaling.type"));
	const shrink_tensor *freqs = gguf_tensor(r->g, "rope_freqs.weight");
	if (freqs) {
		if (type && strcmp(type, "none") != 0)
			return shrink_fail(
			    r->err, SHRINK_EINPUT,
			    "%s: both rope.scaling.type '%s' and a rope_freqs.weight tensor; not supported", r->path,
			    type);
		return fit_llama3(r, freqs);
	}
	float factor = 1;
	shrink_status st;
	if (!type || strcmp(type, "none") == 0) { /* older files: {arch}.rope.scale_linear */
		if ((st = get_float(r, arch_key(r, "rope.scale_linear"), 1, &factor)))
			return st;
	} else if (strcmp(type, "linear") == 0) {
		if ((st = get_float(r, arch_key(r, "rope.scaling.factor"), -1, &factor)))
			return st;
	} else {
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: RoPE scaling type '%s' is not supported (none, linear and Llama-3 are)",
				   r->path, type);
	}
	if (factor != 1) {
		c->rope_scaling = SHRINK_ROPE_SCALING_LINEAR;
		c->rope_factor = factor;
	}
	return get_count(r, arch_key(r, "rope.scaling.original_context_length"), MAX_DIM, 0, &c->rope_orig_max_pos);
}

static shrink_status read_config(reader *r)
{
	shrink_config *c = r->c;
	memset(c, 0, sizeof *c);
	snprintf(c->arch, sizeof c->arch, "%s", r->arch);
	shrink_status st = get_count(r, arch_key(r, "embedding_length"), MAX_DIM, -1, &c->dim);
	if (!st)
		st = get_count(r, arch_key(r, "block_count"), SHRINK_MAX_LAYERS, -1, &c->n_layers);
	if (!st)
		st = read_layers(r);
	if (!st)
		st = read_head_dim(r);
	if (!st)
		st = get_count(r, arch_key(r, "context_length"), MAX_DIM, -1, &c->max_seq);
	if (!st)
		st = get_float(r, arch_key(r, "attention.layer_norm_rms_epsilon"), -1, &c->norm_eps);
	if (!st)
		st = get_float(r, arch_key(r, "rope.freq_base"), 10000, &c->rope_theta);
	if (!st)
		st = read_vocab_size(r);
	if (!st)
		st = read_rope_scaling(r);
	if (st)
		return st;
	c->bos_id = token_id(r, "tokenizer.ggml.bos_token_id");
	c->eos_id = token_id(r, "tokenizer.ggml.eos_token_id");
	c->tied_embeddings = gguf_tensor(r->g, "output.weight") == NULL;
	c->qkv_bias = gguf_tensor(r->g, "blk.0.attn_q.bias") != NULL;
	return SHRINK_OK;
}

/* ---- tensors ---- */

typedef struct {
	char gguf[SHRINK_NAME_MAX], hf[SHRINK_NAME_MAX];
	int n_dims;
	int64_t shape[2];
	int rope_heads; /* > 0: un-permute rows, this many heads */
} tensor_spec;

static void format_shape(char *buf, size_t cap, int n_dims, const int64_t *shape)
{
	size_t used = (size_t)snprintf(buf, cap, "[");
	for (int d = 0; d < n_dims && used < cap; d++)
		used += (size_t)snprintf(buf + used, cap - used, d ? ", %lld" : "%lld", (long long)shape[d]);
	if (used < cap)
		snprintf(buf + used, cap - used, "]");
}

static shrink_status check_shape(reader *r, const tensor_spec *s, const shrink_tensor *t)
{
	int same = t->n_dims == s->n_dims;
	for (int d = 0; same && d < s->n_dims; d++)
		same = t->shape[d] == s->shape[d];
	if (same)
		return SHRINK_OK;
	char have[96], want[96];
	format_shape(have, sizeof have, t->n_dims, t->shape);
	format_shape(want, sizeof want, s->n_dims, s->shape);
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: tensor '%s': shape %s does not match the config (expected %s)",
			   r->path, s->gguf, have, want);
}

/* Memory for owned copies. Large ones are 2 MiB aligned and advised as huge
 * pages: filling gigabytes of fresh floats otherwise costs more in page faults
 * than in dequantization. Freed with free(), like any owned tensor data. */
static float *alloc_floats(size_t n_bytes)
{
	const size_t huge = (size_t)2 << 20;
	void *p = NULL;
	if (n_bytes < 2 * huge)
		return malloc(n_bytes ? n_bytes : 1);
	if (posix_memalign(&p, huge, n_bytes) != 0)
		return NULL;
#ifdef MADV_HUGEPAGE
	madvise(p, n_bytes, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
	return p;
}

/* An owned float32 copy of the whole tensor, rows dequantized in parallel. */
static shrink_status dequant_copy(reader *r, const shrink_tensor *t, float **out)
{
	int be, bb;
	int64_t numel = shrink_tensor_numel(t), cols = t->shape[t->n_dims - 1], rows = numel / cols;
	size_t n_bytes;
	if (!shrink_dtype_block(t->dtype, &be, &bb) || cols % be != 0)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: tensor '%s': rows of %lld elements are not whole %s blocks", r->path, t->name,
				   (long long)cols, shrink_dtype_name(t->dtype));
	if (!shrink_mul_size((size_t)numel, sizeof(float), &n_bytes) || !(*out = alloc_floats(n_bytes)))
		return shrink_fail(r->err, SHRINK_EIO, "%s: tensor '%s': out of memory for %lld floats", r->path,
				   t->name, (long long)numel);
	float *dst = *out;
	shrink_status st = shrink_dequant_row(t->dtype, t->data, 0, cols, dst, r->err);
	if (st) {
		free(dst);
		*out = NULL;
		shrink_fail_prefix(r->err, "%s: tensor '%s': ", r->path, t->name);
		return st;
	}
	/* row 0 succeeded, so every row does: same dtype, same block-aligned length */
#pragma omp parallel for schedule(static) if (numel > (1 << 16))
	for (int64_t row = 1; row < rows; row++)
		shrink_dequant_row(t->dtype, t->data, row * cols, cols, dst + row * cols, NULL);
	return SHRINK_OK;
}

static shrink_status make_owned(reader *r, const tensor_spec *s, const shrink_tensor *src, float **out)
{
	shrink_status st = dequant_copy(r, src, out);
	if (st || s->rope_heads == 0)
		return st;
	int64_t numel = shrink_tensor_numel(src), cols = s->n_dims == 2 ? s->shape[1] : 1;
	float *dst = alloc_floats((size_t)numel * sizeof *dst);
	if (!dst) {
		free(*out);
		*out = NULL;
		return shrink_fail(r->err, SHRINK_EIO, "%s: tensor '%s': out of memory", r->path, s->gguf);
	}
	shrink_unpermute_rope_rows(*out, dst, s->rope_heads, r->c->head_dim, cols);
	free(*out);
	*out = dst;
	return SHRINK_OK;
}

static shrink_status add_tensor(reader *r, const tensor_spec *s)
{
	const shrink_tensor *src = gguf_tensor(r->g, s->gguf);
	if (!src)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: tensor '%s' is missing", r->path, s->gguf);
	shrink_status st = check_shape(r, s, src);
	if (st)
		return st;
	int be, bb;
	if (!shrink_dtype_is_float(src->dtype) && !(shrink_dtype_block(src->dtype, &be, &bb) && be > 1))
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: tensor '%s': dtype %s is not a weight type", r->path,
				   s->gguf, shrink_dtype_name(src->dtype));
	int borrow =
	    s->rope_heads == 0 && (src->dtype == SHRINK_F32 || src->dtype == SHRINK_F16 || src->dtype == SHRINK_BF16);
	float *owned = NULL;
	if (!borrow && (st = make_owned(r, s, src, &owned)))
		return st;
	shrink_tensor *t = shrink_tensor_set_add(r->set, r->err);
	if (!t) {
		free(owned);
		return SHRINK_EIO;
	}
	snprintf(t->name, sizeof t->name, "%s", s->hf);
	t->n_dims = s->n_dims;
	memcpy(t->shape, s->shape, sizeof s->shape);
	t->dtype = borrow ? src->dtype : SHRINK_F32;
	t->data = borrow ? src->data : owned;
	t->n_bytes = borrow ? src->n_bytes : (size_t)shrink_tensor_numel(src) * sizeof(float);
	t->owned = owned;
	return SHRINK_OK;
}

static void spec(tensor_spec *s, const char *gguf, const char *hf, int64_t rows, int64_t cols, int rope_heads)
{
	snprintf(s->gguf, sizeof s->gguf, "%s", gguf);
	snprintf(s->hf, sizeof s->hf, "%s", hf);
	s->n_dims = cols ? 2 : 1;
	s->shape[0] = rows;
	s->shape[1] = cols;
	s->rope_heads = rope_heads;
}

static shrink_status add_layer(reader *r, int l, int permuted)
{
	const shrink_layer_config *lc = &r->c->layers[l];
	const int64_t dim = r->c->dim, q_dim = (int64_t)lc->n_heads * r->c->head_dim,
		      kv_dim = (int64_t)lc->n_kv_heads * r->c->head_dim, ffn = lc->ffn_dim;
	const int q_rope = permuted ? lc->n_heads : 0, k_rope = permuted ? lc->n_kv_heads : 0;
	const struct {
		const char *gguf, *hf;
		int64_t rows, cols;
		int rope_heads, bias;
	} parts[] = {
	    {"attn_norm.weight", "input_layernorm.weight", dim, 0, 0, 0},
	    {"attn_q.weight", "self_attn.q_proj.weight", q_dim, dim, q_rope, 0},
	    {"attn_k.weight", "self_attn.k_proj.weight", kv_dim, dim, k_rope, 0},
	    {"attn_v.weight", "self_attn.v_proj.weight", kv_dim, dim, 0, 0},
	    {"attn_q.bias", "self_attn.q_proj.bias", q_dim, 0, q_rope, 1},
	    {"attn_k.bias", "self_attn.k_proj.bias", kv_dim, 0, k_rope, 1},
	    {"attn_v.bias", "self_attn.v_proj.bias", kv_dim, 0, 0, 1},
	    {"attn_output.weight", "self_attn.o_proj.weight", dim, q_dim, 0, 0},
	    {"ffn_norm.weight", "post_attention_layernorm.weight", dim, 0, 0, 0},
	    {"ffn_gate.weight", "mlp.gate_proj.weight", ffn, dim, 0, 0},
	    {"ffn_up.weight", "mlp.up_proj.weight", ffn, dim, 0, 0},
	    {"ffn_down.weight", "mlp.down_proj.weight", dim, ffn, 0, 0},
	};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		if (parts[i].bias && !r->c->qkv_bias)
			continue;
		char gguf[SHRINK_NAME_MAX], hf[SHRINK_NAME_MAX];
		tensor_spec s;
		snprintf(gguf, sizeof gguf, "blk.%d.%s", l, parts[i].gguf);
		snprintf(hf, sizeof hf, "model.layers.%d.%s", l, parts[i].hf);
		spec(&s, gguf, hf, parts[i].rows, parts[i].cols, parts[i].rope_heads);
		shrink_status st = add_tensor(r, &s);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static shrink_status add_all(reader *r)
{
	const shrink_config *c = r->c;
	const int permuted = strcmp(c->arch, "qwen2") != 0;
	tensor_spec s;
	spec(&s, "token_embd.weight", "model.embed_tokens.weight", c->vocab_size, c->dim, 0);
	shrink_status st = add_tensor(r, &s);
	for (int l = 0; !st && l < c->n_layers; l++)
		st = add_layer(r, l, permuted);
	if (st)
		return st;
	spec(&s, "output_norm.weight", "model.norm.weight", c->dim, 0, 0);
	if ((st = add_tensor(r, &s)) || c->tied_embeddings)
		return st;
	spec(&s, "output.weight", "lm_head.weight", c->vocab_size, c->dim, 0);
	return add_tensor(r, &s);
}

/* ---- entry point ---- */

static shrink_status check_arch(const shrink_gguf *g, const char *path, const char **arch, shrink_error *err)
{
	*arch = shrink_gguf_get_str(g, "general.architecture");
	if (!*arch)
		return shrink_fail(err, SHRINK_EINPUT, "%s: metadata 'general.architecture' is missing", path);
	if (strcmp(*arch, "llama") != 0 && strcmp(*arch, "mistral") != 0 && strcmp(*arch, "qwen2") != 0)
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: architecture '%s' is not supported (llama, mistral and qwen2 are)", path,
				   *arch);
	return SHRINK_OK;
}

static shrink_status read_tokenizer(const shrink_gguf *g, shrink_vocab_spec *v, shrink_error *err)
{
	v->kind = SHRINK_VOCAB_NONE;
	if (!shrink_gguf_find(g, "tokenizer.ggml.model"))
		return SHRINK_OK;
	shrink_status st = shrink_vocab_from_gguf(g, v, err);
	if (st && err && !strstr(err->msg, g->path))
		shrink_fail_prefix(err, "%s: ", g->path);
	return st;
}

static shrink_status read_all(shrink_gguf *g, const char *path, shrink_model_file *mf, shrink_error *err)
{
	reader r = {.g = g, .path = path, .c = &mf->config, .set = &mf->weights, .err = err};
	shrink_status st = check_arch(g, path, &r.arch, err);
	if (!st)
		st = read_config(&r);
	if (!st)
		st = shrink_config_validate(&mf->config, path, err);
	if (st)
		return st;
	/* tensors borrow from the mapping from here on: hand it to the set */
	st = shrink_tensor_set_keep_mapping(&mf->weights, g->map, err);
	memset(&g->map, 0, sizeof g->map);
	if (!st)
		st = add_all(&r);
	if (!st)
		st = read_tokenizer(g, &mf->vocab, err);
	return st;
}

static shrink_status read_model(const void *data, size_t n, const char *path, shrink_model_file *mf,
				shrink_error *err)
{
	memset(mf, 0, sizeof *mf);
	mf->format = SHRINK_FMT_GGUF;
	shrink_gguf g;
	shrink_status st = data ? shrink_gguf_open_memory(data, n, path, &g, err) : shrink_gguf_open(path, &g, err);
	if (st)
		return st;
	st = read_all(&g, path, mf, err);
	shrink_gguf_close(&g);
	if (st)
		shrink_model_file_close(mf);
	return st;
}

shrink_status shrink_read_gguf_model(const char *path, shrink_model_file *mf, shrink_error *err)
{
	return read_model(NULL, 0, path, mf, err);
}

shrink_status shrink_read_gguf_model_memory(const void *data, size_t n, const char *name, shrink_model_file *mf,
					    shrink_error *err)
{
	return data ? read_model(data, n, name, mf, err) : shrink_fail(err, SHRINK_EINPUT, "%s: no data", name);
}
