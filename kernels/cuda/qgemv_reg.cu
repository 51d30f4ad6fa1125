// qgemv_reg.cu: a second version of the quantized GEMV (1-32 tokens) that
// streams the weights straight into registers (path SHRINK_CUDA_QPATH_GEMV_REG);
// qgemv.cu stages them through shared memory with cp.async instead. Both are
// checked by tests/cuda/test_cuda and timed side by side by bench_cuda.
//
// A CTA of 8 warps owns R row tiles (16 output rows each; R = 4 at 17-32
// tokens, else 1: rows_per_cta) and a range of k tiles;
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
// On the H200 its whole rounds, run without predicates (94 -> 77 instructions a tile), took batch
// 1 at 28672x8192 from 37.4 to 35.0 us and 14336x4096 from 11.7 to 10.9. With their addresses held
// (round_lanes, about 16 % fewer instructions) and the first round's weights loaded before the wait
// on the kernel before: decode's q/k/v launch 6.6 -> 5.9 us, 14336x4096 at 16 tokens 16.8 -> 13.8,
// 4096x4096 at 32 tokens 9.4 -> 7.9 (but 8192x8192 at 8 tokens 12.9 -> 13.4).
// Deliberately not here: the choice of path (qlinear.cu).
#include <string.h>

#include "pdl.cuh"
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
	int N, row_tiles, cta_begin; // rows, row tiles; first CTA of this weight in the grid
};

struct reg_args {
	reg_weight w[kMaxWeights];
	int n_weights;
	const void *x;
	float *ws; // split-K partials, [CTA][split][R row tiles][128 NT]
	int64_t ldx;
	int M;
	int k_tiles, n_groups, gshift, kt_per_split, splits;
};

int n_tiles_of(int M)
{
	return M <= 8 ? 1 : M <= 16 ? 2 : 4;
}

// Row tiles per CTA (R): with 17-32 tokens a k tile of activations is 4 KB against 512 bytes of
// 4-bit codes, and each row tile read them again from L2 (4096x14336: 230 MB of L2 traffic); with
// R = 4 a warp applies each activation fragment it loads to 4 row tiles. H100, 32 tokens, us, R = 1
// -> 4: 4096x14336 38.5 -> 27.9, 14336x4096 32.7 -> 28.5, 8192x8192 37.0 -> 26.9, 8192x28672
// 124 -> 96, 28672x8192 122 -> 81; but 4096x4096 10.7 -> 14.0 (64 CTAs: too few, too short),
// and R = 2 at 9-16 tokens won at one shape of six. So R = 4 only at 17-32 tokens where that
// leaves about a CTA per SM of an H100 (128 CTAs) or K is long. Not a function of the SM count:
// the workspace is sized for any GPU (qlinear.cu) and must hold what this GPU's plan needs.
int rows_per_cta(const shrink_cuda_qweight *w, int64_t row_tiles, int nt)
{
	return nt == 4 && (row_tiles >= 4 * 128 || w->k_tiles >= 128) ? 4 : 1;
}

// k tiles in flight per warp (each R row tiles deep): as many as registers allow.
template <int BITS, int NT, int R> __host__ __device__ constexpr int tiles_in_flight()
{
	return R > 1 ? 1 : NT >= 4 ? 2 : (BITS == 4 && NT == 1) ? 8 : (BITS <= 4 ? 4 : 2);
}

// The lane's loads for k tile kt of R row tiles starting at tiles (row tile stride rt_bytes), in
// a warp's last, partial round: tiles past K (!ok) or past the weight's rows are zero. Lanes of
// tokens past M read token M - 1: their columns of the MMA are never stored.
template <typename T, int BITS, bool SYM, bool FOLD, int NT, int R>
__device__ __forceinline__ void load_k_tile(const reg_args &a, int kt, bool ok, int nr, const uint8_t *tiles,
					    size_t rt_bytes, const uint32_t *sc_row, const uint32_t *zp_row,
					    const T *x, uint32_t (&w)[R][BITS], uint32_t (&sc)[R], uint32_t (&zp)[R],
					    uint4 (&xv)[NT][2])
{
	const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
	const int grp = FOLD ? ((kt * 64) >> a.gshift) : ((kt * 64 + 16 * t) >> a.gshift);
#pragma unroll
	for (int r = 0; r < R; r++) {
		const bool okr = ok && r < nr;
		if (okr) {
			qtile_load_at<BITS>(tiles + r * rt_bytes + (size_t)kt * qtile_bytes(BITS), lane, w[r]);
		} else {
#pragma unroll
			for (int i = 0; i < BITS; i++)
				w[r][i] = 0;
		}
		const size_t so = (size_t)r * a.n_groups * 8 + (size_t)grp * 8;
		sc[r] = okr ? __ldg(sc_row + so) : 0u;
		zp[r] = (!SYM && okr) ? __ldg(zp_row + so) : 0u;
	}
#pragma unroll
	for (int j = 0; j < NT; j++) {
		const int tok = min(8 * j + g, a.M - 1);
		if (ok) {
			const uint4 *p = reinterpret_cast<const uint4 *>(x + (size_t)tok * a.ldx + (size_t)kt * 64 + 16 * t);
			xv[j][0] = __ldg(p);
			xv[j][1] = __ldg(p + 1);
		} else {
			xv[j][0] = make_uint4(0, 0, 0, 0);
			xv[j][1] = make_uint4(0, 0, 0, 0);
		}
	}
}

// A lane's addresses in k tile kt0 of its whole rounds (codes by row tile and plane, activations,
// scale rows by row tile), stepped a round at a time, so that a round loads at immediate offsets
// from them. Built from kt in every tile, the 64-bit addresses took about 90 of a round's 537
// instructions (f16, 4 bits, 1 token, 8 tiles a round: now 450; 16 tokens 330 -> 266, 32 tokens
// 236 -> 188). The weights' loads (load_w) and the activations' (load_x) are apart: the first
// round's weights are loaded before the kernel waits for the one before. xo limits a row of x to
// 2^32 / 32 elements (qgemv_reg_launch checks it).
template <typename T, int BITS, bool SYM, bool FOLD, int NT, int R, int U> struct round_lanes {
	static constexpr int kPlanes = qplane_count(BITS);
	static constexpr int kStep = kWarps * U; // k tiles a round
	const uint8_t *codes[R][kPlanes];
	const T *x;       // token 0's activations (the lane's columns)
	uint32_t xo[NT];  // token tile j's offset from x (elements): one register, not a pointer's two
	const uint32_t *sc[R], *zp[R];
	uint32_t col; // column of the round's first tile (+ 16 t unless FOLD): its scale group

	__device__ __forceinline__ round_lanes(const reg_args &a, int kt0, const uint8_t *tiles, size_t rt_bytes,
					       const uint32_t *sc_row, const uint32_t *zp_row, const T *xb)
	{
		const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
		for (int r = 0; r < R; r++) {
#pragma unroll
			for (int pl = 0; pl < kPlanes; pl++)
				codes[r][pl] = tiles + r * rt_bytes + (size_t)kt0 * qtile_bytes(BITS) +
					       qword_offset(BITS, pl, 0, lane);
			sc[r] = opaque(sc_row + (size_t)r * a.n_groups * 8);
			zp[r] = SYM ? nullptr : opaque(zp_row + (size_t)r * a.n_groups * 8);
		}
		x = xb + (size_t)kt0 * 64 + 16 * t;
#pragma unroll
		for (int j = 0; j < NT; j++)
			xo[j] = (uint32_t)(min(8 * j + g, a.M - 1) * a.ldx);
		col = (uint32_t)kt0 * 64 + (FOLD ? 0 : 16 * t);
	}

	// The weight loads of the round's tile u (k tile kt0 + kWarps u): codes, scales, zeros.
	__device__ __forceinline__ void load_w(const reg_args &a, int u, uint32_t (&w)[R][BITS], uint32_t (&s)[R],
					       uint32_t (&z)[R]) const
	{
		const uint32_t grp = (col + u * kWarps * 64) >> a.gshift; // unsigned: one IMAD.WIDE.U32 an address
#pragma unroll
		for (int r = 0; r < R; r++) {
			const uint8_t *c[kPlanes];
#pragma unroll
			for (int pl = 0; pl < kPlanes; pl++)
				c[pl] = codes[r][pl] + u * kWarps * qtile_bytes(BITS);
			qtile_load_lanes<BITS>(c, w[r]);
			s[r] = __ldg(sc[r] + (size_t)grp * 8);
			z[r] = SYM ? 0u : __ldg(zp[r] + (size_t)grp * 8);
		}
	}

	// Its activations.
	__device__ __forceinline__ void load_x(int u, uint4 (&xv)[NT][2]) const
	{
#pragma unroll
		for (int j = 0; j < NT; j++) {
			const uint4 *p = reinterpret_cast<const uint4 *>(x + xo[j] + u * kWarps * 64);
			xv[j][0] = __ldg(p);
			xv[j][1] = __ldg(p + 1);
		}
	}

	__device__ __forceinline__ void step()
	{
#pragma unroll
		for (int r = 0; r < R; r++)
#pragma unroll
			for (int pl = 0; pl < kPlanes; pl++)
				codes[r][pl] += kStep * qtile_bytes(BITS);
		x += kStep * 64;
		col += kStep * 64;
	}
};

template <typename T> __device__ __forceinline__ void store_out(const reg_args &a, T *y, int N, int rt, int e, float v)
{
	const int l = e & 31, c = (e >> 5) & 3, j = e >> 7;
	const int row = rt * 16 + (l >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (l & 3) + (c & 1);
	if (row < N && tok < a.M)
		y[(size_t)tok * N + row] = dtype_traits<T>::from_f(v);
}

// Two CTAs per SM (at most 128 registers a thread) with one row tile a CTA. H100, us, the previous
// version (no bound; the same loads) -> this one: 1 token 8192x28672 51.6 -> 45.5, 28672x8192
// 48.5 -> 44.1; 32 tokens 4096x4096 10.7 -> 8.6; but 16 tokens (four k tiles in flight) 8192x28672
// 52.4 -> 62.4, 8192x8192 15.8 -> 18.8, while 4096x4096 6.9 -> 6.1 and 14336x4096 19.4 -> 15.8.
// Lifting it at 9-16 tokens was slower at all six bench shapes (same call, 16 tokens: 4096x4096
// 6.2 -> 8.3, 8192x28672 63.2 -> 76.5, 28672x8192 53.9 -> 75.9).
template <typename T, int BITS, bool SYM, bool FOLD, int NT, int R>
__global__ void __launch_bounds__(kWarps * 32, R > 1 ? 1 : 2) qgemv_reg_kernel(const reg_args a)
{
	constexpr int U = tiles_in_flight<BITS, NT, R>();
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
	const int bx = blockIdx.x;
	const int wi = a.n_weights > 2 && bx >= a.w[2].cta_begin   ? 2
		       : a.n_weights > 1 && bx >= a.w[1].cta_begin ? 1
								   : 0;
	const reg_weight W = wi == 0 ? a.w[0] : wi == 1 ? a.w[1] : a.w[2]; // selects, not a run-time index
	const int rt0 = (bx - W.cta_begin) * R, nr = min(R, W.row_tiles - rt0), split = blockIdx.y;
	const int kt_begin = split * a.kt_per_split;
	const int kt_end = min(a.k_tiles, kt_begin + a.kt_per_split);
	const size_t rt_bytes = (size_t)a.k_tiles * qtile_bytes(BITS);
	const uint8_t *tiles = W.qw + (size_t)rt0 * rt_bytes;
	const uint32_t *sc_row = W.scales + (size_t)rt0 * a.n_groups * 8 + g;
	const uint32_t *zp_row = SYM ? nullptr : W.zeros + (size_t)rt0 * a.n_groups * 8 + g;
	const T *x = static_cast<const T *>(a.x);

	launch_dependents(); // the next GEMV may take this SM's slot once this CTA leaves

	// A round: U k tiles' loads, then their MMAs. Whole rounds (every k tile and row tile there)
	// run in a loop of their own without predicates, from addresses stepped a round at a time
	// (round_lanes); a warp's last, partial round after it.
	uint32_t w[U][R][BITS];
	uint4 xv[U][NT][2];
	uint32_t sc[U][R], zp[U][R];
	float acc[R][NT][4];
#pragma unroll
	for (int r = 0; r < R; r++)
#pragma unroll
		for (int j = 0; j < NT; j++)
			acc[r][j][0] = acc[r][j][1] = acc[r][j][2] = acc[r][j][3] = 0.0f;
	const auto multiply = [&]() {
#pragma unroll
		for (int u = 0; u < U; u++)
#pragma unroll
			for (int r = 0; r < R; r++)
				qtile_mma<T, BITS, SYM, FOLD, NT>(w[u][r], sc[u][r], zp[u][r], xv[u], acc[r]);
	};
	int kt0 = kt_begin + warp;
	const bool whole = nr == R && kt0 + kWarps * (U - 1) < kt_end;
	round_lanes<T, BITS, SYM, FOLD, NT, R, U> at(a, kt0, tiles, rt_bytes, sc_row, zp_row, x);
	// The first round's weights (no kernel writes them) while the kernel before may still run
	// (pdl.cuh): into registers where the round is whole, else into L2. Then wait for it: x is its
	// output, and y, ws and the counters may be its input. Registers rather than L2 took decode's
	// q/k/v launch from 6.6 to 5.8-5.9 us on the H200 (4096x14336 at 1 token 13.2 -> 11.0).
	if (whole) {
#pragma unroll
		for (int u = 0; u < U; u++)
			at.load_w(a, u, w[u], sc[u], zp[u]);
	} else {
		for (int u = 0; u < U; u++) {
			const int kt = kt0 + kWarps * u;
			for (int r = 0; r < nr && kt < kt_end && lane * 128 < qtile_bytes(BITS); r++)
				prefetch_l2(tiles + r * rt_bytes + (size_t)kt * qtile_bytes(BITS) + lane * 128);
		}
	}
	wait_prerequisites();

	if (whole) {
		for (;;) {
#pragma unroll
			for (int u = 0; u < U; u++)
				at.load_x(u, xv[u]);
			at.step();
			multiply();
			kt0 += kWarps * U;
			if (kt0 + kWarps * (U - 1) >= kt_end)
				break;
#pragma unroll
			for (int u = 0; u < U; u++)
				at.load_w(a, u, w[u], sc[u], zp[u]);
		}
	}
	for (; kt0 < kt_end; kt0 += kWarps * U) {
#pragma unroll
		for (int u = 0; u < U; u++) {
			const int kt = kt0 + kWarps * u;
			load_k_tile<T, BITS, SYM, FOLD, NT, R>(a, kt, kt < kt_end, nr, tiles, rt_bytes, sc_row,
							       zp_row, x, w[u], sc[u], zp[u], xv[u]);
		}
		multiply();
	}

	// Sum the warps, one row tile at a time: red[warp][e], e = (j * 4 + c) * 32 + lane.
	constexpr int E = NT * 128;
	__shared__ float red[kWarps][E];
	__shared__ int is_last;
	T *y = static_cast<T *>(W.y);
	const int N = W.N;
	const size_t cta = blockIdx.x; // partials are indexed by the launch's CTA
#pragma unroll
	for (int r = 0; r < R; r++) {
		if (r > 0)
			__syncthreads(); // the previous row tile's sums are read
#pragma unroll
		for (int j = 0; j < NT; j++)
#pragma unroll
			for (int c = 0; c < 4; c++)
				red[warp][(j * 4 + c) * 32 + lane] = acc[r][j][c];
		__syncthreads();
		if (r >= nr)
			continue; // uniform over the CTA
		for (int e = threadIdx.x; e < E; e += blockDim.x) {
			float v = 0.0f;
#pragma unroll
			for (int i = 0; i < kWarps; i++)
				v += red[i][e];
			if (a.splits == 1)
				store_out<T>(a, y, N, rt0 + r, e, v);
			else
				a.ws[((cta * a.splits + split) * R + r) * E + e] = v;
		}
	}
	if (a.splits == 1)
		return;
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0)
		is_last = atomicAdd(&W.counters[rt0], 1) == a.splits - 1;
	__syncthreads();
	if (!is_last)
		return;
	for (int e = threadIdx.x; e < nr * E; e += blockDim.x) {
		float v = 0.0f;
		for (int sp = 0; sp < a.splits; sp++)
			v += __ldcg(&a.ws[(cta * a.splits + sp) * R * E + e]);
		store_out<T>(a, y, N, rt0 + e / E, e % E, v);
	}
	if (threadIdx.x == 0)
		W.counters[rt0] = 0;
}

template <typename T, int BITS, bool SYM, bool FOLD>
void launch_nt(const reg_args &a, dim3 grid, cudaStream_t stream, int nt, int r)
{
	const dim3 block(kWarps * 32);
	if (nt == 1)
		launch_dependent(qgemv_reg_kernel<T, BITS, SYM, FOLD, 1, 1>, grid, block, 0, stream, a);
	else if (nt == 2)
		launch_dependent(qgemv_reg_kernel<T, BITS, SYM, FOLD, 2, 1>, grid, block, 0, stream, a);
	else if (r == 1)
		launch_dependent(qgemv_reg_kernel<T, BITS, SYM, FOLD, 4, 1>, grid, block, 0, stream, a);
	else
		launch_dependent(qgemv_reg_kernel<T, BITS, SYM, FOLD, 4, 4>, grid, block, 0, stream, a);
}

template <typename T, int BITS>
void launch_bits(const reg_args &a, dim3 grid, cudaStream_t stream, int nt, int r, bool sym, bool fold)
{
	if (sym && fold)
		launch_nt<T, BITS, true, true>(a, grid, stream, nt, r);
	else if (sym)
		launch_nt<T, BITS, true, false>(a, grid, stream, nt, r);
	else if (fold)
		launch_nt<T, BITS, false, true>(a, grid, stream, nt, r);
	else
		launch_nt<T, BITS, false, false>(a, grid, stream, nt, r);
}

template <typename T>
void launch_type(const reg_args &a, dim3 grid, cudaStream_t stream, int bits, int nt, int r, bool sym, bool fold)
{
	switch (bits) {
	case 2: launch_bits<T, 2>(a, grid, stream, nt, r, sym, fold); break;
	case 3: launch_bits<T, 3>(a, grid, stream, nt, r, sym, fold); break;
	case 4: launch_bits<T, 4>(a, grid, stream, nt, r, sym, fold); break;
	case 5: launch_bits<T, 5>(a, grid, stream, nt, r, sym, fold); break;
	case 6: launch_bits<T, 6>(a, grid, stream, nt, r, sym, fold); break;
	default: launch_bits<T, 8>(a, grid, stream, nt, r, sym, fold); break;
	}
}

} // namespace

qgemv_plan_t qgemv_reg_plan(const shrink_cuda_qweight *w, int64_t row_tiles, int M, int n_sms, int split_k)
{
	qgemv_plan_t p;
	memset(&p, 0, sizeof p);
	const int nt = n_tiles_of(M), R = rows_per_cta(w, row_tiles, nt);
	p.rows_per_cta = R;
	// a multi-weight launch rounds each weight up to whole CTAs: at most 2 more than one weight
	p.ctas = ceil_div64(row_tiles, R) + (R > 1 ? 2 : 0);
	const int per_sm = R > 1 ? 1 : 2; // CTAs resident per SM (registers)
	int64_t splits = split_k > 0 ? split_k : 1;
	if (split_k <= 0) // about a wave of CTAs, one k tile per warp at least
		while (splits < 16 && p.ctas * splits * 2 <= per_sm * (int64_t)n_sms && w->k_tiles / (splits * 2) >= 8)
			splits *= 2;
	p.kt_per_split = (int)ceil_div64(w->k_tiles, splits);
	p.splits = (int)ceil_div64(w->k_tiles, p.kt_per_split);
	p.ws_floats = p.splits > 1 ? (size_t)p.ctas * R * p.splits * 128 * nt : 0;
	return p;
}

shrink_status qgemv_reg_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemv_plan_t *p)
{
	const shrink_cuda_qweight *w = c->w;
	if (c->M > 1 && (uint64_t)c->ldx * (uint64_t)(c->M - 1) >= ((uint64_t)1 << 32)) // round_lanes' xo
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: rows of x %lld elements apart: too far for the "
					"register GEMV at %d tokens", (long long)c->ldx, c->M);
	reg_args a;
	memset(&a, 0, sizeof a);
	a.n_weights = c->n_weights > 1 ? c->n_weights : 1;
	const int nt = n_tiles_of(c->M), R = p->rows_per_cta;
	int64_t cta_begin = 0;
	for (int i = 0; i < a.n_weights; i++) {
		const shrink_cuda_qweight *wi = i ? c->more[i - 1] : w;
		reg_weight &r = a.w[i];
		r.qw = static_cast<const uint8_t *>(wi->qw);
		r.scales = wi->scales, r.zeros = wi->zeros;
		r.y = i ? c->more_y[i - 1] : c->y;
		r.counters = wi->counters;
		r.N = (int)wi->rows;
		r.row_tiles = (int)wi->row_tiles;
		r.cta_begin = (int)cta_begin;
		cta_begin += ceil_div64(wi->row_tiles, R);
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
	dim3 grid((unsigned)cta_begin, (unsigned)p->splits);
	if (c->dt == SHRINK_CUDA_F16)
		launch_type<__half>(a, grid, ctx->stream, w->bits, nt, R, w->symmetric, fold);
	else
		launch_type<__nv_bfloat16>(a, grid, ctx->stream, w->bits, nt, R, w->symmetric, fold);
	return shrink_cuda_launched(ctx, "qgemv_reg");
}
