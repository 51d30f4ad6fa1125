// qgemm_wgmma.cu: the quantized GEMM for 33 tokens and more on sm_90a: the warpgroup MMA
// (wgmma.cuh) with the weights as the register operand, dequantized by the warps that own
// them, and the activations as the shared-memory operand.
//
// A CTA of two warpgroups computes 128 output rows (warp w of warpgroup v: row tile 4 v + w)
// x BN tokens (64 or 128) over a range of k tiles (all, or 1/splits); two CTAs share an SM.
// Why wgmma: the mma.sync GEMMs this replaces (one row tile x 64 tokens a warp; then warps
// splitting a stage by rows, tokens and k tiles) stayed near 150-200 TFLOP/s on the H100
// at 64-128 tokens, waiting on the latency of their own dependent issue; here the MMA runs
// asynchronously while the SM's other CTA dequantizes. Each warp waits for its group's MMA
// before the next tile (double-buffered A fragments with one group in flight measured the
// same within +-5 % and spilled at the two-CTA register bound).
// Each k tile (64 columns) goes through a cp.async pipeline into shared memory: the 8 packed
// weight tiles (qlayout.cuh), their scales and zero points, and the activations, which
// qgemm.cu has laid out as the descriptor's core matrices (qgemm_layout.cuh).
// The epilogue (epilogue.cuh) stores through shared memory or adds split-K partials in order.
//
// Deliberately not here: the choice of path (1-32 tokens go to the GEMVs unless the GEMM is
// asked for), TMA loads, swizzled layouts.
#include "epilogue.cuh"
#include "qgemm_layout.cuh"
#include "qkernels.cuh"
#include "qlayout.cuh"
#include "wgmma.cuh"

namespace {

constexpr int kRowTiles = 8;      // 128 rows per CTA
constexpr int kScaleBlock = 1024; // bytes of one k tile's scales (or zeros): 8 row tiles x <= 4 groups x 8 pairs
constexpr int kCS = 128 + 4;      // floats per token row of the output staging

template <int BITS, int BN> __host__ __device__ constexpr int stage_bytes()
{
	return kRowTiles * qtile_bytes(BITS) + BN * 128 + 2 * kScaleBlock;
}
// Stages in shared memory: as many as keep two CTAs an SM (at most 5).
template <int BITS, int BN> __host__ __device__ constexpr int stages()
{
	return (110 << 10) / stage_bytes<BITS, BN>() < 5 ? (110 << 10) / stage_bytes<BITS, BN>() : 5;
}
template <int BITS, int BN> __host__ __device__ constexpr int smem_bytes()
{
	return stages<BITS, BN>() * stage_bytes<BITS, BN>() > BN * kCS * 4 ? stages<BITS, BN>() * stage_bytes<BITS, BN>()
									   : BN * kCS * 4;
}

// Issue the copies of k tile kt into stage st: [8 row tiles][tile], the activations
// [BN * 128 bytes], then [scales, zeros][kScaleBlock]. Rows past the weight read as zeros.
template <int BITS, int BN>
__device__ __forceinline__ void load_stage(const qgemm_args &a, uint8_t *st, int kt, int rt0, int m0)
{
	constexpr int TB = qtile_bytes(BITS), CH = TB / 16;
	const int tid = threadIdx.x;
	for (int c = tid; c < kRowTiles * CH; c += 256) {
		const int i = c / CH, o = c % CH;
		const int rt = rt0 + i;
		const bool ok = rt < a.row_tiles;
		const uint8_t *src = ok ? a.qw + ((size_t)rt * a.k_tiles + kt) * TB + 16 * o : a.qw;
		cp_async16(smem_u32(st + i * TB + 16 * o), src, ok ? 16 : 0);
	}
	// activations: laid out by qgemm.cu as this stage wants them, BN * 128 contiguous bytes
	uint8_t *xs = st + kRowTiles * TB;
	const uint8_t *x = static_cast<const uint8_t *>(a.x) + ((size_t)(m0 / BN) * a.k_tiles + kt) * (BN * 128);
	for (int c = tid; c < BN * 8; c += 256)
		cp_async16(smem_u32(xs + 16 * c), x + 16 * c, 16);
	uint8_t *ss = xs + BN * 128;
	const int per_k = kRowTiles * a.gpt * 2;
	const int grp0 = (kt * 64) >> a.gshift;
	for (int c = tid; c < 2 * 64; c += 256) {
		const int which = c >> 6, cc = c & 63;
		if (cc >= per_k || (which && !a.zeros))
			continue;
		const int i = cc / (2 * a.gpt), o = cc % (2 * a.gpt);
		const int rt = rt0 + i;
		const bool ok = rt < a.row_tiles;
		const uint32_t *base = which ? a.zeros : a.scales;
		const uint32_t *src = ok ? base + ((size_t)rt * a.n_groups + grp0) * 8 + 4 * o : base;
		cp_async16(smem_u32(ss + which * kScaleBlock + cc * 16), src, ok ? 16 : 0);
	}
}

// This warp's A fragments of one k tile: (q - z) x scale for its row tile, k16 steps 0..3.
template <typename T, int BITS, bool SYM, int BN>
__device__ __forceinline__ void dequant(const uint8_t *st, int lt, int gpt, int gl, uint32_t (&A)[4][4])
{
	constexpr int TB = qtile_bytes(BITS);
	const int lane = threadIdx.x & 31, g = lane >> 2;
	const uint32_t *ss = reinterpret_cast<const uint32_t *>(st + kRowTiles * TB + BN * 128);
	uint32_t w[BITS];
	qtile_load_shared<BITS>(st + lt * TB, lane, w);
	uint32_t s0, s1;
	qscale_t2<T>(ss[(lt * gpt + gl) * 8 + g], s0, s1);
	qzero z0, z1;
	if (SYM) {
		z0 = z1 = qzero_make<T, BITS>(1 << (BITS - 1));
	} else {
		const uint32_t zp = ss[kScaleBlock / 4 + (lt * gpt + gl) * 8 + g];
		z0 = qzero_make<T, BITS>(zp & 0xffffu);
		z1 = qzero_make<T, BITS>(zp >> 16);
	}
	static_for<0, 4>([&](auto step) {
		constexpr int s = decltype(step)::value;
		qfragment<T, BITS, s>(w, z0, z1, A[s]);
		A[s][0] = t2_mul<T>(A[s][0], s0), A[s][1] = t2_mul<T>(A[s][1], s1);
		A[s][2] = t2_mul<T>(A[s][2], s0), A[s][3] = t2_mul<T>(A[s][3], s1);
	});
}

// The tile's four k16 steps, issued asynchronously as one wgmma group.
template <typename T, int BITS, int BN>
__device__ __forceinline__ void mma_tile(const uint8_t *st, const uint32_t (&A)[4][4], float (&acc)[BN / 2])
{
	constexpr uint32_t k_step = (BN / 8) * 128, n_step = 128; // bytes between core matrices along K, N (qgemm_layout.cuh)
	const uint32_t xs = smem_u32(st + kRowTiles * qtile_bytes(BITS));
	wgmma_fence();
#pragma unroll
	for (int s = 0; s < 4; s++)
		wgmma_rs<T, BN>::run(acc, A[s], wgmma_desc(xs + 2 * s * k_step, k_step, n_step));
	wgmma_commit();
}

template <typename T, int BITS, bool SYM, int BN>
__global__ void __launch_bounds__(256, 2) qgemm_wgmma_kernel(const qgemm_args a)
{
	constexpr int SB = stage_bytes<BITS, BN>(), NS = stages<BITS, BN>();
	extern __shared__ __align__(128) uint8_t smem[];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int rt0 = blockIdx.x * kRowTiles, m0 = blockIdx.y * BN, split = blockIdx.z;
	const int kt_begin = split * a.kt_per_split;
	const int nk = min(a.k_tiles, kt_begin + a.kt_per_split) - kt_begin;
	const int gl = a.gshift < 6 ? (16 * t) >> a.gshift : 0;

	float acc[BN / 2];
#pragma unroll
	for (int i = 0; i < BN / 2; i++)
		acc[i] = 0.0f;
	uint32_t A[4][4];

#pragma unroll
	for (int s = 0; s < NS - 1; s++) {
		if (s < nk)
			load_stage<BITS, BN>(a, smem + s * SB, kt_begin + s, rt0, m0);
		cp_async_commit();
	}
	for (int it = 0; it < nk; it++) {
		cp_async_wait<NS - 2>();
		fence_proxy_async();
		__syncthreads(); // also: every warpgroup's MMA of tile it - 1 is done, its slot free
		const int nxt = it + NS - 1;
		if (nxt < nk)
			load_stage<BITS, BN>(a, smem + (nxt % NS) * SB, kt_begin + nxt, rt0, m0);
		cp_async_commit();
		const uint8_t *st = smem + (it % NS) * SB;
		dequant<T, BITS, SYM, BN>(st, warp, a.gpt, gl, A);
		mma_tile<T, BITS, BN>(st, A, acc);
		// the MMA reads A asynchronously: wait before the next tile rewrites it (the SM's
		// other CTA keeps the tensor cores busy meanwhile)
		wgmma_wait<0>();
	}
	cp_async_wait<0>();
	__syncthreads();

	float *cs = reinterpret_cast<float *>(smem);
#pragma unroll
	for (int j = 0; j < BN / 8; j++)
#pragma unroll
		for (int c = 0; c < 4; c++) {
			const int r = warp * 16 + g + 8 * (c >> 1);
			const int m = 8 * j + 2 * t + (c & 1);
			cs[m * kCS + r] = acc[4 * j + c];
		}
	__syncthreads();
	tile_out o;
	o.y = a.y, o.M = a.M, o.N = a.N, o.m0 = m0, o.row0 = rt0 * 16;
	o.splits = a.splits, o.split = split, o.ws = a.ws, o.counters = a.counters;
	o.tile = blockIdx.x + blockIdx.y * gridDim.x;
	store_tile_f32<T, BN, kCS>(cs, o);
}

template <typename T, int BITS, bool SYM, int BN> cudaError_t launch(const qgemm_args &a, dim3 grid, cudaStream_t s)
{
	constexpr int smem = smem_bytes<BITS, BN>();
	static bool configured; // once per kernel, outside any graph capture that follows
	if (!configured) {
		cudaError_t e = cudaFuncSetAttribute(qgemm_wgmma_kernel<T, BITS, SYM, BN>,
						     cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
		if (e != cudaSuccess)
			return e;
		configured = true;
	}
	qgemm_wgmma_kernel<T, BITS, SYM, BN><<<grid, 256, smem, s>>>(a);
	return cudaGetLastError();
}

template <typename T, int BN> cudaError_t launch_bits(const qgemm_args &a, dim3 grid, cudaStream_t s, int bits, bool sym)
{
	switch (bits) {
	case 2: return sym ? launch<T, 2, true, BN>(a, grid, s) : launch<T, 2, false, BN>(a, grid, s);
	case 3: return sym ? launch<T, 3, true, BN>(a, grid, s) : launch<T, 3, false, BN>(a, grid, s);
	case 4: return sym ? launch<T, 4, true, BN>(a, grid, s) : launch<T, 4, false, BN>(a, grid, s);
	case 5: return sym ? launch<T, 5, true, BN>(a, grid, s) : launch<T, 5, false, BN>(a, grid, s);
	case 6: return sym ? launch<T, 6, true, BN>(a, grid, s) : launch<T, 6, false, BN>(a, grid, s);
	default: return sym ? launch<T, 8, true, BN>(a, grid, s) : launch<T, 8, false, BN>(a, grid, s);
	}
}

} // namespace

shrink_status qgemm_wgmma_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemm_args &a, int bn)
{
	dim3 grid((unsigned)ceil_div64(c->w->row_tiles, kRowTiles), (unsigned)ceil_div64(c->M, bn), (unsigned)a.splits);
	const int bits = c->w->bits;
	const bool sym = c->w->symmetric;
	cudaError_t e;
	if (c->dt == SHRINK_CUDA_F16)
		e = bn == 64 ? launch_bits<__half, 64>(a, grid, ctx->stream, bits, sym)
			     : launch_bits<__half, 128>(a, grid, ctx->stream, bits, sym);
	else
		e = bn == 64 ? launch_bits<__nv_bfloat16, 64>(a, grid, ctx->stream, bits, sym)
			     : launch_bits<__nv_bfloat16, 128>(a, grid, ctx->stream, bits, sym);
	return shrink_cuda_check(ctx, e, "qgemm_wgmma");
}
