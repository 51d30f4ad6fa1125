/* config.c: per-layer defaults and the consistency check every reader runs on
 * the normalized model config. The bounds are sanity limits that keep later
 * size arithmetic far from overflow, not limits of any architecture.
 * It does not require head_dim * n_heads == dim (some models differ) and does
 * not look at tensors (shrink_check_weights does). */
#include <math.h>
#include <string.h>

#include "shrink/config.h"

#define MAX_DIM 65536
#define MAX_FFN (1 << 20)
#define MAX_HEADS 4096
#define MAX_VOCAB (4 << 20)
#define MAX_SEQ (1 << 24)

void shrink_config_set_uniform(shrink_config *c, int n_heads, int n_kv_heads, int ffn_dim)
{
	int n = c->n_layers < 0 ? 0 : c->n_layers > SHRINK_MAX_LAYERS ? SHRINK_MAX_LAYERS : c->n_layers;
	for (int i = 0; i < n; i++) {
		c->layers[i].n_heads = n_heads;
		c->layers[i].n_kv_heads = n_kv_heads;
		c->layers[i].ffn_dim = ffn_dim;
	}
}

static int in_range(long long v, long long lo, long long hi)
{
	return v >= lo && v <= hi;
}

static int positive(float x)
{
	return isfinite(x) && x > 0;
}

static shrink_status check_dims(const shrink_config *c, const char *what, shrink_error *err)
{
	if (!memchr(c->arch, '\0', sizeof c->arch) || !c->arch[0])
		return shrink_fail(err, SHRINK_EINPUT, "%s: model config has no architecture", what);
	if (!in_range(c->dim, 1, MAX_DIM))
		return shrink_fail(err, SHRINK_EINPUT, "%s: hidden size %d out of range (1..%d)", what, c->dim,
				   MAX_DIM);
	if (!in_range(c->n_layers, 1, SHRINK_MAX_LAYERS))
		return shrink_fail(err, SHRINK_EINPUT, "%s: %d layers (1..%d supported)", what, c->n_layers,
				   SHRINK_MAX_LAYERS);
	if (!in_range(c->head_dim, 1, MAX_DIM))
		return shrink_fail(err, SHRINK_EINPUT, "%s: head dimension %d out of range (1..%d)", what, c->head_dim,
				   MAX_DIM);
	if (!in_range(c->vocab_size, 1, MAX_VOCAB))
		return shrink_fail(err, SHRINK_EINPUT, "%s: vocabulary size %d out of range (1..%d)", what,
				   c->vocab_size, MAX_VOCAB);
	if (!in_range(c->max_seq, 1, MAX_SEQ))
		return shrink_fail(err, SHRINK_EINPUT, "%s: maximum sequence length %d out of range (1..%d)", what,
				   c->max_seq, MAX_SEQ);
	return SHRINK_OK;
}

static shrink_status check_layer(const shrink_config *c, int i, const char *what, shrink_error *err)
{
	const shrink_layer_config *l = &c->layers[i];
	if (!in_range(l->n_heads, 1, MAX_HEADS) || !in_range(l->n_kv_heads, 1, l->n_heads))
		return shrink_fail(err, SHRINK_EINPUT,
				   "%s: layer %d: %d heads and %d KV heads (need 1 <= KV <= heads <= %d)", what, i,
				   l->n_heads, l->n_kv_heads, MAX_HEADS);
	if (l->n_heads % l->n_kv_heads != 0)
		return shrink_fail(err, SHRINK_EINPUT, "%s: layer %d: %d heads not a multiple of %d KV heads", what, i,
				   l->n_heads, l->n_kv_heads);
	if ((long long)l->n_heads * c->head_dim > MAX_FFN)
		return shrink_fail(err, SHRINK_EINPUT, "%s: layer %d: %d heads of dimension %d are too wide", what, i,
				   l->n_heads, c->head_dim);
	if (!in_range(l->ffn_dim, 1, MAX_FFN))
		return shrink_fail(err, SHRINK_EINPUT, "%s: layer %d: feed-forward size %d out of range (1..%d)", what,
				   i, l->ffn_dim, MAX_FFN);
	return SHRINK_OK;
}

static shrink_status check_rope(const shrink_config *c, const char *what, shrink_error *err)
{
	if (!positive(c->rope_theta))
		return shrink_fail(err, SHRINK_EINPUT, "%s: rope_theta %g must be positive", what, c->rope_theta);
	switch (c->rope_scaling) {
	case SHRINK_ROPE_SCALING_NONE:
		return SHRINK_OK;
	case SHRINK_ROPE_SCALING_LINEAR:
		if (!positive(c->rope_factor))
			return shrink_fail(err, SHRINK_EINPUT, "%s: linear RoPE scaling factor %g must be positive",
					   what, c->rope_factor);
		return SHRINK_OK;
	case SHRINK_ROPE_SCALING_LLAMA3:
		if (!positive(c->rope_factor) || !positive(c->rope_low_freq_factor) ||
		    !positive(c->rope_high_freq_factor) || c->rope_high_freq_factor <= c->rope_low_freq_factor ||
		    c->rope_orig_max_pos < 1)
			return shrink_fail(
			    err, SHRINK_EINPUT,
			    "%s: llama3 RoPE scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor "
			    "and original_max_position_embeddings >= 1",
			    what);
		return SHRINK_OK;
	}
	return shrink_fail(err, SHRINK_EINPUT, "%s: unknown RoPE scaling %d", what, (int)c->rope_scaling);
}

shrink_status shrink_config_validate(const shrink_config *c, const char *what, shrink_error *err)
{
	shrink_status st = check_dims(c, what, err);
	for (int i = 0; !st && i < c->n_layers; i++)
		st = check_layer(c, i, what, err);
	if (st)
		return st;
	if (!positive(c->norm_eps) || c->norm_eps >= 1)
		return shrink_fail(err, SHRINK_EINPUT, "%s: RMS norm epsilon %g out of range (0, 1)", what,
				   c->norm_eps);
	if ((st = check_rope(c, what, err)))
		return st;
	if (!in_range(c->bos_id, -1, c->vocab_size - 1) || !in_range(c->eos_id, -1, c->vocab_size - 1))
		return shrink_fail(err, SHRINK_EINPUT, "%s: BOS/EOS token ids %d/%d outside the vocabulary (%d)", what,
				   c->bos_id, c->eos_id, c->vocab_size);
	return SHRINK_OK;
}
