// attention.cu: causal grouped-query attention over an f16 KV cache, for
// decode (one query token, many keys) and prefill (many query tokens).
//
// A CTA of 128 threads serves one query token and up to 8 query heads that
// share one KV head, over one split of the keys (flash-decoding: splits give
// a short decode enough CTAs; each split's (max, sum, unnormalised output)
// goes to the workspace and a second kernel merges them). Keys are walked in
// chunks of 128 with an online softmax: thread j scores key j of the chunk
// against every head of the group (the K row is read once for all of them),
// one warp per head rescales and exponentiates, then threads split into
// (8-column slice, key lane) pairs accumulate p * V in float registers.
// Scores and sums are float; q is pre-scaled by `scale`.
//
// Deliberately simple: no tensor cores, one query token per CTA, so prefill
// re-reads the cache once per query token (correct, and far from
// FlashAttention speed). The cache layout is [position][kv head][head_dim].
#include "common.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 128;

struct attn_args {
	const void *q;
	const __half *kc, *vc;
	void *out;
	float *ws; // splits > 1: [n_tok][n_heads][splits][head_dim + 2]
	int64_t n_tok, pos0;
	int n_heads, n_kv, head_dim, group, n_sub, splits, split_len;
	float scale;
};

template <typename T, int GM> __global__ void __launch_bounds__(kThreads) attention_kernel(const attn_args a)
{
	extern __shared__ float sm[];
	const int hd = a.head_dim, n_chunk8 = hd / 8;
	float *qs = sm;                  // [GM][hd]
	float *ss = qs + GM * hd;        // [GM][kChunk] scores, then probabilities
	float *stat = ss + GM * kChunk;  // m[GM], l[GM], corr[GM]
	float *red = stat + 3 * GM;      // [key lanes][GM][hd]

	const int kh = blockIdx.x / a.n_sub, sub = blockIdx.x % a.n_sub;
	const int64_t t = blockIdx.y;
	const int split = blockIdx.z;
	const int h0 = kh * a.group + sub * GM;
	const int n_heads_here = min(GM, a.group - sub * GM);
	const int64_t n_keys = a.pos0 + t + 1;
	const int64_t k_begin = (int64_t)split * a.split_len;
	const int64_t k_end = min(n_keys, k_begin + a.split_len);
	const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
	const int64_t kv_stride = (int64_t)a.n_kv * hd;

	const T *q = static_cast<const T *>(a.q) + (t * a.n_heads + h0) * hd;
	for (int i = tid; i < GM * hd; i += kThreads) {
		const int gi = i / hd;
		qs[i] = gi < n_heads_here ? dtype_traits<T>::to_f(q[i]) * a.scale : 0.0f;
	}
	if (tid < GM)
		stat[tid] = -INFINITY, stat[GM + tid] = 0.0f;
	const int key_lanes = kThreads / n_chunk8;
	const int c8 = tid % n_chunk8, kl = tid / n_chunk8;
	float acc[GM][8];
#pragma unroll
	for (int gi = 0; gi < GM; gi++)
#pragma unroll
		for (int e = 0; e < 8; e++)
			acc[gi][e] = 0.0f;
	__syncthreads();

	for (int64_t c0 = k_begin; c0 < k_end; c0 += kChunk) {
		// scores of key c0 + tid for every head of the group
		{
			const int64_t key = c0 + tid;
			float s[GM];
#pragma unroll
			for (int gi = 0; gi < GM; gi++)
				s[gi] = 0.0f;
			if (key < k_end) {
				const uint4 *kr = reinterpret_cast<const uint4 *>(a.kc + key * kv_stride + (int64_t)kh * hd);
				for (int c = 0; c < n_chunk8; c++) {
					uint4 raw = kr[c];
					const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw);
#pragma unroll
					for (int e = 0; e < 4; e++) {
						float2 f = __half22float2(h2[e]);
#pragma unroll
						for (int gi = 0; gi < GM; gi++)
							s[gi] += f.x * qs[gi * hd + 8 * c + 2 * e] +
								 f.y * qs[gi * hd + 8 * c + 2 * e + 1];
					}
				}
			}
#pragma unroll
			for (int gi = 0; gi < GM; gi++)
				ss[gi * kChunk + tid] = key < k_end ? s[gi] : -INFINITY;
		}
		__syncthreads();
		// online softmax statistics, one warp per head
		for (int gi = warp; gi < GM; gi += kThreads / 32) {
			float mx = -INFINITY;
			for (int j = lane; j < kChunk; j += 32)
				mx = fmaxf(mx, ss[gi * kChunk + j]);
			mx = warp_max(mx);
			const float m_old = stat[gi], m_new = fmaxf(m_old, mx);
			float sum = 0.0f;
			for (int j = lane; j < kChunk; j += 32) {
				const float p = m_new == -INFINITY ? 0.0f : __expf(ss[gi * kChunk + j] - m_new);
				ss[gi * kChunk + j] = p;
				sum += p;
			}
			sum = warp_sum(sum);
			if (lane == 0) {
				const float corr = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
				stat[gi] = m_new;
				stat[GM + gi] = stat[GM + gi] * corr + sum;
				stat[2 * GM + gi] = corr;
			}
		}
		__syncthreads();
		// acc = acc * corr + sum_j p_j V_j over this thread's keys and columns
		if (kl < key_lanes) {
#pragma unroll
			for (int gi = 0; gi < GM; gi++) {
				const float corr = stat[2 * GM + gi];
#pragma unroll
				for (int e = 0; e < 8; e++)
					acc[gi][e] *= corr;
			}
			const int64_t n_here = min((int64_t)kChunk, k_end - c0);
			for (int j = kl; j < n_here; j += key_lanes) {
				uint4 raw = *reinterpret_cast<const uint4 *>(a.vc + (c0 + j) * kv_stride + (int64_t)kh * hd +
									     8 * c8);
				const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw);
				float v[8];
#pragma unroll
				for (int e = 0; e < 4; e++) {
					float2 f = __half22float2(h2[e]);
					v[2 * e] = f.x, v[2 * e + 1] = f.y;
				}
#pragma unroll
				for (int gi = 0; gi < GM; gi++) {
					const float p = ss[gi * kChunk + j];
#pragma unroll
					for (int e = 0; e < 8; e++)
						acc[gi][e] += p * v[e];
				}
			}
		}
		__syncthreads();
	}

	// add the key lanes
	if (kl < key_lanes)
#pragma unroll
		for (int gi = 0; gi < GM; gi++)
#pragma unroll
			for (int e = 0; e < 8; e++)
				red[(kl * GM + gi) * hd + 8 * c8 + e] = acc[gi][e];
	__syncthreads();
	for (int i = tid; i < n_heads_here * hd; i += kThreads) {
		const int gi = i / hd, d = i % hd;
		float o = 0.0f;
		for (int l = 0; l < key_lanes; l++)
			o += red[(l * GM + gi) * hd + d];
		const int64_t h = h0 + gi;
		if (a.splits == 1) {
			const float l_sum = stat[GM + gi];
			T *out = static_cast<T *>(a.out) + (t * a.n_heads + h) * hd;
			out[d] = dtype_traits<T>::from_f(l_sum > 0.0f ? o / l_sum : 0.0f);
		} else {
			float *w = a.ws + ((t * a.n_heads + h) * a.splits + split) * (hd + 2);
			w[d] = o;
			if (d == 0)
				w[hd] = stat[gi], w[hd + 1] = stat[GM + gi];
		}
	}
}

template <typename T> __global__ void merge_kernel(const attn_args a)
{
	const int64_t th = blockIdx.x; // t * n_heads + h
	const int hd = a.head_dim;
	const float *w = a.ws + th * a.splits * (hd + 2);
	float m = -INFINITY;
	for (int s = 0; s < a.splits; s++)
		m = fmaxf(m, w[s * (hd + 2) + hd]);
	float l = 0.0f;
	for (int s = 0; s < a.splits; s++) {
		const float ms = w[s * (hd + 2) + hd];
		if (ms != -INFINITY)
			l += w[s * (hd + 2) + hd + 1] * __expf(ms - m);
	}
	T *out = static_cast<T *>(a.out) + th * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		float o = 0.0f;
		for (int s = 0; s < a.splits; s++) {
			const float ms = w[s * (hd + 2) + hd];
			if (ms != -INFINITY)
				o += w[s * (hd + 2) + d] * __expf(ms - m);
		}
		out[d] = dtype_traits<T>::from_f(l > 0.0f ? o / l : 0.0f);
	}
}

template <typename T, int GM> cudaError_t launch(const attn_args &a, cudaStream_t s)
{
	const size_t smem = ((size_t)GM * a.head_dim + GM * kChunk + 3 * GM +
			     (size_t)(kThreads / (a.head_dim / 8)) * GM * a.head_dim) *
			    sizeof(float);
	cudaError_t e;
	static bool configured; // once per kernel, for the largest head_dim
	if (!configured) {
		const int max_smem = (GM * 256 + GM * kChunk + 3 * GM + 1024 * GM) * (int)sizeof(float);
		e = cudaFuncSetAttribute(attention_kernel<T, GM>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem);
		if (e != cudaSuccess)
			return e;
		configured = true;
	}
	dim3 grid((unsigned)(a.n_kv * a.n_sub), (unsigned)a.n_tok, (unsigned)a.splits);
	attention_kernel<T, GM><<<grid, kThreads, smem, s>>>(a);
	if ((e = cudaGetLastError()) != cudaSuccess || a.splits == 1)
		return e;
	merge_kernel<T><<<(unsigned)(a.n_tok * a.n_heads), 128, 0, s>>>(a);
	return cudaGetLastError();
}

template <typename T> cudaError_t launch_type(const attn_args &a, int gm, cudaStream_t s)
{
	switch (gm) {
	case 1: return launch<T, 1>(a, s);
	case 2: return launch<T, 2>(a, s);
	case 4: return launch<T, 4>(a, s);
	default: return launch<T, 8>(a, s);
	}
}

} // namespace

extern "C" size_t shrink_cuda_attention_workspace(int64_t n_tok, int n_heads, int head_dim, int64_t n_keys)
{
	const int64_t max_splits = ceil_div64(n_keys, kChunk);
	return (size_t)n_tok * n_heads * (max_splits < 64 ? max_splits : 64) * (head_dim + 2) * sizeof(float);
}

extern "C" shrink_status shrink_cuda_attention(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q,
					       int64_t n_tok, int64_t pos0, int n_heads, int n_kv_heads, int head_dim,
					       const uint16_t *k_cache, const uint16_t *v_cache, float scale, void *out)
{
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || n_tok < 0 || n_tok > 65535 || pos0 < 0 ||
	    n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads || head_dim < 8 || head_dim > 256 || head_dim % 8 ||
	    !q || !k_cache || !v_cache || !out)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "attention: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	attn_args a;
	a.q = q;
	a.kc = reinterpret_cast<const __half *>(k_cache);
	a.vc = reinterpret_cast<const __half *>(v_cache);
	a.out = out;
	a.n_tok = n_tok, a.pos0 = pos0;
	a.n_heads = n_heads, a.n_kv = n_kv_heads, a.head_dim = head_dim;
	a.group = n_heads / n_kv_heads;
	const int gm = a.group <= 1 ? 1 : a.group <= 2 ? 2 : a.group <= 4 ? 4 : 8;
	a.n_sub = (int)ceil_div64(a.group, gm);
	a.scale = scale;
	// split the keys when the grid is too small for the GPU and the workspace allows it
	const int64_t n_keys = pos0 + n_tok;
	const int64_t ctas = (int64_t)n_kv_heads * a.n_sub * n_tok;
	int64_t splits = 1;
	if (ctas < 2 * ctx->n_sms) {
		splits = ceil_div64(2 * ctx->n_sms, ctas);
		const int64_t max_splits = ceil_div64(n_keys, kChunk);
		if (splits > max_splits)
			splits = max_splits;
		if (splits > 64)
			splits = 64;
		while (splits > 1 && (size_t)n_tok * n_heads * splits * (head_dim + 2) * 4 > ctx->workspace_bytes)
			splits--;
	}
	a.split_len = (int)(ceil_div64(ceil_div64(n_keys, splits), kChunk) * kChunk);
	a.splits = (int)ceil_div64(n_keys, a.split_len);
	a.ws = a.splits > 1 ? static_cast<float *>(ctx->workspace) : NULL;
	cudaError_t e = dt == SHRINK_CUDA_F16 ? launch_type<__half>(a, gm, ctx->stream)
					      : launch_type<__nv_bfloat16>(a, gm, ctx->stream);
	return shrink_cuda_check(ctx, e, "attention");
}
