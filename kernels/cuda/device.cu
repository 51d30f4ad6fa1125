// device.cu: CUDA device probing and the context every op runs in (device,
// stream, cuBLAS handle, SM count, the GEMM's CTAs in clusters of two,
// workspace, last failure message).
// Deliberately not here: any kernel, any policy about which device to use.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkernels.cuh"

namespace {
constexpr size_t kCublasWorkspace = (size_t)32 << 20;
}

extern "C" int shrink_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess)
		return 0;
	return n;
}

shrink_status shrink_cuda_fail(shrink_cuda_ctx *ctx, shrink_status code, const char *fmt, ...)
{
	if (ctx) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
		va_end(ap);
	}
	return code;
}

shrink_status shrink_cuda_check(shrink_cuda_ctx *ctx, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return SHRINK_OK;
	return shrink_cuda_fail(ctx, SHRINK_EIO, "%s: %s", what, cudaGetErrorString(e));
}

extern "C" shrink_status shrink_cuda_ctx_create(int device, shrink_cuda_stream stream, shrink_cuda_ctx **out)
{
	*out = NULL;
	shrink_cuda_ctx *ctx = static_cast<shrink_cuda_ctx *>(calloc(1, sizeof *ctx));
	if (!ctx)
		return SHRINK_EIO;
	ctx->device = device;
	cudaDeviceProp prop;
	void *cublas_ws = NULL;
	if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
		free(ctx);
		return SHRINK_EIO;
	}
	// The legacy default stream cannot be captured into a CUDA graph: without a stream, make one
	// (blocking, so it still orders with legacy-stream copies of the caller).
	if (!stream) {
		if (cudaStreamCreate(&stream) != cudaSuccess) {
			free(ctx);
			return SHRINK_EIO;
		}
		ctx->own_stream = true;
	}
	ctx->stream = stream;
	if (cudaMalloc(&ctx->counters, kCtxCounters * sizeof(int)) != cudaSuccess ||
	    cudaMemset(ctx->counters, 0, kCtxCounters * sizeof(int)) != cudaSuccess) {
		shrink_cuda_ctx_destroy(ctx);
		return SHRINK_EIO;
	}
	ctx->n_sms = prop.multiProcessorCount;
	ctx->gemm_pair_ctas = qgemm_cluster_ctas(2);
	if (cublasCreate(&ctx->cublas) != CUBLAS_STATUS_SUCCESS) {
		ctx->cublas = NULL;
		shrink_cuda_ctx_destroy(ctx);
		return SHRINK_EIO;
	}
	// a fixed cuBLAS workspace keeps cuBLAS calls capturable into CUDA graphs
	if (cudaMalloc(&cublas_ws, kCublasWorkspace) != cudaSuccess ||
	    cublasSetWorkspace(ctx->cublas, cublas_ws, kCublasWorkspace) != CUBLAS_STATUS_SUCCESS ||
	    cublasSetStream(ctx->cublas, stream) != CUBLAS_STATUS_SUCCESS) {
		if (cublas_ws)
			cudaFree(cublas_ws);
		cublasDestroy(ctx->cublas);
		ctx->cublas = NULL;
		shrink_cuda_ctx_destroy(ctx);
		return SHRINK_EIO;
	}
	ctx->cublas_ws = cublas_ws;
	*out = ctx;
	return SHRINK_OK;
}

extern "C" void shrink_cuda_ctx_destroy(shrink_cuda_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->cublas)
		cublasDestroy(ctx->cublas);
	if (ctx->cublas_ws)
		cudaFree(ctx->cublas_ws);
	if (ctx->workspace)
		cudaFree(ctx->workspace);
	if (ctx->counters)
		cudaFree(ctx->counters);
	if (ctx->own_stream)
		cudaStreamDestroy(ctx->stream);
	free(ctx);
}

extern "C" shrink_status shrink_cuda_ctx_reserve(shrink_cuda_ctx *ctx, size_t n_bytes)
{
	if (n_bytes <= ctx->workspace_bytes)
		return SHRINK_OK;
	shrink_status st = shrink_cuda_check(ctx, cudaStreamSynchronize(ctx->stream), "reserve");
	if (st != SHRINK_OK)
		return st;
	if (ctx->workspace)
		cudaFree(ctx->workspace);
	ctx->workspace = NULL;
	ctx->workspace_bytes = 0;
	st = shrink_cuda_check(ctx, cudaMalloc(&ctx->workspace, n_bytes), "reserve workspace");
	if (st != SHRINK_OK)
		return st;
	ctx->workspace_bytes = n_bytes;
	ctx->ws_generation++;
	return SHRINK_OK;
}

extern "C" const char *shrink_cuda_ctx_message(const shrink_cuda_ctx *ctx)
{
	return ctx ? ctx->message : "";
}

extern "C" unsigned shrink_cuda_ctx_generation(const shrink_cuda_ctx *ctx)
{
	return ctx->ws_generation;
}

extern "C" int shrink_cuda_ctx_sm_count(const shrink_cuda_ctx *ctx)
{
	return ctx->n_sms;
}
