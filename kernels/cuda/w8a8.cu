// w8a8.cu: int8 weights x int8 activations on the tensor cores (mma.sync
// m16n8k32 s8 -> s32), with a per-token activation scale and a per-channel
// weight scale applied in float at the end: y = sx[t] * sw[n] * sum_k xq[t,k] q[n,k].
//
// The weight is the container's 8-bit symmetric per-row scheme (code - 128 is
// the int8 value) copied once into a zero-padded [rows_pad][cols_pad] int8
// matrix; activations are quantized per token by shrink_cuda_quantize_i8.
// The GEMM: CTA 128 rows x BM (64/128) tokens, k steps of 128 bytes through a
// 3-stage cp.async pipeline, shared rows XOR-swizzled in 16-byte chunks so
// that ldmatrix reads are conflict-free, 8 warps as 4 (rows) x 2 (tokens),
// split-K and the store shared with qgemm_wgmma.cu (epilogue.cuh).
// Deliberately not here: int8 weights with groups (the scale must be one per
// row), fused activation quantization inside the GEMM.
#include <stdlib.h>
#include <string.h>

#include "epilogue.cuh"
#include "splitk.cuh"

namespace {

constexpr int kStages = 3;
constexpr int kBK = 128; // bytes (= int8 columns) per stage

struct w8_args {
	const int8_t *q;
	const float *sw;
	const int8_t *xq;
	const float *sx;
	void *y;
	float *ws;
	int M, N, ldk; // ldk = cols_pad
	int k_steps, ks_per_split, splits;
};

__device__ __forceinline__ int swz(int row, int chunk)
{
	return row * kBK + ((chunk ^ (row & 7)) << 4);
}

template <int BM> __device__ __forceinline__ void load_stage(const w8_args &a, uint8_t *st, int ks, int row0, int m0)
{
	const int tid = threadIdx.x;
	const size_t k0 = (size_t)ks * kBK;
	for (int c = tid; c < 128 * 8; c += 256) {
		const int r = c >> 3, ch = c & 7;
		cp_async16(smem_u32(st + swz(r, ch)), a.q + (size_t)(row0 + r) * a.ldk + k0 + 16 * ch, 16);
	}
	uint8_t *bs = st + 128 * kBK;
	for (int c = tid; c < BM * 8; c += 256) {
		const int r = c >> 3, ch = c & 7;
		const bool ok = m0 + r < a.M;
		const int8_t *src = ok ? a.xq + (size_t)(m0 + r) * a.ldk + k0 + 16 * ch : a.xq;
		cp_async16(smem_u32(bs + swz(r, ch)), src, ok ? 16 : 0);
	}
}

template <typename T, int BM> __global__ void __launch_bounds__(256, 1) w8a8_kernel(const w8_args a)
{
	constexpr int NT = BM / 16, SB = (128 + BM) * kBK;
	extern __shared__ __align__(16) uint8_t smem[];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int wn = warp & 3, wm = warp >> 2;
	const int row0 = blockIdx.x * 128, m0 = blockIdx.y * BM, split = blockIdx.z;
	const int ks_begin = split * a.ks_per_split;
	const int nk = min(a.k_steps, ks_begin + a.ks_per_split) - ks_begin;
	int acc[2][NT][4];
#pragma unroll
	for (int i = 0; i < 2; i++)
#pragma unroll
		for (int j = 0; j < NT; j++)
			acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0;

#pragma unroll
	for (int s = 0; s < kStages - 1; s++) {
		if (s < nk)
			load_stage<BM>(a, smem + s * SB, ks_begin + s, row0, m0);
		cp_async_commit();
	}
	const int mi = lane >> 3, li = lane & 7;
	for (int it = 0; it < nk; it++) {
		cp_async_wait<kStages - 2>();
		__syncthreads();
		const int nxt = it + kStages - 1;
		if (nxt < nk)
			load_stage<BM>(a, smem + (nxt % kStages) * SB, ks_begin + nxt, row0, m0);
		cp_async_commit();
		const uint8_t *as = smem + (it % kStages) * SB, *bs = as + 128 * kBK;
#pragma unroll
		for (int kk = 0; kk < kBK / 32; kk++) {
			uint32_t A[2][4];
#pragma unroll
			for (int i = 0; i < 2; i++) {
				const int r = wn * 32 + i * 16 + (mi & 1) * 8 + li;
				ldmatrix_x4(A[i], smem_u32(as + swz(r, 2 * kk + (mi >> 1))));
			}
#pragma unroll
			for (int jj = 0; jj < NT / 2; jj++) {
				const int r = wm * (BM / 2) + (2 * jj + (mi >> 1)) * 8 + li;
				uint32_t B[4];
				ldmatrix_x4(B, smem_u32(bs + swz(r, 2 * kk + (mi & 1))));
#pragma unroll
				for (int i = 0; i < 2; i++) {
					mma_16832_s8(acc[i][2 * jj], A[i], B[0], B[1]);
					mma_16832_s8(acc[i][2 * jj + 1], A[i], B[2], B[3]);
				}
			}
		}
	}
	cp_async_wait<0>();
	__syncthreads();

	float facc[2][NT][4];
#pragma unroll
	for (int i = 0; i < 2; i++) {
		const int r = row0 + (2 * wn + i) * 16 + g;
		const float s0 = a.sw[r], s1 = a.sw[r + 8];
#pragma unroll
		for (int j = 0; j < NT; j++) {
			const int m = m0 + wm * (BM / 2) + 8 * j + 2 * t;
			const float x0 = m < a.M ? a.sx[m] : 0.0f, x1 = m + 1 < a.M ? a.sx[m + 1] : 0.0f;
			facc[i][j][0] = (float)acc[i][j][0] * s0 * x0;
			facc[i][j][1] = (float)acc[i][j][1] * s0 * x1;
			facc[i][j][2] = (float)acc[i][j][2] * s1 * x0;
			facc[i][j][3] = (float)acc[i][j][3] * s1 * x1;
		}
	}
	tile_out o;
	o.y = a.y, o.M = a.M, o.N = a.N, o.m0 = m0, o.row0 = row0;
	o.splits = a.splits, o.split = split, o.ws = a.ws;
	o.tile = blockIdx.x + blockIdx.y * gridDim.x;
	store_tile<T, BM>(facc, smem, o);
}

template <typename T, int BM> cudaError_t launch(const w8_args &a, dim3 grid, cudaStream_t s)
{
	constexpr int smem = kStages * (128 + BM) * kBK;
	const cudaError_t e = allow_smem<w8a8_kernel<T, BM>>(smem);
	if (e != cudaSuccess)
		return e;
	w8a8_kernel<T, BM><<<grid, 256, smem, s>>>(a);
	return cudaGetLastError();
}

__global__ void flip_sign_bit_kernel(uint8_t *q, size_t n)
{
	const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	if (i < n)
		q[i] ^= 0x80u; // code c (c - 128 is the value) -> two's complement int8
}

template <typename T>
__global__ void quantize_i8_kernel(const T *x, int64_t cols, int64_t cols_pad, int8_t *xq, float *sx)
{
	__shared__ float scratch[32];
	const T *row = x + blockIdx.x * cols;
	float amax = 0.0f;
	for (int64_t k = threadIdx.x; k < cols; k += blockDim.x)
		amax = fmaxf(amax, fabsf(dtype_traits<T>::to_f(row[k])));
	amax = block_max(amax, scratch);
	const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
	int8_t *out = xq + blockIdx.x * cols_pad;
	for (int64_t k = threadIdx.x; k < cols_pad; k += blockDim.x) {
		float v = k < cols ? rintf(dtype_traits<T>::to_f(row[k]) * inv) : 0.0f;
		out[k] = (int8_t)fminf(fmaxf(v, -127.0f), 127.0f);
	}
	if (threadIdx.x == 0)
		sx[blockIdx.x] = amax / 127.0f;
}

} // namespace

extern "C" void shrink_cuda_w8_free(shrink_cuda_w8 *w)
{
	if (!w)
		return;
	if (w->q)
		cudaFree(w->q);
	if (w->scales)
		cudaFree(w->scales);
	w->q = NULL, w->scales = NULL;
}

extern "C" shrink_status shrink_cuda_w8_upload(shrink_cuda_ctx *ctx, int64_t rows, int64_t cols,
					       const uint8_t *qweight, const uint16_t *scales, shrink_cuda_w8 *out)
{
	memset(out, 0, sizeof *out);
	if (rows < 1 || cols < 1 || rows > INT32_MAX / 2 || cols > INT32_MAX / 2 || !qweight || !scales)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "w8_upload: bad arguments");
	shrink_cuda_w8 w;
	memset(&w, 0, sizeof w);
	w.rows = rows, w.cols = cols;
	w.rows_pad = ceil_div64(rows, 128) * 128;
	w.cols_pad = ceil_div64(cols, kBK) * kBK;
	const size_t n = (size_t)w.rows_pad * w.cols_pad;
	float *sw = static_cast<float *>(calloc((size_t)w.rows_pad, sizeof(float)));
	if (!sw)
		return shrink_cuda_fail(ctx, SHRINK_EIO, "w8_upload: out of host memory");
	for (int64_t r = 0; r < rows; r++) {
		__half_raw h;
		h.x = scales[r];
		sw[r] = __half2float(__half(h));
	}
	cudaStream_t s = ctx->stream;
	shrink_status st;
	if ((st = shrink_cuda_check(ctx, cudaMalloc(&w.q, n), "w8 alloc")) != SHRINK_OK ||
	    (st = shrink_cuda_check(ctx, cudaMalloc(&w.scales, w.rows_pad * sizeof(float)), "w8 alloc")) != SHRINK_OK ||
	    (st = shrink_cuda_check(ctx, cudaMemsetAsync(w.q, 0x80, n, s), "w8 memset")) != SHRINK_OK ||
	    (st = shrink_cuda_check(ctx,
				    cudaMemcpy2DAsync(w.q, w.cols_pad, qweight, cols, cols, rows,
						      cudaMemcpyHostToDevice, s),
				    "w8 upload")) != SHRINK_OK ||
	    (st = shrink_cuda_check(ctx,
				    cudaMemcpyAsync(w.scales, sw, w.rows_pad * sizeof(float), cudaMemcpyHostToDevice,
						    s),
				    "w8 upload")) != SHRINK_OK) {
		free(sw);
		shrink_cuda_w8_free(&w);
		return st;
	}
	flip_sign_bit_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(reinterpret_cast<uint8_t *>(w.q), n);
	st = shrink_cuda_launched(ctx, "w8 convert");
	if (st == SHRINK_OK)
		st = shrink_cuda_check(ctx, cudaStreamSynchronize(s), "w8 upload");
	free(sw);
	if (st != SHRINK_OK) {
		shrink_cuda_w8_free(&w);
		return st;
	}
	*out = w;
	return SHRINK_OK;
}

extern "C" shrink_status shrink_cuda_quantize_i8(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *x,
						 int64_t n_tok, int64_t cols, int64_t cols_pad, int8_t *xq,
						 float *x_scales)
{
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || n_tok < 0 || n_tok > INT32_MAX || cols < 1 ||
	    cols_pad < cols)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "quantize_i8: bad arguments");
	if (n_tok == 0)
		return SHRINK_OK;
	if (dt == SHRINK_CUDA_F16)
		quantize_i8_kernel<__half>
			<<<(unsigned)n_tok, 256, 0, ctx->stream>>>(static_cast<const __half *>(x), cols, cols_pad, xq, x_scales);
	else
		quantize_i8_kernel<__nv_bfloat16><<<(unsigned)n_tok, 256, 0, ctx->stream>>>(
			static_cast<const __nv_bfloat16 *>(x), cols, cols_pad, xq, x_scales);
	return shrink_cuda_launched(ctx, "quantize_i8");
}

extern "C" shrink_status shrink_cuda_w8a8_linear(shrink_cuda_ctx *ctx, const shrink_cuda_w8 *w, const int8_t *xq,
						 const float *x_scales, int64_t n_tok, shrink_cuda_dtype dt, void *y)
{
	if ((dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16) || n_tok < 0 || n_tok > (1 << 24) || !w || !w->q)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "w8a8_linear: bad arguments");
	if (((uintptr_t)xq & 15) || ((uintptr_t)y & 15))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "w8a8_linear: buffers must be 16-byte aligned");
	if (n_tok == 0)
		return SHRINK_OK;
	w8_args a;
	a.q = w->q, a.sw = w->scales, a.xq = xq, a.sx = x_scales, a.y = y;
	a.M = (int)n_tok, a.N = (int)w->rows, a.ldk = (int)w->cols_pad;
	a.k_steps = (int)(w->cols_pad / kBK);
	const int bm = n_tok <= 64 ? 64 : 128;
	const int64_t tiles = (w->rows_pad / 128) * ceil_div64(n_tok, bm);
	int splits = 1;
	// half the SMs' worth of CTAs at most: filling them all measured slower (4096x14336 at 128
	// tokens 58.9 us against 46.0, 4096x4096 31.0 against 24.1; H100, bench_cuda --w8a8)
	while (splits < 16 && tiles * splits * 2 <= ctx->n_sms && a.k_steps / (splits * 2) >= 2)
		splits *= 2;
	// the partials must fit the workspace
	while (splits > 1 && (size_t)tiles * splits * bm * 128 * 4 > ctx->workspace_bytes)
		splits /= 2;
	a.ks_per_split = (int)ceil_div64(a.k_steps, splits);
	a.splits = (int)ceil_div64(a.k_steps, a.ks_per_split);
	a.ws = a.splits > 1 ? static_cast<float *>(ctx->workspace) : NULL;
	dim3 grid((unsigned)(w->rows_pad / 128), (unsigned)ceil_div64(n_tok, bm), (unsigned)a.splits);
	cudaError_t e;
	if (dt == SHRINK_CUDA_F16)
		e = bm == 64 ? launch<__half, 64>(a, grid, ctx->stream) : launch<__half, 128>(a, grid, ctx->stream);
	else
		e = bm == 64 ? launch<__nv_bfloat16, 64>(a, grid, ctx->stream)
			     : launch<__nv_bfloat16, 128>(a, grid, ctx->stream);
	const shrink_status st = shrink_cuda_check(ctx, e, "w8a8_linear");
	if (st != SHRINK_OK || a.splits == 1)
		return st;
	return splitk_reduce(ctx, dt, a.ws, a.M, a.N, bm, a.splits, w->rows_pad / 128, y);
}
