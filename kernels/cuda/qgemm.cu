// qgemm.cu: the quantized GEMM for more tokens than the GEMV takes (17 and up):
// a tiled tensor-core (mma.sync m16n8k16) kernel that dequantizes in registers.
//
// A CTA of 8 warps computes 128 output rows x BM = 64 tokens over
// a range of k tiles (all, or 1/splits). Each k tile (64 columns) goes through
// a 6-stage cp.async pipeline into shared memory (two CTAs per SM): 8 packed weight tiles
// (qlayout.cuh, 128 * bits bytes each), the activations [BM][64] (rows padded
// to 144 bytes so that the lanes' 16-byte reads do not collide) and the tile's
// scales and zero points. Each warp owns one row tile x all BM tokens (WM = 1;
// the 4 x 2 layout, 2 row tiles x BM/2 tokens, dequantized every tile twice and
// was 2-7 % slower on the H100 at 64 tokens), reads its packed words (one 16-byte
// read per lane and plane), converts them with the magic-number trick, multiplies by
// the group scale in f16/bf16, and issues BM/8 mma per A fragment. The
// activations' column permutation inside a tile (qlayout.cuh) makes each
// lane's B operands two 16-byte shared reads per tile.
// The epilogue (epilogue.cuh) stores through shared memory, or adds split-K
// partials in split order.
//
// Deliberately not here: wgmma/TMA (sm_90a) — large batches are left to the
// dequantize + cuBLAS path in qlinear.cu; up to 16 tokens (qgemv.cu).
#include "epilogue.cuh"
#include "qkernels.cuh"
#include "qlayout.cuh"

namespace {

constexpr int kRowTiles = 8; // 128 rows per CTA
constexpr int kXStride = 144; // bytes per activation row in shared memory (64 halves + 16 pad)

struct gemm_args {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	const void *x;
	void *y;
	float *ws;
	int *counters;
	int64_t ldx;
	int M, N;
	int row_tiles, k_tiles, n_groups, gshift, gpt, kt_per_split, splits;
};

// Stages in flight: 6 keeps two CTAs per SM at 4 bits (about 92 KB each).
template <int BM> __host__ __device__ constexpr int stages()
{
	return BM == 64 ? 6 : 4;
}

template <int BITS, int BM> __host__ __device__ constexpr int stage_bytes()
{
	return kRowTiles * qtile_bytes(BITS) + BM * kXStride + 2 * kRowTiles * 4 * 8 * 4;
}

template <int BITS, int BM>
__device__ __forceinline__ void load_stage(const gemm_args &a, uint8_t *st, int kt, int rt0, int m0)
{
	const int tid = threadIdx.x;
	// packed weights: 8 tiles, 8 * BITS chunks of 16 bytes each
	constexpr int TB = qtile_bytes(BITS), A_CHUNKS = kRowTiles * TB / 16;
	for (int c = tid; c < A_CHUNKS; c += 256) {
		const int i = c / (TB / 16), o = c % (TB / 16);
		const int rt = rt0 + i;
		const bool ok = rt < a.row_tiles;
		const uint8_t *src = ok ? a.qw + ((size_t)rt * a.k_tiles + kt) * TB + 16 * o : a.qw;
		cp_async16(smem_u32(st + i * TB + 16 * o), src, ok ? 16 : 0);
	}
	// activations: BM rows x 8 chunks
	uint8_t *xs = st + kRowTiles * TB;
	const uint8_t *x = static_cast<const uint8_t *>(a.x);
	for (int c = tid; c < BM * 8; c += 256) {
		const int r = c >> 3, o = c & 7;
		const bool ok = m0 + r < a.M;
		const uint8_t *src = ok ? x + ((size_t)(m0 + r) * a.ldx + (size_t)kt * 64) * 2 + 16 * o : x;
		cp_async16(smem_u32(xs + r * kXStride + 16 * o), src, ok ? 16 : 0);
	}
	// scales (and zeros): per row tile, gpt groups x 8 pairs = 2 gpt chunks
	uint8_t *ss = xs + BM * kXStride;
	const int grp0 = (kt * 64) >> a.gshift;
	const int n_sc = kRowTiles * a.gpt * 2;
	for (int c = tid; c < (a.zeros ? 2 * n_sc : n_sc); c += 256) {
		const int which = c / n_sc, cc = c % n_sc;
		const int i = cc / (2 * a.gpt), o = cc % (2 * a.gpt);
		const int rt = rt0 + i;
		const bool ok = rt < a.row_tiles;
		const uint32_t *base = which ? a.zeros : a.scales;
		const uint32_t *src = ok ? base + ((size_t)rt * a.n_groups + grp0) * 8 + 4 * o : base;
		cp_async16(smem_u32(ss + which * (kRowTiles * 4 * 32) + (i * 2 * a.gpt + o) * 16), src, ok ? 16 : 0);
	}
}

template <typename T, int BITS, bool SYM, int BM, int WM>
__global__ void __launch_bounds__(256, 2) qgemm_kernel(const gemm_args a)
{
	// WM warps along the tokens, 8 / WM along the rows; a warp: WM row tiles x BM / WM tokens
	constexpr int NT = BM / WM / 8, WR = 8 / WM;
	constexpr int TB = qtile_bytes(BITS);
	constexpr int SB = stage_bytes<BITS, BM>();
	constexpr int kStages = stages<BM>();
	extern __shared__ __align__(16) uint8_t smem[];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int wn = warp % WR, wm = warp / WR;
	const int rt0 = blockIdx.x * kRowTiles, m0 = blockIdx.y * BM, split = blockIdx.z;
	const int kt_begin = split * a.kt_per_split;
	const int nk = min(a.k_tiles, kt_begin + a.kt_per_split) - kt_begin;
	// group of this lane's columns inside a tile (groups of 16 and 32 split a tile)
	const int gl = a.gshift < 6 ? (16 * t) >> a.gshift : 0;

	float acc[WM][NT][4];
#pragma unroll
	for (int i = 0; i < WM; i++)
#pragma unroll
		for (int j = 0; j < NT; j++)
			acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

#pragma unroll
	for (int s = 0; s < kStages - 1; s++) {
		if (s < nk)
			load_stage<BITS, BM>(a, smem + s * SB, kt_begin + s, rt0, m0);
		cp_async_commit();
	}
	for (int it = 0; it < nk; it++) {
		cp_async_wait<kStages - 2>();
		__syncthreads();
		const int nxt = it + kStages - 1;
		if (nxt < nk)
			load_stage<BITS, BM>(a, smem + (nxt % kStages) * SB, kt_begin + nxt, rt0, m0);
		cp_async_commit();

		const uint8_t *st = smem + (it % kStages) * SB;
		const uint8_t *xs = st + kRowTiles * TB;
		const uint32_t *ss = reinterpret_cast<const uint32_t *>(xs + BM * kXStride);
		uint32_t w[WM][BITS];
		uint32_t sc0[WM], sc1[WM];
		qzero z0[WM], z1[WM];
#pragma unroll
		for (int i = 0; i < WM; i++) {
			const int lt = WM * wn + i;
			qtile_load_shared<BITS>(st + lt * TB, lane, w[i]);
			qscale_t2<T>(ss[(lt * a.gpt + gl) * 8 + g], sc0[i], sc1[i]);
			if (SYM) {
				z0[i] = z1[i] = qzero_make<T, BITS>(1 << (BITS - 1));
			} else {
				const uint32_t zp = ss[kRowTiles * 32 + (lt * a.gpt + gl) * 8 + g];
				z0[i] = qzero_make<T, BITS>(zp & 0xffffu);
				z1[i] = qzero_make<T, BITS>(zp >> 16);
			}
		}
		static_for<0, 2>([&](auto half_c) {
			constexpr int h = decltype(half_c)::value;
			uint4 xv[NT];
#pragma unroll
			for (int j = 0; j < NT; j++)
				xv[j] = *reinterpret_cast<const uint4 *>(xs + (wm * (BM / WM) + 8 * j + g) * kXStride +
									 32 * t + 16 * h);
			static_for<0, 2>([&](auto sub_c) {
				constexpr int s = 2 * h + decltype(sub_c)::value;
#pragma unroll
				for (int i = 0; i < WM; i++) {
					uint32_t A[4];
					qfragment<T, BITS, s>(w[i], z0[i], z1[i], A);
					A[0] = t2_mul<T>(A[0], sc0[i]), A[1] = t2_mul<T>(A[1], sc1[i]);
					A[2] = t2_mul<T>(A[2], sc0[i]), A[3] = t2_mul<T>(A[3], sc1[i]);
#pragma unroll
					for (int j = 0; j < NT; j++) {
						const uint32_t b0 = (s & 1) ? xv[j].z : xv[j].x;
						const uint32_t b1 = (s & 1) ? xv[j].w : xv[j].y;
						mma_16816<T>(acc[i][j], A, b0, b1);
					}
				}
			});
		});
	}
	cp_async_wait<0>();
	__syncthreads();

	tile_out o;
	o.y = a.y, o.M = a.M, o.N = a.N, o.m0 = m0, o.row0 = rt0 * 16;
	o.splits = a.splits, o.split = split, o.ws = a.ws, o.counters = a.counters;
	o.tile = blockIdx.x + blockIdx.y * gridDim.x;
	store_tile<T, BM, WM>(acc, smem, o);
}

template <typename T, int BITS, bool SYM, int BM, int WM> cudaError_t launch(const gemm_args &a, dim3 grid, cudaStream_t s)
{
	constexpr int smem = stages<BM>() * stage_bytes<BITS, BM>();
	static_assert(smem >= BM * (128 + 8) * 2, "epilogue staging must fit");
	static bool configured; // once per kernel, outside any graph capture that follows
	if (!configured) {
		cudaError_t e = cudaFuncSetAttribute(qgemm_kernel<T, BITS, SYM, BM, WM>,
						     cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
		if (e != cudaSuccess)
			return e;
		configured = true;
	}
	qgemm_kernel<T, BITS, SYM, BM, WM><<<grid, 256, smem, s>>>(a);
	return cudaGetLastError();
}

template <typename T, int BITS> cudaError_t launch_bits(const gemm_args &a, dim3 grid, cudaStream_t s, bool sym, int bm)
{
	(void)bm; // one block size: 64 tokens (more tokens: more CTAs, weights re-read from L2)
	return sym ? launch<T, BITS, true, 64, 1>(a, grid, s) : launch<T, BITS, false, 64, 1>(a, grid, s);
}

template <typename T> cudaError_t launch_type(const gemm_args &a, dim3 grid, cudaStream_t s, int bits, bool sym, int bm)
{
	switch (bits) {
	case 2: return launch_bits<T, 2>(a, grid, s, sym, bm);
	case 3: return launch_bits<T, 3>(a, grid, s, sym, bm);
	case 4: return launch_bits<T, 4>(a, grid, s, sym, bm);
	case 5: return launch_bits<T, 5>(a, grid, s, sym, bm);
	case 6: return launch_bits<T, 6>(a, grid, s, sym, bm);
	default: return launch_bits<T, 8>(a, grid, s, sym, bm);
	}
}

} // namespace

int qgemm_block_tokens(int M)
{
	(void)M;
	return 64;
}

size_t qgemm_ws_floats(const shrink_cuda_qweight *w, int M, int splits)
{
	if (splits <= 1)
		return 0;
	const int bm = qgemm_block_tokens(M);
	const size_t tiles = (size_t)ceil_div64(w->row_tiles, kRowTiles) * ceil_div64(M, bm);
	return tiles * splits * bm * 128;
}

shrink_status qgemm_launch(shrink_cuda_ctx *ctx, const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	gemm_args a;
	a.qw = static_cast<const uint8_t *>(w->qw);
	a.scales = w->scales;
	a.zeros = w->zeros;
	a.x = c->x;
	a.y = c->y;
	a.ws = c->ws;
	a.counters = w->counters;
	a.ldx = c->ldx;
	a.M = c->M;
	a.N = (int)w->rows;
	a.row_tiles = (int)w->row_tiles;
	a.k_tiles = (int)w->k_tiles;
	a.n_groups = (int)w->n_groups;
	a.gshift = qgroup_shift(w);
	a.gpt = a.gshift < 6 ? 64 >> a.gshift : 1;
	a.splits = c->splits < 1 ? 1 : c->splits;
	a.kt_per_split = (int)ceil_div64(w->k_tiles, a.splits);
	a.splits = (int)ceil_div64(w->k_tiles, a.kt_per_split);
	const int bm = qgemm_block_tokens(c->M);
	dim3 grid((unsigned)ceil_div64(w->row_tiles, kRowTiles), (unsigned)ceil_div64(c->M, bm), (unsigned)a.splits);
	if (a.splits > 1 && (int64_t)grid.x * grid.y > w->row_tiles)
		return shrink_cuda_fail(ctx, SHRINK_EINTERNAL, "qgemm: split-K over more tiles than counters");
	cudaError_t e = c->dt == SHRINK_CUDA_F16 ? launch_type<__half>(a, grid, ctx->stream, w->bits, w->symmetric, bm)
						 : launch_type<__nv_bfloat16>(a, grid, ctx->stream, w->bits,
									      w->symmetric, bm);
	return shrink_cuda_check(ctx, e, "qgemm");
}
