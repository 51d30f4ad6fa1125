// qgemv.cu: the quantized GEMV for 1-32 tokens, the decode path that must run
// at memory speed.
//
// Work: a CTA of 8 warps owns RC row tiles (16 output rows each) and a range of
// k tiles (all of K, or 1/splits of it). Its warps take the range's k tiles
// round-robin (warp w: tiles w, w + 8, ...), so at any time the CTA reads one
// contiguous stretch of weights. At entry each lane issues cp.async copies of
// everything its warp will need (packed weight tiles, their scales and zero
// points, and the activation slice [M][64] of each k tile) into the warp's own
// shared-memory slots, one commit group per k tile, then works through the
// tiles as their groups land: nothing waits in registers, so every warp keeps
// all of its bytes in flight and the compiler cannot serialise the loads.
//
// Per k tile: activations are the B operand of mma.m16n8k16 (tokens in n; 8 per
// n-tile; rows of absent tokens are zero registers), weights the A operand,
// converted in registers by the magic-number trick (qlayout.cuh). Groups of >=
// 64 columns: (q - z) x is accumulated exactly in float per tile and scaled in
// float ("fold"); groups of 16 and 32: the scale multiplies the weight in
// f16/bf16 first. RC > 1 row tiles share each activation slice (fewer L2 reads
// when several tokens are decoded). The 8 warps' sums meet in shared memory;
// with splits > 1 each CTA writes its partial to the workspace and the last CTA
// to arrive (an atomic counter per CTA row) adds them in split order, so
// results never depend on timing.
//
// Deliberately not here: more than 32 tokens (qgemm.cu), the choice of splits
// (qlinear.cu through qgemv_plan).
#include "qkernels.cuh"
#include "qlayout.cuh"
#include "qtile_mma.cuh"

namespace {

constexpr int kWarps = 8;
constexpr int kXRow = 144;             // bytes per activation row in a slot (64 halves + pad)
constexpr int kScaleBytes = 128;       // per row tile and slot: up to 4 groups x 8 pairs
constexpr int kSmemBudget = 110 << 10; // staging bytes per CTA (2 CTAs per SM at the largest)
constexpr int kMaxDynSmem = 200 << 10;

struct gemv_args {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	const void *x;
	void *y;
	float *ws;
	int *counters;
	int64_t ldx;
	int M, N, row_tiles;
	int k_tiles, n_groups, gshift, gpt, kt_per_split, splits, slot_bytes, warp_bytes;
};

// Shape of the kernel for M tokens: n8 tiles, row tiles per CTA, k tiles per warp at most.
struct gemv_shape {
	int nt, rc, tpw;
};

gemv_shape shape_for(int M)
{
	if (M == 1)
		return {1, 1, 8};
	if (M <= 8)
		return {1, 4, 2};
	if (M <= 16)
		return {2, 4, 2};
	return {4, 4, 2};
}

int slot_bytes_for(int bits, bool sym, int M, int rc)
{
	return rc * (qtile_bytes(bits) + kScaleBytes * (sym ? 1 : 2)) + M * kXRow;
}

template <typename T, int BITS, bool SYM, bool FOLD, int NT, int RC, int TPW>
__global__ void __launch_bounds__(kWarps * 32) qgemv_kernel(const gemv_args a)
{
	extern __shared__ __align__(16) uint8_t smem[];
	constexpr int TB = qtile_bytes(BITS);
	constexpr int SC = RC * TB, ZC = SC + RC * kScaleBytes, XC = ZC + (SYM ? 0 : RC * kScaleBytes);
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int rt0 = blockIdx.x * RC, split = blockIdx.y;
	const int kt_begin = split * a.kt_per_split;
	const int kt_end = min(a.k_tiles, kt_begin + a.kt_per_split);
	const int n_mine = kt_begin + warp < kt_end ? (kt_end - kt_begin - warp + kWarps - 1) / kWarps : 0;
	uint8_t *wsm = smem + warp * a.warp_bytes;
	const uint8_t *x = static_cast<const uint8_t *>(a.x);
	const int n_sc = 2 * a.gpt; // 16-byte chunks of scales per row tile and slot

	// issue every copy of this warp: one commit group per slot (empty ones too). Every source is a
	// per-lane pointer fixed before the loop plus a constant stride per slot (8 k tiles further).
	const int kt_first = kt_begin + warp;
	const int n_rt = min(RC, a.row_tiles - rt0);
	const uint8_t *wsrc[RC];
	const uint32_t *ssrc[RC], *zsrc[RC];
#pragma unroll
	for (int r = 0; r < RC; r++) {
		wsrc[r] = a.qw + ((size_t)(rt0 + r) * a.k_tiles + kt_first) * TB + 16 * lane;
		ssrc[r] = a.scales + (size_t)(rt0 + r) * a.n_groups * 8 + 4 * lane;
		zsrc[r] = SYM ? nullptr : a.zeros + (size_t)(rt0 + r) * a.n_groups * 8 + 4 * lane;
	}
	const uint8_t *xsrc[NT * 2]; // chunk lane + 32 k: activation row lane / 8 + 4 k, 16-byte piece lane % 8
	bool xon[NT * 2];
#pragma unroll
	for (int k = 0; k < NT * 2; k++) {
		xon[k] = lane + 32 * k < a.M * 8;
		xsrc[k] = x + ((size_t)((lane >> 3) + 4 * k) * a.ldx + (size_t)kt_first * 64) * 2 + 16 * (lane & 7);
	}
	const uint32_t xdst = XC + (lane >> 3) * kXRow + 16 * (lane & 7);
	const bool son = lane < n_sc;
	const int grp_first = (kt_first * 64) >> a.gshift;
	const int grp_step = a.gshift <= 9 ? 512 >> a.gshift : 0; // groups per slot (groups <= 512 columns)
	const uint32_t dst0 = smem_u32(wsm);
#pragma unroll
	for (int i = 0; i < TPW; i++) {
		if (i < n_mine) {
			const uint32_t slot = dst0 + i * a.slot_bytes;
			const int grp = a.gshift <= 9 ? grp_first + i * grp_step : ((kt_first + kWarps * i) * 64) >> a.gshift;
#pragma unroll
			for (int r = 0; r < RC; r++) {
				if (r >= n_rt)
					break;
#pragma unroll
				for (int k = 0; k < (TB / 16 + 31) / 32; k++)
					if ((TB / 16) % 32 == 0 || lane + 32 * k < TB / 16)
						cp_async16(slot + r * TB + 16 * lane + 512 * k,
							   wsrc[r] + (size_t)i * kWarps * TB + 512 * k, 16);
				if (son) {
					cp_async16(slot + SC + r * kScaleBytes + 16 * lane, ssrc[r] + (size_t)grp * 8, 16);
					if (!SYM)
						cp_async16(slot + ZC + r * kScaleBytes + 16 * lane, zsrc[r] + (size_t)grp * 8, 16);
				}
			}
#pragma unroll
			for (int k = 0; k < NT * 2; k++)
				if (xon[k])
					cp_async16(slot + xdst + 4 * k * kXRow, xsrc[k] + (size_t)i * kWarps * 128, 16);
		}
		cp_async_commit();
	}

	float acc[RC][NT][4];
#pragma unroll
	for (int r = 0; r < RC; r++)
#pragma unroll
		for (int j = 0; j < NT; j++)
			acc[r][j][0] = acc[r][j][1] = acc[r][j][2] = acc[r][j][3] = 0.0f;
	const int gl = FOLD ? 0 : (16 * t) >> a.gshift; // this lane's group inside a tile (groups of 16, 32)

	static_for<0, TPW>([&](auto slot_c) {
		constexpr int i = decltype(slot_c)::value;
		if (i >= n_mine)
			return;
		cp_async_wait<TPW - 1 - i>();
		__syncwarp();
		const uint32_t slot = dst0 + i * a.slot_bytes;
		uint4 xv[NT][2];
#pragma unroll
		for (int j = 0; j < NT; j++) {
			const int tok = 8 * j + g;
			if (tok < a.M) {
				const uint32_t p = slot + XC + tok * kXRow + 32 * t;
				xv[j][0] = lds128(p);
				xv[j][1] = lds128(p + 16);
			} else {
				xv[j][0] = xv[j][1] = make_uint4(0, 0, 0, 0);
			}
		}
#pragma unroll
		for (int r = 0; r < RC; r++) {
			if (r >= n_rt)
				break;
			uint32_t w[BITS];
			qtile_load_at<BITS>(slot + r * TB, lane, w);
			const uint32_t sp = lds32(slot + SC + r * kScaleBytes + 4 * (gl * 8 + g));
			const uint32_t zp = SYM ? 0u : lds32(slot + ZC + r * kScaleBytes + 4 * (gl * 8 + g));
			qtile_mma<T, BITS, SYM, FOLD, NT>(w, sp, zp, xv, acc[r]);
		}
	});

	// Sum the warps: red[warp][e], e = ((r * NT + j) * 4 + c) * 32 + lane (staging space reused).
	constexpr int E = RC * NT * 128;
	float *red = reinterpret_cast<float *>(smem);
	__shared__ int is_last;
	cp_async_wait<0>();
	__syncthreads();
#pragma unroll
	for (int r = 0; r < RC; r++)
#pragma unroll
		for (int j = 0; j < NT; j++)
#pragma unroll
			for (int c = 0; c < 4; c++)
				red[warp * E + ((r * NT + j) * 4 + c) * 32 + lane] = acc[r][j][c];
	__syncthreads();
	T *__restrict__ y = static_cast<T *>(a.y);
	float *__restrict__ ws = a.ws;
	const size_t part0 = (size_t)blockIdx.x * a.splits * E;
	constexpr int Q = (E + kWarps * 32 - 1) / (kWarps * 32); // outputs per thread
	float v[Q];
#pragma unroll
	for (int q = 0; q < Q; q++) {
		const int e = threadIdx.x + q * kWarps * 32;
		float s = 0.0f;
		if (e < E)
#pragma unroll
			for (int i = 0; i < kWarps; i++)
				s += red[i * E + e];
		v[q] = s;
	}
	if (a.splits > 1) {
#pragma unroll
		for (int q = 0; q < Q; q++) {
			const int e = threadIdx.x + q * kWarps * 32;
			if (e < E)
				ws[part0 + (size_t)split * E + e] = v[q];
		}
		__threadfence();
		__syncthreads();
		if (threadIdx.x == 0)
			is_last = atomicAdd(&a.counters[blockIdx.x], 1) == a.splits - 1;
		__syncthreads();
		if (!is_last)
			return;
#pragma unroll
		for (int q = 0; q < Q; q++)
			v[q] = 0.0f;
		for (int sp = 0; sp < a.splits; sp++)
#pragma unroll
			for (int q = 0; q < Q; q++) {
				const int e = threadIdx.x + q * kWarps * 32;
				if (e < E)
					v[q] += __ldcg(ws + part0 + (size_t)sp * E + e);
			}
		if (threadIdx.x == 0)
			a.counters[blockIdx.x] = 0;
	}
#pragma unroll
	for (int q = 0; q < Q; q++) {
		const int e = threadIdx.x + q * kWarps * 32;
		const int l = e & 31, c = (e >> 5) & 3, j = (e >> 7) % NT, r = (e >> 7) / NT;
		const int row = (rt0 + r) * 16 + (l >> 2) + 8 * (c >> 1), tok = 8 * j + 2 * (l & 3) + (c & 1);
		if (e < E && row < a.N && tok < a.M)
			y[(size_t)tok * a.N + row] = dtype_traits<T>::from_f(v[q]);
	}
}

template <typename T, int BITS, bool SYM, bool FOLD, int NT, int RC, int TPW>
cudaError_t launch(const gemv_args &a, dim3 grid, int smem, cudaStream_t stream)
{
	const cudaError_t e = allow_smem<qgemv_kernel<T, BITS, SYM, FOLD, NT, RC, TPW>>(kMaxDynSmem);
	if (e != cudaSuccess)
		return e;
	qgemv_kernel<T, BITS, SYM, FOLD, NT, RC, TPW><<<grid, kWarps * 32, smem, stream>>>(a);
	return cudaGetLastError();
}

template <typename T, int BITS, bool SYM, bool FOLD>
cudaError_t launch_shape(const gemv_args &a, dim3 grid, int smem, cudaStream_t s, gemv_shape sh)
{
	if (sh.nt == 1 && sh.rc == 1)
		return launch<T, BITS, SYM, FOLD, 1, 1, 8>(a, grid, smem, s);
	if (sh.nt == 1)
		return launch<T, BITS, SYM, FOLD, 1, 4, 2>(a, grid, smem, s);
	if (sh.nt == 2)
		return launch<T, BITS, SYM, FOLD, 2, 4, 2>(a, grid, smem, s);
	return launch<T, BITS, SYM, FOLD, 4, 4, 2>(a, grid, smem, s);
}

template <typename T, int BITS>
cudaError_t launch_bits(const gemv_args &a, dim3 grid, int smem, cudaStream_t s, gemv_shape sh, bool sym, bool fold)
{
	if (sym)
		return fold ? launch_shape<T, BITS, true, true>(a, grid, smem, s, sh)
			    : launch_shape<T, BITS, true, false>(a, grid, smem, s, sh);
	return fold ? launch_shape<T, BITS, false, true>(a, grid, smem, s, sh)
		    : launch_shape<T, BITS, false, false>(a, grid, smem, s, sh);
}

template <typename T>
cudaError_t launch_type(const gemv_args &a, dim3 grid, int smem, cudaStream_t s, gemv_shape sh, int bits, bool sym,
			bool fold)
{
	switch (bits) {
	case 2: return launch_bits<T, 2>(a, grid, smem, s, sh, sym, fold);
	case 3: return launch_bits<T, 3>(a, grid, smem, s, sh, sym, fold);
	case 4: return launch_bits<T, 4>(a, grid, smem, s, sh, sym, fold);
	case 5: return launch_bits<T, 5>(a, grid, smem, s, sh, sym, fold);
	case 6: return launch_bits<T, 6>(a, grid, smem, s, sh, sym, fold);
	default: return launch_bits<T, 8>(a, grid, smem, s, sh, sym, fold);
	}
}

} // namespace

qgemv_plan_t qgemv_plan(const shrink_cuda_qweight *w, int M, int n_sms, int split_k)
{
	const gemv_shape sh = shape_for(M);
	const int slot = slot_bytes_for(w->bits, w->symmetric, M, sh.rc);
	int tpw = sh.tpw;
	while (tpw > 1 && 8 * tpw * slot > kSmemBudget)
		tpw--;
	qgemv_plan_t p;
	p.ctas = ceil_div64(w->row_tiles, sh.rc);
	const int64_t min_splits = ceil_div64(w->k_tiles, 8 * (int64_t)tpw);
	int64_t splits = split_k > 0 ? split_k : 1;
	if (split_k <= 0) {
		// enough CTAs for the GPU (two waves of resident CTAs is plenty), one k tile per warp at least
		while (p.ctas * splits * 2 <= 2 * (int64_t)n_sms && w->k_tiles / (splits * 2) >= 8)
			splits *= 2;
	}
	if (splits < min_splits)
		splits = min_splits;
	p.kt_per_split = (int)ceil_div64(w->k_tiles, splits);
	p.splits = (int)ceil_div64(w->k_tiles, p.kt_per_split);
	p.tpw = tpw;
	p.slot_bytes = slot;
	const int red = 8 * sh.rc * sh.nt * 128 * 4;
	p.smem = 8 * tpw * slot > red ? 8 * tpw * slot : red;
	p.ws_floats = p.splits > 1 ? (size_t)p.ctas * p.splits * sh.rc * sh.nt * 128 : 0;
	return p;
}

shrink_status qgemv_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemv_plan_t *p)
{
	const shrink_cuda_qweight *w = c->w;
	const gemv_shape sh = shape_for(c->M);
	gemv_args a;
	set_weight_args(a, w);
	a.x = c->x;
	a.y = c->y;
	a.ws = c->ws;
	a.counters = w->counters;
	a.ldx = c->ldx;
	a.M = c->M;
	a.kt_per_split = p->kt_per_split;
	a.splits = p->splits;
	a.slot_bytes = p->slot_bytes;
	a.warp_bytes = p->tpw * p->slot_bytes;
	if (p->kt_per_split > 8 * p->tpw || p->tpw > sh.tpw)
		return shrink_cuda_fail(ctx, SHRINK_EINTERNAL, "qgemv: split of %d k tiles exceeds the slots",
					p->kt_per_split);
	const bool fold = w->group_size == 0 || w->group_size >= 64;
	dim3 grid((unsigned)p->ctas, (unsigned)p->splits);
	cudaError_t e = c->dt == SHRINK_CUDA_F16
				? launch_type<__half>(a, grid, p->smem, ctx->stream, sh, w->bits, w->symmetric, fold)
				: launch_type<__nv_bfloat16>(a, grid, p->smem, ctx->stream, sh, w->bits, w->symmetric, fold);
	return shrink_cuda_check(ctx, e, "qgemv");
}
