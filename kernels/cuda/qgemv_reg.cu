// qgemv_reg.cu: the quantized GEMV for 1-32 tokens (path SHRINK_CUDA_QPATH_GEMV_REG,
// the default): weights stream straight into registers; qgemv.cu stages them
// through shared memory with cp.async instead. Both are checked by
// tests/cuda/test_cuda and timed side by side by bench_cuda.
//
// Work is cut like stream-K, per warp: the launch's tiles (16 rows x 64 columns,
// stored [row tile][k tile], so row-tile-major order is address order) are one
// sequence, and warp w of the grid takes the contiguous range
// [w T / W, (w + 1) T / W). A warp streams its range through a ring of D tiles
// in registers (16-byte loads that skip L1; the load into a slot is issued right
// after that slot is consumed, so D - 1 tiles stay in flight), reads the
// activations through L1, dequantizes in registers (qlayout.cuh) and issues
// mma.m16n8k16 with the tokens in n. Groups of >= 64 columns are scaled in float
// after an exact (q - z) x product per tile; smaller groups scale the weight first.
// A row tile inside one warp's range is written by that warp. A range cuts at
// most two row tiles (its first and last); their parts go to the workspace at
// the end, and the warp that finishes a cut row tile last sums its parts in
// warp order (deterministic) and writes it. Warps never wait for each other.
// One launch may serve up to three weights that read the same x (q/k/v,
// gate/up; qlinear_multi): their row tiles are one sequence.
//
// EXPERIMENT, measured slower and reverted in the next commit (H100, 4-bit g128,
// f16, batch 1): 4096x14336 27.9 us against 16.6 us for the CTA-per-row-tile
// version, 4096x4096 17.1 against 5.7, 8-bit lm_head 212 against 178; decode of
// the 8B-shaped model 173 against 288 tokens/s. Neither settling cut row tiles
// without fences nor loading the activations with the weights changed that.
// Reading: 2112 warps each streaming its own 14 KB window (2.5 KB in flight)
// scatter DRAM accesses; the CTA-per-row-tile kernel reads 32 KB contiguous per
// CTA at once. See tests/bench/bench_cuda.md.
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
	float *ws; // parts of cut row tiles: [warp][2][128 NT]
	int64_t ldx;
	int M;
	int k_tiles, n_groups, gshift;
	int tiles, warps; // tiles of the launch, warps of the grid
};

// Tiles in the ring of a warp: the registers of its D slots stay near 72.
template <int BITS, int NT> __host__ __device__ constexpr int ring_depth()
{
	return 72 / (BITS + 2 + 8 * NT) < 2 ? 2 : 72 / (BITS + 2 + 8 * NT) > 8 ? 8 : 72 / (BITS + 2 + 8 * NT);
}

int n_tiles_of(int M)
{
	return M <= 8 ? 1 : M <= 16 ? 2 : 4;
}

__device__ __forceinline__ int warp_start(const reg_args &a, int w)
{
	return (int)((int64_t)w * a.tiles / a.warps);
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

// Workspace slot of warp w's part of row tile r: 0 for the first row tile of its range, 1 for
// the last (a warp cuts at most those two); [warp][slot][128 NT] floats, lane-minor.
__device__ __forceinline__ size_t piece_offset(int w, int r, int k_tiles, int tiles, int warps)
{
	const int first = (int)((int64_t)w * tiles / warps) / k_tiles;
	return ((size_t)w * 2 + (r == first ? 0 : 1)) * 128;
}

__device__ __forceinline__ int warp_start_of(int w, int tiles, int warps)
{
	return (int)((int64_t)w * tiles / warps);
}

// Called by every warp whose range cuts row tile r, after its part is in the workspace:
// the last of them (counter) sums the parts in warp order and writes the rows. The counter
// is released, not fenced: a fence would wait for the loads in flight and empty L1. Out
// of line, with scalar arguments, so the ring loop stays small.
template <typename T, int NT>
__device__ __noinline__ void settle(const float *ws, int *counter, T *y, int N, int M, int r, int lr, int k_tiles,
				    int tiles, int warps, int lane)
{
	const int rb = r * k_tiles, re = rb + k_tiles;
	const int wlo = (int)(((int64_t)(rb + 1) * warps - 1) / tiles), whi = (int)(((int64_t)re * warps - 1) / tiles);
	int n = 0; // warps with a part of r: those in [wlo, whi] whose range is not empty
	for (int w = wlo; w <= whi; w++)
		n += warp_start_of(w, tiles, warps) < warp_start_of(w + 1, tiles, warps);
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
		if (warp_start_of(w, tiles, warps) >= warp_start_of(w + 1, tiles, warps))
			continue;
		const float *p = ws + piece_offset(w, r, k_tiles, tiles, warps) * NT + lane;
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

// Leave this warp's part of row tile r in its workspace slot (settled after __syncwarp).
template <int NT>
__device__ __forceinline__ void put_piece(const reg_args &a, int me, int r, int first, int lane, const float (&v)[NT][4])
{
	float *p = a.ws + ((size_t)me * 2 + (r == first ? 0 : 1)) * 128 * NT + lane;
#pragma unroll
	for (int j = 0; j < NT; j++)
#pragma unroll
		for (int c = 0; c < 4; c++)
			__stcg(p + (j * 4 + c) * 32, v[j][c]);
}

template <typename T, int NT> __device__ __forceinline__ void settle_rt(const reg_args &a, int r, int lane)
{
	const reg_weight W = weight_of(a, r);
	const int lr = r - W.rt_begin;
	settle<T, NT>(a.ws, W.counters + lr, static_cast<T *>(W.y), W.N, a.M, r, lr, a.k_tiles, a.tiles, a.warps, lane);
}

template <typename T, int BITS, bool SYM, bool FOLD, int NT>
__global__ void __launch_bounds__(kWarps * 32, kCtasPerSm) qgemv_reg_kernel(const reg_args a)
{
	constexpr int D = ring_depth<BITS, NT>();
	const int lane = threadIdx.x & 31;
	const int me = blockIdx.x * kWarps + (threadIdx.x >> 5);
	const int u0 = warp_start(a, me), u1 = warp_start(a, me + 1);
	if (u0 >= u1)
		return;
	const int KT = a.k_tiles;

	slot<BITS, NT> ring[D];
	int lr = u0 / KT, lk = u0 - lr * KT, lu = u0; // next tile to load
#pragma unroll
	for (int d = 0; d < D; d++) {
		load_slot<BITS, SYM, FOLD, T, NT>(a, lr, lk, lu < u1, lane, ring[d]);
		lu++;
		if (++lk == KT)
			lk = 0, lr++;
	}
	float acc[NT][4], head[NT][4]; // head: the first row tile's part when the range cuts it
#pragma unroll
	for (int j = 0; j < NT; j++)
#pragma unroll
		for (int c = 0; c < 4; c++)
			acc[j][c] = head[j][c] = 0.0f;
	const int first = u0 / KT;
	const bool cut_start = u0 != first * KT;
	int cr = first, ck = u0 - cr * KT, cu = u0; // next tile to consume
	while (cu < u1) {
#pragma unroll
		for (int d = 0; d < D; d++) {
			if (cu < u1) {
				consume<T, BITS, SYM, FOLD, NT>(ring[d], lane, acc);
				cu++;
				if (++ck == KT) { // row tile cr ends here
					if (cr == first && cut_start) {
#pragma unroll
						for (int j = 0; j < NT; j++)
#pragma unroll
							for (int c = 0; c < 4; c++)
								head[j][c] = acc[j][c];
					} else { // wholly in this range: ours alone
						const reg_weight W = weight_of(a, cr);
						store_rows<T, NT>(static_cast<T *>(W.y), W.N, a.M, cr - W.rt_begin, lane, acc);
					}
#pragma unroll
					for (int j = 0; j < NT; j++)
						acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
					ck = 0, cr++;
				}
			}
			load_slot<BITS, SYM, FOLD, T, NT>(a, lr, lk, lu < u1, lane, ring[d]);
			lu++;
			if (++lk == KT)
				lk = 0, lr++;
		}
	}
	// The cut row tiles, settled once nothing is in flight: the first (if cut at its start
	// and finished here) and the last (if the range ends inside it).
	const bool head_piece = cut_start && cr > first, tail_piece = ck != 0;
	if (head_piece)
		put_piece<NT>(a, me, first, first, lane, head);
	if (tail_piece)
		put_piece<NT>(a, me, cr, first, lane, acc);
	__syncwarp();
	if (head_piece)
		settle_rt<T, NT>(a, first, lane);
	if (tail_piece)
		settle_rt<T, NT>(a, cr, lane);
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
	const int64_t warps = p.ctas * kWarps;
	p.splits = 1;
	p.ws_floats = (size_t)warps * 2 * 128 * n_tiles_of(M); // two cut row tiles a warp at most
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
	a.warps = (int)(p->ctas * kWarps);
	const bool fold = w->group_size == 0 || w->group_size >= 64;
	dim3 grid((unsigned)p->ctas);
	const int nt = n_tiles_of(c->M);
	if (c->dt == SHRINK_CUDA_F16)
		launch_type<__half>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	else
		launch_type<__nv_bfloat16>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	return shrink_cuda_launched(ctx, "qgemv_reg");
}
