// qgemv_reg.cu: the quantized GEMV for 1-32 tokens (path SHRINK_CUDA_QPATH_GEMV_REG,
// the default): weights stream straight into registers; qgemv.cu stages them
// through shared memory with cp.async instead. Both are checked by
// tests/cuda/test_cuda and timed side by side by bench_cuda.
//
// Work is cut like stream-K, per CTA: the launch's tiles (16 rows x 64 columns,
// stored [row tile][k tile], so row-tile-major order is address order) are one
// sequence, and CTA c takes the contiguous range [c T / C, (c + 1) T / C). The
// CTA walks its row tiles in order; inside one, warp w takes k tiles w, w + 8,
// ... so the CTA's loads in flight are one contiguous window. Each warp streams
// its tiles through a ring of D slots in registers (codes, scales, activations;
// the load into a slot is issued right after the slot is consumed, and the ring
// runs on across row tiles, so loads stay in flight over the row tile's
// reduction), dequantizes in registers (qlayout.cuh) and issues mma.m16n8k16
// with the tokens in n. Groups of >= 64 columns are scaled in float after an
// exact (q - z) x product per tile; smaller groups scale the weight first. At the
// end of a row tile the warps' parts meet in shared memory (one barrier, double
// buffered) and are summed in warp order. The CTA writes the row tiles inside its
// range; the two its range may cut go to the workspace and the CTA that finishes
// one last (released counter) sums the parts in CTA order: deterministic.
// One launch may serve up to three weights that read the same x (q/k/v,
// gate/up; qlinear_multi): their row tiles are one sequence.
//
// EXPERIMENT, measured slower and reverted in the next commit (H100, 4-bit g128,
// f16, batch 1, same run as the CTA-per-row-tile kernel): 4096x14336 27.8 us
// against 16.6, 4096x4096 14.2 against 5.7, 28672x8192 83.3 against 48.6, 8-bit
// lm_head 213.6 against 178. Correct (test_cuda 723 passed, memcheck clean).
// Like the warp-range version before it (commit "Experiment: stream-K register
// GEMV"), about 1 us per tile per warp whatever the ring depth (4 here, 5-8
// there): the ring's loads do not overlap. Likely cause: a warp has 6 scoreboards
// for variable-latency results, so waiting on one slot's loads waits on later
// ones too; the next try should feed a shared-memory ring with TMA bulk copies of
// the CTA's contiguous window (one instruction per stage, mbarrier completion).
// Deliberately not here: the choice of path (qlinear.cu).
#include <string.h>

#include "qkernels.cuh"
#include "qlayout.cuh"

namespace {

constexpr int kWarps = 8;
constexpr int kCtasPerSm = 2;
constexpr int kMinTilesPerWarp = 4;
constexpr int kMaxWeights = 3;

// One weight of a launch (up to kMaxWeights sharing K, bits, group size and symmetry).
struct reg_weight {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	void *y;
	int *counters;
	int N, rt_begin; // rows; first row tile of this weight in the launch's sequence
};

struct reg_args {
	reg_weight w[kMaxWeights];
	int n_weights;
	const void *x;
	float *ws; // parts of cut row tiles: [CTA][2][128 NT]
	int64_t ldx;
	int M;
	int k_tiles, n_groups, gshift;
	int tiles, ctas; // tiles of the launch, CTAs of the grid
};

// Tiles in the ring of a warp (a power of two, so it divides the slots of a row tile):
// the registers of the slots stay near 64.
template <int BITS, int NT> __host__ __device__ constexpr int ring_depth()
{
	return NT == 1 ? 4 : 2;
}

int n_tiles_of(int M)
{
	return M <= 8 ? 1 : M <= 16 ? 2 : 4;
}

__device__ __forceinline__ int cta_start(const reg_args &a, int c)
{
	return (int)((int64_t)c * a.tiles / a.ctas);
}

// The warp whose range holds tile u (the last one starting at or before u).
// The weight of row tile r (selects, not a run-time index into the parameters).
__device__ __forceinline__ reg_weight weight_of(const reg_args &a, int r)
{
	const int wi = a.n_weights > 2 && r >= a.w[2].rt_begin ? 2 : a.n_weights > 1 && r >= a.w[1].rt_begin ? 1 : 0;
	return wi == 0 ? a.w[0] : wi == 1 ? a.w[1] : a.w[2];
}

// A ring slot: one tile's codes, its scale (and zero) pairs for this lane's rows, and the
// lane's activations (B fragments) for it.
template <int BITS, int NT> struct slot {
	uint32_t w[BITS];
	uint32_t sc, zp;
	uint4 xv[NT][2];
};

// Issue the loads of tile (r, kt) into s, the activations with the weights.
template <int BITS, bool SYM, bool FOLD, typename T, int NT>
__device__ __forceinline__ void load_slot(const reg_args &a, int r, int kt, bool ok, int lane, slot<BITS, NT> &s)
{
	if (!ok)
		return;
	const reg_weight W = weight_of(a, r);
	const int lr = r - W.rt_begin, t = lane & 3, g = lane >> 2;
	qtile_load_global<BITS>(W.qw + ((size_t)lr * a.k_tiles + kt) * qtile_bytes(BITS), lane, s.w);
	const int grp = FOLD ? ((kt * 64) >> a.gshift) : ((kt * 64 + 16 * t) >> a.gshift);
	const size_t si = ((size_t)lr * a.n_groups + grp) * 8 + g;
	s.sc = __ldg(W.scales + si);
	s.zp = SYM ? 0u : __ldg(W.zeros + si);
#pragma unroll
	for (int j = 0; j < NT; j++) {
		const int tok = 8 * j + g;
		if (tok < a.M) {
			const uint4 *p = reinterpret_cast<const uint4 *>(static_cast<const T *>(a.x) + (size_t)tok * a.ldx +
									 (size_t)kt * 64 + 16 * t);
			s.xv[j][0] = __ldg(p);
			s.xv[j][1] = __ldg(p + 1);
		} else {
			s.xv[j][0] = s.xv[j][1] = make_uint4(0, 0, 0, 0);
		}
	}
}

// acc += this tile's product with x (tokens 8 j + g of the lane's B fragments).
template <typename T, int BITS, bool SYM, bool FOLD, int NT>
__device__ __forceinline__ void consume(const slot<BITS, NT> &s, int lane, float (&acc)[NT][4])
{
	qzero z0, z1;
	if (SYM) {
		z0 = z1 = qzero_make<T, BITS>(1 << (BITS - 1));
	} else {
		z0 = qzero_make<T, BITS>(s.zp & 0xffffu);
		z1 = qzero_make<T, BITS>(s.zp >> 16);
	}
	uint32_t s0 = 0, s1 = 0;
	if (!FOLD)
		qscale_t2<T>(s.sc, s0, s1);
	float pacc[NT][4];
#pragma unroll
	for (int j = 0; j < NT; j++)
		pacc[j][0] = pacc[j][1] = pacc[j][2] = pacc[j][3] = 0.0f;
	static_for<0, 4>([&](auto step) {
		constexpr int st = decltype(step)::value;
		uint32_t A[4];
		qfragment<T, BITS, st>(s.w, z0, z1, A);
		if (!FOLD) {
			A[0] = t2_mul<T>(A[0], s0), A[1] = t2_mul<T>(A[1], s1);
			A[2] = t2_mul<T>(A[2], s0), A[3] = t2_mul<T>(A[3], s1);
		}
#pragma unroll
		for (int j = 0; j < NT; j++) {
			const uint4 &v = s.xv[j][st >> 1];
			const uint32_t b0 = (st & 1) ? v.z : v.x, b1 = (st & 1) ? v.w : v.y;
			mma_16816<T>(FOLD ? pacc[j] : acc[j], A, b0, b1);
		}
	});
	if (FOLD) {
		const float2 f = __half22float2(from_u32<__half2>(s.sc));
#pragma unroll
		for (int j = 0; j < NT; j++) {
			acc[j][0] += f.x * pacc[j][0], acc[j][1] += f.x * pacc[j][1];
			acc[j][2] += f.y * pacc[j][2], acc[j][3] += f.y * pacc[j][3];
		}
	}
}

// y rows of row tile lr from an accumulator (lane (g, t), element c of token block j).
template <typename T, int NT>
__device__ __forceinline__ void store_rows(T *y, int N, int M, int lr, int lane, const float (&v)[NT][4])
{
#pragma unroll
	for (int j = 0; j < NT; j++)
#pragma unroll
		for (int c = 0; c < 4; c++) {
			const int row = lr * 16 + (lane >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (lane & 3) + (c & 1);
			if (row < N && tok < M)
				y[(size_t)tok * N + row] = dtype_traits<T>::from_f(v[j][c]);
		}
}

// Start of owner w's range when `tiles` are cut into `parts` equal ranges.
__device__ __forceinline__ int range_start(int w, int tiles, int parts)
{
	return (int)((int64_t)w * tiles / parts);
}

// Workspace slot of owner w's part of row tile r: 0 for the first row tile of its range, 1 for
// the last (a range cuts at most those two); [owner][slot][128 NT] floats, lane-minor.
__device__ __forceinline__ size_t piece_offset(int w, int r, int k_tiles, int tiles, int parts)
{
	return ((size_t)w * 2 + (r == range_start(w, tiles, parts) / k_tiles ? 0 : 1)) * 128;
}

// Called by one warp of every CTA whose range cuts row tile r, after the CTA's part is in the
// workspace (and a barrier): the last of them (counter) sums the parts in CTA order and
// writes the rows. The counter is released, not fenced: a fence empties L1. Out of line.
template <typename T, int NT>
__device__ __noinline__ void settle(const float *ws, int *counter, T *y, int N, int M, int r, int lr, int k_tiles,
				    int tiles, int parts, int lane)
{
	const int rb = r * k_tiles, re = rb + k_tiles;
	const int wlo = (int)(((int64_t)(rb + 1) * parts - 1) / tiles), whi = (int)(((int64_t)re * parts - 1) / tiles);
	int n = 0; // owners with a part of r: those in [wlo, whi] whose range is not empty
	for (int w = wlo; w <= whi; w++)
		n += range_start(w, tiles, parts) < range_start(w + 1, tiles, parts);
	int last = 0;
	if (lane == 0) {
		int old;
		asm volatile("atom.release.gpu.global.add.s32 %0, [%1], 1;\n" : "=r"(old) : "l"(counter) : "memory");
		last = old == n - 1;
	}
	if (!__shfl_sync(0xffffffffu, last, 0))
		return;
	asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
	float v[NT][4];
#pragma unroll
	for (int j = 0; j < NT; j++)
		v[j][0] = v[j][1] = v[j][2] = v[j][3] = 0.0f;
	for (int w = wlo; w <= whi; w++) {
		if (range_start(w, tiles, parts) >= range_start(w + 1, tiles, parts))
			continue;
		const float *p = ws + piece_offset(w, r, k_tiles, tiles, parts) * NT + lane;
#pragma unroll
		for (int j = 0; j < NT; j++)
#pragma unroll
			for (int c = 0; c < 4; c++)
				v[j][c] += __ldcg(p + (j * 4 + c) * 32);
	}
	store_rows<T, NT>(y, N, M, lr, lane, v);
	if (lane == 0)
		*counter = 0; // ready for the next launch (graph replays)
}

template <typename T, int NT> __device__ __forceinline__ void settle_rt(const reg_args &a, int r, int lane)
{
	const reg_weight W = weight_of(a, r);
	const int lr = r - W.rt_begin;
	settle<T, NT>(a.ws, W.counters + lr, static_cast<T *>(W.y), W.N, a.M, r, lr, a.k_tiles, a.tiles, a.ctas, lane);
}

// The k-tile range [ka, kb) of row tile r inside the CTA's range [u0, u1).
__device__ __forceinline__ void row_part(int r, int KT, int u0, int u1, int &ka, int &kb)
{
	ka = max(u0 - r * KT, 0);
	kb = min(u1 - r * KT, KT);
}

template <typename T, int BITS, bool SYM, bool FOLD, int NT>
__global__ void __launch_bounds__(kWarps * 32, kCtasPerSm) qgemv_reg_kernel(const reg_args a)
{
	constexpr int D = ring_depth<BITS, NT>(), E = 128 * NT;
	__shared__ float red[2][kWarps][E];
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	const int u0 = cta_start(a, blockIdx.x), u1 = cta_start(a, blockIdx.x + 1);
	if (u0 >= u1)
		return; // the whole CTA
	const int KT = a.k_tiles;
	// ring positions of a warp per row tile: its k tiles (warp + 8 p), padded to a multiple of D
	const int P = ((KT + kWarps - 1) / kWarps + D - 1) / D * D;
	const int rfirst = u0 / KT, rlast = (u1 - 1) / KT;

	slot<BITS, NT> ring[D];
	int lr = rfirst, lp = 0, la, lb; // next position to load: row tile lr, position lp
	row_part(lr, KT, u0, u1, la, lb);
	const auto load_next = [&](slot<BITS, NT> &s) {
		const int kt = la + warp + kWarps * lp;
		load_slot<BITS, SYM, FOLD, T, NT>(a, lr, kt, lr <= rlast && kt < lb, lane, s);
		if (++lp == P) {
			lp = 0, lr++;
			row_part(lr, KT, u0, u1, la, lb);
		}
	};
#pragma unroll
	for (int d = 0; d < D; d++)
		load_next(ring[d]);

	int par = 0;
	for (int r = rfirst; r <= rlast; r++) {
		int ka, kb;
		row_part(r, KT, u0, u1, ka, kb);
		float acc[NT][4];
#pragma unroll
		for (int j = 0; j < NT; j++)
			acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
		for (int p0 = 0; p0 < P; p0 += D) {
#pragma unroll
			for (int d = 0; d < D; d++) {
				if (ka + warp + kWarps * (p0 + d) < kb)
					consume<T, BITS, SYM, FOLD, NT>(ring[d], lane, acc);
				load_next(ring[d]);
			}
		}
		// the warps' parts meet: red[par] is free, its last readers passed the previous barrier
#pragma unroll
		for (int j = 0; j < NT; j++)
#pragma unroll
			for (int c = 0; c < 4; c++)
				red[par][warp][(j * 4 + c) * 32 + lane] = acc[j][c];
		__syncthreads();
		const reg_weight W = weight_of(a, r);
		const int rt = r - W.rt_begin;
		const bool cut = ka > 0 || kb < KT;
		for (int e = threadIdx.x; e < E; e += blockDim.x) {
			float v = 0.0f;
#pragma unroll
			for (int w = 0; w < kWarps; w++)
				v += red[par][w][e];
			if (cut) {
				__stcg(a.ws + ((size_t)blockIdx.x * 2 + (r == rfirst ? 0 : 1)) * E + e, v);
			} else {
				const int l = e & 31, c = (e >> 5) & 3, j = e >> 7;
				const int row = rt * 16 + (l >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (l & 3) + (c & 1);
				if (row < W.N && tok < a.M)
					static_cast<T *>(W.y)[(size_t)tok * W.N + row] = dtype_traits<T>::from_f(v);
			}
		}
		par ^= 1;
	}
	// The cut row tiles (the first and the last, at most), settled once the CTA is done.
	__syncthreads();
	if (warp == 0) {
		if (u0 % KT != 0 || (rfirst == rlast && u1 % KT != 0))
			settle_rt<T, NT>(a, rfirst, lane);
		if (rlast != rfirst && u1 % KT != 0)
			settle_rt<T, NT>(a, rlast, lane);
	}
}

template <typename T, int BITS, bool SYM, bool FOLD>
void launch_nt(const reg_args &a, dim3 grid, cudaStream_t stream, int nt)
{
	if (nt == 1)
		qgemv_reg_kernel<T, BITS, SYM, FOLD, 1><<<grid, kWarps * 32, 0, stream>>>(a);
	else if (nt == 2)
		qgemv_reg_kernel<T, BITS, SYM, FOLD, 2><<<grid, kWarps * 32, 0, stream>>>(a);
	else
		qgemv_reg_kernel<T, BITS, SYM, FOLD, 4><<<grid, kWarps * 32, 0, stream>>>(a);
}

template <typename T, int BITS>
void launch_bits(const reg_args &a, dim3 grid, cudaStream_t stream, int nt, bool sym, bool fold)
{
	if (sym && fold)
		launch_nt<T, BITS, true, true>(a, grid, stream, nt);
	else if (sym)
		launch_nt<T, BITS, true, false>(a, grid, stream, nt);
	else if (fold)
		launch_nt<T, BITS, false, true>(a, grid, stream, nt);
	else
		launch_nt<T, BITS, false, false>(a, grid, stream, nt);
}

template <typename T>
void launch_type(const reg_args &a, dim3 grid, cudaStream_t stream, int bits, int nt, bool sym, bool fold)
{
	switch (bits) {
	case 2: launch_bits<T, 2>(a, grid, stream, nt, sym, fold); break;
	case 3: launch_bits<T, 3>(a, grid, stream, nt, sym, fold); break;
	case 4: launch_bits<T, 4>(a, grid, stream, nt, sym, fold); break;
	case 5: launch_bits<T, 5>(a, grid, stream, nt, sym, fold); break;
	case 6: launch_bits<T, 6>(a, grid, stream, nt, sym, fold); break;
	default: launch_bits<T, 8>(a, grid, stream, nt, sym, fold); break;
	}
}

} // namespace

qgemv_plan_t qgemv_reg_plan(const shrink_cuda_qweight *w, int64_t row_tiles, int M, int n_sms, int split_k)
{
	qgemv_plan_t p;
	memset(&p, 0, sizeof p);
	const int64_t tiles = row_tiles * w->k_tiles;
	// two CTAs per SM (the launch bounds), fewer when warps would get under kMinTilesPerWarp
	p.ctas = split_k > 0 ? split_k : (int64_t)n_sms * kCtasPerSm;
	if (split_k <= 0 && p.ctas > ceil_div64(tiles, kWarps * kMinTilesPerWarp))
		p.ctas = ceil_div64(tiles, kWarps * kMinTilesPerWarp);
	p.splits = 1;
	p.ws_floats = (size_t)p.ctas * 2 * 128 * n_tiles_of(M); // two cut row tiles a CTA at most
	return p;
}

shrink_status qgemv_reg_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemv_plan_t *p)
{
	const shrink_cuda_qweight *w = c->w;
	reg_args a;
	memset(&a, 0, sizeof a);
	a.n_weights = c->n_weights > 1 ? c->n_weights : 1;
	int64_t rt_begin = 0;
	for (int i = 0; i < a.n_weights; i++) {
		const shrink_cuda_qweight *wi = i ? c->more[i - 1] : w;
		reg_weight &r = a.w[i];
		r.qw = static_cast<const uint8_t *>(wi->qw);
		r.scales = wi->scales, r.zeros = wi->zeros;
		r.y = i ? c->more_y[i - 1] : c->y;
		r.counters = wi->counters;
		r.N = (int)wi->rows;
		r.rt_begin = (int)rt_begin;
		rt_begin += wi->row_tiles;
	}
	if (rt_begin * w->k_tiles > INT32_MAX / 2)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qgemv_reg: %lld tiles in one launch (at most %d)",
					(long long)(rt_begin * w->k_tiles), INT32_MAX / 2);
	a.x = c->x;
	a.ws = c->ws;
	a.ldx = c->ldx;
	a.M = c->M;
	a.k_tiles = (int)w->k_tiles;
	a.n_groups = (int)w->n_groups;
	a.gshift = qgroup_shift(w);
	a.tiles = (int)(rt_begin * w->k_tiles);
	a.ctas = (int)p->ctas;
	const bool fold = w->group_size == 0 || w->group_size >= 64;
	dim3 grid((unsigned)p->ctas);
	const int nt = n_tiles_of(c->M);
	if (c->dt == SHRINK_CUDA_F16)
		launch_type<__half>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	else
		launch_type<__nv_bfloat16>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	return shrink_cuda_launched(ctx, "qgemv_reg");
}
