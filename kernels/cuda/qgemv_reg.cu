// qgemv_reg.cu: a second version of the quantized GEMV (1-32 tokens) that
// streams the weights straight into registers (path SHRINK_CUDA_QPATH_GEMV_REG);
// qgemv.cu stages them through shared memory with cp.async instead. Both are
// checked by tests/cuda/test_cuda and timed side by side by bench_cuda.
//
// A CTA of 8 warps owns one row tile (16 output rows) and a range of k tiles;
// its warps take the tiles round-robin, U tiles per round and lane (16-byte
// loads that skip L1: 8 tiles for 4-bit codes and <= 8 tokens), read the
// activations through L1, dequantize in registers (qlayout.cuh) and issue
// mma.m16n8k16 with the tokens in n. Groups of >= 64 columns are scaled in
// float after an exact (q - z) x product per tile; smaller groups scale the
// weight first. Warps meet in shared memory; split-K partials are added by the
// last CTA of a row tile in split order (deterministic). One launch may serve up
// to three weights that read the same x (q/k/v, gate/up; qlinear_multi): the grid
// is their row tiles end to end, which also gives small matrices enough CTAs.
//
// Measured on the H100 (run 1 of this kernel, 4-bit g128, f16): batch 1 at
// 4096x14336 in 14.8 us (about 70% of copy bandwidth), 8192x8192 (U = 4) in
// 15.5 us: faster than qgemv.cu there, whose cp.async issue and shared-memory
// round trip cost more instructions per tile than the latency they hide.
// Deliberately not here: the choice of path (qlinear.cu).
#include <string.h>

#include "qkernels.cuh"
#include "qtile_mma.cuh"

namespace {

constexpr int kWarps = 8;
constexpr int kMaxWeights = 3;

// One weight of a launch: a launch may serve up to kMaxWeights weights that share K, bits,
// group size and symmetry (q/k/v, or gate/up: one launch, and enough CTAs, for all of them).
struct reg_weight {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	void *y;
	int *counters;
	int N, rt_begin; // rows; first CTA (row tile) of this weight in the grid
};

struct reg_args {
	reg_weight w[kMaxWeights];
	int n_weights;
	const void *x;
	float *ws; // split-K partials, [row tile of the launch][split][128 NT]
	int64_t ldx;
	int M;
	int k_tiles, n_groups, gshift, kt_per_split, splits;
};

// Tiles in flight per warp and lane: as many as registers allow at 2-3 CTAs per SM.
template <int BITS, int NT> __host__ __device__ constexpr int tiles_in_flight()
{
	return NT >= 4 ? 2 : (BITS == 4 && NT == 1) ? 8 : (BITS <= 4 ? 4 : 2);
}

int n_tiles_of(int M)
{
	return M <= 8 ? 1 : M <= 16 ? 2 : 4;
}

template <typename T, int BITS, bool SYM, bool FOLD, int NT>
__global__ void __launch_bounds__(kWarps * 32) qgemv_reg_kernel(const reg_args a)
{
	constexpr int U = tiles_in_flight<BITS, NT>();
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int bx = blockIdx.x;
	const int wi = a.n_weights > 2 && bx >= a.w[2].rt_begin   ? 2
		       : a.n_weights > 1 && bx >= a.w[1].rt_begin ? 1
								  : 0;
	const reg_weight W = wi == 0 ? a.w[0] : wi == 1 ? a.w[1] : a.w[2]; // selects, not a run-time index
	const int rt = bx - W.rt_begin, split = blockIdx.y;
	const int kt_begin = split * a.kt_per_split;
	const int kt_end = min(a.k_tiles, kt_begin + a.kt_per_split);
	const uint8_t *tiles = W.qw + (size_t)rt * a.k_tiles * qtile_bytes(BITS);
	const uint32_t *sc_row = W.scales + (size_t)rt * a.n_groups * 8 + g;
	const uint32_t *zp_row = SYM ? nullptr : W.zeros + (size_t)rt * a.n_groups * 8 + g;
	const T *x = static_cast<const T *>(a.x);

	float acc[NT][4];
#pragma unroll
	for (int j = 0; j < NT; j++)
		acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

	for (int kt0 = kt_begin + warp; kt0 < kt_end; kt0 += kWarps * U) {
		uint32_t w[U][BITS];
		uint4 xv[U][NT][2];
		uint32_t sc[U], zp[U];
#pragma unroll
		for (int u = 0; u < U; u++) {
			const int kt = kt0 + kWarps * u;
			const bool ok = kt < kt_end;
			if (ok) {
				qtile_load_global<BITS>(tiles + (size_t)kt * qtile_bytes(BITS), lane, w[u]);
			} else {
#pragma unroll
				for (int i = 0; i < BITS; i++)
					w[u][i] = 0;
			}
			const int grp = FOLD ? ((kt * 64) >> a.gshift) : ((kt * 64 + 16 * t) >> a.gshift);
			sc[u] = ok ? __ldg(sc_row + (size_t)grp * 8) : 0u;
			zp[u] = (!SYM && ok) ? __ldg(zp_row + (size_t)grp * 8) : 0u;
#pragma unroll
			for (int j = 0; j < NT; j++) {
				const int tok = 8 * j + g;
				if (ok && tok < a.M) {
					const uint4 *p = reinterpret_cast<const uint4 *>(x + (size_t)tok * a.ldx +
											 (size_t)kt * 64 + 16 * t);
					xv[u][j][0] = __ldg(p);
					xv[u][j][1] = __ldg(p + 1);
				} else {
					xv[u][j][0] = make_uint4(0, 0, 0, 0);
					xv[u][j][1] = make_uint4(0, 0, 0, 0);
				}
			}
		}
#pragma unroll
		for (int u = 0; u < U; u++)
			qtile_mma<T, BITS, SYM, FOLD, NT>(w[u], sc[u], zp[u], xv[u], acc);
	}

	// Sum the warps: red[warp][e], e = (j * 4 + c) * 32 + lane.
	constexpr int E = NT * 128;
	__shared__ float red[kWarps][E];
	__shared__ int is_last;
#pragma unroll
	for (int j = 0; j < NT; j++)
#pragma unroll
		for (int c = 0; c < 4; c++)
			red[warp][(j * 4 + c) * 32 + lane] = acc[j][c];
	__syncthreads();
	T *y = static_cast<T *>(W.y);
	const int N = W.N;
	const size_t cta = blockIdx.x; // partials are indexed by the launch's row tile
	for (int e = threadIdx.x; e < E; e += blockDim.x) {
		float v = 0.0f;
#pragma unroll
		for (int i = 0; i < kWarps; i++)
			v += red[i][e];
		if (a.splits == 1) {
			const int l = e & 31, c = (e >> 5) & 3, j = e >> 7;
			const int row = rt * 16 + (l >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (l & 3) + (c & 1);
			if (row < N && tok < a.M)
				y[(size_t)tok * N + row] = dtype_traits<T>::from_f(v);
		} else {
			a.ws[(cta * a.splits + split) * E + e] = v;
		}
	}
	if (a.splits == 1)
		return;
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		is_last = atomicAdd(&W.counters[rt], 1) == a.splits - 1;
	__syncthreads();
	if (!is_last)
		return;
	for (int e = threadIdx.x; e < E; e += blockDim.x) {
		float v = 0.0f;
		for (int sp = 0; sp < a.splits; sp++)
			v += __ldcg(&a.ws[(cta * a.splits + sp) * E + e]);
		const int l = e & 31, c = (e >> 5) & 3, j = e >> 7;
		const int row = rt * 16 + (l >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (l & 3) + (c & 1);
		if (row < N && tok < a.M)
			y[(size_t)tok * N + row] = dtype_traits<T>::from_f(v);
	}
	if (threadIdx.x == 0)
		W.counters[rt] = 0;
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
	p.ctas = row_tiles;
	int64_t splits = split_k > 0 ? split_k : 1;
	if (split_k <= 0) // about two CTAs per SM, one k tile per warp at least
		while (splits < 16 && p.ctas * splits * 2 <= 2 * (int64_t)n_sms && w->k_tiles / (splits * 2) >= 8)
			splits *= 2;
	p.kt_per_split = (int)ceil_div64(w->k_tiles, splits);
	p.splits = (int)ceil_div64(w->k_tiles, p.kt_per_split);
	p.ws_floats = p.splits > 1 ? (size_t)row_tiles * p.splits * 128 * n_tiles_of(M) : 0;
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
	a.x = c->x;
	a.ws = c->ws;
	a.ldx = c->ldx;
	a.M = c->M;
	a.k_tiles = (int)w->k_tiles;
	a.n_groups = (int)w->n_groups;
	a.gshift = qgroup_shift(w);
	a.kt_per_split = p->kt_per_split;
	a.splits = p->splits;
	const bool fold = w->group_size == 0 || w->group_size >= 64;
	dim3 grid((unsigned)rt_begin, (unsigned)p->splits);
	const int nt = n_tiles_of(c->M);
	if (c->dt == SHRINK_CUDA_F16)
		launch_type<__half>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	else
		launch_type<__nv_bfloat16>(a, grid, ctx->stream, w->bits, nt, w->symmetric, fold);
	return shrink_cuda_launched(ctx, "qgemv_reg");
}
