// epilogue.cuh: the store at the end of the tiled GEMMs (w8a8.cu: store_tile;
// qgemm_wgmma.cu: store_tile_f32, and store_half_cluster for the 128-row halves whose split-K
// sums two CTAs of a cluster add) and the reduction of their split-K partials (splitk.cu):
// a CTA tile of 128 output rows x BM tokens, from 8 warps
// laid out 8 / WM (rows) x WM (tokens), each with acc[WM row tiles][BM / WM / 8 n8 tiles][4]
// in mma C-fragment order (WM = 2: 4 x 2 warps, 2 row tiles and BM / 2 tokens each), or from
// float sums already in shared memory. Without split-K the tile is staged through shared memory and stored
// with 16-byte writes along the output rows; with split-K the float partial
// goes to the workspace, and splitk_reduce (splitk.cuh) adds the partials in split order
// afterwards, or the CTAs of a cluster add each other's sums (store_half_cluster): results
// never depend on timing.
// Deliberately not here: scaling (the caller folds scales into acc first).
#ifndef SHRINK_CUDA_EPILOGUE_CUH
#define SHRINK_CUDA_EPILOGUE_CUH

#include "common.cuh"

// The threads that run an epilogue: the whole CTA (NT = 0), or its last NT threads, which then
// meet at named barrier 1 (a warp-specialized kernel whose producer warps have left).
template <int NT> struct epi_threads {
	static __device__ __forceinline__ int id() { return NT ? (int)threadIdx.x - ((int)blockDim.x - NT) : (int)threadIdx.x; }
	static __device__ __forceinline__ int count() { return NT ? NT : (int)blockDim.x; }
	static __device__ __forceinline__ void sync()
	{
		if (NT)
			asm volatile("bar.sync 1, %0;\n" ::"n"(NT) : "memory");
		else
			__syncthreads();
	}
};

struct tile_out {
	void *y;       // [M][N]
	int M, N;
	int m0, row0;  // first token and row of this tile
	int splits, split;
	float *ws;     // splits > 1: [tile][split][BM][128]
	int tile;      // token block x 128-row tiles of a row + 128-row tile
};

// f(row, token, value) for each of this thread's accumulators (the warp layout above).
template <int BM, int WM, typename F>
__device__ __forceinline__ void for_each_acc(const float (&acc)[WM][BM / WM / 8][4], F &&f)
{
	constexpr int NT = BM / WM / 8, WR = 8 / WM;
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	const int wn = warp % WR, wm = warp / WR;
#pragma unroll
	for (int i = 0; i < WM; i++)
#pragma unroll
		for (int j = 0; j < NT; j++)
#pragma unroll
			for (int c = 0; c < 4; c++)
				f((WM * wn + i) * 16 + g + 8 * (c >> 1), wm * (BM / WM) + 8 * j + 2 * t + (c & 1),
				  acc[i][j][c]);
}

// smem: at least BM * 136 * sizeof(T) bytes, no longer in use by the main loop.
template <typename T, int BM, int WM = 2>
__device__ __forceinline__ void store_tile(const float (&acc)[WM][BM / WM / 8][4], uint8_t *smem, const tile_out &o)
{
	constexpr int CS = 128 + 8;
	T *y = static_cast<T *>(o.y);
	if (o.splits == 1) {
		T *cs = reinterpret_cast<T *>(smem);
		for_each_acc<BM, WM>(acc, [&](int r, int m, float v) { cs[m * CS + r] = dtype_traits<T>::from_f(v); });
		__syncthreads();
		const bool vec = (o.N & 7) == 0;
		for (int c = threadIdx.x; c < BM * 16; c += blockDim.x) {
			const int m = c >> 4, r = (c & 15) * 8;
			if (o.m0 + m >= o.M || o.row0 + r >= o.N)
				continue;
			T *dst = y + (size_t)(o.m0 + m) * o.N + o.row0 + r;
			if (vec) {
				*reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(cs + m * CS + r);
			} else {
				for (int e = 0; e < 8 && o.row0 + r + e < o.N; e++)
					dst[e] = cs[m * CS + r + e];
			}
		}
		return;
	}
	float *part = o.ws + ((size_t)o.tile * o.splits + o.split) * BM * 128;
	for_each_acc<BM, WM>(acc, [&](int r, int m, float v) { part[m * 128 + r] = v; });
}

// Eight outputs of token o.m0 + m from row `row` on (the caller checked the token and the row;
// o.N cuts the eight short).
template <typename T> __device__ __forceinline__ void store_row8(const float (&v)[8], const tile_out &o, int m, int row)
{
	T *dst = static_cast<T *>(o.y) + (size_t)(o.m0 + m) * o.N + row;
	if ((o.N & 7) == 0) {
		uint32_t u[4];
#pragma unroll
		for (int k = 0; k < 4; k++)
			u[k] = as_u32(dtype_traits<T>::pack(v[2 * k], v[2 * k + 1]));
		*reinterpret_cast<uint4 *>(dst) = make_uint4(u[0], u[1], u[2], u[3]);
	} else {
		for (int e = 0; e < 8 && row + e < o.N; e++)
			dst[e] = dtype_traits<T>::from_f(v[e]);
	}
}

// The same store (no split-K) from a CTA's sums already in shared memory: cs [BM][CS] floats,
// row-contiguous per token (qgemm_wgmma.cu stages its accumulators there), by the threads of
// epi_threads<NT>.
template <typename T, int BM, int CS, int NT = 0> __device__ __forceinline__ void store_tile_f32(const float *cs, const tile_out &o)
{
	using E = epi_threads<NT>;
	for (int c = E::id(); c < BM * 16; c += E::count()) {
		const int m = c >> 4, r = (c & 15) * 8;
		if (o.m0 + m >= o.M || o.row0 + r >= o.N)
			continue;
		const float4 lo = *reinterpret_cast<const float4 *>(cs + m * CS + r);
		const float4 hi = *reinterpret_cast<const float4 *>(cs + m * CS + r + 4);
		const float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
		store_row8<T>(v, o, m, o.row0 + r);
	}
}

// Split K within a cluster of two CTAs (qgemm_wgmma.cu): each has staged its split's sums of the
// same two 128-row halves x BM tokens at the same shared-memory address cs ([2][BM][CS] floats;
// o.row0 is the first half's row); rank h stores half h, adding the two ranks' sums in split
// order from 0, as splitk_reduce does, so the result does not depend on which CTA ends first.
// The caller syncs the cluster before and after.
template <typename T, int BM, int CS, int NT>
__device__ void store_half_cluster(uint32_t cs, int h, const tile_out &o)
{
	using E = epi_threads<NT>;
	for (int c = E::id(); c < BM * 16; c += E::count()) {
		const int m = c >> 4, row = o.row0 + h * 128 + (c & 15) * 8;
		if (o.m0 + m >= o.M || row >= o.N)
			continue;
		const uint32_t at = cs + (uint32_t)(((h * BM + m) * CS + (c & 15) * 8) * 4);
		const uint32_t p0 = cluster_map(at, 0), p1 = cluster_map(at, 1);
		const float4 a0 = ld_cluster_f4(p0), b0 = ld_cluster_f4(p0 + 16);
		const float4 a1 = ld_cluster_f4(p1), b1 = ld_cluster_f4(p1 + 16);
		const float v[8] = {0.0f + a0.x + a1.x, 0.0f + a0.y + a1.y, 0.0f + a0.z + a1.z, 0.0f + a0.w + a1.w,
				    0.0f + b0.x + b1.x, 0.0f + b0.y + b1.y, 0.0f + b0.z + b1.z, 0.0f + b0.w + b1.w};
		store_row8<T>(v, o, m, row);
	}
}

#endif
