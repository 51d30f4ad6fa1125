// qkernels.cuh: launchers of the quantized-linear kernels, shared between
// their sources (qgemv.cu, qgemm.cu, qpack.cu) and the dispatcher (qlinear.cu).
// Internal to kernels/cuda. The launchers check nothing the dispatcher checked.
#ifndef SHRINK_CUDA_QKERNELS_CUH
#define SHRINK_CUDA_QKERNELS_CUH

#include "common.cuh"

// One call of a quantized linear: y [M][N] = x [M][ldx >= k_tiles * 64, zero beyond K] W^T.
struct qcall {
	const shrink_cuda_qweight *w;
	shrink_cuda_dtype dt;
	const void *x;
	int64_t ldx;
	int M;
	void *y;
	int splits; // split-K factor (1: none)
	float *ws;  // split-K partials (NULL when splits == 1, or the GEMM's splits run in a cluster)
	// the register GEMV only: up to two more weights with w's K, bits, group size and symmetry,
	// computed in the same launch from the same x (n_weights 0 or 1: w alone)
	int n_weights;
	const shrink_cuda_qweight *more[2];
	void *more_y[2];
	// the TMA GEMV only: activations formed on the way in (NULL: x as it is)
	const shrink_cuda_xin *xin;
	// the GEMM only: qgemm_x_bytes of workspace for its layout of the activations, tokens a CTA
	void *xp;
	int bn;
	bool cluster; // split K in clusters (qgemm_plan_t)
};

// log2 of the group size in columns; 31 for one group per row.
static inline int qgroup_shift(const shrink_cuda_qweight *w)
{
	if (w->group_size == 0)
		return 31;
	int s = 0;
	while ((1 << s) < w->group_size)
		s++;
	return s;
}

// The weight's fields of a kernel's arguments (gemv_args, qgemm_args: the same names).
template <typename A> void set_weight_args(A &a, const shrink_cuda_qweight *w)
{
	a.qw = static_cast<const uint8_t *>(w->qw);
	a.scales = w->scales;
	a.zeros = w->zeros;
	a.N = (int)w->rows;
	a.row_tiles = (int)w->row_tiles;
	a.k_tiles = (int)w->k_tiles;
	a.n_groups = (int)w->n_groups;
	a.gshift = qgroup_shift(w);
	a.gpt = a.gshift < 6 ? 64 >> a.gshift : 1;
}

// GEMV (M <= 32): how a call is cut (qgemv.cu decides; qlinear.cu lays out the workspace).
struct qgemv_plan_t {
	int64_t ctas;     // CTAs along the rows
	int splits, kt_per_split, tpw, slot_bytes, smem;
	int rows_per_cta; // register GEMV: row tiles a CTA takes
	size_t ws_floats; // split-K partials
};
qgemv_plan_t qgemv_plan(const shrink_cuda_qweight *w, int M, int n_sms, int split_k);
shrink_status qgemv_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemv_plan_t *p);
// The register-streaming version (qgemv_reg.cu); uses ctas, splits, kt_per_split, ws_floats, rows_per_cta.
// row_tiles: of all the weights of the launch (qcall.n_weights).
qgemv_plan_t qgemv_reg_plan(const shrink_cuda_qweight *w, int64_t row_tiles, int M, int n_sms, int split_k);
shrink_status qgemv_reg_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemv_plan_t *p);
// The TMA-fed version (qgemv_tma.cu): whole row tiles per CTA, no workspace. fits: whether it
// can take the call (tokens, alignment, activations in shared memory).
bool qgemv_tma_fits(const qcall *c);
// The most ring slots that fit in its shared memory beside the call's activations (qlinear.cu's
// prefer_tma: fewer than three starve it).
int qgemv_tma_slots(const qcall *c);
shrink_status qgemv_tma_launch(shrink_cuda_ctx *ctx, const qcall *c);
// The warpgroup-MMA GEMM's arguments (qgemm.cu fills them; x: its layout of the activations).
// The GEMM's row tiles a CTA (256 rows; qgemm.cu's tensor-map boxes and split-K tiles follow it).
constexpr int kGemmRowTiles = 16;
struct qgemm_args {
	const uint8_t *qw;
	const uint32_t *scales, *zeros;
	const void *x;
	void *y;
	float *ws; // splits > 1 outside clusters: the partials (splitk_reduce adds them)
	int M, N;
	int row_tiles, k_tiles, n_groups, gshift, gpt, kt_per_split, splits;
	bool cluster; // two splits as a cluster of two CTAs that add each other's sums
};
// The GEMM's TMA views of a weight: codes [row tile][k tile x tile bytes] and scales, zeros
// [row tile][group x 8 pairs], as 32-bit words, in boxes of 16 row tiles x one k tile.
struct qgemm_maps {
	CUtensorMap w, s, z;
};
// The warpgroup-MMA GEMM (qgemm_wgmma.cu, sm_90a) for blocks of bn = 16, 32, 64 or 128 tokens.
shrink_status qgemm_wgmma_launch(shrink_cuda_ctx *ctx, const qcall *c, const qgemm_args &a, const qgemm_maps &m,
				 int bn);
// Tiled GEMM, any M: tokens a CTA (bn) and split-K factor chosen from a model of the launch
// (split_k > 0: that factor). ws: qgemm_ws_floats; x as given (ldx, any K), xp: qgemm_x_bytes.
// cluster: the splits add each other's sums in a thread-block cluster (no partials, no reduction).
struct qgemm_plan_t {
	int bn, splits;
	bool cluster;
};
qgemm_plan_t qgemm_plan(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int M, int split_k);
shrink_status qgemm_launch(shrink_cuda_ctx *ctx, const qcall *c);
size_t qgemm_ws_floats(const shrink_cuda_qweight *w, int M, qgemm_plan_t p);
size_t qgemm_x_bytes(const shrink_cuda_qweight *w, int M);
int64_t qgemm_row_blocks(const shrink_cuda_qweight *w);
// CTAs of the GEMM the device holds at once in clusters of `ranks` (0: none; ctx_create asks).
int qgemm_cluster_ctas(int ranks);
// The residual RMSNorm of backend.cu (shrink_cuda_add2_rmsnorm_f32; keep false: x not updated).
shrink_status add_rmsnorm_launch(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, const uint16_t *y2, bool keep,
				 const uint16_t *weight, int64_t n_tok, int64_t dim, float eps, uint16_t *out);
// out [N][K] (dt) = dequantized weight.
shrink_status qdequant_launch(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, shrink_cuda_dtype dt, void *out);

#endif
