// qlayout.cuh: the repacked layout of a quantized weight on the GPU and the
// register-level dequantization that reads it. Internal to kernels/cuda.
//
// The container stores W [N rows][K cols] row by row as a bit stream (quant.h);
// the kernels want each lane of a warp to find, in one or two wide loads, the
// codes of its own tensor-core A fragments. So at load time the matrix is cut
// into tiles of 16 rows x 64 columns (N padded to 16, K to 64, padding codes 0,
// padding scales 0) stored [row tile][k tile], each tile 128 * bits bytes.
//
// Inside a tile, lane l = 4g + t (g = l / 4, t = l % 4) holds 32 codes: for
// k16 step s (0..3) and A-fragment register r (0..3) the pair
//   row  g + 8 * (r & 1),  column 64 kt + 16 t + 4 s + 2 (r >> 1) + e,  e = 0, 1
// (pair index P = 4 s + r, e = 0 in the low half, e = 1 in the high half).
// Columns are permuted inside the tile so that a lane's 16 columns are
// contiguous: its activation operand (B fragments) for the whole tile is two
// 16-byte loads of x[token][64 kt + 16 t .. + 16), and every group of >= 16
// columns covers whole lanes.
//
// The b bits of a code are split into planes of 1, 2, 4 or 8 bits
// (2: {2}, 3: {2,1}, 4: {4}, 5: {4,1}, 6: {4,2}, 8: {8}; low bits first). A plane
// of width p takes 128 p bytes of the tile: p 32-bit words per lane, in chunks
// of min(p, 4) words stored lane-major (lane l's chunk at chunk base + 4 min(p,4) l),
// so a warp's load of a chunk is contiguous. Word i of a lane's plane holds pairs
// P = i * (16/p) + j, j < 16/p, pair j's low value in bits [j p, j p + p) and
// its high value in bits [16 + j p, 16 + j p + p): one mask puts both values of
// a pair in the low mantissa bits of a half2 ("magic number" conversion).
//
// Scales: [row tile][group][8] u32 = f16 pair (scale of row 16 rt + i, of row 16 rt + i + 8);
// groups are counted over the padded K (group_size 0: one group). Zeros (asymmetric):
// the same shape, u16 pairs of integer zero points.
//
// Deliberately not here: any knowledge of tokens, splits or tiling of the kernels.
#ifndef SHRINK_CUDA_QLAYOUT_CUH
#define SHRINK_CUDA_QLAYOUT_CUH

#include "common.cuh"

#define QTILE_ROWS 16
#define QTILE_COLS 64

__host__ __device__ constexpr int qplane_count(int bits)
{
	return (bits == 3 || bits == 5 || bits == 6) ? 2 : 1;
}
__host__ __device__ constexpr int qplane_width(int bits, int i)
{
	return i == 0 ? (bits == 3 ? 2 : (bits == 5 || bits == 6) ? 4 : bits) : bits - (bits == 3 ? 2 : 4);
}
// Words per lane before plane i (= bit offset of plane i inside a code).
__host__ __device__ constexpr int qplane_offset(int bits, int i)
{
	return i == 0 ? 0 : qplane_width(bits, 0);
}
__host__ __device__ constexpr int qtile_bytes(int bits)
{
	return 128 * bits;
}

// Byte offset, inside a tile, of word `word` (of plane `plane`) of lane `lane`.
__host__ __device__ constexpr int qword_offset(int bits, int plane, int word, int lane)
{
	return 128 * qplane_offset(bits, plane) +
	       (qplane_width(bits, plane) > 4 ? 512 * (word / 4) + 16 * lane + 4 * (word % 4)
					     : 4 * qplane_width(bits, plane) * lane + 4 * word);
}

// A tile's word loads by the kind of address: a pointer into global memory (streamed past L1), a
// 32-bit shared-memory address, or a plain generic pointer (qplain: plain loads, for shared or
// global memory alike).
struct qplain {
	const uint8_t *p;
	__device__ __forceinline__ qplain operator+(int off) const { return {p + off}; }
};
__device__ __forceinline__ uint4 qload16(const uint8_t *p)
{
	return ld_stream16(p);
}
__device__ __forceinline__ uint2 qload8(const uint8_t *p)
{
	return ld_stream8(p);
}
__device__ __forceinline__ uint32_t qload4(const uint8_t *p)
{
	return ld_stream4(p);
}
__device__ __forceinline__ uint4 qload16(uint32_t a)
{
	return lds128(a);
}
__device__ __forceinline__ uint2 qload8(uint32_t a)
{
	return lds64(a);
}
__device__ __forceinline__ uint32_t qload4(uint32_t a)
{
	return lds32(a);
}
__device__ __forceinline__ uint4 qload16(qplain a)
{
	return *reinterpret_cast<const uint4 *>(a.p);
}
__device__ __forceinline__ uint2 qload8(qplain a)
{
	return *reinterpret_cast<const uint2 *>(a.p);
}
__device__ __forceinline__ uint32_t qload4(qplain a)
{
	return *reinterpret_cast<const uint32_t *>(a.p);
}

// Load a lane's `bits` words of one tile from the lane's address in each plane (lane[pl] = tile +
// qword_offset(BITS, pl, 0, lane)): a loop that steps these addresses loads each tile at immediate
// offsets from them, and keeps them in registers. A: const uint8_t * (global), uint32_t (shared)
// or qplain.
template <int BITS, typename A>
__device__ __forceinline__ void qtile_load_lanes(const A (&lane)[qplane_count(BITS)], uint32_t (&w)[BITS])
{
#pragma unroll
	for (int pl = 0; pl < qplane_count(BITS); pl++) {
		const int p = qplane_width(BITS, pl), o = qplane_offset(BITS, pl);
#pragma unroll
		for (int c = 0; c < (p + 3) / 4; c++) {
			const A src = lane[pl] + (qword_offset(BITS, pl, 4 * c, 0) - qword_offset(BITS, pl, 0, 0));
			if (p >= 4) {
				uint4 v = qload16(src);
				w[o + 4 * c] = v.x, w[o + 4 * c + 1] = v.y, w[o + 4 * c + 2] = v.z, w[o + 4 * c + 3] = v.w;
			} else if (p == 2) {
				uint2 v = qload8(src);
				w[o] = v.x, w[o + 1] = v.y;
			} else {
				w[o] = qload4(src);
			}
		}
	}
}

// The same from the tile's address.
template <int BITS, typename A> __device__ __forceinline__ void qtile_load_at(A tile, int lane, uint32_t (&w)[BITS])
{
	A at[qplane_count(BITS)];
#pragma unroll
	for (int pl = 0; pl < qplane_count(BITS); pl++)
		at[pl] = tile + qword_offset(BITS, pl, 0, lane);
	qtile_load_lanes<BITS>(at, w);
}

// Zero point of one row, in the forms the conversions below subtract.
struct qzero {
	uint32_t magic; // T2 bits of (magic + z) in both halves
	uint32_t hi16;  // f16, 4-bit: T2 bits of -(64 + z) (for codes read as 1024 + 16 v)
	float f32;      // bf16, 8-bit: 2^23 + z
};

template <typename T, int BITS> __device__ __forceinline__ qzero qzero_make(int z)
{
	qzero r;
	if (std::is_same<T, __half>::value) {
		r.magic = (0x6400u | (uint32_t)z) * 0x10001u;
		// f16 bits of -(64 + z) in integer steps: 64 + z stays in 64's binade, where a unit is 16
		// steps of the mantissa (exact for z < 64; 4-bit zeros are below 16); a float conversion
		// here cost four instructions a tile in the GEMVs
		r.hi16 = (0xd400u + ((uint32_t)z << 4)) * 0x10001u;
	} else {
		r.magic = BITS < 8 ? (0x4300u | (uint32_t)z) * 0x10001u : 0u;
		r.hi16 = 0;
	}
	r.f32 = 8388608.0f + (float)z;
	return r;
}

// T2 bits of (q - z) for pair P (0..15) of a lane's tile words: exact for every code.
template <typename T, int BITS, int P>
__device__ __forceinline__ uint32_t qpair(const uint32_t (&w)[BITS], const qzero &z)
{
	if (BITS == 8 && !std::is_same<T, __half>::value) {
		// bf16 has 8 significant bits: go through float (2^23 + v), then pack.
		const uint32_t word = w[P / 2];
		const int j = P % 2;
		float lo = __uint_as_float(__byte_perm(word, 0x4B000000u, j | (4 << 4) | (4 << 8) | (7 << 12))) - z.f32;
		float hi = __uint_as_float(__byte_perm(word, 0x4B000000u, (2 + j) | (4 << 4) | (4 << 8) | (7 << 12))) -
			   z.f32;
		return as_u32(__floats2bfloat162_rn(lo, hi));
	}
	if (BITS == 8) {
		const uint32_t word = w[P / 2];
		const int j = P % 2;
		uint32_t h = __byte_perm(word, 0x64646464u, j | (4 << 4) | ((2 + j) << 8) | (4 << 12));
		return as_u32(__hsub2(from_u32<__half2>(h), from_u32<__half2>(z.magic)));
	}
	constexpr uint32_t MAGIC = std::is_same<T, __half>::value ? 0x64006400u : 0x43004300u;
	if (BITS == 4 && std::is_same<T, __half>::value && (P % 4) % 2 == 1) {
		// odd pairs sit 4 bits above an even one: read them as 1024 + 16 v, then one fma.
		const uint32_t word = w[P / 4] >> (4 * ((P % 4) & 2));
		const uint32_t h = lop3_and_or(word, 0x00f000f0u, MAGIC);
		return as_u32(__hfma2(from_u32<__half2>(h), __float2half2_rn(1.0f / 16.0f), from_u32<__half2>(z.hi16)));
	}
	uint32_t h = MAGIC;
#pragma unroll
	for (int pl = 0; pl < qplane_count(BITS); pl++) {
		const int p = qplane_width(BITS, pl), o = qplane_offset(BITS, pl);
		const int per_word = 16 / p, i = P / per_word, j = P % per_word;
		const uint32_t mask = ((1u << p) - 1u) * 0x10001u;
		const int shift = j * p - o; // move the plane's bits to bit o of each half
		const uint32_t v = (w[o + i] >> (shift > 0 ? shift : 0)) << (shift < 0 ? -shift : 0);
		h = lop3_and_or(v, mask << o, h);
	}
	if (std::is_same<T, __half>::value)
		return as_u32(__hsub2(from_u32<__half2>(h), from_u32<__half2>(z.magic)));
	return as_u32(__hsub2(from_u32<__nv_bfloat162>(h), from_u32<__nv_bfloat162>(z.magic)));
}

// The A fragment (4 registers) of k16 step S: (q - z) per element.
// zr0: zero point of row g, zr1: of row g + 8.
template <typename T, int BITS, int S>
__device__ __forceinline__ void qfragment(const uint32_t (&w)[BITS], const qzero &zr0, const qzero &zr1,
					  uint32_t (&a)[4])
{
	a[0] = qpair<T, BITS, 4 * S + 0>(w, zr0);
	a[1] = qpair<T, BITS, 4 * S + 1>(w, zr1);
	a[2] = qpair<T, BITS, 4 * S + 2>(w, zr0);
	a[3] = qpair<T, BITS, 4 * S + 3>(w, zr1);
}

// Scale pair (f16 bits: row g low, row g + 8 high) to T2 multipliers for rows g and g + 8.
template <typename T> __device__ __forceinline__ void qscale_t2(uint32_t pair, uint32_t &s0, uint32_t &s1)
{
	__half2 h = from_u32<__half2>(pair);
	if (std::is_same<T, __half>::value) {
		s0 = as_u32(__low2half2(h));
		s1 = as_u32(__high2half2(h));
	} else {
		float2 f = __half22float2(h);
		s0 = as_u32(__float2bfloat162_rn(f.x));
		s1 = as_u32(__float2bfloat162_rn(f.y));
	}
}

template <typename T> __device__ __forceinline__ uint32_t t2_mul(uint32_t a, uint32_t b)
{
	if (std::is_same<T, __half>::value)
		return as_u32(__hmul2(from_u32<__half2>(a), from_u32<__half2>(b)));
	return as_u32(__hmul2(from_u32<__nv_bfloat162>(a), from_u32<__nv_bfloat162>(b)));
}

#endif
