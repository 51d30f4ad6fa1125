// qlinear.cu: the quantized linear layer's entry point: checks the call, picks
// a path (the TMA-fed GEMV for 1-4 tokens and large, wide 4-bit weights, 5-8 where their rows are short;
// else the register GEMV for <= 8 tokens, <= 16 for rows <= 4096 (<= 4 bits), or <= 32 under 16 MB
// of weights, the tiled GEMM up to kCublasMinTokens, then dequantize + cuBLAS when the workspace
// holds the dense copy; the shared-memory GEMV only when asked for) and a split-K
// factor that gives the GPU enough CTAs, lays out the workspace, and launches.
// Also the dense (float weight) linear through cuBLAS.
// Deliberately not here: kernels (qgemv*.cu, qgemm*.cu, qpack.cu).
#include <string.h>

#include "qkernels.cuh"

namespace {

// From this many tokens on, a dense copy + cuBLAS is used (0.8-0.97x cuBLAS at 4096 tokens, H100).
constexpr int kCublasMinTokens = 1024;
constexpr int kGemvMaxTokens = 32;
// gemv_wins: under this much weight the GEMV to 32 tokens, from it the GEMM from 9 tokens, except
// for weights of <= 4 bits and at most kGemvShortRows rows (the GEMV to kGemvShortRowsMaxTokens)
constexpr size_t kGemvOnlyBytes = (size_t)16 << 20;
constexpr int64_t kGemvShortRows = 4096;
constexpr int kGemvShortRowsMaxTokens = 16;
constexpr int kTmaMaxTokens = 4;
constexpr int kTmaShortRowsMaxTokens = 8; // prefer_tma
constexpr size_t kTmaMinBytes = (size_t)24 << 20;
constexpr int kTmaMinSlots = 3;

size_t align256(size_t n)
{
	return (n + 255) & ~(size_t)255;
}

struct qplan {
	shrink_cuda_qpath path;
	int splits;
	int gemm_bn; // the GEMM's tokens a CTA
	bool gemm_cluster; // the GEMM's splits add their sums in clusters
	qgemv_plan_t gemv;
	// x_bytes: the activations as the kernel reads them (the GEMM's layout, or rows padded to
	// whole k tiles for the GEMVs when K is not a multiple of 64); part: split-K partials
	size_t x_bytes, part_bytes, dense_bytes;
	size_t total() const { return align256(x_bytes) + align256(part_bytes) + align256(dense_bytes); }
};

// Whether AUTO takes the register GEMV at M tokens (else the GEMM). At 8 tokens a GEMV is
// faster at all six bench shapes (H100; H200, e.g. 4096x14336 12.0 us against the GEMM's 13.9,
// 8192x28672 39.7 against 50.4). From 9 tokens the GEMM wins from 30 MB of 4-bit
// weights on the H200 (bench_cuda --linear --batches 9,...,16, us, GEMM against GEMV at 9 and 12
// tokens: 4096x14336 13.7 and 14.0 against 16.4 and 17.3; 8192x8192 16.0 and 15.9 against 16.6
// and 17.7; 14336x4096 15.1 and 15.2 against 15.1 and 16.0; 117 MB 40-42 against 49-58): the
// GEMV's time grows with the tokens, the GEMM's (16 tokens a block) does not. On the H100, before
// the GEMM's scales were folded, the GEMV won at 30 MB up to 12-16 tokens. At 8 MB (4096x4096) the
// GEMV wins up to 32 tokens (H200 at 16: 5.7 against 9.0; H100 at 32: 9.3 against 10.6). The
// 16 MB boundary between them is older (H100); no weight between 8 and 30 MB was measured.
// Since the GEMV loads its first round before waiting for the kernel before (qgemv_reg.cu), it
// also wins at 9-16 tokens where the rows are few, so that the GEMM has few 256-row blocks and
// splits K deeply (H200, 16 tokens, us: 14336x4096 13.7 against the GEMM's 15.1; but 8192x8192
// 16.3 against 15.9). Measured at 4 bits with f16 activations only, so kept to <= 4 bits.
bool gemv_wins(const shrink_cuda_qweight *w, int M)
{
	return M <= 8 || (shrink_cuda_qweight_bytes(w) < kGemvOnlyBytes && M <= kGemvMaxTokens) ||
	       (w->bits <= 4 && w->rows <= kGemvShortRows && M <= kGemvShortRowsMaxTokens);
}

shrink_cuda_qpath resolve_path(shrink_cuda_qpath path, const shrink_cuda_qweight *w, int M)
{
	if (path != SHRINK_CUDA_QPATH_AUTO)
		return path;
	// the TMA GEMV, where it wins, is taken at launch (prefer_tma)
	return gemv_wins(w, M) ? SHRINK_CUDA_QPATH_GEMV_REG
	       : M >= kCublasMinTokens ? SHRINK_CUDA_QPATH_CUBLAS : SHRINK_CUDA_QPATH_GEMM;
}

// row_tiles: of every weight of the launch (more than w's own for the register GEMV's multi-weight launch)
qplan make_plan(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int M, shrink_cuda_qpath path,
		int split_k, int64_t row_tiles = 0)
{
	qplan p;
	memset(&p, 0, sizeof p);
	p.path = resolve_path(path, w, M);
	p.splits = 1;
	if (p.path == SHRINK_CUDA_QPATH_GEMM)
		p.x_bytes = qgemm_x_bytes(w, M);
	else if (w->cols % 64 != 0 && p.path != SHRINK_CUDA_QPATH_CUBLAS)
		p.x_bytes = (size_t)M * w->k_tiles * 64 * 2;
	if (p.path == SHRINK_CUDA_QPATH_CUBLAS) {
		p.dense_bytes = (size_t)w->rows * w->cols * 2;
	} else if (p.path == SHRINK_CUDA_QPATH_GEMV_TMA) {
		// no workspace beyond the padded activations
	} else if (p.path == SHRINK_CUDA_QPATH_GEMV || p.path == SHRINK_CUDA_QPATH_GEMV_REG) {
		p.gemv = p.path == SHRINK_CUDA_QPATH_GEMV
			     ? qgemv_plan(w, M, ctx->n_sms, split_k)
			     : qgemv_reg_plan(w, row_tiles ? row_tiles : w->row_tiles, M, ctx->n_sms, split_k);
		p.splits = p.gemv.splits;
		p.part_bytes = p.gemv.ws_floats * 4;
	} else {
		const qgemm_plan_t g = qgemm_plan(ctx, w, M, split_k);
		p.splits = g.splits, p.gemm_bn = g.bn, p.gemm_cluster = g.cluster;
		p.part_bytes = qgemm_ws_floats(w, M, g) * 4;
	}
	return p;
}

__global__ void pad_rows_kernel(const uint16_t *x, int64_t K, int64_t Kp, int64_t M, uint16_t *out)
{
	const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
	if (i >= M * Kp)
		return;
	const int64_t m = i / Kp, k = i % Kp;
	out[i] = k < K ? x[m * K + k] : (uint16_t)0;
}

cudaDataType_t cuda_type(shrink_cuda_dtype dt)
{
	return dt == SHRINK_CUDA_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

shrink_status gemm_cublas(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *w, int64_t N, int64_t K,
			  const void *x, int64_t M, void *y)
{
	const float alpha = 1.0f, beta = 0.0f;
	cublasStatus_t s = cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, w,
					cuda_type(dt), (int)K, x, cuda_type(dt), (int)K, &beta, y, cuda_type(dt), (int)N,
					CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (s != CUBLAS_STATUS_SUCCESS)
		return shrink_cuda_fail(ctx, SHRINK_EIO, "cublasGemmEx failed (status %d)", (int)s);
	return SHRINK_OK;
}

// AUTO's choice between the two GEMVs, for weights of >= kTmaMinBytes (4-bit) with a row tile an SM
// (the TMA GEMV does not split K). At 1-4 tokens the TMA GEMV wins where its ring holds at least
// kTmaMinSlots slots beside the activations, and loses where only two fit (H200, bench_cuda
// --linear, both forced, us: batch 1 28672x8192 33.0-35.4 against 34.1-36.5; 2 tokens 14336x4096
// 10.5 against 11.0; 4 tokens 8192x8192 11.8 against 12.3; two slots: 4 tokens 14336x4096 11.8
// against 11.2, 2 tokens 28672x8192 38-39 against 35-37); wide weights (twice as many rows as
// columns) take it anyway, and where it forms its activations (c->xin: the decode MLP) it saves a
// launch. Those times are of symmetric weights. With zero points (shrink-quantize's default) its
// consumers, which set its pace, run ~10 % more instructions a stage, and the register GEMV wins
// unless the rows are 4096 columns long, the weight wide and the token one (H200, us, TMA against
// register: 1 token 14336x4096 12.0 against 11.1, 8192x8192 12.9 against 12.1, 28672x8192 37.5
// against 33.7-34.4, 8192x28672 37.6 against 36.1-36.8, 4096x14336 10.6-10.8 against 11.5-11.6;
// 4096x14336 at 2, 4, 5 and 8 tokens 12.0 against 11.8, 12.6 against 12.1-12.2, 12.7 against 12.2,
// 12.7 against 12.8; in bf16 at 2 tokens 11.5 against 12.1, at 4 and 8 12.6 against 12.3, 13.3
// against 13.0). Below kTmaMinBytes it won alone (4096x4096 at 1 token 3.7 against 4.2; q/k/v as
// one launch 4.7 against 6.6) but the 8B-shaped model's decode lost with it there (484 -> 445
// tokens/s, q/k/v fused with their RMSNorm and o_proj on it). The 8-bit head stays on the register
// GEMV (20 % slower on the H100). At 5-8 tokens it wins only where the rows are 4096 columns long
// and the weight is wide (4096x14336: 11.3 against 13.7; 8192x28672 and 8192x8192 at 8 tokens,
// 14336x4096 at 5 tokens slower), measured for one weight alone.
bool prefer_tma(const shrink_cuda_ctx *ctx, const qcall *c, int64_t row_tiles)
{
	size_t bytes = shrink_cuda_qweight_bytes(c->w);
	for (int i = 1; i < c->n_weights; i++)
		bytes += shrink_cuda_qweight_bytes(c->more[i - 1]);
	if (c->w->bits > 4 || bytes < kTmaMinBytes || row_tiles < ctx->n_sms || !qgemv_tma_fits(c))
		return false;
	const bool wide = row_tiles * 16 >= 2 * c->w->cols;
	const bool short_wide = wide && c->w->cols <= 4096;
	if (!c->w->symmetric)
		return c->M <= kTmaMaxTokens && (c->xin || (c->M == 1 && short_wide));
	if (c->M > kTmaMaxTokens)
		return c->M <= kTmaShortRowsMaxTokens && c->n_weights <= 1 && short_wide;
	return c->xin || wide || qgemv_tma_slots(c) >= kTmaMinSlots;
}

} // namespace

extern "C" size_t shrink_cuda_qlinear_workspace(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w,
						int64_t max_tok, bool allow_cublas)
{
	size_t need = 0;
	for (int64_t M = 1; M <= max_tok && M <= 2 * kCublasMinTokens; M = M < 32 ? M + 1 : 2 * M) {
		static const shrink_cuda_qpath paths[] = {SHRINK_CUDA_QPATH_GEMV, SHRINK_CUDA_QPATH_GEMV_REG,
							  SHRINK_CUDA_QPATH_GEMM};
		for (int pi = 0; pi < 3; pi++) {
			if (pi < 2 && M > 32)
				continue;
			qplan p = make_plan(ctx, w, (int)M, paths[pi], 0);
			need = p.total() > need ? p.total() : need;
		}
	}
	if (w->cols % 64)
		need += align256((size_t)max_tok * w->k_tiles * 64 * 2);
	if (max_tok >= 1) // the GEMM's layout of x for token counts between the sampled ones
		need += align256(qgemm_x_bytes(w, (int)(max_tok < 2 * kCublasMinTokens ? max_tok : 2 * kCublasMinTokens)));
	if (allow_cublas && max_tok >= kCublasMinTokens)
		need = need > align256((size_t)w->rows * w->cols * 2) ? need : align256((size_t)w->rows * w->cols * 2);
	return need;
}

namespace {

// The plan a call of M tokens runs: AUTO resolved, falling back to what ctx's workspace holds, and
// for AUTO the TMA GEMV where it wins (prefer_tma; the activations' alignment is checked by the
// caller, so the workspace stands in for them).
shrink_status plan_call(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int M, shrink_cuda_qpath path, int split_k,
			qplan *out)
{
	if ((path == SHRINK_CUDA_QPATH_GEMV || path == SHRINK_CUDA_QPATH_GEMV_REG) && M > 32)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: the GEMV path takes at most 32 tokens");
	if (split_k < 0 || split_k > 64)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: split_k %d out of range", split_k);
	qplan p = make_plan(ctx, w, M, path, split_k);
	if (p.total() > ctx->workspace_bytes && path == SHRINK_CUDA_QPATH_AUTO) {
		// fall back to what fits: no dense copy, then no split
		p = make_plan(ctx, w, M, gemv_wins(w, M) ? SHRINK_CUDA_QPATH_GEMV_REG : SHRINK_CUDA_QPATH_GEMM, 0);
		if (p.total() > ctx->workspace_bytes)
			p = make_plan(ctx, w, M, p.path, 1);
	}
	if (p.total() > ctx->workspace_bytes)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: workspace of %zu bytes, %zu needed",
					ctx->workspace_bytes, p.total());
	if (path == SHRINK_CUDA_QPATH_AUTO && p.path == SHRINK_CUDA_QPATH_GEMV_REG) {
		qcall c;
		memset(&c, 0, sizeof c);
		c.w = w, c.M = M, c.x = ctx->workspace, c.ldx = p.x_bytes ? w->k_tiles * 64 : w->cols;
		if (prefer_tma(ctx, &c, w->row_tiles))
			p.path = SHRINK_CUDA_QPATH_GEMV_TMA, p.splits = 1;
	}
	*out = p;
	return SHRINK_OK;
}

} // namespace

extern "C" shrink_status shrink_cuda_qlinear_plan(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int64_t n_tok,
						  shrink_cuda_qpath path, int split_k, shrink_cuda_qplan *out)
{
	if (n_tok < 1 || n_tok > (1 << 24) || !w || !w->qw || !out)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear_plan: bad arguments");
	qplan p;
	const shrink_status st = plan_call(ctx, w, (int)n_tok, path, split_k, &p);
	if (st != SHRINK_OK)
		return st;
	out->path = p.path;
	out->splits = p.splits;
	out->block_tokens = p.path == SHRINK_CUDA_QPATH_GEMM ? p.gemm_bn : 0;
	out->cluster = p.path == SHRINK_CUDA_QPATH_GEMM && p.gemm_cluster;
	out->workspace_bytes = p.total();
	return SHRINK_OK;
}

extern "C" shrink_status shrink_cuda_qlinear_path(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w,
						  shrink_cuda_dtype dt, const void *x, int64_t n_tok, void *y,
						  shrink_cuda_qpath path, int split_k)
{
	if (dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: activations must be f16 or bf16");
	if (n_tok < 0 || n_tok > (1 << 24) || !w || !w->qw || (n_tok > 0 && (!x || !y)))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: bad arguments");
	if (!aligned16(x) || !aligned16(y))
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear: buffers must be 16-byte aligned");
	if (n_tok == 0)
		return SHRINK_OK;
	const int M = (int)n_tok;
	qplan p;
	shrink_status st = plan_call(ctx, w, M, path, split_k, &p);
	if (st != SHRINK_OK)
		return st;
	uint8_t *ws = static_cast<uint8_t *>(ctx->workspace);
	void *xbuf = ws;
	float *part = reinterpret_cast<float *>(ws + align256(p.x_bytes));
	void *dense = ws + align256(p.x_bytes) + align256(p.part_bytes);

	if (p.path == SHRINK_CUDA_QPATH_CUBLAS) {
		st = qdequant_launch(ctx, w, dt, dense);
		if (st != SHRINK_OK)
			return st;
		return gemm_cublas(ctx, dt, dense, w->rows, w->cols, x, M, y);
	}
	qcall c;
	memset(&c, 0, sizeof c);
	c.w = w, c.dt = dt, c.x = x, c.ldx = w->cols, c.M = M, c.y = y, c.splits = p.splits;
	c.ws = p.splits > 1 && !p.gemm_cluster ? part : NULL;
	if (p.path == SHRINK_CUDA_QPATH_GEMM) {
		c.xp = xbuf, c.bn = p.gemm_bn, c.cluster = p.gemm_cluster;
		return qgemm_launch(ctx, &c);
	}
	if (p.x_bytes) {
		const int64_t Kp = w->k_tiles * 64;
		pad_rows_kernel<<<(unsigned)ceil_div64(M * Kp, 256), 256, 0, ctx->stream>>>(
			static_cast<const uint16_t *>(x), w->cols, Kp, M, static_cast<uint16_t *>(xbuf));
		st = shrink_cuda_launched(ctx, "qlinear pad");
		if (st != SHRINK_OK)
			return st;
		c.x = xbuf, c.ldx = Kp;
	}
	if (p.path == SHRINK_CUDA_QPATH_GEMV_TMA) {
		if (!qgemv_tma_fits(&c))
			return shrink_cuda_fail(ctx, SHRINK_EUSAGE,
						"qlinear: the TMA GEMV takes 1-8 tokens whose activations fit shared memory");
		return qgemv_tma_launch(ctx, &c);
	}
	if (p.path == SHRINK_CUDA_QPATH_GEMV)
		return qgemv_launch(ctx, &c, &p.gemv);
	if (p.path == SHRINK_CUDA_QPATH_GEMV_REG)
		return qgemv_reg_launch(ctx, &c, &p.gemv);
	return shrink_cuda_fail(ctx, SHRINK_EINTERNAL, "qlinear: unknown path %d", (int)p.path);
}

extern "C" shrink_status shrink_cuda_qlinear(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w,
					     shrink_cuda_dtype dt, const void *x, int64_t n_tok, void *y)
{
	return shrink_cuda_qlinear_path(ctx, w, dt, x, n_tok, y, SHRINK_CUDA_QPATH_AUTO, 0);
}

extern "C" shrink_status shrink_cuda_linear_dense(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *w,
						  int64_t rows, int64_t cols, const void *x, int64_t n_tok, void *y)
{
	if (dt != SHRINK_CUDA_F16 && dt != SHRINK_CUDA_BF16)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "linear_dense: activations must be f16 or bf16");
	if (rows < 1 || cols < 1 || n_tok < 0 || rows > INT32_MAX || cols > INT32_MAX || n_tok > INT32_MAX)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "linear_dense: bad shape");
	if (n_tok == 0)
		return SHRINK_OK;
	return gemm_cublas(ctx, dt, w, rows, cols, x, n_tok, y);
}

// Whether w[1..n) can share w[0]'s launch of the register GEMV.
static bool same_scheme(const shrink_cuda_qweight *const *w, int n)
{
	for (int i = 1; i < n; i++)
		if (!w[i] || !w[i]->qw || w[i]->bits != w[0]->bits || w[i]->group_size != w[0]->group_size ||
		    w[i]->symmetric != w[0]->symmetric || w[i]->cols != w[0]->cols)
			return false;
	return true;
}

// The call of n_w weights sharing x (one launch): weights, outputs and tokens; returns their row tiles.
static int64_t multi_call(qcall *c, int n_w, const shrink_cuda_qweight *const *w, shrink_cuda_dtype dt,
			  const void *x, int64_t n_tok, void *const *y)
{
	memset(c, 0, sizeof *c);
	c->w = w[0], c->dt = dt, c->x = x, c->ldx = w[0]->cols, c->M = (int)n_tok, c->y = y[0], c->splits = 1;
	c->n_weights = n_w;
	int64_t row_tiles = w[0]->row_tiles;
	for (int i = 1; i < n_w; i++)
		c->more[i - 1] = w[i], c->more_y[i - 1] = y[i], row_tiles += w[i]->row_tiles;
	return row_tiles;
}

extern "C" shrink_status shrink_cuda_qlinear_multi(shrink_cuda_ctx *ctx, int n_w, const shrink_cuda_qweight *const *w,
						   shrink_cuda_dtype dt, const void *x, int64_t n_tok, void *const *y)
{
	if (n_w < 1 || n_w > 3 || !w || !y)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear_multi: 1 to 3 weights");
	bool one_launch = n_w > 1 && n_tok >= 1 && gemv_wins(w[0], (int)n_tok) && same_scheme(w, n_w) &&
			  w[0]->cols % 64 == 0 && (dt == SHRINK_CUDA_F16 || dt == SHRINK_CUDA_BF16) && x && aligned16(x);
	for (int i = 0; one_launch && i < n_w; i++)
		one_launch = y[i] && aligned16(y[i]);
	if (!one_launch) {
		for (int i = 0; i < n_w; i++) {
			shrink_status st = shrink_cuda_qlinear(ctx, w[i], dt, x, n_tok, y[i]);
			if (st != SHRINK_OK)
				return st;
		}
		return SHRINK_OK;
	}
	qcall c;
	const int64_t row_tiles = multi_call(&c, n_w, w, dt, x, n_tok, y);
	const int M = (int)n_tok;
	qplan p = make_plan(ctx, w[0], M, SHRINK_CUDA_QPATH_GEMV_REG, 0, row_tiles);
	if (p.total() > ctx->workspace_bytes)
		p = make_plan(ctx, w[0], M, SHRINK_CUDA_QPATH_GEMV_REG, 1, row_tiles);
	if (p.total() > ctx->workspace_bytes)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear_multi: workspace of %zu bytes, %zu needed",
					ctx->workspace_bytes, p.total());
	c.splits = p.splits;
	c.ws = p.splits > 1 ? reinterpret_cast<float *>(static_cast<uint8_t *>(ctx->workspace)) : NULL;
	if (prefer_tma(ctx, &c, row_tiles))
		return qgemv_tma_launch(ctx, &c);
	return qgemv_reg_launch(ctx, &c, &p.gemv);
}

// The activations of in, formed by a kernel of their own into in->scratch (the unfused way).
extern "C" shrink_status shrink_cuda_xin_form(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const shrink_cuda_xin *in,
					      int64_t n_tok, int64_t K)
{
	switch (in->kind) {
	case SHRINK_CUDA_XIN_SWIGLU:
		return shrink_cuda_swiglu(ctx, dt, in->x, in->up, n_tok * K, in->scratch);
	case SHRINK_CUDA_XIN_ADD_RMSNORM:
		if (dt != SHRINK_CUDA_F16)
			return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "xin: the residual RMSNorm is f16 only");
		return add_rmsnorm_launch(ctx, const_cast<float *>(in->res), static_cast<const uint16_t *>(in->x), NULL,
					  false, in->norm_w, n_tok, K, in->eps, static_cast<uint16_t *>(in->scratch));
	default:
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "xin: nothing to form");
	}
}

extern "C" shrink_status shrink_cuda_qlinear_multi_xin(shrink_cuda_ctx *ctx, int n_w,
						       const shrink_cuda_qweight *const *w, shrink_cuda_dtype dt,
						       const shrink_cuda_xin *in, int64_t n_tok, void *const *y)
{
	if (!in || n_w < 1 || n_w > 3 || !w || !w[0] || !w[0]->qw || !y)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear_multi_xin: bad arguments");
	if (in->kind == SHRINK_CUDA_XIN_PLAIN)
		return shrink_cuda_qlinear_multi(ctx, n_w, w, dt, in->x, n_tok, y);
	const bool swiglu = in->kind == SHRINK_CUDA_XIN_SWIGLU;
	if ((!swiglu && in->kind != SHRINK_CUDA_XIN_ADD_RMSNORM) || !in->scratch || (swiglu && (!in->x || !in->up)) ||
	    (!swiglu && (!in->res || !in->norm_w || dt != SHRINK_CUDA_F16)) || n_tok < 0)
		return shrink_cuda_fail(ctx, SHRINK_EUSAGE, "qlinear_multi_xin: bad activations");
	if (n_tok == 0)
		return SHRINK_OK;
	const int64_t K = w[0]->cols;
	// fused: one launch of the TMA GEMV that forms the activations itself
	qcall c;
	const int64_t row_tiles = multi_call(&c, n_w, w, dt, in->scratch, n_tok, y);
	bool fused = n_tok <= kTmaMaxTokens && K % 64 == 0 && same_scheme(w, n_w) &&
		     (dt == SHRINK_CUDA_F16 || dt == SHRINK_CUDA_BF16);
	const void *ptrs[] = {in->x, in->up, in->res, in->norm_w};
	for (int i = 0; i < 4; i++)
		fused = fused && aligned16(ptrs[i]);
	for (int i = 0; i < n_w; i++)
		fused = fused && y[i] && aligned16(y[i]);
	c.xin = in;
	if (fused && prefer_tma(ctx, &c, row_tiles))
		return qgemv_tma_launch(ctx, &c);
	shrink_status st = shrink_cuda_xin_form(ctx, dt, in, n_tok, K);
	return st ? st : shrink_cuda_qlinear_multi(ctx, n_w, w, dt, in->scratch, n_tok, y);
}

extern "C" size_t shrink_cuda_qlinear_multi_workspace(const shrink_cuda_ctx *ctx, int n_w,
						      const shrink_cuda_qweight *const *w, int64_t max_tok)
{
	int64_t row_tiles = 0;
	size_t need = 0;
	for (int i = 0; i < n_w; i++) {
		row_tiles += w[i]->row_tiles;
		const size_t b = shrink_cuda_qlinear_workspace(ctx, w[i], max_tok, false);
		need = b > need ? b : need;
	}
	for (int64_t M = 1; M <= max_tok && M <= kGemvMaxTokens; M++) {
		const qplan p = make_plan(ctx, w[0], (int)M, SHRINK_CUDA_QPATH_GEMV_REG, 0, row_tiles);
		need = p.total() > need ? p.total() : need;
	}
	return need;
}
