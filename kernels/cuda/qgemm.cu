// qgemm.cu: the quantized GEMM's host side (more tokens than the GEMVs take): the
// block size, the split-K factor, and the activations laid out once per call the way the
// warpgroup-MMA kernel (qgemm_wgmma.cu) reads them.
//
// The layout (qgemm_x_offset): per block of BN tokens and k tile, BN x 64 halves as wgmma's
// 8 x 16-byte core matrices with qlayout.cuh's column permutation undone (k16 step s of a
// weight tile holds columns 16 t + 4 s + {0..3} of lane t). Why a pass of its own: gathering
// those 4-byte column pairs inside the GEMM cost about 400 instructions a warp and k tile, more
// than the dequantization and the MMA together (Nsight Compute, H100); here it is one read and
// one write of the activations (1 MB at 128 x 4096 tokens x columns), zero-filled past M and K,
// so the GEMM copies whole 16-byte chunks and needs no padded copy of x.
//
// Deliberately not here: the kernel (qgemm_wgmma.cu), the choice of path (qlinear.cu).
#include "qgemm_layout.cuh"
#include "qkernels.cuh"

namespace {

constexpr int kRowTiles = 8; // 128 rows per CTA (qgemm_wgmma.cu)

template <int BN>
__global__ void qgemm_layout_kernel(const uint16_t *__restrict__ x, int64_t ldx, int M, int K, int k_tiles,
				    int64_t n_pairs, uint32_t *__restrict__ xp)
{
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

int qgemm_block_tokens(int M)
{
	return M <= 64 ? 64 : 128;
}

size_t qgemm_x_bytes(const shrink_cuda_qweight *w, int M)
{
	const int bn = qgemm_block_tokens(M);
	return (size_t)ceil_div64(M, bn) * bn * w->k_tiles * 128;
}

// Split K to fill the GPU: the fewest splits of least modelled time, (k tiles a CTA + a fill
// of about 4) x rounds of CTAs on the busiest SM, two CTAs an SM running side by side (each
// is latency-bound: two on an SM take about as long as one).
int qgemm_splits(const shrink_cuda_qweight *w, int M, int n_sms)
{
	const int64_t ctas = ceil_div64(w->row_tiles, kRowTiles) * ceil_div64(M, qgemm_block_tokens(M));
	if (ctas > w->row_tiles)
		return 1; // one counter per row tile bounds the tiles that can be split
	int best = 1;
	int64_t best_cost = INT64_MAX;
	for (int s = 1; s <= 16; s *= 2) {
		const int64_t per = ceil_div64(w->k_tiles, s);
		if (s > 1 && per * (s - 1) >= w->k_tiles)
			break; // the last split would be empty
		const int64_t cost = ceil_div64(ctas * s, 2 * (int64_t)n_sms) * (per + 4);
		if (cost < best_cost)
			best = s, best_cost = cost;
	}
	return best;
}

size_t qgemm_ws_floats(const shrink_cuda_qweight *w, int M, int splits)
{
	if (splits <= 1)
		return 0;
	const int bn = qgemm_block_tokens(M);
	const size_t tiles = (size_t)ceil_div64(w->row_tiles, kRowTiles) * ceil_div64(M, bn);
	return tiles * splits * bn * 128;
}

shrink_status qgemm_launch(shrink_cuda_ctx *ctx, const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	const int bn = qgemm_block_tokens(c->M);
	const int64_t n_pairs = (int64_t)qgemm_x_bytes(w, c->M) / 4;
	const unsigned blocks = (unsigned)ceil_div64(n_pairs, 256);
	const uint16_t *x = static_cast<const uint16_t *>(c->x);
	uint32_t *xp = static_cast<uint32_t *>(c->xp);
	if (bn == 64)
		qgemm_layout_kernel<64><<<blocks, 256, 0, ctx->stream>>>(x, c->ldx, c->M, (int)w->cols, (int)w->k_tiles, n_pairs, xp);
	else
		qgemm_layout_kernel<128><<<blocks, 256, 0, ctx->stream>>>(x, c->ldx, c->M, (int)w->cols, (int)w->k_tiles, n_pairs, xp);
	shrink_status st = shrink_cuda_launched(ctx, "qgemm layout");
	if (st != SHRINK_OK)
		return st;

	qgemm_args a;
	a.qw = static_cast<const uint8_t *>(w->qw);
	a.scales = w->scales;
	a.zeros = w->zeros;
	a.x = xp;
	a.y = c->y;
	a.ws = c->ws;
	a.counters = w->counters;
	a.M = c->M;
	a.N = (int)w->rows;
	a.row_tiles = (int)w->row_tiles;
	a.k_tiles = (int)w->k_tiles;
	a.n_groups = (int)w->n_groups;
	a.gshift = qgroup_shift(w);
	a.gpt = a.gshift < 6 ? 64 >> a.gshift : 1;
	a.splits = c->splits < 1 ? 1 : c->splits;
	a.kt_per_split = (int)ceil_div64(w->k_tiles, a.splits);
	a.splits = (int)ceil_div64(w->k_tiles, a.kt_per_split); // never more than asked: the workspace holds them
	if (a.splits > 1 && ceil_div64(w->row_tiles, kRowTiles) * ceil_div64(c->M, bn) > w->row_tiles)
		return shrink_cuda_fail(ctx, SHRINK_EINTERNAL, "qgemm: split-K over more tiles than counters");
	return qgemm_wgmma_launch(ctx, c, a, bn);
}
