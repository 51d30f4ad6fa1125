// qgemm.cu: the quantized GEMM's host side (more tokens than the GEMVs take): the plan
// (tokens a CTA and split-K factor, from a model of the launch), the TMA tensor maps of the
// weight, the activations laid out once per call the way the warpgroup-MMA kernel
// (qgemm_wgmma.cu) reads them, and the launch of the split-K reduction.
//
// The layout (qgemm_x_offset): per block of BN tokens and k tile, BN x 64 halves as wgmma's
// 8 x 16-byte core matrices with qlayout.cuh's column permutation undone (k16 step s of a
// weight tile holds columns 16 t + 4 s + {0..3} of lane t). Why a pass of its own: gathering
// those 4-byte column pairs inside the GEMM cost about 400 instructions a warp and k tile, more
// than the dequantization and the MMA together (Nsight Compute, H100); here it is one read and
// one write of the activations (1 MB at 128 x 4096 tokens x columns), zero-filled past M and K,
// so the GEMM copies whole 16-byte chunks and needs no padded copy of x.
//
// Split K: two splits are a cluster of two CTAs that add each other's sums (qgemm_wgmma.cu)
// where running the CTAs in pairs adds no wave; otherwise each split writes a float partial and
// splitk_reduce (splitk.cu) adds them.
//
// Deliberately not here: the kernels (qgemm_wgmma.cu, splitk.cu), the choice of path (qlinear.cu).
#include <string.h>

#include <cudaTypedefs.h>

#include "pdl.cuh"
#include "qgemm_layout.cuh"
#include "qkernels.cuh"
#include "qlayout.cuh"
#include "splitk.cuh"

namespace {

constexpr int kRowTiles = kGemmRowTiles; // 256 rows per CTA (qgemm_wgmma.cu), stored as two 128-row tiles

template <int BN>
__global__ void qgemm_layout_kernel(const uint16_t *__restrict__ x, int64_t ldx, int M, int K, int k_tiles,
				    int64_t n_pairs, uint32_t *__restrict__ xp)
{
	launch_dependents(); // the GEMM may start streaming its weights (pdl.cuh)
	wait_prerequisites(); // x is the output of the kernel before; the GEMM before may still read xp
	// one thread per column pair, in the order of x (reads coalesced)
	const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= n_pairs)
		return;
	const int P = (int)(i & 31);
	const int64_t row = i >> 5; // token x k tile
	const int kt = (int)(row % k_tiles);
	const int64_t m = row / k_tiles;
	const int c = kt * 64 + 2 * P;
	uint32_t v = 0;
	if (m < M) {
		const uint16_t *src = x + m * ldx + c;
		const uint32_t lo = c < K ? src[0] : 0u, hi = c + 1 < K ? src[1] : 0u;
		v = lo | hi << 16;
	}
	const int64_t block = (m / BN) * k_tiles + kt;
	xp[block * (BN * 32) + qgemm_x_offset<BN>((int)(m % BN), P) / 4] = v;
}

} // namespace

int64_t qgemm_row_blocks(const shrink_cuda_qweight *w)
{
	return ceil_div64(w->row_tiles, kRowTiles);
}

size_t qgemm_x_bytes(const shrink_cuda_qweight *w, int M)
{
	return (size_t)ceil_div64(M, 128) * 128 * w->k_tiles * 128; // enough for either block size
}

// Whether s splits of ctas CTAs each run as a cluster of two: two splits where running them in
// pairs adds no wave.
static bool plan_cluster(const shrink_cuda_ctx *ctx, int64_t ctas, int s)
{
	const int pairs = ctx->gemm_pair_ctas;
	return s == 2 && pairs > 0 && ceil_div64(ctas * s, pairs) == ceil_div64(ctas * s, ctx->n_sms);
}

// Modelled time of a launch in ns (H100, bench_cuda --linear, 4-bit g128 at 8192x28672): a CTA's
// k tile takes about 390, 420, 510 and 805 ns at 16, 32, 64 and 128 tokens a block (the CTAs
// read weights, scales and BN x 128 bytes of activations from L2 at about its rate, and MMA), a
// wave's fill and store about 2 us. Those terms are the H100's, but on the H200 too they pick the
// fastest of 1-16 splits at 16 and 32 tokens at all six bench shapes (tests/bench/bench_cuda.md,
// fourteenth session). Split K adds its partials written and read back (~7500 bytes
// a ns) and the reduction's launch (1.5 us); two splits in a cluster write none and add each
// other's sums (1 us). Those terms are the H200's: its bench's graph ran 2.0-2.8 us faster
// without the reduction kernel for 2-8 MB of partials, where the H100's terms (2500 bytes a ns,
// 2 us, clusters charged as partials) said 3.7-8.7 us; refitted over 168 plans at 64 and 128
// tokens (6 shapes x 2 token block sizes x 1-16 splits), the mean error of the model fell from
// 21 % to 13 %, and 4096x14336 at 128 tokens took two splits of 128 tokens in clusters (32 us
// against 35-36 unsplit at 64 tokens a block; tests/bench/bench_cuda.md, thirteenth session).
static double plan_cost(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int M, int bn, int s)
{
	const double kt_ns = bn == 16 ? 390.0 : bn == 32 ? 420.0 : bn == 64 ? 510.0 : 805.0;
	const int64_t ctas = qgemm_row_blocks(w) * ceil_div64(M, bn);
	const int64_t per = ceil_div64(w->k_tiles, s);
	double ns = (double)ceil_div64(ctas * s, ctx->n_sms) * ((double)per * kt_ns + 2000.0);
	if (s > 1)
		ns += plan_cluster(ctx, ctas, s) ? 1000.0 : 2.0 * (double)(ctas * s) * 256 * bn * 4 / 7500.0 + 1500.0;
	return ns;
}

// The block of tokens: the smallest that holds M (16, 32, 64), or 64 or 128 above 64 tokens.
// Two splits go in clusters of two CTAs where pairing them adds no wave (qgemm_wgmma.cu says why
// only two).
qgemm_plan_t qgemm_plan(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int M, int split_k)
{
	qgemm_plan_t best = {64, 1, false};
	double best_cost = 1e300;
	const int bn0 = M <= 16 ? 16 : M <= 32 ? 32 : 64;
	for (int bn = bn0; bn <= (M > 64 ? 128 : bn0); bn *= 2)
		for (int s = split_k > 0 ? split_k : 1; s <= (split_k > 0 ? split_k : 16); s *= 2) {
			const int64_t per = ceil_div64(w->k_tiles, s);
			if (split_k <= 0 && s > 1 && per * (s - 1) >= w->k_tiles)
				break; // the last split would be empty
			const double cost = plan_cost(ctx, w, M, bn, s);
			if (cost < best_cost)
				best.bn = bn, best.splits = s, best_cost = cost;
		}
	best.splits = (int)ceil_div64(w->k_tiles, ceil_div64(w->k_tiles, best.splits)); // those with k tiles
	best.cluster = plan_cluster(ctx, qgemm_row_blocks(w) * ceil_div64(M, best.bn), best.splits);
	return best;
}

size_t qgemm_ws_floats(const shrink_cuda_qweight *w, int M, qgemm_plan_t p)
{
	if (p.splits <= 1 || p.cluster)
		return 0;
	return (size_t)2 * qgemm_row_blocks(w) * ceil_div64(M, p.bn) * p.splits * p.bn * 128;
}

// The runtime's handle on the driver's tensor-map encoder (no link against libcuda).
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder()
{
	static PFN_cuTensorMapEncodeTiled_v12000 fn;
	if (!fn) {
		void *p = NULL;
		cudaDriverEntryPointQueryResult q;
		if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) ==
			    cudaSuccess &&
		    q == cudaDriverEntryPointSuccess)
			fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
	}
	return fn;
}

// [rows][cols] 32-bit words with rows bytes_per_row apart, boxes of box_cols x kRowTiles.
static bool encode_map(PFN_cuTensorMapEncodeTiled_v12000 enc, CUtensorMap *map, const void *base, uint64_t cols,
		uint64_t rows, uint32_t box_cols)
{
	const cuuint64_t dims[2] = {cols, rows}, strides[1] = {cols * 4};
	const cuuint32_t box[2] = {box_cols, kRowTiles}, elem[2] = {1, 1};
	return enc(map, CU_TENSOR_MAP_DATA_TYPE_UINT32, 2, const_cast<void *>(base), dims, strides, box, elem,
		   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
		   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

shrink_status qgemm_launch(shrink_cuda_ctx *ctx, const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	const int bn = c->bn;
	const int64_t n_pairs = ceil_div64(c->M, bn) * bn * w->k_tiles * 32;
	const unsigned blocks = (unsigned)ceil_div64(n_pairs, 256);
	const uint16_t *x = static_cast<const uint16_t *>(c->x);
	uint32_t *xp = static_cast<uint32_t *>(c->xp);
	const int K = (int)w->cols, kt = (int)w->k_tiles;
	const auto layout = bn == 16   ? qgemm_layout_kernel<16>
			    : bn == 32 ? qgemm_layout_kernel<32>
			    : bn == 64 ? qgemm_layout_kernel<64>
				       : qgemm_layout_kernel<128>;
	const int M = c->M;
	const int64_t ldx = c->ldx;
	cudaError_t e = launch_dependent(layout, dim3(blocks), dim3(256), 0, ctx->stream, x, ldx, M, K, kt, n_pairs, xp);
	shrink_status st = shrink_cuda_check(ctx, e, "qgemm layout");
	if (st != SHRINK_OK)
		return st;

	qgemm_args a;
	set_weight_args(a, w);
	a.x = xp;
	a.y = c->y;
	a.ws = c->ws;
	a.M = c->M;
	a.splits = c->splits < 1 ? 1 : c->splits; // qgemm_plan's: each split has k tiles
	a.kt_per_split = (int)ceil_div64(w->k_tiles, a.splits);
	a.cluster = c->cluster; // qgemm_plan: only with two splits

	PFN_cuTensorMapEncodeTiled_v12000 enc = tensor_map_encoder();
	if (!enc)
		return shrink_cuda_fail(ctx, SHRINK_EIO, "qgemm: the driver has no tensor-map encoder");
	const uint32_t tb = (uint32_t)qtile_bytes(w->bits);
	qgemm_maps m;
	memset(&m, 0, sizeof m);
	bool ok = encode_map(enc, &m.w, w->qw, (uint64_t)w->k_tiles * tb / 4, w->row_tiles, tb / 4) &&
		  encode_map(enc, &m.s, w->scales, (uint64_t)w->n_groups * 8, w->row_tiles, a.gpt * 8);
	if (ok && w->zeros)
		ok = encode_map(enc, &m.z, w->zeros, (uint64_t)w->n_groups * 8, w->row_tiles, a.gpt * 8);
	if (!ok)
		return shrink_cuda_fail(ctx, SHRINK_EINTERNAL, "qgemm: tensor map of a %lldx%lld weight rejected",
					(long long)w->rows, (long long)w->cols);
	st = qgemm_wgmma_launch(ctx, c, a, m, bn);
	if (st != SHRINK_OK || a.splits == 1 || a.cluster)
		return st;
	// two 128-row tiles a 256-row block
	return splitk_reduce(ctx, c->dt, c->ws, c->M, (int)w->rows, bn, a.splits, 2 * qgemm_row_blocks(w), c->y);
}
