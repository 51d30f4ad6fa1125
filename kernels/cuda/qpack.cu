// qpack.cu: a quantized weight from the container's layout to the kernels'
// (qlayout.cuh), once at load time, on the GPU; and back to a dense f16/bf16
// matrix (the cuBLAS path for large batches, and tests).
//
// Upload copies the container's arrays as they are to the device, and one
// thread per (row tile, k tile, lane) gathers its 32 codes from the bit
// stream and writes its words; one thread per (row tile, group, row pair)
// writes scales and zero points. Padding rows/columns get code 0 and scale 0.
// Deliberately not here: quantization itself (lib/quant) and any host-side
// repacking loop (the GPU does it in milliseconds for a 70B layer).
#include <string.h>

#include "qkernels.cuh"
#include "qlayout.cuh"

namespace {

struct pack_args {
	const uint8_t *src;       // rows x row_bytes
	const uint16_t *src_scales; // rows x file_groups
	const uint8_t *src_zeros; // rows x file_groups, or NULL
	uint8_t *qw;
	uint32_t *scales, *zeros;
	int64_t rows, cols, row_bytes, row_tiles, k_tiles, n_groups, file_groups;
	int bits, gshift;
};

__device__ uint32_t read_code(const pack_args &a, int64_t row, int64_t col)
{
	if (row >= a.rows || col >= a.cols)
		return 0;
	const uint8_t *r = a.src + row * a.row_bytes;
	const int64_t bit = col * a.bits;
	const int64_t byte = bit >> 3;
	const int shift = (int)(bit & 7);
	uint32_t v = r[byte];
	if (shift + a.bits > 8)
		v |= (uint32_t)r[byte + 1] << 8;
	return (v >> shift) & ((1u << a.bits) - 1u);
}

template <int BITS> __global__ void pack_codes_kernel(const pack_args a)
{
	const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (id >= a.row_tiles * a.k_tiles * 32)
		return;
	const int lane = (int)(id & 31);
	const int64_t tile = id >> 5, rt = tile / a.k_tiles, kt = tile % a.k_tiles;
	const int g = lane >> 2, t = lane & 3;
	uint32_t code[16][2];
#pragma unroll
	for (int P = 0; P < 16; P++) {
		const int s = P >> 2, r = P & 3;
		const int64_t row = rt * 16 + g + 8 * (r & 1);
		const int64_t col = kt * 64 + 16 * t + 4 * s + 2 * (r >> 1);
		code[P][0] = read_code(a, row, col);
		code[P][1] = read_code(a, row, col + 1);
	}
	uint8_t *dst = a.qw + tile * qtile_bytes(BITS);
#pragma unroll
	for (int pl = 0; pl < qplane_count(BITS); pl++) {
		const int p = qplane_width(BITS, pl), o = qplane_offset(BITS, pl), per_word = 16 / p;
		const uint32_t mask = (1u << p) - 1u;
#pragma unroll
		for (int i = 0; i < p; i++) {
			uint32_t word = 0;
#pragma unroll
			for (int j = 0; j < per_word; j++) {
				const int P = i * per_word + j;
				word |= ((code[P][0] >> o) & mask) << (j * p);
				word |= ((code[P][1] >> o) & mask) << (16 + j * p);
			}
			*reinterpret_cast<uint32_t *>(dst + qword_offset(BITS, pl, i, lane)) = word;
		}
	}
}

__global__ void pack_scales_kernel(const pack_args a)
{
	const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (id >= a.row_tiles * a.n_groups * 8)
		return;
	const int i = (int)(id & 7);
	const int64_t rg = id >> 3, rt = rg / a.n_groups, grp = rg % a.n_groups;
	uint32_t s = 0, z = 0;
	for (int h = 0; h < 2; h++) {
		const int64_t row = rt * 16 + i + 8 * h;
		if (row < a.rows && grp < a.file_groups) {
			s |= (uint32_t)a.src_scales[row * a.file_groups + grp] << (16 * h);
			if (a.src_zeros)
				z |= (uint32_t)a.src_zeros[row * a.file_groups + grp] << (16 * h);
		}
	}
	a.scales[id] = s;
	if (a.zeros)
		a.zeros[id] = z;
}

template <typename T> __global__ void dequant_kernel(const shrink_cuda_qweight w, int gshift, T *out, int bits)
{
	// Generic over bits through a switch at the top: one thread = one lane of one tile.
	const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (id >= w.row_tiles * w.k_tiles * 32)
		return;
	const int lane = (int)(id & 31);
	const int64_t tile = id >> 5, rt = tile / w.k_tiles, kt = tile % w.k_tiles;
	const int g = lane >> 2, t = lane & 3;
	const uint8_t *src = static_cast<const uint8_t *>(w.qw) + tile * qtile_bytes(bits);
	const int64_t col0 = kt * 64 + 16 * t;
	const int64_t grp = (col0 >> gshift);
	const uint32_t sp = w.scales[(rt * w.n_groups + grp) * 8 + g];
	const uint32_t zp = w.symmetric ? 0u : w.zeros[(rt * w.n_groups + grp) * 8 + g];
	float2 sf = __half22float2(from_u32<__half2>(sp));
	uint32_t a[16];
	auto run = [&](auto bits_c) {
		constexpr int B = decltype(bits_c)::value;
		uint32_t words[B];
		qtile_load_at<B>(qplain{src}, lane, words); // plain loads work on global memory too
		qzero z0 = qzero_make<__half, B>(w.symmetric ? 1 << (B - 1) : (int)(zp & 0xffffu));
		qzero z1 = qzero_make<__half, B>(w.symmetric ? 1 << (B - 1) : (int)(zp >> 16));
		static_for<0, 4>([&](auto step) {
			constexpr int s = decltype(step)::value;
			uint32_t f[4];
			qfragment<__half, B, s>(words, z0, z1, f);
			a[4 * s + 0] = f[0], a[4 * s + 1] = f[1], a[4 * s + 2] = f[2], a[4 * s + 3] = f[3];
		});
	};
	switch (bits) {
	case 2: run(std::integral_constant<int, 2>()); break;
	case 3: run(std::integral_constant<int, 3>()); break;
	case 4: run(std::integral_constant<int, 4>()); break;
	case 5: run(std::integral_constant<int, 5>()); break;
	case 6: run(std::integral_constant<int, 6>()); break;
	default: run(std::integral_constant<int, 8>()); break;
	}
	// Row g + 8 h, columns col0 + 4 s + 2 (r >> 1) + e come from pair P = 4 s + r, r = h + 2 (r >> 1):
	// the lane's 16 columns of each of its two rows are contiguous. The warp stages its 16 x 64
	// tile in shared memory and then writes whole 128-byte row pieces (4 rows per instruction):
	// the lanes' own 32-byte pieces, 8 rows apart, ran at 35-50 % of copy bandwidth (H100).
	constexpr int kPitch = 64 + 8; // elements per staged row (the pad spreads the banks)
	__shared__ __align__(16) T stage[8][16 * kPitch];
	T *st = stage[threadIdx.x >> 5];
#pragma unroll
	for (int h = 0; h < 2; h++) {
		const float scale = h ? sf.y : sf.x;
		alignas(16) T v[16];
#pragma unroll
		for (int s = 0; s < 4; s++) {
#pragma unroll
			for (int c = 0; c < 2; c++) {
				float2 q = __half22float2(from_u32<__half2>(a[4 * s + h + 2 * c])); // q - z, exact
				v[4 * s + 2 * c] = dtype_traits<T>::from_f(q.x * scale);
				v[4 * s + 2 * c + 1] = dtype_traits<T>::from_f(q.y * scale);
			}
		}
		uint4 *d = reinterpret_cast<uint4 *>(st + (g + 8 * h) * kPitch + 16 * t);
		d[0] = *reinterpret_cast<uint4 *>(&v[0]);
		d[1] = *reinterpret_cast<uint4 *>(&v[8]);
	}
	__syncwarp();
	const bool whole = kt * 64 + 64 <= w.cols && (w.cols & 7) == 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		const int c = lane + 32 * i, r = c >> 3, o = 8 * (c & 7); // row r of the tile, columns o..o+7
		const int64_t row = rt * 16 + r;
		if (row >= w.rows)
			continue;
		T *dst = out + row * w.cols + kt * 64 + o;
		const T *src = st + r * kPitch + o;
		if (whole) {
			*reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
		} else {
			for (int e = 0; e < 8 && kt * 64 + o + e < w.cols; e++)
				dst[e] = src[e];
		}
	}
}

void free_dev(void *p)
{
	if (p)
		cudaFree(p);
}

} // namespace

extern "C" size_t shrink_cuda_qweight_bytes(const shrink_cuda_qweight *w)
{
	size_t n = (size_t)w->row_tiles * w->k_tiles * qtile_bytes(w->bits);
	n += (size_t)w->row_tiles * w->n_groups * 8 * 4 * (w->symmetric ? 1 : 2);
	return n;
}

extern "C" void shrink_cuda_qweight_free(shrink_cuda_qweight *w)
{
	if (!w)
		return;
	free_dev(w->qw);
	free_dev(w->scales);
	free_dev(w->zeros);
	free_dev(w->counters);
	w->qw = NULL, w->scales = NULL, w->zeros = NULL, w->counters = NULL;
}

extern "C" shrink_status shrink_cuda_qweight_upload(shrink_cuda_ctx *ctx, int bits, int group_size, bool symmetric,
						    int64_t rows, int64_t cols, const uint8_t *qweight,
						    const uint16_t *scales, const uint8_t *zeros, shrink_cuda_qweight *out)
{
	memset(out, 0, sizeof *out);
	if (!(bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qweight: unsupported bits %d", bits);
	if (group_size != 0 && (group_size < 16 || (group_size & (group_size - 1))))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qweight: group size %d is not 0 or a power of two >= 16",
					group_size);
	if (rows < 1 || cols < 1 || !qweight || !scales || (symmetric != (zeros == NULL)))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qweight: bad shape or arrays");
	shrink_cuda_qweight w;
	memset(&w, 0, sizeof w);
	w.bits = bits, w.group_size = group_size, w.symmetric = symmetric;
	w.rows = rows, w.cols = cols;
	w.row_tiles = ceil_div64(rows, 16);
	w.k_tiles = ceil_div64(cols, 64);
	w.n_groups = group_size == 0 ? 1 : ceil_div64(w.k_tiles * 64, group_size);
	const int64_t file_groups = group_size == 0 ? 1 : ceil_div64(cols, group_size);
	const int64_t row_bytes = (cols * bits + 7) / 8;

	pack_args a;
	memset(&a, 0, sizeof a);
	void *src = NULL, *src_scales = NULL, *src_zeros = NULL;
	shrink_status st = SHRINK_OK;
	const size_t n_codes = (size_t)rows * row_bytes, n_scales = (size_t)rows * file_groups;
	const size_t n_tiles = (size_t)w.row_tiles * w.k_tiles, n_sc = (size_t)w.row_tiles * w.n_groups * 8;
	cudaStream_t s = ctx->stream;
#define TRY(call, what)                                                                                                \
	do {                                                                                                           \
		if ((st = shrink_cuda_check(ctx, (call), what)) != SHRINK_OK)                                          \
			goto done;                                                                                     \
	} while (0)
	TRY(cudaMalloc(&w.qw, n_tiles * qtile_bytes(bits)), "qweight alloc");
	TRY(cudaMalloc((void **)&w.scales, n_sc * 4), "qweight alloc");
	if (!symmetric)
		TRY(cudaMalloc((void **)&w.zeros, n_sc * 4), "qweight alloc");
	TRY(cudaMalloc((void **)&w.counters, (size_t)w.row_tiles * sizeof(int)), "qweight alloc");
	TRY(cudaMemsetAsync(w.counters, 0, (size_t)w.row_tiles * sizeof(int), s), "qweight memset");
	TRY(cudaMalloc(&src, n_codes), "qweight alloc");
	TRY(cudaMalloc(&src_scales, n_scales * 2), "qweight alloc");
	if (!symmetric)
		TRY(cudaMalloc(&src_zeros, n_scales), "qweight alloc");
	TRY(cudaMemcpyAsync(src, qweight, n_codes, cudaMemcpyHostToDevice, s), "qweight upload");
	TRY(cudaMemcpyAsync(src_scales, scales, n_scales * 2, cudaMemcpyHostToDevice, s), "qweight upload");
	if (!symmetric)
		TRY(cudaMemcpyAsync(src_zeros, zeros, n_scales, cudaMemcpyHostToDevice, s), "qweight upload");
	a.src = static_cast<const uint8_t *>(src);
	a.src_scales = static_cast<const uint16_t *>(src_scales);
	a.src_zeros = static_cast<const uint8_t *>(src_zeros);
	a.qw = static_cast<uint8_t *>(w.qw);
	a.scales = w.scales, a.zeros = w.zeros;
	a.rows = rows, a.cols = cols, a.row_bytes = row_bytes;
	a.row_tiles = w.row_tiles, a.k_tiles = w.k_tiles, a.n_groups = w.n_groups, a.file_groups = file_groups;
	a.bits = bits, a.gshift = qgroup_shift(&w);
	{
		const int64_t n = (int64_t)n_tiles * 32;
		const unsigned blocks = (unsigned)ceil_div64(n, 256);
		switch (bits) {
		case 2: pack_codes_kernel<2><<<blocks, 256, 0, s>>>(a); break;
		case 3: pack_codes_kernel<3><<<blocks, 256, 0, s>>>(a); break;
		case 4: pack_codes_kernel<4><<<blocks, 256, 0, s>>>(a); break;
		case 5: pack_codes_kernel<5><<<blocks, 256, 0, s>>>(a); break;
		case 6: pack_codes_kernel<6><<<blocks, 256, 0, s>>>(a); break;
		default: pack_codes_kernel<8><<<blocks, 256, 0, s>>>(a); break;
		}
		TRY(cudaGetLastError(), "qweight pack");
		pack_scales_kernel<<<(unsigned)ceil_div64((int64_t)n_sc, 256), 256, 0, s>>>(a);
		TRY(cudaGetLastError(), "qweight pack");
	}
	TRY(cudaStreamSynchronize(s), "qweight pack");
#undef TRY
done:
	free_dev(src);
	free_dev(src_scales);
	free_dev(src_zeros);
	if (st != SHRINK_OK) {
		shrink_cuda_qweight_free(&w);
		return st;
	}
	*out = w;
	return SHRINK_OK;
}

shrink_status qdequant_launch(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, shrink_cuda_dtype dt, void *out)
{
	const int64_t n = w->row_tiles * w->k_tiles * 32;
	const unsigned blocks = (unsigned)ceil_div64(n, 256);
	const int gshift = qgroup_shift(w);
	if (dt == SHRINK_CUDA_F16)
		dequant_kernel<__half><<<blocks, 256, 0, ctx->stream>>>(*w, gshift, static_cast<__half *>(out), w->bits);
	else
		dequant_kernel<__nv_bfloat16>
			<<<blocks, 256, 0, ctx->stream>>>(*w, gshift, static_cast<__nv_bfloat16 *>(out), w->bits);
	return shrink_cuda_launched(ctx, "qdequant");
}

extern "C" shrink_status shrink_cuda_qweight_dequant(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w,
						     shrink_cuda_dtype dt, void *out)
{
	if (dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qweight_dequant: dtype must be f16 or bf16");
	return qdequant_launch(ctx, w, dt, out);
}
