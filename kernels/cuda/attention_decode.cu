// attention_decode.cu: one decode step of causal grouped-query attention with
// the position read from device memory, so that the whole decode step can be
// captured once into a CUDA graph and replayed for every token.
//
// One launch does what rope + KV store + attention + split merge did in four:
// q and the new k are rotated (RoPE, Hugging Face half-split, the same float
// arithmetic and roundings as shrink_cuda_rope), the new k and v go into the
// cache at pos, and the keys 0..pos are shared out evenly (whole chunks) over
// up to `splits` CTAs per head group (flash-decoding): the grid is fixed at
// about two CTAs per SM so that it does not depend on pos, and CTAs past the
// last key return at once. Each active CTA
// leaves (max, sum, unnormalised output) in the workspace; the last CTA of a
// KV head to arrive (counter in the context) merges the splits in split order
// (deterministic). A CTA of 256 threads serves one KV head and up to 8 query
// heads, over chunks of 32 keys: eight threads per key for the scores (the K
// row read once for every head of the group), one warp per head for the
// online softmax, (8-column slice, key lane) pairs for p * V. A thread loads
// its K and V parts of a chunk together, the first chunk's before the RoPE
// prologue, so a chunk costs one memory latency (it cost two, and the splits
// were 64 keys whatever the grid). At short context the kernel is latency:
// per layer of the 8B-shaped model at 256 keys (H100, Nsight Compute) 15.5 us
// before, 13.2 with the loads together and even splits, 12.3 with 256 threads
// (each thread's dependent chain of FMAs and shared loads was the rest).
//
// Deliberately not here: prefill (attention.cu), caches other than f16.
#include "common.cuh"
#include "pdl.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kKeys = 32;     // keys per chunk
constexpr int kTpk = kThreads / kKeys; // threads per key for the scores
// Registers per thread for a chunk's K and V parts: head_dim <= 256 is 32 slices of 8 columns, so
// 32 / kTpk K slices, and at least kThreads / 32 key lanes share the 32 keys' V slices.
constexpr int kMaxSlices = 32 / kTpk > kKeys * 32 / kThreads ? 32 / kTpk : kKeys * 32 / kThreads;
constexpr int kMaxSplits = 128;

struct dec_args {
	const void *q, *k, *v;
	const float *inv_freq;
	const int32_t *pos;
	__half *kc, *vc;
	void *out;
	float *ws_o;  // [n_heads][splits][head_dim]
	float *ws_ml; // [n_heads][splits][2]
	int *counters;
	int n_heads, n_kv, head_dim, group, n_sub, splits, capacity;
	float scale;
};

struct dec_smem {
	float *qs, *ss, *stat, *kv, *red, *wts;
};

// (key lane, 8-column slice) pairs for p * V: a key lane takes keys kl, kl + lanes, ... of a chunk.
__host__ __device__ constexpr int key_lanes(int hd)
{
	return kThreads / (hd / 8) < kKeys ? kThreads / (hd / 8) : kKeys;
}

template <int GM> __host__ __device__ size_t dec_smem_floats(int hd)
{
	return (size_t)GM * hd + GM * kKeys + 3 * GM + 2 * hd + (size_t)key_lanes(hd) * GM * hd +
	       (size_t)GM * kMaxSplits;
}

template <int GM> __device__ dec_smem dec_carve(float *sm, int hd)
{
	dec_smem s;
	s.qs = sm;                      // [GM][hd] rotated, scaled q
	s.ss = s.qs + GM * hd;          // [GM][kKeys] scores, then probabilities
	s.stat = s.ss + GM * kKeys;     // m[GM], l[GM], corr[GM]
	s.kv = s.stat + 3 * GM;         // the new key (rotated) and value, as the cache holds them
	s.red = s.kv + 2 * hd;          // [key lanes][GM][hd]
	s.wts = s.red + key_lanes(hd) * GM * hd; // [GM][kMaxSplits] merge weights
	return s;
}

// Rotate pair i of a head (x1 = x[i], x2 = x[i + half]) as rope_kernel does; results rounded to T.
template <typename T> __device__ __forceinline__ float2 rope_pair(const T *x, int i, int half, float c, float s)
{
	const float x1 = dtype_traits<T>::to_f(x[i]), x2 = dtype_traits<T>::to_f(x[i + half]);
	return make_float2(dtype_traits<T>::to_f(dtype_traits<T>::from_f(x1 * c - x2 * s)),
			   dtype_traits<T>::to_f(dtype_traits<T>::from_f(x2 * c + x1 * s)));
}

// Rotated q of the CTA's heads into smem (times scale); in the split that holds pos, the new
// key and value too (and, for the first head group of the KV head, into the cache).
template <typename T, int GM>
__device__ void dec_prologue(const dec_args &a, const dec_smem &s, int kh, int h0, int nh, int pos, bool has_pos,
			     bool store)
{
	const int hd = a.head_dim, half = hd / 2;
	const T *q = static_cast<const T *>(a.q);
	for (int i = threadIdx.x; i < half; i += kThreads) {
		float sn, cs;
		sincosf((float)pos * a.inv_freq[i], &sn, &cs);
		for (int gi = 0; gi < GM; gi++) {
			float2 r = make_float2(0.0f, 0.0f);
			if (gi < nh)
				r = rope_pair<T>(q + (size_t)(h0 + gi) * hd, i, half, cs, sn);
			s.qs[gi * hd + i] = r.x * a.scale;
			s.qs[gi * hd + i + half] = r.y * a.scale;
		}
		if (has_pos) {
			const float2 r = rope_pair<T>(static_cast<const T *>(a.k) + (size_t)kh * hd, i, half, cs, sn);
			const __half k1 = __float2half_rn(r.x), k2 = __float2half_rn(r.y);
			s.kv[i] = __half2float(k1), s.kv[i + half] = __half2float(k2);
			if (store) {
				__half *kc = a.kc + ((size_t)pos * a.n_kv + kh) * hd;
				kc[i] = k1, kc[i + half] = k2;
			}
		}
	}
	if (has_pos)
		for (int d = threadIdx.x; d < hd; d += kThreads) {
			const __half v = __float2half_rn(dtype_traits<T>::to_f(static_cast<const T *>(a.v)[(size_t)kh * hd + d]));
			s.kv[hd + d] = __half2float(v);
			if (store)
				a.vc[((size_t)pos * a.n_kv + kh) * hd + d] = v;
		}
	if (threadIdx.x < GM)
		s.stat[threadIdx.x] = -INFINITY, s.stat[GM + threadIdx.x] = 0.0f;
}

// 8 f16 of a cache row as float, or of the new key/value (in smem) for the key at pos.
__device__ __forceinline__ void dec_f8(const uint4 &raw, const float *fresh, bool is_new, float (&v)[8])
{
	if (is_new) {
#pragma unroll
		for (int e = 0; e < 8; e++)
			v[e] = fresh[e];
		return;
	}
	const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw);
#pragma unroll
	for (int e = 0; e < 4; e++) {
		const float2 f = __half22float2(h2[e]);
		v[2 * e] = f.x, v[2 * e + 1] = f.y;
	}
}

// A thread's parts of a chunk: K slices part, part + kTpk, ... of key c0 + tid / kTpk (scores) and
// the V slice tid % n8 of keys c0 + tid / n8 + i * key_lanes (p * V). The row at pos is being
// written by this launch and is taken from smem instead.
struct dec_rows {
	uint4 k[kMaxSlices], v[kMaxSlices];
};

__device__ __forceinline__ uint4 dec_ld(const __half *cache, const dec_args &a, int64_t key, int kh, int c8)
{
	return __ldg(reinterpret_cast<const uint4 *>(cache + ((size_t)key * a.n_kv + kh) * a.head_dim + 8 * c8));
}

__device__ void dec_load(const dec_args &a, int kh, int64_t c0, int64_t k_end, int pos, dec_rows &r)
{
	const int n8 = a.head_dim / 8, c8 = threadIdx.x % n8, kl = threadIdx.x / n8, lanes = key_lanes(a.head_dim);
	const int64_t key = c0 + threadIdx.x / kTpk;
	const bool key_ok = key < k_end && key != pos;
#pragma unroll
	for (int i = 0; i < kMaxSlices; i++) {
		const int c = threadIdx.x % kTpk + kTpk * i;
		r.k[i] = c < n8 && key_ok ? dec_ld(a.kc, a, key, kh, c) : make_uint4(0, 0, 0, 0);
		const int j = kl + lanes * i;
		const bool v_ok = kl < lanes && j < kKeys && c0 + j < k_end && c0 + j != pos;
		r.v[i] = v_ok ? dec_ld(a.vc, a, c0 + j, kh, c8) : make_uint4(0, 0, 0, 0);
	}
}

// Scores of keys c0..c0+31 for every head: kTpk threads per key, each a share of the 8-column slices.
template <int GM>
__device__ void dec_scores(const dec_args &a, const dec_smem &s, const dec_rows &r, int64_t c0, int64_t k_end,
			   int pos)
{
	const int hd = a.head_dim, n8 = hd / 8, j = threadIdx.x / kTpk, part = threadIdx.x % kTpk;
	const int64_t key = c0 + j;
	float acc[GM];
#pragma unroll
	for (int gi = 0; gi < GM; gi++)
		acc[gi] = 0.0f;
#pragma unroll
	for (int i = 0; i < kMaxSlices; i++) {
		const int c = part + kTpk * i;
		if (c < n8) {
			float v[8];
			dec_f8(r.k[i], s.kv + 8 * c, key == pos, v);
#pragma unroll
			for (int gi = 0; gi < GM; gi++)
#pragma unroll
				for (int e = 0; e < 8; e++)
					acc[gi] += v[e] * s.qs[gi * hd + 8 * c + e];
		}
	}
#pragma unroll
	for (int gi = 0; gi < GM; gi++) {
#pragma unroll
		for (int o = 1; o < kTpk; o <<= 1)
			acc[gi] += __shfl_xor_sync(0xffffffffu, acc[gi], o);
		if (part == 0)
			s.ss[gi * kKeys + j] = key < k_end ? acc[gi] : -INFINITY;
	}
}

// Online softmax over the chunk: one warp per head, one lane per key.
template <int GM> __device__ void dec_softmax(const dec_smem &s)
{
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	for (int gi = warp; gi < GM; gi += kThreads / 32) {
		const float x = s.ss[gi * kKeys + lane];
		const float m_old = s.stat[gi], m_new = fmaxf(m_old, warp_max(x));
		const float p = m_new == -INFINITY ? 0.0f : __expf(x - m_new);
		s.ss[gi * kKeys + lane] = p;
		const float sum = warp_sum(p);
		if (lane == 0) {
			const float corr = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
			s.stat[gi] = m_new;
			s.stat[GM + gi] = s.stat[GM + gi] * corr + sum;
			s.stat[2 * GM + gi] = corr;
		}
	}
}

// acc = acc * corr + sum_j p_j V_j over this thread's keys of the chunk and its 8 columns.
template <int GM>
__device__ void dec_pv(const dec_args &a, const dec_smem &s, const dec_rows &r, int64_t c0, int64_t k_end, int pos,
		       float (&acc)[GM][8])
{
	const int hd = a.head_dim, n8 = hd / 8, lanes = key_lanes(hd);
	const int c8 = threadIdx.x % n8, kl = threadIdx.x / n8;
	if (kl >= lanes)
		return;
#pragma unroll
	for (int gi = 0; gi < GM; gi++)
#pragma unroll
		for (int e = 0; e < 8; e++)
			acc[gi][e] *= s.stat[2 * GM + gi];
	const int n_here = (int)min((int64_t)kKeys, k_end - c0);
#pragma unroll
	for (int i = 0; i < kMaxSlices; i++) {
		const int j = kl + lanes * i;
		if (j < n_here) {
			float v[8];
			dec_f8(r.v[i], s.kv + hd + 8 * c8, c0 + j == pos, v);
#pragma unroll
			for (int gi = 0; gi < GM; gi++) {
				const float p = s.ss[gi * kKeys + j];
#pragma unroll
				for (int e = 0; e < 8; e++)
					acc[gi][e] += p * v[e];
			}
		}
	}
}

// The last CTA of a head group: out = sum_s w_s o_s / sum_s w_s l_s, w_s = exp(m_s - max m), in split order.
template <typename T, int GM> __device__ void dec_merge(const dec_args &a, const dec_smem &s, int h0, int nh, int n_active)
{
	const int hd = a.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	for (int gi = warp; gi < nh; gi += kThreads / 32) {
		const float *ml = a.ws_ml + (size_t)(h0 + gi) * a.splits * 2;
		float m = -INFINITY;
		for (int sp = lane; sp < n_active; sp += 32)
			m = fmaxf(m, __ldcg(ml + 2 * sp));
		m = warp_max(m);
		float l = 0.0f;
		for (int sp = lane; sp < n_active; sp += 32) {
			const float ms = __ldcg(ml + 2 * sp);
			const float w = ms == -INFINITY ? 0.0f : __expf(ms - m);
			s.wts[gi * kMaxSplits + sp] = w;
			l += w * __ldcg(ml + 2 * sp + 1);
		}
		l = warp_sum(l);
		for (int sp = lane; sp < n_active; sp += 32)
			s.wts[gi * kMaxSplits + sp] *= l > 0.0f ? 1.0f / l : 0.0f;
	}
	__syncthreads();
	for (int i = threadIdx.x; i < nh * hd; i += kThreads) {
		const int gi = i / hd, d = i % hd;
		const float *o = a.ws_o + (size_t)(h0 + gi) * a.splits * hd + d;
		float v = 0.0f;
		for (int sp = 0; sp < n_active; sp++)
			v += s.wts[gi * kMaxSplits + sp] * __ldcg(o + (size_t)sp * hd);
		static_cast<T *>(a.out)[(size_t)(h0 + gi) * hd + d] = dtype_traits<T>::from_f(v);
	}
}

template <typename T, int GM> __global__ void __launch_bounds__(kThreads) attention_decode_kernel(const dec_args a)
{
	launch_dependents(); // o_proj's GEMV may start asking for its weights (pdl.cuh)
	extern __shared__ float sm[];
	__shared__ int is_last;
	const int hd = a.head_dim, n8 = hd / 8;
	const dec_smem s = dec_carve<GM>(sm, hd);
	const int pos = *a.pos;
	if (pos < 0 || pos >= a.capacity) // never write outside the cache (the caller checks the position)
		return;
	// keys 0..pos in n_active splits of len keys (whole chunks)
	const int n_keys = pos + 1, n_chunks = (n_keys + kKeys - 1) / kKeys;
	const int per = (n_chunks + min(a.splits, n_chunks) - 1) / min(a.splits, n_chunks);
	const int len = per * kKeys, n_active = (n_keys + len - 1) / len, split = blockIdx.y;
	if (split >= n_active)
		return;
	const int kh = blockIdx.x / a.n_sub, sub = blockIdx.x % a.n_sub;
	const int h0 = kh * a.group + sub * GM, nh = min(GM, a.group - sub * GM);
	const int64_t k_begin = (int64_t)split * len, k_end = min((int64_t)n_keys, k_begin + len);
	const bool has_pos = split == n_active - 1;
	dec_rows r;
	dec_load(a, kh, k_begin, k_end, pos, r); // before the prologue: its latency overlaps the RoPE
	dec_prologue<T, GM>(a, s, kh, h0, nh, pos, has_pos, has_pos && sub == 0);
	float acc[GM][8];
#pragma unroll
	for (int gi = 0; gi < GM; gi++)
#pragma unroll
		for (int e = 0; e < 8; e++)
			acc[gi][e] = 0.0f;
	__syncthreads();
	for (int64_t c0 = k_begin; c0 < k_end; c0 += kKeys) {
		if (c0 != k_begin)
			dec_load(a, kh, c0, k_end, pos, r);
		dec_scores<GM>(a, s, r, c0, k_end, pos);
		__syncthreads();
		dec_softmax<GM>(s);
		__syncthreads();
		dec_pv<GM>(a, s, r, c0, k_end, pos, acc);
		__syncthreads();
	}
	// add the key lanes; this split's partial to the workspace
	const int lanes = key_lanes(hd), c8 = threadIdx.x % n8, kl = threadIdx.x / n8;
	if (kl < lanes)
#pragma unroll
		for (int gi = 0; gi < GM; gi++)
#pragma unroll
			for (int e = 0; e < 8; e++)
				s.red[(kl * GM + gi) * hd + 8 * c8 + e] = acc[gi][e];
	__syncthreads();
	for (int i = threadIdx.x; i < nh * hd; i += kThreads) {
		const int gi = i / hd, d = i % hd;
		float o = 0.0f;
		for (int l = 0; l < lanes; l++)
			o += s.red[(l * GM + gi) * hd + d];
		const size_t hs = (size_t)(h0 + gi) * a.splits + split;
		a.ws_o[hs * hd + d] = o;
		if (d == 0)
			a.ws_ml[2 * hs] = s.stat[gi], a.ws_ml[2 * hs + 1] = s.stat[GM + gi];
	}
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		is_last = atomicAdd(&a.counters[blockIdx.x], 1) == n_active - 1;
	__syncthreads();
	if (!is_last)
		return;
	dec_merge<T, GM>(a, s, h0, nh, n_active);
	if (threadIdx.x == 0)
		a.counters[blockIdx.x] = 0;
}

template <typename T, int GM> cudaError_t launch(const dec_args &a, cudaStream_t stream)
{
	const int max_smem = (int)(dec_smem_floats<GM>(256) * sizeof(float)); // for the largest head_dim
	const cudaError_t e = allow_smem<attention_decode_kernel<T, GM>>(max_smem);
	if (e != cudaSuccess)
		return e;
	dim3 grid((unsigned)(a.n_kv * a.n_sub), (unsigned)a.splits);
	attention_decode_kernel<T, GM>
		<<<grid, kThreads, dec_smem_floats<GM>(a.head_dim) * sizeof(float), stream>>>(a);
	return cudaGetLastError();
}

template <typename T> cudaError_t launch_type(const dec_args &a, int gm, cudaStream_t s)
{
	return with_group_tile(gm, [&](auto tile) { return launch<T, decltype(tile)::value>(a, s); });
}

// The most splits a head group can use: one chunk each, at most kMaxSplits.
int64_t max_splits(int64_t capacity)
{
	const int64_t n = ceil_div64(capacity, kKeys);
	return n < kMaxSplits ? n : kMaxSplits;
}

} // namespace

extern "C" size_t shrink_cuda_attention_decode_workspace(int n_heads, int head_dim, int64_t capacity)
{
	return (size_t)n_heads * max_splits(capacity) * (head_dim + 2) * sizeof(float);
}

extern "C" shrink_status shrink_cuda_attention_decode(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q,
						      const void *k, const void *v, int n_heads, int n_kv_heads,
						      int head_dim, const float *inv_freq, const int32_t *pos,
						      int64_t capacity, uint16_t *k_cache, uint16_t *v_cache,
						      float scale, void *out)
{
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || n_heads < 1 || n_kv_heads < 1 ||
	    n_heads % n_kv_heads || head_dim < 8 || head_dim > 256 || head_dim % 8 || capacity < 1 ||
	    capacity > INT32_MAX || !q || !k || !v || !inv_freq || !pos || !k_cache || !v_cache || !out)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "attention_decode: bad arguments");
	dec_args a;
	a.q = q, a.k = k, a.v = v, a.inv_freq = inv_freq, a.pos = pos;
	a.kc = reinterpret_cast<__half *>(k_cache), a.vc = reinterpret_cast<__half *>(v_cache);
	a.out = out;
	a.n_heads = n_heads, a.n_kv = n_kv_heads, a.head_dim = head_dim;
	a.group = n_heads / n_kv_heads;
	const int gm = group_tile(a.group);
	a.n_sub = (int)ceil_div64(a.group, gm);
	// about two CTAs per SM whatever the position (the grid is captured once)
	const int64_t fill = ceil_div64(2 * (int64_t)ctx->n_sms, (int64_t)n_kv_heads * a.n_sub);
	a.splits = (int)(fill < max_splits(capacity) ? fill : max_splits(capacity));
	a.scale = scale;
	a.capacity = (int)capacity;
	const size_t need = shrink_cuda_attention_decode_workspace(n_heads, head_dim, capacity);
	if (need > ctx->workspace_bytes || (int64_t)n_kv_heads * a.n_sub > kCtxCounters)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "attention_decode: workspace of %zu bytes, %zu needed",
					ctx->workspace_bytes, need);
	a.ws_o = static_cast<float *>(ctx->workspace);
	a.ws_ml = a.ws_o + (size_t)n_heads * a.splits * head_dim;
	a.counters = ctx->counters;
	cudaError_t e = dt == SHRINK_CUDA_F16 ? launch_type<__half>(a, gm, ctx->stream)
					      : launch_type<__nv_bfloat16>(a, gm, ctx->stream);
	return shrink_cuda_check(ctx, e, "attention_decode");
}
