// ops.cu: the element-wise and per-row operations of a Llama forward pass on
// the GPU: embedding, RMSNorm, RoPE (Hugging Face half-split), SwiGLU,
// residual add, argmax, and the KV-cache store. Simple, memory-bound kernels:
// one CTA per row where a row is reduced, a grid-stride loop otherwise; float
// arithmetic, one rounding to the output type.
// Deliberately not here: fusion of several ops (the backend may add it where
// a profile asks), attention (attention.cu), linear layers (qlinear.cu).
#include "common.cuh"

namespace {

template <typename T> __global__ void embed_kernel(const T *table, int64_t vocab, int64_t dim, const int32_t *ids, T *out)
{
	const int64_t t = blockIdx.x;
	const int32_t id = ids[t];
	T *dst = out + t * dim;
	if (id < 0 || id >= vocab) {
		for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
			dst[i] = dtype_traits<T>::from_f(0.0f);
		return;
	}
	const T *src = table + (int64_t)id * dim;
	if ((dim & 7) == 0) {
		const uint4 *s4 = reinterpret_cast<const uint4 *>(src);
		uint4 *d4 = reinterpret_cast<uint4 *>(dst);
		for (int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x)
			d4[i] = s4[i];
	} else {
		for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
			dst[i] = src[i];
	}
}

template <typename T>
__global__ void rmsnorm_kernel(const T *x, const T *weight, int64_t dim, float eps, T *out)
{
	__shared__ float scratch[32];
	const T *row = x + blockIdx.x * dim;
	T *dst = out + blockIdx.x * dim;
	float ss = 0.0f;
	for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
		const float v = dtype_traits<T>::to_f(row[i]);
		ss += v * v;
	}
	ss = block_sum(ss, scratch);
	const float inv = rms_scale(ss, dim, eps);
	for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
		const T normed = dtype_traits<T>::from_f(dtype_traits<T>::to_f(row[i]) * inv);
		dst[i] = dtype_traits<T>::from_f(dtype_traits<T>::to_f(weight[i]) * dtype_traits<T>::to_f(normed));
	}
}

// One thread per (token, head, pair i < head_dim / 2); heads [0, n_heads) are q, the rest k.
template <typename T>
__global__ void rope_kernel(T *q, T *k, int64_t n_tok, int n_heads, int n_kv_heads, int head_dim,
			    const float *inv_freq, int64_t pos0)
{
	const int half = head_dim / 2;
	const int heads = n_heads + (k ? n_kv_heads : 0);
	const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (id >= n_tok * heads * half)
		return;
	const int i = (int)(id % half);
	const int64_t th = id / half;
	const int h = (int)(th % heads);
	const int64_t t = th / heads;
	T *v = h < n_heads ? q + (t * n_heads + h) * head_dim : k + (t * n_kv_heads + (h - n_heads)) * head_dim;
	const float angle = (float)(pos0 + t) * inv_freq[i];
	float s, c;
	sincosf(angle, &s, &c);
	const float x1 = dtype_traits<T>::to_f(v[i]), x2 = dtype_traits<T>::to_f(v[i + half]);
	v[i] = dtype_traits<T>::from_f(x1 * c - x2 * s);
	v[i + half] = dtype_traits<T>::from_f(x2 * c + x1 * s);
}

template <typename T> __global__ void swiglu_kernel(const T *gate, const T *up, int64_t n, T *out)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
		const float g = dtype_traits<T>::to_f(gate[i]), u = dtype_traits<T>::to_f(up[i]);
		out[i] = dtype_traits<T>::from_f(silu_mul(g, u));
	}
}

template <typename T> __global__ void add_kernel(const T *a, const T *b, int64_t n, T *out)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
		out[i] = dtype_traits<T>::from_f(dtype_traits<T>::to_f(a[i]) + dtype_traits<T>::to_f(b[i]));
}

template <typename T> __device__ __forceinline__ float load_f(const T *p, int64_t i)
{
	return dtype_traits<T>::to_f(p[i]);
}
template <> __device__ __forceinline__ float load_f<float>(const float *p, int64_t i)
{
	return p[i];
}

// (value, index) max with the smaller index winning ties; NaN counts as -inf.
__device__ __forceinline__ void argmax_merge(float &v, int64_t &i, float v2, int64_t i2)
{
	if (v2 > v || (v2 == v && i2 < i))
		v = v2, i = i2;
}

template <typename T> __global__ void argmax_kernel(const T *logits, int64_t vocab, int32_t *out)
{
	__shared__ float sv[32];
	__shared__ int64_t si[32];
	const T *row = logits + blockIdx.x * vocab;
	float best = -INFINITY;
	int64_t idx = vocab; // "none yet": loses every tie against a real index
	constexpr int VEC = 16 / sizeof(T);
	int64_t done = 0;
	if (((uintptr_t)row & 15) == 0) {
		// 16-byte loads, four in flight per thread
		const int64_t n_vec = vocab / VEC;
		const uint4 *rv = reinterpret_cast<const uint4 *>(row);
#pragma unroll 4
		for (int64_t i = threadIdx.x; i < n_vec; i += blockDim.x) {
			uint4 raw = rv[i];
			const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
			for (int k = 0; k < VEC; k++) {
				float v = load_f<T>(e, k);
				if (v != v)
					v = -INFINITY;
				argmax_merge(best, idx, v, i * VEC + k);
			}
		}
		done = n_vec * VEC;
	}
	for (int64_t i = done + threadIdx.x; i < vocab; i += blockDim.x) {
		float v = load_f<T>(row, i);
		if (v != v)
			v = -INFINITY;
		argmax_merge(best, idx, v, i);
	}
	for (int o = 16; o > 0; o >>= 1) {
		const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
		const int64_t i2 = __shfl_xor_sync(0xffffffffu, idx, o);
		argmax_merge(best, idx, v2, i2);
	}
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	if (lane == 0)
		sv[warp] = best, si[warp] = idx;
	__syncthreads();
	if (warp == 0) {
		const int n_warps = blockDim.x >> 5;
		best = lane < n_warps ? sv[lane] : -INFINITY;
		idx = lane < n_warps ? si[lane] : vocab;
		for (int o = 16; o > 0; o >>= 1) {
			const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
			const int64_t i2 = __shfl_xor_sync(0xffffffffu, idx, o);
			argmax_merge(best, idx, v2, i2);
		}
		if (lane == 0)
			out[blockIdx.x] = (int32_t)(idx < vocab ? idx : 0);
	}
}

template <typename T>
__global__ void kv_store_kernel(const T *k, const T *v, int64_t n, __half *kc, __half *vc)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
		kc[i] = __float2half_rn(dtype_traits<T>::to_f(k[i]));
		vc[i] = __float2half_rn(dtype_traits<T>::to_f(v[i]));
	}
}

unsigned grid_for(int64_t n, int threads)
{
	int64_t b = (n + threads - 1) / threads;
	return (unsigned)(b < 65536 ? (b < 1 ? 1 : b) : 65536);
}

bool half_type(shrink_cuda_dtype dt)
{
	return dt == SHRINK_CUDA_F16 || dt == SHRINK_CUDA_BF16;
}

} // namespace

#define DISPATCH(dt, KERNEL_CALL)                                                                                      \
	do {                                                                                                           \
		if ((dt) == SHRINK_CUDA_F16) {                                                                         \
			typedef __half T;                                                                              \
			KERNEL_CALL;                                                                                   \
		} else {                                                                                               \
			typedef __nv_bfloat16 T;                                                                       \
			KERNEL_CALL;                                                                                   \
		}                                                                                                      \
	} while (0)

extern "C" shrink_status shrink_cuda_embed(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *table, int64_t vocab,
					   int64_t dim, const int32_t *ids, int64_t n_tok, void *out)
{
	if (!half_type(dt) || vocab < 1 || dim < 1 || n_tok < 0 || n_tok > INT32_MAX)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "embed: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	DISPATCH(dt, (embed_kernel<T><<<(unsigned)n_tok, 256, 0, ctx->stream>>>(static_cast<const T *>(table), vocab, dim,
										 ids, static_cast<T *>(out))));
	return shrink_cuda_launched(ctx, "embed");
}

extern "C" shrink_status shrink_cuda_rmsnorm(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *x,
					     const void *weight, int64_t n_tok, int64_t dim, float eps, void *out)
{
	if (!half_type(dt) || dim < 1 || n_tok < 0 || n_tok > INT32_MAX)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "rmsnorm: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	DISPATCH(dt, (rmsnorm_kernel<T><<<(unsigned)n_tok, 512, 0, ctx->stream>>>(
			     static_cast<const T *>(x), static_cast<const T *>(weight), dim, eps, static_cast<T *>(out))));
	return shrink_cuda_launched(ctx, "rmsnorm");
}

extern "C" shrink_status shrink_cuda_rope(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, void *q, void *k, int64_t n_tok,
					  int n_heads, int n_kv_heads, int head_dim, const float *inv_freq, int64_t pos0)
{
	if (!half_type(dt) || n_tok < 0 || n_heads < 1 || (k && n_kv_heads < 1) || head_dim < 2 || head_dim % 2 ||
	    pos0 < 0 || !inv_freq)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "rope: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	const int64_t n = n_tok * (n_heads + (k ? n_kv_heads : 0)) * (head_dim / 2);
	DISPATCH(dt, (rope_kernel<T><<<(unsigned)ceil_div64(n, 256), 256, 0, ctx->stream>>>(
			     static_cast<T *>(q), static_cast<T *>(k), n_tok, n_heads, n_kv_heads, head_dim, inv_freq,
			     pos0)));
	return shrink_cuda_launched(ctx, "rope");
}

extern "C" shrink_status shrink_cuda_swiglu(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *gate,
					    const void *up, int64_t n, void *out)
{
	if (!half_type(dt) || n < 0)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "swiglu: bad arguments");
	if (n == 0)
		return SHRINK_OK;
	DISPATCH(dt, (swiglu_kernel<T><<<grid_for(n, 256), 256, 0, ctx->stream>>>(
			     static_cast<const T *>(gate), static_cast<const T *>(up), n, static_cast<T *>(out))));
	return shrink_cuda_launched(ctx, "swiglu");
}

extern "C" shrink_status shrink_cuda_add(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *a, const void *b,
					 int64_t n, void *out)
{
	if (!half_type(dt) || n < 0)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "add: bad arguments");
	if (n == 0)
		return SHRINK_OK;
	DISPATCH(dt, (add_kernel<T><<<grid_for(n, 256), 256, 0, ctx->stream>>>(
			     static_cast<const T *>(a), static_cast<const T *>(b), n, static_cast<T *>(out))));
	return shrink_cuda_launched(ctx, "add");
}

extern "C" shrink_status shrink_cuda_argmax(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *logits,
					    int64_t n_tok, int64_t vocab, int32_t *out)
{
	if (n_tok < 0 || n_tok > INT32_MAX || vocab < 1 || vocab > INT32_MAX)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "argmax: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	const unsigned grid = (unsigned)n_tok;
	if (dt == SHRINK_CUDA_F32)
		argmax_kernel<float><<<grid, 1024, 0, ctx->stream>>>(static_cast<const float *>(logits), vocab, out);
	else
		DISPATCH(dt, (argmax_kernel<T><<<grid, 1024, 0, ctx->stream>>>(static_cast<const T *>(logits), vocab,
										    out)));
	return shrink_cuda_launched(ctx, "argmax");
}

extern "C" shrink_status shrink_cuda_kv_store(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *k,
					      const void *v, int64_t n_tok, int64_t kv_dim, uint16_t *k_cache,
					      uint16_t *v_cache, int64_t pos0)
{
	if (!half_type(dt) || n_tok < 0 || kv_dim < 1 || pos0 < 0)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "kv_store: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	const int64_t n = n_tok * kv_dim;
	__half *kc = reinterpret_cast<__half *>(k_cache) + pos0 * kv_dim;
	__half *vc = reinterpret_cast<__half *>(v_cache) + pos0 * kv_dim;
	if (dt == SHRINK_CUDA_F16) {
		shrink_status st = shrink_cuda_check(
			ctx, cudaMemcpyAsync(kc, k, n * 2, cudaMemcpyDeviceToDevice, ctx->stream), "kv_store");
		if (st == SHRINK_OK)
			st = shrink_cuda_check(
				ctx, cudaMemcpyAsync(vc, v, n * 2, cudaMemcpyDeviceToDevice, ctx->stream), "kv_store");
		return st;
	}
	kv_store_kernel<__nv_bfloat16><<<grid_for(n, 256), 256, 0, ctx->stream>>>(
		static_cast<const __nv_bfloat16 *>(k), static_cast<const __nv_bfloat16 *>(v), n, kc, vc);
	return shrink_cuda_launched(ctx, "kv_store");
}
