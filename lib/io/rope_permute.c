/* rope_permute.c: undo the row permutation that llama.cpp's converters (and
 * Meta's original checkpoints) apply to Q and K projections for interleaved
 * RoPE. Within each head of head_dim rows, GGUF row 2*i + s holds Hugging Face
 * row s*head_dim/2 + i (s = 0, 1; i < head_dim/2). This file only moves rows;
 * it does not know tensor names, dtypes or which architectures need it. */
#include <string.h>

#include "shrink/io.h"

void shrink_unpermute_rope_rows(const float *src, float *dst, int n_heads, int head_dim, int64_t cols)
{
	const int half = head_dim / 2;
	const size_t row_bytes = (size_t)cols * sizeof(float);
	for (int h = 0; h < n_heads; h++) {
		const float *in = src + (int64_t)h * head_dim * cols;
		float *out = dst + (int64_t)h * head_dim * cols;
		for (int i = 0; i < half; i++)
			for (int s = 0; s < 2; s++)
				memcpy(out + (int64_t)(s * half + i) * cols, in + (int64_t)(2 * i + s) * cols,
				       row_bytes);
	}
}
