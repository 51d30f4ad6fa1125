/* state_impl.h: the run state's layout (internal to lib/model). */
#ifndef SHRINK_MODEL_STATE_IMPL_H
#define SHRINK_MODEL_STATE_IMPL_H

#include "shrink/model.h"

#define ATTN_CHUNK 64

struct shrink_state {
	const shrink_model *m;
	shrink_kv *kv;
	int pos, max_tokens, max_batch;
	/* activations, [max_batch, width] each */
	float *x, *xb, *q, *k, *v, *att, *h1, *h3;
	float *lin_scratch; /* f16 -> f32 conversion blocks for GEMM */
	float *logits;	    /* [vocab]: shrink_forward_greedy's row on the CPU */
	float *inv_freq;    /* head_dim / 2 */
	float *attn_scratch; /* per thread: K and V chunks, scores, accumulators */
	size_t attn_scratch_per_thread;
	int n_threads;
	struct shrink_state_gpu *gpu; /* the GPU side when the model is on the GPU (forward_cuda.c) */
};

/* att[t, h*hd..] for tokens pos0..pos0+n_tok-1 of layer l (their K/V are stored already) */
void attention(const shrink_state *s, int layer, const float *q, int pos0, int n_tok, float *att);

#endif
