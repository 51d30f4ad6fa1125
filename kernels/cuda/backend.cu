// backend.cu: what the model's GPU backend (lib/model/forward_cuda.c) needs
// beyond the op set: device memory and copies, dtype conversion of uploaded
// weights, and the ops that touch the float32 residual stream. The backend
// keeps the residual stream in float32 (as the CPU path does) so that a deep
// model does not accumulate f16 rounding in it; the linear layers, RoPE,
// attention and SwiGLU run in f16.
#include <stdlib.h>

#include "pdl.cuh"
#include "qkernels.cuh"

namespace {

template <typename S> __device__ __forceinline__ float load_f(const S *p, int64_t i);
template <> __device__ __forceinline__ float load_f<float>(const float *p, int64_t i)
{
	return p[i];
}
template <> __device__ __forceinline__ float load_f<__half>(const __half *p, int64_t i)
{
	return __half2float(p[i]);
}
template <> __device__ __forceinline__ float load_f<__nv_bfloat16>(const __nv_bfloat16 *p, int64_t i)
{
	return __bfloat162float(p[i]);
}

template <typename S, typename D> __global__ void convert_kernel(const S *src, int64_t n, D *dst)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
		const float v = load_f<S>(src, i);
		if constexpr (std::is_same<D, float>::value)
			dst[i] = v;
		else
			dst[i] = __float2half_rn(v);
	}
}

// v = x[t] + y[t] + y2[t] (each when given, added in that order), written back to x[t] when keep;
// then out[t] = v * (1 / sqrt(mean(v^2) + eps)) * w, rounded once to f16 (the CPU op's order).
// One CTA per row, four elements per thread and step where dim allows (a decode row of 4096 is
// one step of 1024 threads: the op is latency-bound, so wide). Each thread reads and writes the
// same elements in both passes, so out may alias y or y2.
__device__ __forceinline__ void add_half4(float4 &v, const __half *y, int64_t i)
{
	const uint2 h = reinterpret_cast<const uint2 *>(y)[i];
	const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&h.x));
	const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&h.y));
	v.x += a.x, v.y += a.y, v.z += b.x, v.w += b.y;
}

__global__ void add_rmsnorm_kernel(float *x, const __half *y, const __half *y2, bool keep, const __half *w,
				   int64_t dim, float eps, __half *out)
{
	launch_dependents(); // the GEMV after may start asking for its weights (pdl.cuh)
	__shared__ float scratch[32];
	float *row = x + blockIdx.x * dim;
	const __half *yr = y ? y + blockIdx.x * dim : NULL;
	const __half *y2r = y2 ? y2 + blockIdx.x * dim : NULL;
	const bool write = keep && (yr || y2r);
	__half *dst = out + blockIdx.x * dim;
	float ss = 0.0f;
	if ((dim & 3) == 0) {
		float4 *r4 = reinterpret_cast<float4 *>(row);
		auto sum = [&](int64_t i) {
			float4 v = r4[i];
			if (yr)
				add_half4(v, yr, i);
			if (y2r)
				add_half4(v, y2r, i);
			return v;
		};
		for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
			const float4 v = sum(i);
			if (write)
				r4[i] = v;
			ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
		}
		ss = block_sum(ss, scratch);
		const float scale = rms_scale(ss, dim, eps);
		for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
			const float4 v = write || !(yr || y2r) ? r4[i] : sum(i);
			const uint2 wh = reinterpret_cast<const uint2 *>(w)[i];
			const float2 wa = __half22float2(*reinterpret_cast<const __half2 *>(&wh.x));
			const float2 wb = __half22float2(*reinterpret_cast<const __half2 *>(&wh.y));
			__half2 lo = __floats2half2_rn(v.x * scale * wa.x, v.y * scale * wa.y);
			__half2 hi = __floats2half2_rn(v.z * scale * wb.x, v.w * scale * wb.y);
			uint2 o;
			o.x = *reinterpret_cast<uint32_t *>(&lo), o.y = *reinterpret_cast<uint32_t *>(&hi);
			reinterpret_cast<uint2 *>(dst)[i] = o;
		}
		return;
	}
	auto sum1 = [&](int64_t i) {
		float v = row[i];
		if (yr)
			v += __half2float(yr[i]);
		if (y2r)
			v += __half2float(y2r[i]);
		return v;
	};
	for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
		const float v = sum1(i);
		if (write)
			row[i] = v;
		ss += v * v;
	}
	ss = block_sum(ss, scratch);
	const float scale = rms_scale(ss, dim, eps);
	for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
		const float v = write || !(yr || y2r) ? row[i] : sum1(i);
		dst[i] = __float2half_rn(v * scale * __half2float(w[i]));
	}
}

__global__ void add_f32_kernel(float *x, const __half *y, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
		x[i] += __half2float(y[i]);
}

__global__ void bias_kernel(__half *y, const __half *b, int64_t n_tok, int64_t rows)
{
	const int64_t n = n_tok * rows;
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
		y[i] = __float2half_rn(__half2float(y[i]) + __half2float(b[i % rows]));
}

unsigned grid_of(int64_t n)
{
	int64_t b = (n + 255) / 256;
	return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}

} // namespace

extern "C" shrink_status shrink_cuda_alloc(shrink_cuda_ctx *ctx, size_t n_bytes, void **out)
{
	*out = NULL;
	return shrink_cuda_check(ctx, cudaMalloc(out, n_bytes ? n_bytes : 1), "cudaMalloc");
}

extern "C" void shrink_cuda_release(void *p)
{
	if (p)
		cudaFree(p);
}

extern "C" shrink_status shrink_cuda_host_alloc(shrink_cuda_ctx *ctx, size_t n_bytes, void **out)
{
	*out = NULL;
	return shrink_cuda_check(ctx, cudaHostAlloc(out, n_bytes ? n_bytes : 1, cudaHostAllocDefault), "cudaHostAlloc");
}

extern "C" void shrink_cuda_host_release(void *p)
{
	if (p)
		cudaFreeHost(p);
}

extern "C" shrink_status shrink_cuda_upload(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes)
{
	shrink_status st = shrink_cuda_check(
		ctx, cudaMemcpyAsync(dst, src, n_bytes, cudaMemcpyHostToDevice, ctx->stream), "upload");
	return st ? st : shrink_cuda_check(ctx, cudaStreamSynchronize(ctx->stream), "upload");
}

extern "C" shrink_status shrink_cuda_download(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes)
{
	shrink_status st = shrink_cuda_check(
		ctx, cudaMemcpyAsync(dst, src, n_bytes, cudaMemcpyDeviceToHost, ctx->stream), "download");
	return st ? st : shrink_cuda_check(ctx, cudaStreamSynchronize(ctx->stream), "download");
}

struct shrink_cuda_graph {
	cudaGraphExec_t exec;
};

extern "C" shrink_status shrink_cuda_capture_begin(shrink_cuda_ctx *ctx)
{
	// relaxed: kernels configure their shared memory (cudaFuncSetAttribute) on first use
	return shrink_cuda_check(ctx, cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeRelaxed),
				 "begin capture");
}

extern "C" shrink_status shrink_cuda_capture_end(shrink_cuda_ctx *ctx, shrink_cuda_graph **out)
{
	cudaGraph_t graph = NULL;
	shrink_status st = shrink_cuda_check(ctx, cudaStreamEndCapture(ctx->stream, &graph), "end capture");
	if (!out) {
		if (graph)
			cudaGraphDestroy(graph);
		cudaGetLastError(); // a failed capture leaves its error behind
		return st;
	}
	*out = NULL;
	shrink_cuda_graph *g = static_cast<shrink_cuda_graph *>(calloc(1, sizeof *g));
	if (st == SHRINK_OK && !g)
		st = shrink_cuda_fail(ctx, SHRINK_EIO, "end capture: out of memory");
	if (st == SHRINK_OK)
		st = shrink_cuda_check(ctx, cudaGraphInstantiate(&g->exec, graph, 0), "instantiate graph");
	if (graph)
		cudaGraphDestroy(graph);
	if (st != SHRINK_OK) {
		free(g);
		return st;
	}
	*out = g;
	return SHRINK_OK;
}

extern "C" shrink_status shrink_cuda_graph_launch(shrink_cuda_ctx *ctx, shrink_cuda_graph *g)
{
	return shrink_cuda_check(ctx, cudaGraphLaunch(g->exec, ctx->stream), "graph launch");
}

extern "C" void shrink_cuda_graph_free(shrink_cuda_graph *g)
{
	if (!g)
		return;
	cudaGraphExecDestroy(g->exec);
	free(g);
}

extern "C" shrink_status shrink_cuda_upload_async(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes)
{
	return shrink_cuda_check(ctx, cudaMemcpyAsync(dst, src, n_bytes, cudaMemcpyHostToDevice, ctx->stream),
				 "upload");
}

extern "C" shrink_status shrink_cuda_sync(shrink_cuda_ctx *ctx)
{
	return shrink_cuda_check(ctx, cudaStreamSynchronize(ctx->stream), "synchronize");
}

extern "C" shrink_status shrink_cuda_convert(shrink_cuda_ctx *ctx, shrink_cuda_dtype src_dt, const void *src,
					     int64_t n, shrink_cuda_dtype dst_dt, void *dst)
{
	if (n < 0 || (dst_dt != SHRINK_CUDA_F16 && dst_dt != SHRINK_CUDA_F32))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "convert: bad arguments");
	if (n == 0)
		return SHRINK_OK;
	const unsigned g = grid_of(n);
	cudaStream_t s = ctx->stream;
#define CONVERT_TO(D)                                                                                                  \
	do {                                                                                                           \
		if (src_dt == SHRINK_CUDA_F32)                                                                         \
			convert_kernel<float, D><<<g, 256, 0, s>>>(static_cast<const float *>(src), n, static_cast<D *>(dst)); \
		else if (src_dt == SHRINK_CUDA_F16)                                                                    \
			convert_kernel<__half, D><<<g, 256, 0, s>>>(static_cast<const __half *>(src), n,              \
								    static_cast<D *>(dst));                            \
		else                                                                                                   \
			convert_kernel<__nv_bfloat16, D><<<g, 256, 0, s>>>(static_cast<const __nv_bfloat16 *>(src), n, \
									   static_cast<D *>(dst));                     \
	} while (0)
	if (dst_dt == SHRINK_CUDA_F16)
		CONVERT_TO(__half);
	else
		CONVERT_TO(float);
#undef CONVERT_TO
	return shrink_cuda_launched(ctx, "convert");
}

shrink_status add_rmsnorm_launch(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, const uint16_t *y2, bool keep,
				 const uint16_t *weight, int64_t n_tok, int64_t dim, float eps, uint16_t *out)
{
	if (n_tok < 0 || n_tok > INT32_MAX || dim < 1)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "add_rmsnorm_f32: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	const int64_t per_step = (dim & 3) == 0 ? dim / 4 : dim;
	const int threads = per_step >= 1024 ? 1024 : (int)((per_step + 31) / 32 * 32);
	add_rmsnorm_kernel<<<(unsigned)n_tok, threads, 0, ctx->stream>>>(
		x, reinterpret_cast<const __half *>(y), reinterpret_cast<const __half *>(y2), keep,
		reinterpret_cast<const __half *>(weight), dim, eps, reinterpret_cast<__half *>(out));
	return shrink_cuda_launched(ctx, "add_rmsnorm_f32");
}

extern "C" shrink_status shrink_cuda_add_rmsnorm_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y,
						     const uint16_t *weight, int64_t n_tok, int64_t dim, float eps,
						     uint16_t *out)
{
	return add_rmsnorm_launch(ctx, x, y, NULL, true, weight, n_tok, dim, eps, out);
}

extern "C" shrink_status shrink_cuda_add2_rmsnorm_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y,
						      const uint16_t *y2, const uint16_t *weight, int64_t n_tok,
						      int64_t dim, float eps, uint16_t *out)
{
	return add_rmsnorm_launch(ctx, x, y, y2, true, weight, n_tok, dim, eps, out);
}

extern "C" shrink_status shrink_cuda_add_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, int64_t n)
{
	if (n < 0)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "add_f32: bad arguments");
	if (n == 0)
		return SHRINK_OK;
	add_f32_kernel<<<grid_of(n), 256, 0, ctx->stream>>>(x, reinterpret_cast<const __half *>(y), n);
	return shrink_cuda_launched(ctx, "add_f32");
}

extern "C" shrink_status shrink_cuda_bias(shrink_cuda_ctx *ctx, uint16_t *y, const uint16_t *b, int64_t n_tok,
					  int64_t rows)
{
	if (n_tok < 0 || rows < 1)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "bias: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	bias_kernel<<<grid_of(n_tok * rows), 256, 0, ctx->stream>>>(reinterpret_cast<__half *>(y),
								     reinterpret_cast<const __half *>(b), n_tok, rows);
	return shrink_cuda_launched(ctx, "bias");
}

extern "C" shrink_status shrink_cuda_linear_dense_f32(shrink_cuda_ctx *ctx, const uint16_t *w, int64_t rows,
						      int64_t cols, const uint16_t *x, int64_t n_tok, float *y)
{
	if (rows < 1 || cols < 1 || n_tok < 0 || rows > INT32_MAX || cols > INT32_MAX || n_tok > INT32_MAX)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "linear_dense_f32: bad shape");
	if (n_tok == 0)
		return SHRINK_OK;
	const float alpha = 1.0f, beta = 0.0f;
	cublasStatus_t s = cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n_tok, (int)cols, &alpha,
					w, CUDA_R_16F, (int)cols, x, CUDA_R_16F, (int)cols, &beta, y, CUDA_R_32F,
					(int)rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (s != CUBLAS_STATUS_SUCCESS)
		return shrink_cuda_fail(ctx, SHRINK_EIO, "cublasGemmEx (f32 out) failed (status %d)", (int)s);
	return SHRINK_OK;
}
