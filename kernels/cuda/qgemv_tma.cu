// qgemv_tma.cu: the quantized GEMV for decode (1-8 tokens, path
// SHRINK_CUDA_QPATH_GEMV_TMA; AUTO takes it where qgemv_tma_fits says so): the
// weights reach shared memory by TMA bulk copies, so that one thread keeps a
// deep queue of loads in flight and no warp waits on per-lane load
// scoreboards (the register GEMV, qgemv_reg.cu, holds at most one round of
// loads per warp; its stream-K versions, which tried to keep a ring of loads
// per warp in registers, measured 1.7x slower).
//
// A grid of one CTA per SM, each taking a contiguous range of whole row tiles
// of the launch (tiles are stored [row tile][k tile], so the range is
// contiguous memory): no split-K, no workspace. A CTA fits in half an SM where
// the launch pairs (plan_ring), so the next launch's CTAs can share its SM.
// Three roles, all handing over through mbarriers:
// - the producer (one lane of warp 16) walks the CTA's stages (32 k tiles of
//   one row tile with their scale and zero groups: two or three bulk copies)
//   through a ring of shared-memory slots, each with a "full" barrier
//   (transaction bytes) and an "empty" one (one arrival per consumer thread);
//   the activations are copied once per CTA (they fit: M K 2 bytes);
// - 16 consumer warps: warp w dequantizes tiles w and w + 16 of a stage in
//   registers (qtile_mma.cuh, as the register GEMV) and, after a row tile,
//   leaves its sums in one of kRed reduction buffers without waiting;
// - the reducer (warp 17) adds a row tile's 16 sums in warp order
//   (deterministic) and writes the rows.
// 16 warps because 8 left the SM short of independent work.
// Measured on the H100 (bench_cuda, 4-bit g128, 1-2 tokens): 95-97 % of copy
// bandwidth at the 70B shapes (120 MB), 85 % at 4096x14336 (30 MB), 62 % at
// 8 MB, where a launch's start weighs more (qlinear.cu's AUTO takes it for
// large, wide weights). It is launched as a dependent launch (pdl.cuh): its
// first slots fill while the kernel before still runs (batch 1: 4096x14336
// 15.9 -> 14.5 us, 8192x28672 45.3 -> 42.0; decode 400 -> 411 tokens/s).
// Short launches fit two CTAs an SM and let the next launch go shortly before
// they end, so that its ring fills as this one drains (plan_ring: 4096x14336
// 13.1 -> 12.0 us, 85 % of copy bandwidth).
// On the H200 (4.2 TB/s copy bandwidth) the consumers' instructions bounded it: Nsight Compute
// saw issue slots busy in step with DRAM throughput (58 % at 55 %), ~119 instructions a 512-byte
// tile. Their loop lost a division by the ring size and, in whole stages, its predicates (222 ->
// 162 instructions a stage): batch 1, 8192x28672 41.8 -> 35.8 us (84 % of copy bandwidth through
// AUTO), 4096x14336 11.8 -> 10.0.
// Deliberately not here: the choice of path (qlinear.cu), more than 8 tokens.
#include <string.h>

#include <algorithm>

#include "pdl.cuh"
#include "qkernels.cuh"
#include "qtile_mma.cuh"

namespace {

constexpr int kConsumers = 16;                   // consumer warps
constexpr int kThreads = (kConsumers + 2) * 32;  // + the producer and the reducer warps
constexpr int kStageTiles = 2 * kConsumers;      // k tiles per stage: two per consumer warp
constexpr int kMaxStages = 16;
constexpr int kMinStages = 2;
constexpr int kRed = 2;                          // reduction buffers (row tiles in hand-over)
// Dynamic shared memory of the CTA: at most about kSmemBytes (7 slots of 4-bit tiles), and never
// over kMaxSmemBytes (two slots and large activations). Deeper rings measured no faster when the
// producer copies x (7-16 slots), and slower when the consumers form x (shrink_cuda_xin; H100,
// decode profile: 23.2 us a gate/up or down launch with 7 slots, 24.0 with 10). Fewer slots are
// used where the weight is small or the launch pairs (plan_ring).
constexpr int kSmemBytes = 128 * 1024;
constexpr int kMaxSmemBytes = 200 * 1024;
// Dynamic shared memory that lets two CTAs share an SM (228 KB, 1 KB reserved a CTA, about 17 KB
// static: the reduction buffers).
constexpr size_t kPairSmemBytes = 96 * 1024;
constexpr int kMaxWeights = 3;
constexpr int kMaxTokens = 8;

struct tma_weight {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	void *y;
	int N, rt_begin; // rows; first row tile of this weight in the launch
};

struct tma_args {
	tma_weight w[kMaxWeights];
	int n_weights;
	const void *x;
	int64_t ldx;
	int M;
	int k_tiles, n_groups, gshift;
	int row_tiles, stages;  // of the launch; ring slots
	int trigger;            // the next kernel may launch once a CTA has this many stages left; < 0: at the start
	uint32_t x_row_bytes;   // k_tiles * 128: one token's activations in shared memory
	uint32_t group_bytes;   // scale (or zero) bytes of a slot: max groups of a stage * 32
	// activations formed by the consumers (shrink_cuda_xin; PLAIN: the producer copies x)
	int xop;
	const void *up;         // SWIGLU: x is the gate
	const float *res;       // ADD_RMSNORM: x (may be NULL) is added to res
	const __half *norm_w;
	float eps;
};

// The weight of row tile r (selects, not a run-time index into the parameters).
__device__ __forceinline__ tma_weight weight_of(const tma_args &a, int r)
{
	const int wi = a.n_weights > 2 && r >= a.w[2].rt_begin ? 2 : a.n_weights > 1 && r >= a.w[1].rt_begin ? 1 : 0;
	return wi == 0 ? a.w[0] : wi == 1 ? a.w[1] : a.w[2];
}

// Stage (row tile r, k tiles [k0, k0 + nt)) and its groups [g0, g0 + ng).
struct stage_t {
	int r, k0, nt, g0, ng;
};

__device__ __forceinline__ stage_t stage_at(const tma_args &a, int r, int s)
{
	stage_t st;
	st.r = r, st.k0 = s * kStageTiles, st.nt = min(kStageTiles, a.k_tiles - st.k0);
	st.g0 = (st.k0 * 64) >> a.gshift;
	st.ng = (((st.k0 + st.nt) * 64 - 1) >> a.gshift) - st.g0 + 1;
	return st;
}

template <int BITS> __host__ __device__ constexpr uint32_t codes_bytes()
{
	return (uint32_t)kStageTiles * qtile_bytes(BITS);
}

// The first stages of weights (no kernel writes them: they may stream while the kernel before
// this one ends, pdl.cuh), then the activations (all of them, M K 2 bytes; unless the consumers
// form them), then the remaining stages as the consumers free slots; a.trigger stages before the
// last, the next kernel may launch (plan_ring).
template <int BITS, bool SYM>
__device__ void produce(const tma_args &a, int r0, int r1, uint32_t ring, uint32_t slot_bytes, uint32_t full,
			uint32_t empty, uint32_t xs, uint32_t xbar, size_t elem)
{
	const int per_rt = (a.k_tiles + kStageTiles - 1) / kStageTiles, n = (r1 - r0) * per_rt;
	const auto issue = [&](int i) {
		const int slot = i % a.stages, r = r0 + i / per_rt;
		const stage_t st = stage_at(a, r, i % per_rt);
		const tma_weight W = weight_of(a, r);
		const size_t lr = (size_t)(r - W.rt_begin);
		const uint32_t cb = (uint32_t)st.nt * qtile_bytes(BITS), gb = (uint32_t)st.ng * 32;
		const uint32_t dst = ring + slot * slot_bytes, bar = full + 8 * slot;
		mbar_expect_tx(bar, cb + (SYM ? 1 : 2) * gb);
		bulk_copy(dst, W.qw + (lr * a.k_tiles + st.k0) * qtile_bytes(BITS), cb, bar);
		const size_t gi = (lr * a.n_groups + st.g0) * 8;
		bulk_copy(dst + codes_bytes<BITS>(), W.scales + gi, gb, bar);
		if (!SYM)
			bulk_copy(dst + codes_bytes<BITS>() + a.group_bytes, W.zeros + gi, gb, bar);
	};
	const int first = n < a.stages ? n : a.stages;
	const auto issue_and_trigger = [&](int i) {
		issue(i);
		if (a.trigger >= 0 && i == max(n - 1 - a.trigger, 0))
			launch_dependents();
	};
	for (int i = 0; i < first; i++)
		issue_and_trigger(i);
	wait_prerequisites();
	if (a.xop == SHRINK_CUDA_XIN_PLAIN) {
		mbar_expect_tx(xbar, (uint32_t)a.M * a.x_row_bytes);
		for (int m = 0; m < a.M; m++)
			bulk_copy(xs + m * a.x_row_bytes, static_cast<const uint8_t *>(a.x) + (size_t)m * a.ldx * elem,
				  a.x_row_bytes, xbar);
	}
	for (int i = first; i < n; i++) {
		mbar_wait(empty + 8 * (i % a.stages), ((i / a.stages) - 1) & 1); // the slot's previous stage is used
		issue_and_trigger(i);
	}
}

// Sum over the consumer warps (named barrier 1; the producer and reducer never join it), in warp
// order: every consumer thread gets the same value.
__device__ __forceinline__ float consumers_sum(float v, float *scratch)
{
	v = warp_sum(v);
	if ((threadIdx.x & 31) == 0)
		scratch[threadIdx.x >> 5] = v;
	asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers * 32) : "memory");
	float s = 0.0f;
#pragma unroll
	for (int w = 0; w < kConsumers; w++)
		s += scratch[w];
	return s;
}

// The consumers form the activations in shared memory (shrink_cuda_xin; K = 64 k_tiles, 8 columns
// a chunk) while the producer already streams the weights: the SwiGLU or RMSNorm that ran as a
// kernel of its own before the GEMV costs no launch here. It is on the consumers' critical path,
// so a thread issues the loads of kRound chunks before it uses any (one chunk at a time measured
// 2.3 us a launch on the H100: a round trip to L2 per chunk), and the RMSNorm keeps its row in
// registers between its two passes where one round covers it (K <= 16384).
constexpr int kRound = 4;

template <typename T> __device__ void form_swiglu(const tma_args &a, int m, uint32_t xm)
{
	constexpr int NT = kConsumers * 32;
	const int K8 = a.k_tiles * 8;
	const uint4 *g4 = reinterpret_cast<const uint4 *>(static_cast<const T *>(a.x) + (size_t)m * a.ldx);
	const uint4 *u4 = reinterpret_cast<const uint4 *>(static_cast<const T *>(a.up) + (size_t)m * a.ldx);
	for (int c0 = threadIdx.x; c0 < K8; c0 += kRound * NT) {
		uint4 gv[kRound], uv[kRound];
#pragma unroll
		for (int u = 0; u < kRound; u++) {
			const int c = c0 + u * NT;
			gv[u] = c < K8 ? g4[c] : make_uint4(0, 0, 0, 0);
			uv[u] = c < K8 ? u4[c] : make_uint4(0, 0, 0, 0);
		}
#pragma unroll
		for (int u = 0; u < kRound; u++) {
			if (c0 + u * NT >= K8)
				break;
			uint4 o;
			const T *gp = reinterpret_cast<const T *>(&gv[u]), *up = reinterpret_cast<const T *>(&uv[u]);
			T *op = reinterpret_cast<T *>(&o);
#pragma unroll
			for (int e = 0; e < 8; e++) {
				const float gf = dtype_traits<T>::to_f(gp[e]), uf = dtype_traits<T>::to_f(up[e]);
				op[e] = dtype_traits<T>::from_f(silu_mul(gf, uf));
			}
			sts128(xm + 16 * (c0 + u * NT), o);
		}
	}
}

// res + x of chunks c0 + u NT (zero past the row) and their norm weights.
__device__ __forceinline__ void norm_round(const tma_args &a, int m, int c0, float (&v)[kRound][8],
					   uint4 (&wv)[kRound])
{
	constexpr int NT = kConsumers * 32;
	const int K8 = a.k_tiles * 8, K = 8 * K8;
	const float4 *r4 = reinterpret_cast<const float4 *>(a.res + (size_t)m * K);
	const uint4 *p4 = a.x ? reinterpret_cast<const uint4 *>(static_cast<const __half *>(a.x) + (size_t)m * a.ldx)
			      : nullptr;
	const uint4 *w4 = reinterpret_cast<const uint4 *>(a.norm_w);
	float4 lo[kRound], hi[kRound];
	uint4 pv[kRound];
#pragma unroll
	for (int u = 0; u < kRound; u++) {
		const int c = c0 + u * NT;
		const bool ok = c < K8;
		lo[u] = ok ? r4[2 * c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
		hi[u] = ok ? r4[2 * c + 1] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
		pv[u] = ok && p4 ? p4[c] : make_uint4(0, 0, 0, 0);
		wv[u] = ok ? w4[c] : make_uint4(0, 0, 0, 0);
	}
#pragma unroll
	for (int u = 0; u < kRound; u++) {
		const __half2 *ph = reinterpret_cast<const __half2 *>(&pv[u]);
		const float r[8] = {lo[u].x, lo[u].y, lo[u].z, lo[u].w, hi[u].x, hi[u].y, hi[u].z, hi[u].w};
#pragma unroll
		for (int e = 0; e < 4; e++) {
			const float2 f = __half22float2(ph[e]); // zero when there is no pending row
			v[u][2 * e] = r[2 * e] + f.x, v[u][2 * e + 1] = r[2 * e + 1] + f.y;
		}
	}
}

// As add_rmsnorm_kernel (backend.cu), the residual left as it is. T is __half.
__device__ void form_rmsnorm(const tma_args &a, int m, uint32_t xm, float *scratch)
{
	constexpr int NT = kConsumers * 32;
	const int K8 = a.k_tiles * 8;
	const bool cached = K8 <= kRound * NT;
	float v[kRound][8];
	uint4 wv[kRound];
	float ss = 0.0f;
	for (int c0 = threadIdx.x; c0 < K8; c0 += kRound * NT) {
		norm_round(a, m, c0, v, wv);
#pragma unroll
		for (int u = 0; u < kRound; u++)
#pragma unroll
			for (int e = 0; e < 8; e++)
				ss += v[u][e] * v[u][e];
	}
	const float scale = rms_scale(consumers_sum(ss, scratch), 8 * K8, a.eps);
	for (int c0 = threadIdx.x; c0 < K8; c0 += kRound * NT) {
		if (!cached)
			norm_round(a, m, c0, v, wv);
#pragma unroll
		for (int u = 0; u < kRound; u++) {
			if (c0 + u * NT >= K8)
				break;
			const __half2 *wh = reinterpret_cast<const __half2 *>(&wv[u]);
			uint4 o;
			uint32_t *ow = reinterpret_cast<uint32_t *>(&o);
#pragma unroll
			for (int e = 0; e < 4; e++) {
				const float2 wf = __half22float2(wh[e]);
				ow[e] = as_u32(__floats2half2_rn(v[u][2 * e] * scale * wf.x, v[u][2 * e + 1] * scale * wf.y));
			}
			sts128(xm + 16 * (c0 + u * NT), o);
		}
	}
}

template <typename T> __device__ void form_x(const tma_args &a, uint32_t xs, float (*scratch)[kConsumers])
{
	for (int m = 0; m < a.M; m++) {
		if (a.xop == SHRINK_CUDA_XIN_SWIGLU)
			form_swiglu<T>(a, m, xs + m * a.x_row_bytes);
		else
			form_rmsnorm(a, m, xs + m * a.x_row_bytes, scratch[m]);
	}
	asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers * 32) : "memory"); // every consumer's columns are in place
}

// The scale group of k tile j (FOLD: the tile's; else that of the lane's 16 columns).
template <bool FOLD> __device__ __forceinline__ int group_of(const tma_args &a, int j, int t)
{
	return FOLD ? (j * 64) >> a.gshift : (j * 64 + 16 * t) >> a.gshift;
}

// A full stage (32 k tiles within K) starts at a multiple of 2048 columns, so at a multiple of any
// power-of-two group up to 2048 columns and inside one group beyond: its lanes' addresses of codes,
// scales and zeros in a slot are the same for every full stage.
template <int BITS, bool FOLD>
__device__ __forceinline__ uint32_t full_group_offset(const tma_args &a, int j, int g, int t)
{
	return codes_bytes<BITS>() + group_of<FOLD>(a, j, t) * 32 + 4 * g;
}

// A lane's addresses in ring slot 0 of its tiles of a full stage (tiles warp + 16 u): codes by
// plane (of its first tile) and scales (the zero points lie group_bytes after them: holding their
// addresses too spilled in the 4-bit asymmetric loop). They are held in registers (opaque): ptxas
// otherwise recomputed them in every stage (146 -> 123 instructions a stage at 4 bits, H200 batch 1
// 4096x14336 9.9 -> 9.3 us; the loop is issue-bound at the long shapes, 8192x28672 34.4 -> 32.3-33.8).
template <int BITS, bool SYM, bool FOLD> struct full_lanes {
	uint32_t codes[qplane_count(BITS)], scales[2];
	__device__ __forceinline__ full_lanes(const tma_args &a, uint32_t ring, int warp, int lane)
	{
#pragma unroll
		for (int pl = 0; pl < qplane_count(BITS); pl++)
			codes[pl] = opaque(ring + warp * qtile_bytes(BITS) + qword_offset(BITS, pl, 0, lane));
#pragma unroll
		for (int u = 0; u < 2; u++) {
			const int j = warp + kConsumers * u;
			scales[u] = opaque(ring + full_group_offset<BITS, FOLD>(a, j, lane >> 2, lane & 3));
		}
	}
};

template <typename T, int BITS, bool SYM, bool FOLD, bool FORM>
__device__ void consume(const tma_args &a, int r0, int r1, uint32_t xs, uint32_t ring, uint32_t slot_bytes,
			uint32_t full, uint32_t empty, uint32_t red_full, uint32_t red_empty, float (*red)[kConsumers][128])
{
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int per_rt = (a.k_tiles + kStageTiles - 1) / kStageTiles, full_rt = a.k_tiles / kStageTiles;
	// Lanes of tokens past M read token M - 1's activations in whole stages (or, where FORM, keep
	// zeros): their columns of the MMA are never stored.
	const uint32_t xrow = xs + (uint32_t)min(g, a.M - 1) * a.x_row_bytes + 32 * t;
	const full_lanes<BITS, SYM, FOLD> at(a, ring, warp, lane);
	ring_pos pos;
	uint32_t w[2][BITS], sc[2], zp[2];
	uint4 xv[2][1][2] = {};
	const bool xlane = g < a.M;
	// A full stage in slot offset so; its activations from xk, 16 tiles (2048 bytes) apart.
	const auto load_full = [&](uint32_t so, uint32_t xk) {
		uint32_t codes[qplane_count(BITS)];
#pragma unroll
		for (int pl = 0; pl < qplane_count(BITS); pl++)
			codes[pl] = at.codes[pl] + so;
#pragma unroll
		for (int u = 0; u < 2; u++) {
			uint32_t c[qplane_count(BITS)];
#pragma unroll
			for (int pl = 0; pl < qplane_count(BITS); pl++)
				c[pl] = codes[pl] + kConsumers * u * qtile_bytes(BITS);
			qtile_load_lanes<BITS>(c, w[u]);
			sc[u] = lds32(at.scales[u] + so);
			zp[u] = SYM ? 0u : lds32(at.scales[u] + so + a.group_bytes);
			// Where the consumers form x (the decode MLP: one CTA an SM, no register cap), lanes of
			// columns past M skip their activations' loads: a step of the 8B-shaped 4-bit
			// model's decode 2028-2041 -> 2000-2011 us (H200). Under the paired launches' 56
			// registers ptxas branches around them instead, and batch 1 lost 7-17 %.
			if constexpr (FORM) {
				lds128_if(xlane, xk + 2048 * u, xv[u][0][0]), lds128_if(xlane, xk + 2048 * u + 16, xv[u][0][1]);
			} else {
				xv[u][0][0] = lds128(xk + 2048 * u), xv[u][0][1] = lds128(xk + 2048 * u + 16);
			}
		}
	};
	// The short last stage of a row tile (K not a multiple of 2048): tiles past K are zero.
	const auto load_tail = [&](const stage_t &st, uint32_t base) {
#pragma unroll
		for (int u = 0; u < 2; u++) {
			const int j = warp + kConsumers * u, kt = st.k0 + j;
			const bool ok = j < st.nt;
			if (ok) {
				qtile_load_at<BITS>(base + j * qtile_bytes(BITS), lane, w[u]);
			} else {
#pragma unroll
				for (int b = 0; b < BITS; b++)
					w[u][b] = 0;
			}
			const uint32_t go = base + codes_bytes<BITS>() + (group_of<FOLD>(a, kt, t) - st.g0) * 32 + 4 * g;
			sc[u] = ok ? lds32(go) : 0u;
			zp[u] = !SYM && ok ? lds32(go + a.group_bytes) : 0u;
			if (ok) {
				xv[u][0][0] = lds128(xrow + kt * 128), xv[u][0][1] = lds128(xrow + kt * 128 + 16);
			} else {
				xv[u][0][0] = xv[u][0][1] = make_uint4(0, 0, 0, 0);
			}
		}
	};
	// Every lane arrives once its loads are done (the empty barriers count them all: no warp
	// synchronisation), and the producer may refill the slot while the MMAs run.
	const auto release = [&] {
		mbar_arrive(empty + 8 * pos.slot);
		pos.step(a.stages);
	};
	const auto multiply = [&](float (&acc)[1][4]) {
#pragma unroll
		for (int u = 0; u < 2; u++)
			qtile_mma<T, BITS, SYM, FOLD, 1>(w[u], sc[u], zp[u], xv[u], acc);
	};
	// Row tile q's sums go to the reducer once row tile q + 1's first stage is loaded and its slot
	// released: storing them waits for q's last MMAs, which so overlap those loads instead of
	// delaying them. A globaltimer trace inside the bench's graph (H200, batch 1) found the
	// consumers, not the stream, setting the pace (a stage every ~0.48 us, its data there long
	// before), and the first stage of each row tile taking ~0.25 us longer than the others;
	// this took 8192x8192 from 11.0 to 10.6 us, 14336x4096 from 10.0 to 9.6.
	float acc[1][4];
	const auto hand_over = [&](int q) {
		const int b = q % kRed;
		if (q >= kRed)
			mbar_wait(red_empty + 8 * b, ((q / kRed) - 1) & 1);
#pragma unroll
		for (int c = 0; c < 4; c++)
			red[b][warp][c * 32 + lane] = acc[0][c];
		mbar_arrive(red_full + 8 * b);
	};
	const auto begin_row = [&](int r) {
		if (r > r0)
			hand_over(r - 1 - r0);
		acc[0][0] = acc[0][1] = acc[0][2] = acc[0][3] = 0.0f;
	};
	for (int r = r0; r < r1; r++) {
		// the row tile's first stage, peeled off the loop below rather than a branch in it (and
		// written out: a lambda shared with the loop made ptxas spill in the row tiles' loop)
		uint32_t xk = opaque(xrow + warp * 128);
		mbar_wait(full + 8 * pos.slot, pos.parity);
		if (full_rt > 0)
			load_full(pos.slot * slot_bytes, xk);
		else
			load_tail(stage_at(a, r, 0), ring + pos.slot * slot_bytes);
		release();
		begin_row(r);
		multiply(acc);
		xk += kStageTiles * 128;
		for (int s = 1; s < full_rt; s++, xk += kStageTiles * 128) {
			mbar_wait(full + 8 * pos.slot, pos.parity);
			load_full(pos.slot * slot_bytes, xk);
			release();
			multiply(acc);
		}
		if (full_rt > 0 && full_rt < per_rt) {
			mbar_wait(full + 8 * pos.slot, pos.parity);
			load_tail(stage_at(a, r, full_rt), ring + pos.slot * slot_bytes);
			release();
			multiply(acc);
		}
	}
	if (r1 > r0)
		hand_over(r1 - 1 - r0);
}

// Rows of the CTA's row tiles, as the consumers hand them over: lane l sums element
// e = 32 c + l of the 16 warps' sums (warp order).
template <typename T>
__device__ void reduce(const tma_args &a, int r0, int r1, uint32_t red_full, uint32_t red_empty,
		       float (*red)[kConsumers][128])
{
	const int lane = threadIdx.x & 31;
	for (int r = r0; r < r1; r++) {
		const int q = r - r0, b = q % kRed;
		mbar_wait(red_full + 8 * b, (q / kRed) & 1);
		const tma_weight W = weight_of(a, r);
		const int lr = r - W.rt_begin;
#pragma unroll
		for (int c = 0; c < 4; c++) {
			float v = 0.0f;
#pragma unroll
			for (int k = 0; k < kConsumers; k++)
				v += red[b][k][c * 32 + lane];
			const int row = lr * 16 + (lane >> 2) + 8 * (c >> 1), tok = 2 * (lane & 3) + (c & 1);
			if (row < W.N && tok < a.M)
				static_cast<T *>(W.y)[(size_t)tok * W.N + row] = dtype_traits<T>::from_f(v);
		}
		mbar_arrive(red_empty + 8 * b);
	}
}

// FORM: the consumers form the activations (a.xop != PLAIN); form_x needs more registers. Without
// it the CTA fits in half an SM (registers and, where plan_ring pairs, shared memory), so the next
// launch's CTAs land beside these and ask for their weights while this launch drains.
template <typename T, int BITS, bool SYM, bool FOLD, bool FORM>
__global__ void __launch_bounds__(kThreads, FORM ? 1 : 2) qgemv_tma_kernel(const tma_args a)
{
	if (a.trigger < 0)
		launch_dependents(); // the next GEMV may take this SM once this CTA leaves
	extern __shared__ __align__(128) uint8_t smem[];
	// full[stages], empty[stages], x, red_full[kRed], red_empty[kRed]
	__shared__ __align__(8) uint64_t bars[2 * kMaxStages + 1 + 2 * kRed];
	__shared__ float red[kRed][kConsumers][128];
	__shared__ float xsum[kMaxTokens][kConsumers]; // form_x's RMSNorm sums
	const int r0 = (int)((int64_t)blockIdx.x * a.row_tiles / gridDim.x);
	const int r1 = (int)((int64_t)(blockIdx.x + 1) * a.row_tiles / gridDim.x);
	const uint32_t full = smem_u32(bars), empty = full + 8 * kMaxStages, xbar = full + 16 * kMaxStages;
	const uint32_t red_full = xbar + 8, red_empty = red_full + 8 * kRed;
	const uint32_t xs = smem_u32(smem), ring = xs + (uint32_t)a.M * a.x_row_bytes;
	const uint32_t slot_bytes = codes_bytes<BITS>() + (SYM ? 1 : 2) * a.group_bytes;
	if (threadIdx.x == 0) {
		for (int s = 0; s < a.stages; s++) {
			mbar_init(full + 8 * s, 1);
			mbar_init(empty + 8 * s, kConsumers * 32);
		}
		mbar_init(xbar, 1);
		for (int b = 0; b < kRed; b++) {
			mbar_init(red_full + 8 * b, kConsumers * 32); // every lane arrives: its own writes
			mbar_init(red_empty + 8 * b, 32);
		}
		asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
	}
	__syncthreads();
	if (threadIdx.x >> 5 == kConsumers) {
		if (threadIdx.x == kConsumers * 32) // waits for the kernel before once its first stages are asked for
			produce<BITS, SYM>(a, r0, r1, ring, slot_bytes, full, empty, xs, xbar, sizeof(T));
		return;
	}
	wait_prerequisites(); // x is the output of the kernel before; y may be its input
	if (threadIdx.x >> 5 == kConsumers + 1) {
		reduce<T>(a, r0, r1, red_full, red_empty, red);
		return;
	}
	if (FORM)
		form_x<T>(a, xs, xsum);
	else
		mbar_wait(xbar, 0);
	consume<T, BITS, SYM, FOLD, FORM>(a, r0, r1, xs, ring, slot_bytes, full, empty, red_full, red_empty, red);
}

template <typename T, int BITS, bool SYM, bool FOLD, bool FORM>
cudaError_t launch_form(const tma_args &a, int ctas, size_t smem, cudaStream_t stream)
{
	constexpr auto k = qgemv_tma_kernel<T, BITS, SYM, FOLD, FORM>;
	const cudaError_t e = allow_smem<k>(kMaxSmemBytes, !FORM); // !FORM: two CTAs an SM may pair
	if (e != cudaSuccess)
		return e;
	return launch_dependent(k, dim3(ctas), dim3(kThreads), smem, stream, a);
}

template <typename T, int BITS, bool SYM, bool FOLD>
cudaError_t launch(const tma_args &a, int ctas, size_t smem, cudaStream_t stream)
{
	return a.xop == SHRINK_CUDA_XIN_PLAIN ? launch_form<T, BITS, SYM, FOLD, false>(a, ctas, smem, stream)
					       : launch_form<T, BITS, SYM, FOLD, true>(a, ctas, smem, stream);
}

template <typename T, int BITS>
cudaError_t launch_bits(const tma_args &a, int ctas, size_t smem, cudaStream_t s, bool sym, bool fold)
{
	if (sym && fold)
		return launch<T, BITS, true, true>(a, ctas, smem, s);
	if (sym)
		return launch<T, BITS, true, false>(a, ctas, smem, s);
	if (fold)
		return launch<T, BITS, false, true>(a, ctas, smem, s);
	return launch<T, BITS, false, false>(a, ctas, smem, s);
}

template <typename T>
cudaError_t launch_type(const tma_args &a, int ctas, size_t smem, cudaStream_t s, int bits, bool sym, bool fold)
{
	switch (bits) {
	case 2: return launch_bits<T, 2>(a, ctas, smem, s, sym, fold);
	case 3: return launch_bits<T, 3>(a, ctas, smem, s, sym, fold);
	case 4: return launch_bits<T, 4>(a, ctas, smem, s, sym, fold);
	case 5: return launch_bits<T, 5>(a, ctas, smem, s, sym, fold);
	case 6: return launch_bits<T, 6>(a, ctas, smem, s, sym, fold);
	default: return launch_bits<T, 8>(a, ctas, smem, s, sym, fold);
	}
}

// Scale (or zero) bytes a slot needs: a stage covers C = 64 kStageTiles columns from a multiple
// of C, so with power-of-two groups it holds C / group_size groups, or one.
uint32_t group_bytes_of(const shrink_cuda_qweight *w)
{
	const uint32_t cols = 64u * kStageTiles;
	const int gs = qgroup_shift(w);
	return 32u * (gs >= 31 || (1u << gs) >= cols ? 1u : cols >> gs);
}

size_t slot_bytes_of(const shrink_cuda_qweight *w)
{
	return (size_t)kStageTiles * 128 * w->bits + (w->symmetric ? 1 : 2) * group_bytes_of(w);
}

// The most ring slots that fit beside M tokens of activations; 0: none fit.
int stages_for(const shrink_cuda_qweight *w, int M)
{
	const size_t x = (size_t)M * w->k_tiles * 128, slot = slot_bytes_of(w);
	size_t n = x < kSmemBytes ? (kSmemBytes - x) / slot : 0;
	n = n < kMinStages ? kMinStages : n > kMaxStages ? kMaxStages : n;
	return x + n * slot <= kMaxSmemBytes ? (int)n : 0;
}

// The call's weights (qcall.n_weights: w, then more[]), and their row tiles end to end.
int weights_in(const qcall *c)
{
	return c->n_weights > 1 ? c->n_weights : 1;
}
const shrink_cuda_qweight *weight_at(const qcall *c, int i)
{
	return i ? c->more[i - 1] : c->w;
}
int64_t launch_row_tiles(const qcall *c)
{
	int64_t rt = 0;
	for (int i = 0; i < weights_in(c); i++)
		rt += weight_at(c, i)->row_tiles;
	return rt;
}

// The launch's ring and when it lets the next kernel launch.
struct ring_plan {
	int ctas, stages;
	int trigger; // the next kernel may launch once a CTA has this many stages left to ask for; -1: at the start
};

// Slots a CTA uses: every CTA asks for its whole ring at once, and its first slot tends to land
// only as that burst drains, so the burst is held to about a third of the launch's weight (at
// least kMinSlots). H100, batch 1, us with 7 slots -> 4 (3): 4096x14336 14.4 -> 13.0 (13.0),
// 14336x4096 13.6 -> 12.7 (12.8), 8192x8192 14.7 -> 14.1 (14.1); at 120 MB 7 slots stay
// (8192x28672 42.0; 4 slots 42.4, 3 slots 43.8). The H200 streams 1.4 times the H100's bytes and
// wants 5 where a third is fewer (batch 1, us, 4 -> 5 slots: 4096x14336 10.6 -> 9.9; 3 slots
// 11.1). A paired CTA holds at most 5 slots of 4-bit g128 at K = 4096 and 4 at K = 8192-14336
// (the activations take the rest), so there the minimum changes nothing (14336x4096 10.3,
// 8192x8192 11.2 either way).
//
// Short launches (a CTA streams at most kPairMaxStages) where the producer copies x also pair: the
// ring stays within kPairSmemBytes (at least 3 slots), so two CTAs share an SM, and the next
// launch is let go kTriggerStages stages before a CTA's last. Its CTAs then land beside these and
// fill their rings as this launch drains; let go at the start, they fill them while it still
// streams and DRAM idles at its end. H100, batch 1, us, unpaired -> paired and let go at the start
// -> 4 stages before the end: 4096x14336 13.1 -> 12.9 -> 12.0, 14336x4096 12.7 -> 12.7 -> 11.8,
// 8192x8192 14.5 -> 14.0 -> 13.0, 4096x4096 5.6 -> 4.7 -> 4.7; 6 stages: 12.6, 12.2, 13.8; 9: 14.1,
// 13.4, 14.8. Never after a CTA has ended: the next launch could then put two CTAs on its SM (at 0-2
// stages 14336x4096 took 17-18 us). Long launches keep their deeper rings: at 8192x28672, paired
// and let go at 4 stages, 42.3-44.9 us and 51 at 2 tokens, against 41.9-42.8 unpaired.
// Six stages (H200) since the consumers' loop lost its division and predicates: their stages go
// faster, and 4 stages before the end came too late at 14336x4096 (batch 1, us, let go at 4 -> 6
// stages: 14336x4096 14.5 -> 10.2, 4096x14336 10.0 -> 10.5, 8192x8192 11.2 -> 11.2; at the start:
// 10.3, 10.5, 11.6; at 8: 11.2, 11.2, 12.2).
constexpr int kMinSlots = 5;
constexpr int kPairMaxStages = 32;
constexpr int kTriggerStages = 6;

ring_plan plan_ring(const shrink_cuda_ctx *ctx, const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	const int64_t rt = launch_row_tiles(c);
	ring_plan p;
	p.ctas = (int)(rt < ctx->n_sms ? rt : ctx->n_sms);
	const size_t x = (size_t)c->M * w->k_tiles * 128, slot = slot_bytes_of(w);
	const int64_t per_cta = ceil_div64(rt * ceil_div64(w->k_tiles, kStageTiles), p.ctas);
	const size_t pair = x < kPairSmemBytes ? (kPairSmemBytes - x) / slot : 0;
	const bool pairs = !c->xin && per_cta <= kPairMaxStages && pair >= 3;
	int most = stages_for(w, c->M);
	if (pairs && pair < (size_t)most)
		most = (int)pair;
	// a third of the launch's stages a CTA, at least kMinSlots, at most what fits
	const size_t third = (size_t)rt * w->k_tiles / (3 * (size_t)kStageTiles * p.ctas);
	p.stages = (int)std::min((size_t)most, std::max(third, (size_t)kMinSlots));
	p.trigger = pairs ? kTriggerStages : -1;
	return p;
}

} // namespace

bool qgemv_tma_fits(const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	if (c->M < 1 || c->M > kMaxTokens || (c->ldx * 2) % 16 || !aligned16(c->x) ||
	    (w->group_size != 0 && (w->group_size & (w->group_size - 1))) || stages_for(w, c->M) == 0)
		return false;
	for (int i = 0; i < weights_in(c); i++) {
		const shrink_cuda_qweight *wi = weight_at(c, i);
		if (!aligned16(wi->qw) || !aligned16(wi->scales) || (!wi->symmetric && !aligned16(wi->zeros)))
			return false;
	}
	return true;
}

int qgemv_tma_slots(const qcall *c)
{
	return stages_for(c->w, c->M);
}

shrink_status qgemv_tma_launch(shrink_cuda_ctx *ctx, const qcall *c)
{
	const shrink_cuda_qweight *w = c->w;
	tma_args a;
	memset(&a, 0, sizeof a);
	a.n_weights = weights_in(c);
	int64_t rt = 0;
	for (int i = 0; i < a.n_weights; i++) {
		const shrink_cuda_qweight *wi = weight_at(c, i);
		tma_weight &r = a.w[i];
		r.qw = static_cast<const uint8_t *>(wi->qw);
		r.scales = wi->scales, r.zeros = wi->zeros;
		r.y = i ? c->more_y[i - 1] : c->y;
		r.N = (int)wi->rows;
		r.rt_begin = (int)rt;
		rt += wi->row_tiles;
	}
	a.x = c->x, a.ldx = c->ldx, a.M = c->M;
	if (c->xin) {
		a.xop = c->xin->kind, a.x = c->xin->x, a.up = c->xin->up, a.res = c->xin->res;
		a.norm_w = reinterpret_cast<const __half *>(c->xin->norm_w), a.eps = c->xin->eps;
	}
	a.k_tiles = (int)w->k_tiles, a.n_groups = (int)w->n_groups, a.gshift = qgroup_shift(w);
	a.row_tiles = (int)rt;
	const ring_plan rp = plan_ring(ctx, c);
	const int ctas = rp.ctas;
	a.stages = rp.stages;
	a.trigger = rp.trigger;
	a.x_row_bytes = (uint32_t)w->k_tiles * 128;
	a.group_bytes = group_bytes_of(w);
	const size_t smem = (size_t)a.M * a.x_row_bytes + (size_t)a.stages * slot_bytes_of(w);
	const bool fold = w->group_size == 0 || w->group_size >= 64;
	const cudaError_t e = c->dt == SHRINK_CUDA_F16
				      ? launch_type<__half>(a, ctas, smem, ctx->stream, w->bits, w->symmetric, fold)
				      : launch_type<__nv_bfloat16>(a, ctas, smem, ctx->stream, w->bits, w->symmetric, fold);
	return shrink_cuda_check(ctx, e, "qgemv_tma");
}
