// qgemm_wgmma.cu: the quantized GEMM for more tokens than the GEMVs take, on sm_90a: the
// warpgroup MMA (wgmma.cuh) with the weights as the register operand, dequantized by the warps
// that own them, and the activations as the shared-memory operand.
//
// A CTA computes 256 output rows x BN tokens (16, 32, 64 or 128; qgemm.cu's plan picks it and
// the split-K factor) over a range of k tiles, one CTA an SM, warp-specialized:
// - the producer warpgroup (warps 0-3, registers given back) has one thread copy each k tile's
//   stage into a ring of shared-memory slots with four TMA copies: the 16 packed weight tiles
//   (qlayout.cuh), their scales and their zero points (2D tensor maps over [row tile][k], so
//   rows past the weight read as zeros), and the activations, which qgemm.cu has laid out as
//   the descriptor's core matrices (qgemm_layout.cuh); "full" mbarriers count the bytes in,
//   "empty" ones the consumer warps out;
// - two consumer warpgroups (warps 4-11): consumer warp w owns row tiles w and 8 + w, one 64-row
//   MMA of its warpgroup each; it dequantizes one row tile while the other's MMA runs. At 16
//   tokens a block, with groups of 64 columns or more, the weights enter the MMA unscaled and
//   the scales multiply each tile's f32 sums instead (consume_fold).
// Why 256 rows: every CTA reads all of its tokens' activations, BN x 128 bytes a k tile, against
// 32 bytes a row of 4-bit weights: at 128 rows and 128 tokens that was four times the weights'
// bytes, and the GEMM before this one moved ~3.3 TB/s from L2 into the SMs (H100) and stayed
// below cuBLAS. Why tensor maps: the same kernel with one bulk copy per row tile and scale row
// (25 a stage) waited on its copies (Nsight Compute: DRAM 20 % busy) and was slower than that.
// The output goes through shared memory, each 128-row half stored by store_tile_f32
// (epilogue.cuh), or as a split's float partial that qgemm.cu's reduction adds in split order.
// Two splits run as a cluster of two CTAs instead: each stages its sums in its own shared memory
// and stores half of the tile, adding both ranks' sums (store_half_cluster) in split order, so
// neither partials nor a reduction kernel (H100, bench_cuda --linear: 4096x14336 at 32 tokens
// 19.7 -> 18.4 us, at 64 24.9 -> 22.4). Clusters of 3-8 lost: the device holds only 102-120 of
// their CTAs at once (GPCs), so plans of 128 CTAs ran in two waves (14336x4096 at 16 tokens, 8
// splits: 21.8 against 17.3 us), with or without dependent launches.
//
// Deliberately not here: the choice of path (qlinear.cu) and plan (qgemm.cu), the tensor maps'
// encoding (qgemm.cu), swizzled layouts, multicast of the activations across a cluster (lost:
// tests/bench/bench_cuda.md).
#include "epilogue.cuh"
#include "pdl.cuh"
#include "qgemm_layout.cuh"
#include "qkernels.cuh"
#include "qlayout.cuh"
#include "wgmma.cuh"

namespace {

constexpr int kRowTiles = kGemmRowTiles; // 256 rows per CTA
constexpr int kConsumers = 8;     // warps 4-11: two warpgroups, consumer warp w owns row tiles w and 8 + w
constexpr int kThreads = (kConsumers + 4) * 32; // + the producer warpgroup (one thread copies)
// setmaxnreg only moves registers within the CTA's allocation at launch (ptxas's count, 168, x 384
// threads), and an increase beyond it waits forever: 128 x 40 + 256 x 232 <= 384 x 168.
constexpr int kProducerRegs = 40, kConsumerRegs = 232;
constexpr int kScaleBlock = 2048; // bytes of one k tile's scales (or zeros): 16 row tiles x <= 4 groups x 8 pairs
constexpr int kCS = 128 + 4;      // floats per token row of a 128-row half's output staging
constexpr int kMaxStages = 8;

// A stage (one k tile): [16 row tiles][tile], the activations [BN * 128 bytes], then
// [scales, zeros][kScaleBlock].
template <int BITS, int BN> __host__ __device__ constexpr int stage_bytes()
{
	return kRowTiles * qtile_bytes(BITS) + BN * 128 + 2 * kScaleBlock;
}
// Ring slots: as many as fit 200 KB, at most kMaxStages.
template <int BITS, int BN> __host__ __device__ constexpr int stages()
{
	return (200 << 10) / stage_bytes<BITS, BN>() < kMaxStages ? (200 << 10) / stage_bytes<BITS, BN>() : kMaxStages;
}
template <int BITS, int BN> __host__ __device__ constexpr int smem_bytes()
{
	return stages<BITS, BN>() * stage_bytes<BITS, BN>() > 2 * BN * kCS * 4 ? stages<BITS, BN>() * stage_bytes<BITS, BN>()
									       : 2 * BN * kCS * 4;
}

// The producer (one thread): stage i (k tile kt_begin + i) into slot i % NS once the consumers
// freed it. The first two slots' weights are asked for at once, their activations only once the
// kernels before (the layout pass) have finished (pdl.cuh), and the rest of the ring once the
// first stage has landed: a whole ring asked for at once lands in about the time it takes to
// stream, so the first stage, and the first MMA, came late. H100, bench_cuda --linear, us, ring at
// once -> burst of two: 4096x4096 at 64 tokens 13.9 -> 12.2, at 128 17.7 -> 16.3; 8192x8192 at
// 128 41.1 -> 38.6. At 16-32 tokens the H100 lost with it (8192x8192 at 16 tokens 18.1 -> 19.3);
// the H200, which streams 1.4 times the bytes, gains 2-5 % there (tests/bench/bench_cuda.md,
// tenth session of 2026-11-28). Deeper rings did not help on either.
constexpr int kBurst = 2;

template <int BITS, int BN>
__device__ void produce(const qgemm_args &a, const qgemm_maps &m, uint32_t ring, uint32_t full, uint32_t empty,
			int kt_begin, int nk, int rt0, int m0)
{
	constexpr int TB = qtile_bytes(BITS), SB = stage_bytes<BITS, BN>(), NS = stages<BITS, BN>();
	const uint32_t gb = (uint32_t)a.gpt * 32 * kRowTiles; // scale (or zero) bytes of a stage
	const uint32_t bytes = kRowTiles * TB + BN * 128 + (a.zeros ? 2 : 1) * gb;
	const uint8_t *xblock = static_cast<const uint8_t *>(a.x) + (size_t)(m0 / BN) * a.k_tiles * (BN * 128);
	const auto weights = [&](int i) {
		const int kt = kt_begin + i, g0 = ((kt * 64) >> a.gshift) * 8;
		const uint32_t st = ring + (i % NS) * SB, bar = full + 8 * (i % NS);
		mbar_expect_tx(bar, bytes);
		tensor_copy(st, m.w, kt * (TB / 4), rt0, bar);
		tensor_copy(st + kRowTiles * TB + BN * 128, m.s, g0, rt0, bar);
		if (a.zeros)
			tensor_copy(st + kRowTiles * TB + BN * 128 + kScaleBlock, m.z, g0, rt0, bar);
	};
	const auto activations = [&](int i) {
		bulk_copy(ring + (i % NS) * SB + kRowTiles * TB, xblock + (size_t)(kt_begin + i) * (BN * 128), BN * 128,
			  full + 8 * (i % NS));
	};
	const int first = nk < NS ? nk : NS;
	const int burst = kBurst < first ? kBurst : first;
	for (int i = 0; i < burst; i++)
		weights(i);
	wait_prerequisites();
	for (int i = 0; i < burst; i++)
		activations(i);
	if (burst < first) {
		mbar_wait(full, 0); // the first stage has landed
		for (int i = burst; i < first; i++) {
			weights(i);
			activations(i);
		}
	}
	for (int i = first; i < nk; i++) {
		mbar_wait(empty + 8 * (i % NS), ((i / NS) - 1) & 1); // the consumers are done with the slot
		weights(i);
		activations(i);
	}
}

// A row tile's stage as this lane reads it from shared memory: its code words, its scale pair
// and (asymmetric) its zero-point pair.
template <int BITS> struct qraw {
	uint32_t w[BITS], s, z;
};

template <int BITS, bool SYM, int BN>
__device__ __forceinline__ void load_raw(const uint8_t *st, int lt, int gpt, int gl, qraw<BITS> &r)
{
	constexpr int TB = qtile_bytes(BITS);
	const int lane = threadIdx.x & 31, g = lane >> 2;
	const uint32_t *ss = reinterpret_cast<const uint32_t *>(st + kRowTiles * TB + BN * 128);
	qtile_load_at<BITS>(qplain{st + lt * TB}, lane, r.w);
	r.s = ss[(lt * gpt + gl) * 8 + g];
	r.z = SYM ? 0u : ss[kScaleBlock / 4 + (lt * gpt + gl) * 8 + g];
}

// Both of this warp's row tiles (w and 8 + w) of the stage at st.
template <int BITS, bool SYM, int BN>
__device__ __forceinline__ void load_stage(const uint8_t *st, int warp, int gpt, int gl, qraw<BITS> &R0,
					   qraw<BITS> &R1)
{
	load_raw<BITS, SYM, BN>(st, warp, gpt, gl, R0);
	load_raw<BITS, SYM, BN>(st, kConsumers + warp, gpt, gl, R1);
}

// Pin the registers of v before the first MMA: left to itself, the compiler zeroes the second
// of two accumulators while the first MMA runs, and ptxas then waits for that MMA.
template <int BN> __device__ __forceinline__ void pin(float (&v)[2][BN / 2])
{
#pragma unroll
	for (int h = 0; h < 2; h++)
#pragma unroll
		for (int i = 0; i < BN / 2; i++)
			asm volatile("" : "+f"(v[h][i])::"memory");
}

// This warp's A fragments of one k tile, k16 steps 0..3: (q - z) x scale for its row tile, or
// without SCALED (consume_fold: groups of >= 64 columns, one scale a row and tile) the exact
// q - z, for fold() to scale the tile's f32 sums.
template <typename T, int BITS, bool SYM, bool SCALED>
__device__ __forceinline__ void dequant(const qraw<BITS> &r, uint32_t (&A)[4][4])
{
	uint32_t s0 = 0, s1 = 0;
	if (SCALED)
		qscale_t2<T>(r.s, s0, s1);
	qzero z0, z1;
	if (SYM) {
		z0 = z1 = qzero_make<T, BITS>(1 << (BITS - 1));
	} else {
		z0 = qzero_make<T, BITS>(r.z & 0xffffu);
		z1 = qzero_make<T, BITS>(r.z >> 16);
	}
	static_for<0, 4>([&](auto step) {
		constexpr int s = decltype(step)::value;
		qfragment<T, BITS, s>(r.w, z0, z1, A[s]);
		if (SCALED) {
			A[s][0] = t2_mul<T>(A[s][0], s0), A[s][1] = t2_mul<T>(A[s][1], s1);
			A[s][2] = t2_mul<T>(A[s][2], s0), A[s][3] = t2_mul<T>(A[s][3], s1);
		}
	});
}

// The two rows' scales of a lane's tile (row g, row g + 8), as fold() takes them.
template <int BITS> __device__ __forceinline__ float2 row_scales(const qraw<BITS> &r)
{
	return __half22float2(from_u32<__half2>(r.s));
}

// acc += the tile's sums (tile, its MMA done) x its rows' scales (row_scales): registers
// 4 j + c hold row g + 8 (c >> 1) (wgmma.cuh).
template <int BN> __device__ __forceinline__ void fold(const float (&tile)[BN / 2], float2 f, float (&acc)[BN / 2])
{
#pragma unroll
	for (int i = 0; i < BN / 2; i++)
		acc[i] = fmaf((i & 2) ? f.y : f.x, tile[i], acc[i]);
}

// The low word of the descriptor of a slot's activations (wgmma_desc): only its address field
// changes from slot to slot and step to step, and never carries (shared memory is below 256 KB),
// so a stage's four descriptors are one add each. Built from scratch per MMA, they were ~24
// instructions a row tile and stage, a quarter of the consumer loop (SASS).
template <int BITS, int BN> __device__ __forceinline__ uint32_t xdesc_lo(const uint8_t *st)
{
	constexpr uint32_t k_step = (BN / 8) * 128; // bytes between core matrices along K (qgemm_layout.cuh)
	return wgmma_desc_lo(smem_u32(st + kRowTiles * qtile_bytes(BITS)), k_step);
}

// The tile's four k16 steps, issued asynchronously as one wgmma group; dlo from xdesc_lo. FOLD:
// the first step overwrites acc (the tile's own sums), else all add to it.
template <typename T, int BN, bool FOLD>
__device__ __forceinline__ void mma_tile(uint32_t dlo, const uint32_t (&A)[4][4], float (&acc)[BN / 2])
{
	constexpr uint32_t k_step = (BN / 8) * 128, n_step = 128; // qgemm_layout.cuh
	wgmma_fence();
#pragma unroll
	for (int s = 0; s < 4; s++)
		wgmma_rs<T, BN>::run(acc, A[s], wgmma_desc(dlo + 2 * s * (k_step >> 4), wgmma_desc_hi(n_step)),
				     FOLD && s == 0 ? 0 : 1);
	wgmma_commit();
}

// This warp is done with a slot (its MMA has read it).
__device__ __forceinline__ void release(uint32_t empty, int slot)
{
	__syncwarp();
	if ((threadIdx.x & 31) == 0)
		mbar_arrive(empty + 8 * slot);
}

// The consumer warps: row tile w's MMA of a stage runs while row tile 8 + w is dequantized, and
// row tile 8 + w's while the next stage's row tile w is; a slot is freed once both of its MMAs
// are done. The last stage's second half is outside the loop: ptxas serializes MMAs that sit
// behind a branch, or whose register inputs it sees written while an MMA is pending.
template <typename T, int BITS, bool SYM, int BN>
__device__ __forceinline__ void consume(const uint8_t *ring, uint32_t full, uint32_t empty, int nk, int warp, int gpt,
					int gl, float (&acc)[2][BN / 2])
{
	constexpr int SB = stage_bytes<BITS, BN>(), NS = stages<BITS, BN>();
	uint32_t A0[4][4], A1[4][4];
	pin<BN>(acc);
	// cur: the slot of the loop's first half, its descriptor d0 + slot * (SB >> 4); nx, the next
	const uint32_t d0 = xdesc_lo<BITS, BN>(ring);
	ring_pos cur;
	// both row tiles' words are read as soon as their stage has landed, so the second one's
	// shared-memory latency is behind the first one's dequantization and MMA
	qraw<BITS> R0, R1;
	mbar_wait(full, 0);
	load_stage<BITS, SYM, BN>(ring, warp, gpt, gl, R0, R1);
	dequant<T, BITS, SYM, true>(R0, A0);
	mma_tile<T, BN, false>(d0, A0, acc[0]);
	for (int it = 0; it + 1 < nk; it++) {
		ring_pos nx = cur;
		nx.step(NS);
		const uint8_t *st = ring + nx.slot * SB;
		dequant<T, BITS, SYM, true>(R1, A1);
		mma_tile<T, BN, false>(d0 + cur.slot * (SB >> 4), A1, acc[1]);
		wgmma_wait<1>(); // this stage's first MMA: A0 free
		mbar_wait(full + 8 * nx.slot, nx.parity);
		load_stage<BITS, SYM, BN>(st, warp, gpt, gl, R0, R1);
		dequant<T, BITS, SYM, true>(R0, A0);
		mma_tile<T, BN, false>(d0 + nx.slot * (SB >> 4), A0, acc[0]);
		wgmma_wait<1>(); // this stage's second MMA: A1 and the slot free
		release(empty, cur.slot);
		cur = nx;
	}
	dequant<T, BITS, SYM, true>(R1, A1);
	mma_tile<T, BN, false>(d0 + cur.slot * (SB >> 4), A1, acc[1]);
	wgmma_wait<0>();
}

// With the scales folded (groups of >= 64 columns: one scale a row and k tile): a stage's two
// MMAs sum their tiles, unscaled, into part, and fold() scales the sums into acc once both are
// done; the next stage's words are read while the MMAs run. Waiting for each MMA apart, as
// consume does, lost: ptxas serializes every MMA of a loop that reads an accumulator while
// another MMA may be pending (its warning C7514), and that took 4096x14336 at 16 tokens from
// 14.5 to 18.2 us (H200).
template <typename T, int BITS, bool SYM, int BN>
__device__ __forceinline__ void consume_fold(const uint8_t *ring, uint32_t full, uint32_t empty, int nk, int warp,
					     float (&acc)[2][BN / 2])
{
	constexpr int SB = stage_bytes<BITS, BN>(), NS = stages<BITS, BN>();
	uint32_t A0[4][4], A1[4][4];
	float part[2][BN / 2] = {};
	pin<BN>(part);
	const uint32_t d0 = xdesc_lo<BITS, BN>(ring);
	ring_pos cur;
	// groups of >= 64 columns: one group a k tile (gpt 1), every lane's group its first (gl 0)
	qraw<BITS> R0, R1;
	mbar_wait(full, 0);
	load_stage<BITS, SYM, BN>(ring, warp, 1, 0, R0, R1);
	for (int it = 0; it < nk; it++) {
		ring_pos nx = cur;
		nx.step(NS);
		const float2 f0 = row_scales(R0);
		dequant<T, BITS, SYM, false>(R0, A0);
		mma_tile<T, BN, true>(d0 + cur.slot * (SB >> 4), A0, part[0]);
		const float2 f1 = row_scales(R1);
		dequant<T, BITS, SYM, false>(R1, A1);
		mma_tile<T, BN, true>(d0 + cur.slot * (SB >> 4), A1, part[1]);
		if (it + 1 < nk) {
			const uint8_t *st = ring + nx.slot * SB;
			mbar_wait(full + 8 * nx.slot, nx.parity);
			load_stage<BITS, SYM, BN>(st, warp, 1, 0, R0, R1);
		}
		wgmma_wait<0>();
		release(empty, cur.slot);
		fold<BN>(part[0], f0, acc[0]);
		fold<BN>(part[1], f1, acc[1]);
		cur = nx;
	}
}

template <typename T, int BITS, bool SYM, bool FOLD, int BN>
__global__ void __launch_bounds__(kThreads, 1) qgemm_wgmma_kernel(const qgemm_args a, const __grid_constant__ qgemm_maps m)
{
	constexpr int NS = stages<BITS, BN>();
	launch_dependents(); // the next kernel may take each SM as this CTA leaves it (pdl.cuh)
	extern __shared__ __align__(128) uint8_t smem[];
	__shared__ __align__(8) uint64_t bars[2 * kMaxStages];
	// the role from lane 0's warp index: ptxas then knows it is uniform (else it serializes the MMAs)
	const int lane = threadIdx.x & 31, warp = __shfl_sync(0xffffffffu, threadIdx.x >> 5, 0), g = lane >> 2, t = lane & 3;
	const int rt0 = blockIdx.x * kRowTiles, m0 = blockIdx.y * BN, split = blockIdx.z;
	const int kt_begin = split * a.kt_per_split;
	const int nk = min(a.k_tiles, kt_begin + a.kt_per_split) - kt_begin;
	const uint32_t full = smem_u32(bars), empty = full + 8 * kMaxStages;
	if (threadIdx.x == 0) {
		for (int s = 0; s < NS; s++) {
			mbar_init(full + 8 * s, 1);
			mbar_init(empty + 8 * s, kConsumers);
		}
		asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
	}
	__syncthreads();

	if (warp < 4) {
		setmaxnreg_dec<kProducerRegs>();
		if (threadIdx.x == 0)
			produce<BITS, BN>(a, m, smem_u32(smem), full, empty, kt_begin, nk, rt0, m0);
		return;
	}
	setmaxnreg_inc<kConsumerRegs>();
	wait_prerequisites(); // the output (or split partials) may still be read by the kernels before
	const int cw = warp - 4; // consumer warp: row tiles cw and 8 + cw
	float acc[2][BN / 2];
#pragma unroll
	for (int h = 0; h < 2; h++)
#pragma unroll
		for (int i = 0; i < BN / 2; i++)
			acc[h][i] = 0.0f;
	if (FOLD)
		consume_fold<T, BITS, SYM, BN>(smem, full, empty, nk, cw, acc);
	else
		consume<T, BITS, SYM, BN>(smem, full, empty, nk, cw, a.gpt, a.gshift < 6 ? (16 * t) >> a.gshift : 0, acc);
	// every MMA done (named barrier 1: the consumers only): the ring becomes the output staging,
	// [half][BN][kCS] floats
	epi_threads<kConsumers * 32>::sync();
	float *cs = reinterpret_cast<float *>(smem);
#pragma unroll
	for (int h = 0; h < 2; h++)
#pragma unroll
		for (int j = 0; j < BN / 8; j++)
#pragma unroll
			for (int c = 0; c < 4; c++) {
				const int r = cw * 16 + g + 8 * (c >> 1);
				const int mm = 8 * j + 2 * t + (c & 1);
				cs[(h * BN + mm) * kCS + r] = acc[h][4 * j + c];
			}
	epi_threads<kConsumers * 32>::sync();
	if (a.cluster) { // the two splits are the cluster's ranks: split h stores half h
		tile_out o = {};
		o.y = a.y, o.M = a.M, o.N = a.N, o.m0 = m0, o.row0 = rt0 * 16;
		cluster_sync(); // both ranks' sums are staged
		store_half_cluster<T, BN, kCS, kConsumers * 32>(smem_u32(cs), split, o);
		cluster_sync_relaxed(); // no rank leaves while another still reads its sums
		return;
	}
	for (int h = 0; h < 2; h++) {
		float *ch = cs + h * BN * kCS;
		const int tile = 2 * blockIdx.x + h + blockIdx.y * 2 * gridDim.x;
		if (a.splits > 1) { // the partial, [BN][128] floats; qgemm.cu's reduction adds them
			float *part = a.ws + ((size_t)tile * a.splits + split) * BN * 128;
			for (int e = epi_threads<kConsumers * 32>::id() * 4; e < BN * 128; e += kConsumers * 32 * 4)
				*reinterpret_cast<float4 *>(part + e) = *reinterpret_cast<const float4 *>(ch + (e >> 7) * kCS + (e & 127));
			continue;
		}
		tile_out o = {};
		o.y = a.y, o.M = a.M, o.N = a.N, o.m0 = m0, o.row0 = (rt0 + 8 * h) * 16, o.splits = 1;
		store_tile_f32<T, BN, kCS, kConsumers * 32>(ch, o);
	}
}

template <typename T, int BITS, bool SYM, bool FOLD, int BN>
cudaError_t launch_kernel(const qgemm_args &a, const qgemm_maps &m, dim3 grid, cudaStream_t s)
{
	constexpr int smem = smem_bytes<BITS, BN>();
	const cudaError_t e = allow_smem<qgemm_wgmma_kernel<T, BITS, SYM, FOLD, BN>>(smem);
	if (e != cudaSuccess)
		return e;
	return launch_dependent_clusters(qgemm_wgmma_kernel<T, BITS, SYM, FOLD, BN>, grid, dim3(kThreads), smem, s,
					 a.cluster ? 2u : 1u, a, m);
}

// The scales fold into the f32 sums (consume_fold) at 16 tokens a block where a group spans the k
// tile: the 16 half multiplies of a tile's dequantization become 8 FMAs on its sums, and bf16
// needs no conversion of the scales (H200, bench_cuda --linear --batches 16, us, f16: 4096x14336
// 14.5 -> 13.9-14.1, 8192x8192 16.3 -> 15.9, 8192x28672 43.0-44.5 -> 41.3-42.5; bf16: 15.3-15.6
// -> 14.2-14.4, 17.1 -> 16.0, 45.6-46.0 -> 42.4-42.6). From 32 tokens the sums are as many as the
// multiplies, and nothing is saved.
constexpr int kFoldMaxBn = 16;

template <typename T, int BITS, bool SYM, int BN>
cudaError_t launch(const qgemm_args &a, const qgemm_maps &m, dim3 grid, cudaStream_t s)
{
	if (a.gshift >= 6)
		return launch_kernel<T, BITS, SYM, BN <= kFoldMaxBn, BN>(a, m, grid, s);
	return launch_kernel<T, BITS, SYM, false, BN>(a, m, grid, s);
}

template <typename T, int BN>
cudaError_t launch_bits(const qgemm_args &a, const qgemm_maps &m, dim3 grid, cudaStream_t s, int bits, bool sym)
{
	switch (bits) {
	case 2: return sym ? launch<T, 2, true, BN>(a, m, grid, s) : launch<T, 2, false, BN>(a, m, grid, s);
	case 3: return sym ? launch<T, 3, true, BN>(a, m, grid, s) : launch<T, 3, false, BN>(a, m, grid, s);
	case 4: return sym ? launch<T, 4, true, BN>(a, m, grid, s) : launch<T, 4, false, BN>(a, m, grid, s);
	case 5: return sym ? launch<T, 5, true, BN>(a, m, grid, s) : launch<T, 5, false, BN>(a, m, grid, s);
	case 6: return sym ? launch<T, 6, true, BN>(a, m, grid, s) : launch<T, 6, false, BN>(a, m, grid, s);
	default: return sym ? launch<T, 8, true, BN>(a, m, grid, s) : launch<T, 8, false, BN>(a, m, grid, s);
	}
}

} // namespace

int qgemm_cluster_ctas(int ranks)
{
	constexpr auto k = qgemm_wgmma_kernel<__half, 4, true, false, 64>; // one CTA an SM, as every instance
	constexpr int smem = smem_bytes<4, 64>();
	if (allow_smem<k>(smem) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	cudaLaunchConfig_t cfg = {};
	cfg.gridDim = dim3(1, 1, (unsigned)ranks), cfg.blockDim = dim3(kThreads), cfg.dynamicSmemBytes = smem;
	cudaLaunchAttribute attr = cluster_z_attribute((unsigned)ranks);
	cfg.attrs = &attr, cfg.numAttrs = 1;
	int n = 0;
	if (cudaOccupancyMaxActiveClusters(&n, k, &cfg) != cudaSuccess) {
		(void)cudaGetLastError(); // no clusters of that size here: split K goes through partials
		return 0;
	}
	return n * ranks;
}

shrink_status qgemm_wgmma_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemm_args &a, const qgemm_maps &m, int bn)
{
	dim3 grid((unsigned)ceil_div64(c->w->row_tiles, kRowTiles), (unsigned)ceil_div64(c->M, bn), (unsigned)a.splits);
	const int bits = c->w->bits;
	const bool sym = c->w->symmetric;
	cudaError_t e;
	if (c->dt == SHRINK_CUDA_F16)
		e = bn == 16   ? launch_bits<__half, 16>(a, m, grid, ctx->stream, bits, sym)
		    : bn == 32 ? launch_bits<__half, 32>(a, m, grid, ctx->stream, bits, sym)
		    : bn == 64 ? launch_bits<__half, 64>(a, m, grid, ctx->stream, bits, sym)
			       : launch_bits<__half, 128>(a, m, grid, ctx->stream, bits, sym);
	else
		e = bn == 16   ? launch_bits<__nv_bfloat16, 16>(a, m, grid, ctx->stream, bits, sym)
		    : bn == 32 ? launch_bits<__nv_bfloat16, 32>(a, m, grid, ctx->stream, bits, sym)
		    : bn == 64 ? launch_bits<__nv_bfloat16, 64>(a, m, grid, ctx->stream, bits, sym)
			       : launch_bits<__nv_bfloat16, 128>(a, m, grid, ctx->stream, bits, sym);
	return shrink_cuda_check(ctx, e, "qgemm_wgmma");
}
