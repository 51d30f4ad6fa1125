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
// The kernel reads rows of 8 channels through a cache type: flat_cache (the
// f16 cache) or packed_cache (lib/kv's compressed chunk records, decoded in
// registers as kv_decode.c does on the CPU, plus a ring of recent f16 rows).
#include "common.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kChunk = 128;

// 8 f16 values at p (16-byte aligned) as floats
__device__ __forceinline__ void load8(const __half *p, float f[8])
{
	uint4 raw = *reinterpret_cast<const uint4 *>(p);
	const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw);
#pragma unroll
	for (int e = 0; e < 4; e++) {
		float2 v = __half22float2(h2[e]);
		f[2 * e] = v.x, f[2 * e + 1] = v.y;
	}
}

struct flat_cache {
	const __half *kc, *vc;
	int64_t stride; // n_kv * head_dim
	int hd;
	__device__ void k8(int64_t key, int kh, int c, float f[8]) const { load8(kc + key * stride + kh * hd + 8 * c, f); }
	__device__ void v8(int64_t key, int kh, int c, float f[8]) const { load8(vc + key * stride + kh * hd + 8 * c, f); }
};

// code j of a row packed as bit planes (lib/kv/kv_impl.h)
__device__ __forceinline__ int kv_code(const uint8_t *row, int d, int bits, int j)
{
	if (bits == 8)
		return row[j];
	if (bits == 4)
		return j < d / 2 ? row[j] & 15 : row[j - d / 2] >> 4;
	const int q = d / 4, e = d / 8;
	int c = (row[j % q] >> (2 * (j / q))) & 3;
	if (bits == 3)
		c |= ((row[q + j % e] >> (j / e)) & 1) << 2;
	return c;
}

// codes j0..j0+7 (j0 a multiple of 8) of a row: from whole bytes when each bit plane holds whole
// blocks of 8 codes (head_dim a multiple of 16 for 4 bits, 32 for 2, 64 for 3), else one by one
__device__ __forceinline__ void kv_codes8(const uint8_t *row, int d, int bits, int j0, int c[8])
{
	if (bits == 8) {
#pragma unroll
		for (int e = 0; e < 8; e++)
			c[e] = row[j0 + e];
		return;
	}
	if (bits == 4 && (d / 2) % 8 == 0) {
		const bool hi = j0 >= d / 2;
		const uint8_t *b = row + (hi ? j0 - d / 2 : j0);
#pragma unroll
		for (int e = 0; e < 8; e++)
			c[e] = hi ? b[e] >> 4 : b[e] & 15;
		return;
	}
	const int q = d / 4, E = d / 8;
	if (bits != 4 && q % 8 == 0 && (bits == 2 || E % 8 == 0)) {
		const uint8_t *b = row + j0 % q;
		const int k = 2 * (j0 / q);
#pragma unroll
		for (int e = 0; e < 8; e++)
			c[e] = (b[e] >> k) & 3;
		if (bits == 3) {
			const uint8_t *h = row + q + j0 % E;
			const int k2 = j0 / E;
#pragma unroll
			for (int e = 0; e < 8; e++)
				c[e] |= ((h[e] >> k2) & 1) << 2;
		}
		return;
	}
#pragma unroll
	for (int e = 0; e < 8; e++)
		c[e] = kv_code(row, d, bits, j0 + e);
}

// channels j0..j0+7 of row t of one record, as shrink_kv_chunk_decode computes them (the same
// operations in the same order per element: code * scale + min, then + u_k vt_k for k = 0, 1, ...)
__device__ void kv_decode8(const shrink_kv_layout &L, const uint8_t *rec, int rank, int t, int j0, float f[8])
{
	const __half *h = reinterpret_cast<const __half *>(rec);
	const __half *scale = h, *mn = h + L.off_min / 2, *u = h + L.off_u / 2 + t * rank, *vt = h + L.off_vt / 2;
	const int d = L.d;
	int c[8];
	kv_codes8(rec + L.off_codes + (size_t)t * L.row_bytes, d, L.bits, j0, c);
	if (L.keys) { // (scale, min) per channel for the row's group of tokens
		const int p = t / L.group * d + j0;
#pragma unroll
		for (int e = 0; e < 8; e++)
			f[e] = fmaf((float)c[e], __half2float(scale[p + e]), __half2float(mn[p + e]));
	} else if (L.group % 8 == 0) { // values: the 8 channels share one group
		const int p = t * L.n_groups + j0 / L.group;
		const float sc = __half2float(scale[p]), m = __half2float(mn[p]);
#pragma unroll
		for (int e = 0; e < 8; e++)
			f[e] = fmaf((float)c[e], sc, m);
	} else {
#pragma unroll
		for (int e = 0; e < 8; e++) {
			const int p = t * L.n_groups + (j0 + e) / L.group;
			f[e] = fmaf((float)c[e], __half2float(scale[p]), __half2float(mn[p]));
		}
	}
	for (int k = 0; k < rank; k++) {
		const float uk = __half2float(u[k]);
		const __half *v = vt + k * d + j0;
#pragma unroll
		for (int e = 0; e < 8; e++)
			f[e] = fmaf(uk, __half2float(v[e]), f[e]);
	}
	if (!L.n_side)
		return;
	// outliers: keys list the tokens of each channel, values the channels of each token
	const int per = 2 * L.n_side;
	const __half *oval = h + L.off_oval / 2;
	auto idx = [&](int o) {
		return L.idx8 ? (int)rec[L.off_oidx + o] : (int)reinterpret_cast<const uint16_t *>(rec + L.off_oidx)[o];
	};
	if (L.keys) {
#pragma unroll
		for (int e = 0; e < 8; e++)
			for (int o = (j0 + e) * per; o < (j0 + e + 1) * per; o++)
				if (idx(o) == t)
					f[e] = __half2float(oval[o]);
		return;
	}
	for (int o = t * per; o < (t + 1) * per; o++) {
		const int j = idx(o) - j0;
#pragma unroll
		for (int e = 0; e < 8; e++)
			if (j == e)
				f[e] = __half2float(oval[o]);
	}
}

struct packed_cache {
	shrink_cuda_kv_packed p;
	int64_t stride;
	int hd, n_kv;
	// 32-bit division (positions fit an int; the caller checks): 64-bit division is a long
	// instruction sequence, and this runs for every 8 channels read
	__device__ void row8(bool keys, int64_t key64, int kh, int c, float f[8]) const
	{
		const int key = (int)key64, T = (int)p.chunk, chunk = key / T;
		if (chunk >= p.n_chunks) {
			load8(reinterpret_cast<const __half *>(keys ? p.k_ring : p.v_ring) + (int64_t)(key - chunk * T) * stride +
				      kh * hd + 8 * c,
			      f);
			return;
		}
		const shrink_kv_layout &L = keys ? p.k : p.v;
		const uint8_t *rec = (keys ? p.rec_k : p.rec_v) + (size_t)(chunk * n_kv + kh) * L.rec_bytes;
		kv_decode8(L, rec, p.rank[chunk], key - chunk * T, 8 * c, f);
	}
	__device__ void k8(int64_t key, int kh, int c, float f[8]) const { row8(true, key, kh, c, f); }
	__device__ void v8(int64_t key, int kh, int c, float f[8]) const { row8(false, key, kh, c, f); }
};

struct attn_args {
	const void *q;
	void *out;
	float *ws; // splits > 1: [n_tok][n_heads][splits][head_dim + 2]
	int64_t n_tok, pos0;
	int n_heads, n_kv, head_dim, group, n_sub, splits, split_len;
	float scale;
};

template <typename T, int GM, typename C>
__global__ void __launch_bounds__(kThreads) attention_kernel(const attn_args a, const C cache)
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
				for (int c = 0; c < n_chunk8; c++) {
					float f[8];
					cache.k8(key, kh, c, f);
#pragma unroll
					for (int e = 0; e < 4; e++)
#pragma unroll
						for (int gi = 0; gi < GM; gi++)
							s[gi] += f[2 * e] * qs[gi * hd + 8 * c + 2 * e] +
								 f[2 * e + 1] * qs[gi * hd + 8 * c + 2 * e + 1];
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
				float v[8];
				cache.v8(c0 + j, kh, c8, v);
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

template <typename T, int GM, typename C> cudaError_t launch(const attn_args &a, const C &cache, cudaStream_t s)
{
	const size_t smem = ((size_t)GM * a.head_dim + GM * kChunk + 3 * GM +
			     (size_t)(kThreads / (a.head_dim / 8)) * GM * a.head_dim) *
			    sizeof(float);
	// for the largest head_dim
	const int max_smem = (GM * 256 + GM * kChunk + 3 * GM + 1024 * GM) * (int)sizeof(float);
	cudaError_t e = allow_smem<attention_kernel<T, GM, C>>(max_smem);
	if (e != cudaSuccess)
		return e;
	dim3 grid((unsigned)(a.n_kv * a.n_sub), (unsigned)a.n_tok, (unsigned)a.splits);
	attention_kernel<T, GM, C><<<grid, kThreads, smem, s>>>(a, cache);
	if ((e = cudaGetLastError()) != cudaSuccess || a.splits == 1)
		return e;
	merge_kernel<T><<<(unsigned)(a.n_tok * a.n_heads), 128, 0, s>>>(a);
	return cudaGetLastError();
}

template <typename T, typename C> cudaError_t launch_type(const attn_args &a, const C &cache, int gm, cudaStream_t s)
{
	return with_group_tile(gm, [&](auto tile) { return launch<T, decltype(tile)::value>(a, cache, s); });
}

// The arguments both caches share; false for bad arguments.
bool args_for(shrink_cuda_ctx *ctx, const void *q, int64_t n_tok, int64_t pos0, int n_heads, int n_kv_heads,
	      int head_dim, float scale, void *out, attn_args *a, int *gm)
{
	if (n_tok < 0 || n_tok > 65535 || pos0 < 0 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads ||
	    head_dim < 8 || head_dim > 256 || head_dim % 8 || !q || !out)
		return false;
	a->q = q;
	a->out = out;
	a->n_tok = n_tok, a->pos0 = pos0;
	a->n_heads = n_heads, a->n_kv = n_kv_heads, a->head_dim = head_dim;
	a->group = n_heads / n_kv_heads;
	*gm = group_tile(a->group);
	a->n_sub = (int)ceil_div64(a->group, *gm);
	a->scale = scale;
	// split the keys when the grid is too small for the GPU and the workspace allows it
	const int64_t n_keys = pos0 + n_tok;
	const int64_t ctas = (int64_t)n_kv_heads * a->n_sub * (n_tok ? n_tok : 1);
	int64_t splits = 1;
	if (ctas < 2 * ctx->n_sms) {
		splits = ceil_div64(2 * ctx->n_sms, ctas);
		const int64_t max_splits = ceil_div64(n_keys ? n_keys : 1, kChunk);
		if (splits > max_splits)
			splits = max_splits;
		if (splits > 64)
			splits = 64;
		while (splits > 1 && (size_t)n_tok * n_heads * splits * (head_dim + 2) * 4 > ctx->workspace_bytes)
			splits--;
	}
	a->split_len = (int)(ceil_div64(ceil_div64(n_keys, splits), kChunk) * kChunk);
	a->splits = a->split_len ? (int)ceil_div64(n_keys, a->split_len) : 1;
	a->ws = a->splits > 1 ? static_cast<float *>(ctx->workspace) : NULL;
	return true;
}

template <typename C>
shrink_status run(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const attn_args &a, const C &cache, int gm)
{
	if (a.n_tok == 0)
		return SHRINK_OK;
	cudaError_t e = dt == SHRINK_CUDA_F16 ? launch_type<__half>(a, cache, gm, ctx->stream)
					      : launch_type<__nv_bfloat16>(a, cache, gm, ctx->stream);
	return shrink_cuda_check(ctx, e, "attention");
}

// The record layout must describe chunks of this head_dim whose parts stay inside the record.
bool layout_ok(const shrink_kv_layout &L, int64_t chunk, int head_dim, bool keys)
{
	const bool bits_ok = L.bits == 2 || L.bits == 3 || L.bits == 4 || L.bits == 8;
	return L.keys == (int)keys && L.T == chunk && L.d == head_dim && bits_ok && L.group > 0 &&
	       (keys ? chunk % L.group == 0 : L.n_groups == (head_dim + L.group - 1) / L.group) &&
	       L.row_bytes == (size_t)head_dim * L.bits / 8 && L.off_codes + (size_t)chunk * L.row_bytes <= L.rec_bytes &&
	       L.n_side >= 0 && L.off_min % 2 == 0 && L.off_oval % 2 == 0 && L.off_oidx % 2 == 0 && L.off_u % 2 == 0 &&
	       L.off_vt % 2 == 0 && L.rec_bytes % 2 == 0;
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
	attn_args a;
	int gm;
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || !k_cache || !v_cache ||
	    !args_for(ctx, q, n_tok, pos0, n_heads, n_kv_heads, head_dim, scale, out, &a, &gm))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "attention: bad arguments");
	flat_cache c = {reinterpret_cast<const __half *>(k_cache), reinterpret_cast<const __half *>(v_cache),
			(int64_t)n_kv_heads * head_dim, head_dim};
	return run(ctx, dt, a, c, gm);
}

extern "C" shrink_status shrink_cuda_attention_packed(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q,
						      int64_t n_tok, int64_t pos0, int n_heads, int n_kv_heads,
						      int head_dim, const shrink_cuda_kv_packed *cache, float scale,
						      void *out)
{
	attn_args a;
	int gm;
	const int64_t n_keys = pos0 + n_tok;
	const bool ok = cache && cache->chunk > 0 && cache->n_chunks >= 0 && n_keys <= INT32_MAX &&
			layout_ok(cache->k, cache->chunk, head_dim, true) &&
			layout_ok(cache->v, cache->chunk, head_dim, false) &&
			// the ring holds the positions after the compressed chunks: fewer than a chunk
			n_keys - cache->n_chunks * cache->chunk <= cache->chunk && cache->k_ring && cache->v_ring &&
			(cache->n_chunks == 0 || (cache->rec_k && cache->rec_v && cache->rank));
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || !ok ||
	    !args_for(ctx, q, n_tok, pos0, n_heads, n_kv_heads, head_dim, scale, out, &a, &gm))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "attention (compressed KV cache): bad arguments");
	packed_cache c = {*cache, (int64_t)n_kv_heads * head_dim, head_dim, n_kv_heads};
	return run(ctx, dt, a, c, gm);
}
