/* test_cuda.c: every kernel of kernels/cuda against a float64 CPU reference
 * (cuda_ref.c) on random inputs of many shapes, odd ones included: quantized
 * linear at every bit width, symmetric and asymmetric, every group size, f16
 * and bf16, through each path (GEMV, tiled GEMM, dequantize + cuBLAS) with and
 * without split-K; the dequantizer; W8A8; embedding, RMSNorm, RoPE, SwiGLU,
 * add, argmax, KV store, attention (decode, prefill, chunked prefill, GQA);
 * the fused decode step (rope + KV store + attention, position in device
 * memory), also replayed from a CUDA graph at several positions; several
 * weights in one launch (shrink_cuda_qlinear_multi); attention over the
 * compressed KV caches of lib/kv (kivi, gear) against the CPU decoder.
 * Outputs are poisoned with NaN before each run and followed by a guard that
 * must stay untouched; errors are ||out - ref|| / ||ref||.
 *   test_cuda [--quick] [--seed N]     (--quick: small shapes, for compute-sanitizer)
 * Exit: 0 all passed, 1 a check failed, 77 no CUDA device (skip).
 * Deliberately no timing (tests/bench/bench_cuda.c does that). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "cuda_ref.h"

#define GUARD 256
#define TOL_F16 2e-3
#define TOL_BF16 1e-2

static int n_pass, n_fail;
static shrink_cuda_ctx *ctx;
static bool quick;

static void die_cuda(cudaError_t e, const char *what)
{
	fprintf(stderr, "test_cuda: %s: %s\n", what, cudaGetErrorString(e));
	exit(1);
}
#define CK(call)                                                                                                       \
	do {                                                                                                           \
		cudaError_t e_ = (call);                                                                               \
		if (e_ != cudaSuccess)                                                                                 \
			die_cuda(e_, #call);                                                                           \
	} while (0)

/* A device buffer of n_bytes followed by GUARD bytes, all set to 0xff (NaN for f16/bf16/f32). */
static void *dev_poisoned(size_t n_bytes)
{
	void *p;
	CK(cudaMalloc(&p, n_bytes + GUARD));
	CK(cudaMemset(p, 0xff, n_bytes + GUARD));
	return p;
}

static void *dev_upload(const void *h, size_t n_bytes)
{
	void *p;
	CK(cudaMalloc(&p, n_bytes + GUARD));
	CK(cudaMemset(p, 0xff, n_bytes + GUARD));
	CK(cudaMemcpy(p, h, n_bytes, cudaMemcpyHostToDevice));
	return p;
}

/* Copy back n_bytes; false if the guard after them was written. */
static bool dev_download(void *h, const void *d, size_t n_bytes)
{
	unsigned char guard[GUARD];
	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(h, d, n_bytes, cudaMemcpyDeviceToHost));
	CK(cudaMemcpy(guard, (const char *)d + n_bytes, GUARD, cudaMemcpyDeviceToHost));
	for (int i = 0; i < GUARD; i++)
		if (guard[i] != 0xff)
			return false;
	return true;
}

static void report(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", ok ? "ok  " : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (ok)
		n_pass++;
	else
		n_fail++;
}

static bool status_ok(shrink_status st, const char *what)
{
	if (st == SHRINK_OK)
		return true;
	report(false, "%s: status %d: %s", what, (int)st, shrink_cuda_ctx_message(ctx));
	return false;
}

static const char *dt_name(int dt)
{
	return dt == 0 ? "f16" : dt == 1 ? "bf16" : "f32";
}

static double tol(int dt)
{
	return dt == 0 ? TOL_F16 : TOL_BF16;
}

static uint16_t *random_half(int dt, size_t n, double sd, ref_rng *rng)
{
	uint16_t *v = malloc(n * 2);
	for (size_t i = 0; i < n; i++)
		v[i] = ref_to_half(dt, (float)(sd * ref_normal(rng)));
	return v;
}

/* ---- quantized linear ------------------------------------------------------------------ */

static const char *path_name(shrink_cuda_qpath p)
{
	return p == SHRINK_CUDA_QPATH_GEMV ? "gemv" : p == SHRINK_CUDA_QPATH_GEMM ? "gemm"
					     : p == SHRINK_CUDA_QPATH_CUBLAS ? "cublas"
					     : p == SHRINK_CUDA_QPATH_GEMV_REG ? "gemv-reg"
					     : p == SHRINK_CUDA_QPATH_GEMV_TMA ? "gemv-tma" : "auto";
}

static void check_qlinear(const ref_qmatrix *m, const shrink_cuda_qweight *w, int dt, int64_t M,
			  shrink_cuda_qpath path, int split, ref_rng *rng)
{
	uint16_t *x = random_half(dt, (size_t)M * m->cols, 1.0, rng);
	double *ref = malloc((size_t)M * m->rows * sizeof(double));
	uint16_t *y = malloc((size_t)M * m->rows * 2);
	ref_qlinear(m, dt, x, M, ref);
	void *dx = dev_upload(x, (size_t)M * m->cols * 2);
	void *dy = dev_poisoned((size_t)M * m->rows * 2);
	shrink_status st = shrink_cuda_qlinear_path(ctx, w, (shrink_cuda_dtype)dt, dx, M, dy, path, split);
	if (status_ok(st, "qlinear")) {
		bool guard = dev_download(y, dy, (size_t)M * m->rows * 2);
		double err = ref_rel_err_half(dt, y, ref, (size_t)M * m->rows);
		report(guard && err <= tol(dt), "qlinear b%d %s g%d %s N=%lld K=%lld M=%lld %s split=%d err=%.2e%s",
		       m->bits, m->symmetric ? "sym" : "asym", m->group_size, dt_name(dt), (long long)m->rows,
		       (long long)m->cols, (long long)M, path_name(path), split, err, guard ? "" : " GUARD WRITTEN");
	}
	cudaFree(dx);
	cudaFree(dy);
	free(x);
	free(ref);
	free(y);
}

static void check_dequant(const ref_qmatrix *m, const shrink_cuda_qweight *w, int dt)
{
	size_t n = (size_t)m->rows * m->cols;
	void *d = dev_poisoned(n * 2);
	uint16_t *out = malloc(n * 2);
	if (status_ok(shrink_cuda_qweight_dequant(ctx, w, (shrink_cuda_dtype)dt, d), "dequant")) {
		bool guard = dev_download(out, d, n * 2);
		size_t bad = 0;
		for (int64_t r = 0; r < m->rows; r++)
			for (int64_t c = 0; c < m->cols; c++) {
				uint16_t want = ref_to_half(dt, (float)ref_qmatrix_weight(m, r, c));
				if (out[r * m->cols + c] != want)
					bad++;
			}
		report(guard && bad == 0, "dequant b%d %s g%d %s N=%lld K=%lld mismatches=%zu%s", m->bits,
		       m->symmetric ? "sym" : "asym", m->group_size, dt_name(dt), (long long)m->rows,
		       (long long)m->cols, bad, guard ? "" : " GUARD WRITTEN");
	}
	cudaFree(d);
	free(out);
}

/* The plans of the calls above on the 17003 x 192 weight: which GEMM ran, and how its splits met
 * (partials take workspace that a cluster does not). */
static void check_plans(const shrink_cuda_qweight *w)
{
	static const struct {
		int64_t M;
		shrink_cuda_qpath path;
		int split, splits, block_tokens;
		bool cluster;
	} want[] = {{128, SHRINK_CUDA_QPATH_AUTO, 0, 1, 128, false},
		    {200, SHRINK_CUDA_QPATH_GEMM, 3, 3, 0, false},
		    {200, SHRINK_CUDA_QPATH_GEMM, 2, 2, 0, true}}; /* block_tokens 0: either */
	shrink_cuda_qplan p[3];
	for (int i = 0; i < 3; i++) {
		memset(&p[i], 0, sizeof p[i]);
		const shrink_status st =
		    shrink_cuda_qlinear_plan(ctx, w, want[i].M, want[i].path, want[i].split, &p[i]);
		report(st == SHRINK_OK && p[i].path == SHRINK_CUDA_QPATH_GEMM && p[i].splits == want[i].splits &&
			   (!want[i].block_tokens || p[i].block_tokens == want[i].block_tokens) &&
			   p[i].cluster == want[i].cluster,
		       "qlinear plan M=%lld split=%d: path %d, %d splits, %d tokens a CTA, %s, %zu workspace bytes",
		       (long long)want[i].M, want[i].split, (int)p[i].path, p[i].splits, p[i].block_tokens,
		       p[i].cluster ? "cluster" : "partials", p[i].workspace_bytes);
	}
	report(p[1].workspace_bytes > p[2].workspace_bytes,
	       "qlinear plan: split-K partials take workspace, a cluster none");
	shrink_cuda_qplan q;
	report(shrink_cuda_qlinear_plan(ctx, w, 40, SHRINK_CUDA_QPATH_GEMV, 0, &q) == SHRINK_EUSAGE,
	       "qlinear plan: the GEMV path refuses 40 tokens");
}

/* AUTO's path for weights of 16 MiB or more (where the GEMM takes 9 tokens and more), by rows:
 * the register GEMV to 16 tokens for at most 4096 rows (qlinear.cu, gemv_wins). Plans only: the
 * codes are zero and the scales one. */
static void test_qlinear_auto_rows(void)
{
	static const struct {
		int64_t rows;
		int M;
		shrink_cuda_qpath path;
	} cases[] = {{4096, 9, SHRINK_CUDA_QPATH_GEMV_REG},
		     {4096, 12, SHRINK_CUDA_QPATH_GEMV_REG},
		     {4096, 16, SHRINK_CUDA_QPATH_GEMV_REG},
		     {4096, 17, SHRINK_CUDA_QPATH_GEMM},
		     {4352, 9, SHRINK_CUDA_QPATH_GEMM}};
	const int64_t cols = 8192;
	const size_t codes = (size_t)4352 * cols / 2, n_scales = (size_t)4352 * cols / 128;
	uint8_t *q = calloc(codes, 1);
	uint16_t *sc = malloc(n_scales * 2);
	if (!q || !sc) {
		report(false, "qlinear plan AUTO: out of host memory");
		free(q);
		free(sc);
		return;
	}
	for (size_t i = 0; i < n_scales; i++)
		sc[i] = 0x3c00;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		shrink_cuda_qweight w;
		if (!status_ok(shrink_cuda_qweight_upload(ctx, 4, 128, true, cases[i].rows, cols, q, sc, NULL, &w),
			       "upload"))
			continue;
		shrink_cuda_qplan p;
		memset(&p, 0, sizeof p);
		const shrink_status st = shrink_cuda_qlinear_plan(ctx, &w, cases[i].M, SHRINK_CUDA_QPATH_AUTO, 0, &p);
		report(st == SHRINK_OK && p.path == cases[i].path && shrink_cuda_qweight_bytes(&w) >= (16u << 20),
		       "qlinear plan AUTO %lld rows x %lld at M=%d: path %d (want %d), %zu weight bytes",
		       (long long)cases[i].rows, (long long)cols, cases[i].M, (int)p.path, (int)cases[i].path,
		       shrink_cuda_qweight_bytes(&w));
		shrink_cuda_qweight_free(&w);
	}
	free(q);
	free(sc);
}

/* The register GEMV with 4 row tiles a CTA (17-32 tokens, from 512 row tiles or 128 k tiles:
 * qgemv_reg.cu's rows_per_cta): its whole rounds over 4 row tiles, and a last CTA with fewer. */
static void test_qlinear_rows4(ref_rng *rng)
{
	static const struct {
		int bits, group;
		bool sym;
		int64_t rows, cols;
		int M, split;
	} cases[] = {{4, 128, true, 100, 8256, 32, 0}, {3, 64, false, 100, 8256, 17, 3},
		     {8, 0, true, 37, 8192, 24, 0},    {4, 32, false, 8195, 192, 24, 0},
		     {5, 128, true, 8195, 320, 29, 2}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (int dt = 0; dt < 2; dt++) {
			ref_qmatrix m;
			ref_qmatrix_random(&m, cases[i].bits, cases[i].group, cases[i].sym, cases[i].rows, cases[i].cols,
					   rng);
			shrink_cuda_qweight w;
			if (status_ok(shrink_cuda_qweight_upload(ctx, m.bits, cases[i].group, cases[i].sym, m.rows, m.cols,
								 m.packed, m.scales, m.zeros, &w),
				      "qweight_upload")) {
				check_qlinear(&m, &w, dt, cases[i].M, SHRINK_CUDA_QPATH_GEMV_REG, cases[i].split, rng);
				shrink_cuda_qweight_free(&w);
			}
			ref_qmatrix_free(&m);
		}
}

static void test_qlinear(ref_rng *rng)
{
	static const int bits_list[] = {2, 3, 4, 5, 6, 8};
	static const int groups[] = {128, 0, 16, 32, 64, 256};
	static const int64_t shapes[][2] = {{16, 64}, {37, 100}, {128, 256}, {200, 1000},
					    {1030, 520}, {96, 4096}, {64, 2048}};
	struct {
		shrink_cuda_qpath path;
		int M, split;
	} cases[] = {
		{SHRINK_CUDA_QPATH_GEMV, 1, 0},   {SHRINK_CUDA_QPATH_GEMV, 5, 3},   {SHRINK_CUDA_QPATH_GEMV, 16, 1},
		{SHRINK_CUDA_QPATH_GEMV, 29, 0},  {SHRINK_CUDA_QPATH_GEMM, 33, 0},  {SHRINK_CUDA_QPATH_GEMM, 100, 2},
		{SHRINK_CUDA_QPATH_GEMM, 130, 1}, {SHRINK_CUDA_QPATH_CUBLAS, 17, 0}, {SHRINK_CUDA_QPATH_AUTO, 8, 0},
		{SHRINK_CUDA_QPATH_GEMV, 3, 0},   {SHRINK_CUDA_QPATH_GEMV, 12, 0},  {SHRINK_CUDA_QPATH_GEMV, 1, 0},
		{SHRINK_CUDA_QPATH_GEMV_REG, 1, 0}, {SHRINK_CUDA_QPATH_GEMV_REG, 6, 3},
		{SHRINK_CUDA_QPATH_GEMV_REG, 20, 0}, {SHRINK_CUDA_QPATH_GEMV_REG, 3, 1},
		{SHRINK_CUDA_QPATH_GEMV_REG, 32, 2}, {SHRINK_CUDA_QPATH_GEMV_TMA, 1, 0},
		{SHRINK_CUDA_QPATH_GEMV_TMA, 5, 0},  {SHRINK_CUDA_QPATH_GEMV_TMA, 8, 0},
		{SHRINK_CUDA_QPATH_GEMV_TMA, 2, 0},  {SHRINK_CUDA_QPATH_GEMV_REG, 13, 0},
		{SHRINK_CUDA_QPATH_GEMV_REG, 25, 3},
		/* the GEMM below and above its 64-token block, k ranges ending inside a split */
		{SHRINK_CUDA_QPATH_GEMM, 7, 3},    {SHRINK_CUDA_QPATH_GEMM, 16, 0},  {SHRINK_CUDA_QPATH_GEMM, 24, 5},
		{SHRINK_CUDA_QPATH_GEMM, 32, 0},   {SHRINK_CUDA_QPATH_GEMM, 64, 3},  {SHRINK_CUDA_QPATH_GEMM, 50, 0},
		{SHRINK_CUDA_QPATH_GEMM, 128, 0},  {SHRINK_CUDA_QPATH_GEMM, 257, 2},
		/* forced 2 and 12 splits: a cluster of two CTAs where two splits have k tiles, else
		 * partials (12 asked for gives 4-11 that have k tiles, by K) */
		{SHRINK_CUDA_QPATH_GEMM, 20, 2},   {SHRINK_CUDA_QPATH_GEMM, 40, 12},
	};
	const int n_shapes = quick ? 4 : 7, n_cases = (int)(sizeof cases / sizeof cases[0]);
	int cfg = 0;
	for (int bi = 0; bi < 6; bi++)
		for (int sym = 1; sym >= 0; sym--)
			for (int dt = 0; dt < 2; dt++, cfg++)
				for (int j = 0; j < n_cases; j++) {
					if (quick && j % 3 != cfg % 3)
						continue;
					const int g = groups[(cfg * 5 + j) % 6];
					const int64_t *sh = shapes[(cfg + j) % n_shapes];
					ref_qmatrix m;
					ref_qmatrix_random(&m, bits_list[bi], g, sym, sh[0], sh[1], rng);
					shrink_cuda_qweight w;
					if (status_ok(shrink_cuda_qweight_upload(ctx, m.bits, g, sym, m.rows, m.cols,
										 m.packed, m.scales, m.zeros, &w),
						      "qweight_upload")) {
						check_qlinear(&m, &w, dt, cases[j].M, cases[j].path, cases[j].split, rng);
						if (j == 0)
							check_dequant(&m, &w, dt);
						shrink_cuda_qweight_free(&w);
					}
					ref_qmatrix_free(&m);
				}
	if (quick)
		return;
	/* real layer shape, decode and a GEMM batch, 4-bit g128 */
	for (int dt = 0; dt < 2; dt++) {
		ref_qmatrix m;
		ref_qmatrix_random(&m, 4, 128, true, 4096, 4096, rng);
		shrink_cuda_qweight w;
		if (status_ok(shrink_cuda_qweight_upload(ctx, 4, 128, true, m.rows, m.cols, m.packed, m.scales, NULL,
							 &w),
			      "qweight_upload")) {
			check_qlinear(&m, &w, dt, 1, SHRINK_CUDA_QPATH_AUTO, 0, rng);
			check_qlinear(&m, &w, dt, 64, SHRINK_CUDA_QPATH_AUTO, 0, rng);
			check_qlinear(&m, &w, dt, 16, SHRINK_CUDA_QPATH_GEMM, 0, rng);
			check_qlinear(&m, &w, dt, 128, SHRINK_CUDA_QPATH_AUTO, 0, rng);
			shrink_cuda_qweight_free(&w);
		}
		ref_qmatrix_free(&m);
	}
	/* many rows: the GEMM's plan takes 128 tokens a CTA (67 blocks of 256 rows, the last one
	 * partly past the weight), without split K, with three splits (partials) and with two (a
	 * cluster of two CTAs); K = 192 is three k tiles */
	for (int dt = 0; dt < 2; dt++) {
		ref_qmatrix m;
		ref_qmatrix_random(&m, 4, 32, false, 17003, 192, rng);
		shrink_cuda_qweight w;
		if (status_ok(shrink_cuda_qweight_upload(ctx, 4, 32, false, m.rows, m.cols, m.packed, m.scales, m.zeros,
							 &w),
			      "qweight_upload")) {
			check_qlinear(&m, &w, dt, 128, SHRINK_CUDA_QPATH_AUTO, 0, rng);
			check_qlinear(&m, &w, dt, 200, SHRINK_CUDA_QPATH_GEMM, 3, rng);
			check_qlinear(&m, &w, dt, 200, SHRINK_CUDA_QPATH_GEMM, 2, rng);
			if (dt == 0)
				check_plans(&w);
			shrink_cuda_qweight_free(&w);
		}
		ref_qmatrix_free(&m);
	}
}

/* Two linears back to back in the stream with no wait between (they are dependent launches,
 * kernels/cuda/pdl.cuh): the second reads the first's output (poisoned before) and writes over
 * the first's input. A kernel that read its input, or wrote, before the kernel before it ended
 * would show here as NaN or as a first output made from a half-overwritten x. */
static void check_chain(int dt, int64_t M, shrink_cuda_qpath p1, shrink_cuda_qpath p2, ref_rng *rng)
{
	const int64_t K = 1024, N = 4096;
	ref_qmatrix a, b;
	ref_qmatrix_random(&a, 4, 128, true, N, K, rng);
	ref_qmatrix_random(&b, 4, 64, false, K, N, rng);
	shrink_cuda_qweight wa, wb;
	bool up_a = status_ok(shrink_cuda_qweight_upload(ctx, 4, 128, true, N, K, a.packed, a.scales, NULL, &wa),
			      "qweight_upload");
	bool up_b = status_ok(shrink_cuda_qweight_upload(ctx, 4, 64, false, K, N, b.packed, b.scales, b.zeros, &wb),
			      "qweight_upload");
	uint16_t *x = random_half(dt, (size_t)M * K, 1.0, rng), *y1 = malloc((size_t)M * N * 2);
	uint16_t *y2 = malloc((size_t)M * K * 2);
	double *r1 = malloc((size_t)M * N * sizeof(double)), *r2 = malloc((size_t)M * K * sizeof(double));
	void *dx = dev_upload(x, (size_t)M * K * 2), *d1 = dev_poisoned((size_t)M * N * 2);
	if (up_a && up_b &&
	    status_ok(shrink_cuda_qlinear_path(ctx, &wa, (shrink_cuda_dtype)dt, dx, M, d1, p1, 0), "qlinear") &&
	    status_ok(shrink_cuda_qlinear_path(ctx, &wb, (shrink_cuda_dtype)dt, d1, M, dx, p2, 0), "qlinear")) {
		bool guard = dev_download(y1, d1, (size_t)M * N * 2) && dev_download(y2, dx, (size_t)M * K * 2);
		ref_qlinear(&a, dt, x, M, r1);
		ref_qlinear(&b, dt, y1, M, r2); /* from the first output as it is: each step is checked alone */
		double e1 = ref_rel_err_half(dt, y1, r1, (size_t)M * N);
		double e2 = ref_rel_err_half(dt, y2, r2, (size_t)M * K);
		report(guard && e1 <= tol(dt) && e2 <= tol(dt), "qlinear chain %s M=%lld %s -> %s err=%.2e, %.2e%s",
		       dt_name(dt), (long long)M, path_name(p1), path_name(p2), e1, e2, guard ? "" : " GUARD WRITTEN");
	}
	if (up_a)
		shrink_cuda_qweight_free(&wa);
	if (up_b)
		shrink_cuda_qweight_free(&wb);
	cudaFree(dx);
	cudaFree(d1);
	free(x), free(y1), free(y2), free(r1), free(r2);
	ref_qmatrix_free(&a);
	ref_qmatrix_free(&b);
}

/* One weight through the TMA GEMV at each of n token counts (the first twice: the launch after a
 * launch of the same weight), both activation types. */
static void check_qlinear_tma(int bits, int group, bool sym, int64_t rows, int64_t cols, const int64_t *tokens,
			      int n, ref_rng *rng)
{
	ref_qmatrix m;
	ref_qmatrix_random(&m, bits, group, sym, rows, cols, rng);
	shrink_cuda_qweight w;
	if (status_ok(shrink_cuda_qweight_upload(ctx, m.bits, m.group_size, m.symmetric, m.rows, m.cols, m.packed,
						 m.scales, m.zeros, &w),
		      "qweight_upload")) {
		for (int dt = 0; dt < 2; dt++)
			for (int t = 0; t < n; t++)
				for (int again = 0; again < (t == 0 ? 2 : 1); again++)
					check_qlinear(&m, &w, dt, tokens[t], SHRINK_CUDA_QPATH_GEMV_TMA, 0, rng);
		shrink_cuda_qweight_free(&w);
	}
	ref_qmatrix_free(&m);
}

/* The TMA GEMV with more row tiles than SMs (CTAs of unequal ranges, two CTAs an SM, the next
 * launch let go before this one ends): K of 2 to 4 stages with a short last one, rows ending inside
 * a tile, every token count, twice in a row. */
static void test_qlinear_tma_wide(ref_rng *rng)
{
	static const struct {
		int bits, group;
		bool sym;
		int64_t rows, cols;
	} cases[] = {{4, 128, true, 2500, 2112}, {3, 32, false, 4100, 4160}, {8, 64, true, 3000, 2048},
		     {2, 0, false, 2600, 6208}};
	static const int64_t tokens[] = {1, 2, 5, 8};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (!quick || i % 2 == 0)
			check_qlinear_tma(cases[i].bits, cases[i].group, cases[i].sym, cases[i].rows, cases[i].cols, tokens,
					  4, rng);
}

/* The TMA GEMV in launches too long to pair (more than 32 stages a CTA, deeper rings): one row tile
 * a CTA and K of 33-34 stages (with a short last stage, or K not a multiple of 64), and (not
 * --quick) more row tiles than SMs at 1 and 2 tokens; 2-5 bits (8 bits' ring does not fit beside
 * 66 K activations), scales by group and by channel. */
static void test_qlinear_tma_long(ref_rng *rng)
{
	static const struct {
		int bits, group;
		bool sym;
		int64_t rows, cols;
		int n_tok;
	} cases[] = {{4, 128, true, 40, 67904, 1},  {3, 256, false, 33, 66112, 1}, {5, 128, false, 17, 67584, 1},
		     {4, 64, true, 20, 67584, 1},   {2, 0, true, 48, 68000, 1},    {4, 128, true, 4224, 34816, 2}};
	static const int64_t tokens[] = {1, 2};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (!quick || cases[i].rows < 1000)
			check_qlinear_tma(cases[i].bits, cases[i].group, cases[i].sym, cases[i].rows, cases[i].cols, tokens,
					  cases[i].n_tok, rng);
}

static void test_qlinear_chain(ref_rng *rng)
{
	static const struct {
		int M;
		shrink_cuda_qpath p1, p2;
	} cases[] = {
		{1, SHRINK_CUDA_QPATH_GEMV_TMA, SHRINK_CUDA_QPATH_GEMV_TMA},
		{1, SHRINK_CUDA_QPATH_GEMV_REG, SHRINK_CUDA_QPATH_GEMV_REG},
		{3, SHRINK_CUDA_QPATH_GEMV_TMA, SHRINK_CUDA_QPATH_GEMV_REG},
		{4, SHRINK_CUDA_QPATH_GEMV_REG, SHRINK_CUDA_QPATH_GEMV_TMA},
		{20, SHRINK_CUDA_QPATH_GEMM, SHRINK_CUDA_QPATH_GEMV_REG},
		{64, SHRINK_CUDA_QPATH_GEMM, SHRINK_CUDA_QPATH_GEMM},
		{130, SHRINK_CUDA_QPATH_AUTO, SHRINK_CUDA_QPATH_AUTO},
	};
	for (int dt = 0; dt < 2; dt++)
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
			check_chain(dt, cases[i].M, cases[i].p1, cases[i].p2, rng);
}

/* Each output dy[i] against the double product of x (dt) and m[i]; failed: why else it fails. */
static void report_multi(const char *what, const ref_qmatrix *m, int n_w, int dt, const uint16_t *x, int64_t M,
			 void *const *dy, const char *failed)
{
	for (int i = 0; i < n_w; i++) {
		const size_t n = (size_t)M * m[i].rows;
		double *ref = malloc(n * sizeof(double));
		uint16_t *y = malloc(n * 2);
		ref_qlinear(&m[i], dt, x, M, ref);
		bool guard = dev_download(y, dy[i], n * 2);
		double err = ref_rel_err_half(dt, y, ref, n);
		report(guard && !failed && err <= tol(dt), "%s %d/%d b%d %s g%d %s N=%lld K=%lld M=%lld err=%.2e%s %s", what,
		       i + 1, n_w, m[i].bits, m[i].symmetric ? "sym" : "asym", m[i].group_size, dt_name(dt),
		       (long long)m[i].rows, (long long)m[i].cols, (long long)M, err, guard ? "" : " GUARD WRITTEN",
		       failed ? failed : "");
		free(ref), free(y);
	}
}

static void free_multi(ref_qmatrix *m, shrink_cuda_qweight *w, int n_w, bool uploaded, void *const *dy)
{
	for (int i = 0; i < n_w; i++) {
		if (uploaded)
			shrink_cuda_qweight_free(&w[i]);
		ref_qmatrix_free(&m[i]);
		cudaFree(dy[i]);
	}
}

/* Up to three weights sharing x, in one launch (same scheme) or one by one (mixed schemes). */
static void check_qlinear_multi(int n_w, const int *bits, int g, bool sym, const int64_t *rows, int64_t K, int dt,
				int64_t M, ref_rng *rng)
{
	ref_qmatrix m[3];
	shrink_cuda_qweight w[3];
	const shrink_cuda_qweight *wp[3];
	void *dy[3];
	uint16_t *x = random_half(dt, (size_t)M * K, 1.0, rng);
	void *dx = dev_upload(x, (size_t)M * K * 2);
	bool ok = true;
	for (int i = 0; i < n_w; i++) {
		ref_qmatrix_random(&m[i], bits[i], g, sym, rows[i], K, rng);
		ok = status_ok(shrink_cuda_qweight_upload(ctx, bits[i], g, sym, rows[i], K, m[i].packed, m[i].scales,
							  m[i].zeros, &w[i]),
			       "qweight_upload") && ok;
		wp[i] = &w[i];
		dy[i] = dev_poisoned((size_t)M * rows[i] * 2);
	}
	if (ok && status_ok(shrink_cuda_qlinear_multi(ctx, n_w, wp, (shrink_cuda_dtype)dt, dx, M, dy), "qlinear_multi"))
		report_multi("qlinear_multi", m, n_w, dt, x, M, dy, NULL);
	free_multi(m, w, n_w, ok, dy);
	cudaFree(dx);
	free(x);
}

static void test_qlinear_multi(ref_rng *rng)
{
	static const int same4[] = {4, 4, 4}, same3[] = {3, 3, 3}, same8[] = {8, 8}, mixed[] = {4, 8, 4};
	static const int64_t qkv[] = {256, 64, 64}, odd[] = {40, 200, 24}, gu[] = {300, 300};
	static const int64_t big[] = {2048, 520, 520};
	static const int64_t huge[] = {4096, 4096, 4096}; /* >= 24 MB at 4 bits: AUTO takes the TMA GEMV */
	for (int dt = 0; dt < 2; dt++) {
		check_qlinear_multi(3, same4, 128, false, qkv, 512, dt, 1, rng);
		check_qlinear_multi(3, same3, 32, true, odd, 256, dt, 7, rng);
		check_qlinear_multi(2, same8, 0, false, gu, 1024, dt, 16, rng);
		check_qlinear_multi(3, mixed, 64, true, qkv, 320, dt, 3, rng); /* one launch each */
		check_qlinear_multi(2, same4, 128, true, gu, 192, dt, 20, rng); /* GEMM path, one each */
		check_qlinear_multi(3, same4, 128, false, big, 1024, dt, 1, rng);
		check_qlinear_multi(3, same3, 32, true, big, 448, dt, 3, rng);
		/* 9-32 tokens: weights ending inside a CTA's rows, split K (a CTA takes 4 row tiles only
		 * from 512 row tiles or 128 k tiles: test_qlinear_rows4) */
		check_qlinear_multi(3, same4, 64, false, odd, 1024, dt, 27, rng);
		check_qlinear_multi(3, same3, 128, true, big, 512, dt, 12, rng);
		check_qlinear_multi(2, same8, 16, true, gu, 2048, dt, 32, rng);
		if (!quick)
			check_qlinear_multi(3, same4, 128, false, huge, 4096, dt, 2, rng);
	}
}

/* Activations formed on the way in (shrink_cuda_xin): SwiGLU of gate/up, or the residual RMSNorm
 * of res + pending; fused into the TMA GEMV for large 4-bit weights and few tokens, formed first
 * otherwise. The reference forms them on the host in double, rounds them to dt, then multiplies. */
static void check_qlinear_xin(bool swiglu, int n_w, int bits, int g, const int64_t *rows, int64_t K, int dt,
			      int64_t M, ref_rng *rng)
{
	ref_qmatrix m[3];
	shrink_cuda_qweight w[3];
	const shrink_cuda_qweight *wp[3];
	void *dy[3];
	const size_t n = (size_t)M * K;
	uint16_t *a = random_half(dt, n, 1.0, rng), *b = random_half(dt, n, 1.0, rng), *x = malloc(n * 2);
	uint16_t *nw = random_half(dt, (size_t)K, 1.0, rng);
	float *res = malloc(n * 4), *res_after = malloc(n * 4);
	for (size_t i = 0; i < n; i++)
		res[i] = (float)(3.0 * ref_normal(rng));
	for (int64_t t = 0; t < M; t++) {
		double ss = 0.0;
		for (int64_t k = 0; k < K; k++) {
			const double v = (double)res[t * K + k] + ref_from_half(dt, b[t * K + k]);
			ss += v * v;
		}
		const double scale = 1.0 / sqrt(ss / (double)K + 1e-5);
		for (int64_t k = 0; k < K; k++) {
			const size_t i = (size_t)(t * K + k);
			const double ga = ref_from_half(dt, a[i]), ub = ref_from_half(dt, b[i]);
			const double v = swiglu ? ga / (1.0 + exp(-ga)) * ub
						: ((double)res[i] + ub) * scale * ref_from_half(dt, nw[k]);
			x[i] = ref_to_half(dt, (float)v);
		}
	}
	void *da = dev_upload(a, n * 2), *db = dev_upload(b, n * 2), *dn = dev_upload(nw, (size_t)K * 2);
	float *dres = dev_upload(res, n * 4);
	void *scratch = dev_poisoned(n * 2);
	bool ok = true;
	for (int i = 0; i < n_w; i++) {
		ref_qmatrix_random(&m[i], bits, g, false, rows[i], K, rng);
		ok = status_ok(shrink_cuda_qweight_upload(ctx, bits, g, false, rows[i], K, m[i].packed, m[i].scales,
							  m[i].zeros, &w[i]),
			       "qweight_upload") && ok;
		wp[i] = &w[i];
		dy[i] = dev_poisoned((size_t)M * rows[i] * 2);
	}
	shrink_cuda_xin in = {.kind = swiglu ? SHRINK_CUDA_XIN_SWIGLU : SHRINK_CUDA_XIN_ADD_RMSNORM,
			      .x = swiglu ? da : db, .up = db, .res = dres, .norm_w = dn, .eps = 1e-5f,
			      .scratch = scratch};
	if (ok && status_ok(shrink_cuda_qlinear_multi_xin(ctx, n_w, wp, (shrink_cuda_dtype)dt, &in, M, dy), "qlinear_xin")) {
		const bool kept = dev_download(res_after, dres, n * 4) && memcmp(res, res_after, n * 4) == 0;
		report_multi(swiglu ? "qlinear_xin swiglu" : "qlinear_xin add_rmsnorm", m, n_w, dt, x, M, dy,
			     kept ? NULL : "RESIDUAL CHANGED");
	}
	free_multi(m, w, n_w, ok, dy);
	cudaFree(da), cudaFree(db), cudaFree(dn), cudaFree(dres), cudaFree(scratch);
	free(a), free(b), free(x), free(nw), free(res), free(res_after);
}

static void test_qlinear_xin(ref_rng *rng)
{
	static const int64_t gu[] = {300, 300}, one[] = {520}, big[] = {4096, 4096, 4096}, down[] = {4096};
	for (int dt = 0; dt < 2; dt++) {
		check_qlinear_xin(true, 1, 4, 128, one, 1024, dt, 1, rng); /* formed first: small weight */
		check_qlinear_xin(true, 2, 3, 32, gu, 448, dt, 5, rng);
	}
	check_qlinear_xin(false, 2, 4, 128, gu, 512, 0, 1, rng);
	check_qlinear_xin(false, 1, 8, 64, one, 200, 0, 3, rng); /* K not a multiple of 64 */
	if (quick)
		return;
	/* fused into the TMA GEMV (>= 24 MB of 4-bit weights, 1-4 tokens); 5 tokens: formed first */
	static const int64_t Ms[] = {1, 3, 5};
	for (int i = 0; i < 3; i++) {
		check_qlinear_xin(false, 3, 4, 128, big, 4096, 0, Ms[i], rng);
		check_qlinear_xin(true, 1, 4, 128, down, 12288, i == 1, Ms[i], rng);
	}
}

/* ---- W8A8 -------------------------------------------------------------------------------- */

static void test_w8a8(ref_rng *rng)
{
	/* split K at 200x1000, 300x520 (two token blocks), 1024x4096 and 301x2048 (rows not a multiple of 4) */
	static const int64_t shapes[][3] = {{37, 100, 1},     {128, 256, 64}, {200, 1000, 7}, {300, 520, 130},
					    {1024, 4096, 16}, {64, 128, 300}, {301, 2048, 5}};
	const int n_shapes = quick ? 3 : 7;
	for (int si = 0; si < n_shapes; si++)
		for (int dt = 0; dt < 2; dt++) {
			const int64_t N = shapes[si][0], K = shapes[si][1], M = shapes[si][2];
			ref_qmatrix m;
			ref_qmatrix_random(&m, 8, 0, true, N, K, rng);
			shrink_cuda_w8 w;
			if (!status_ok(shrink_cuda_w8_upload(ctx, N, K, m.packed, m.scales, &w), "w8_upload")) {
				ref_qmatrix_free(&m);
				continue;
			}
			uint16_t *x = random_half(dt, (size_t)M * K, 1.0, rng);
			void *dx = dev_upload(x, (size_t)M * K * 2);
			int8_t *dxq = dev_poisoned((size_t)M * w.cols_pad);
			float *dsx = dev_poisoned((size_t)M * 4);
			void *dy = dev_poisoned((size_t)M * N * 2);
			int8_t *xq = malloc((size_t)M * w.cols_pad);
			float *sx = malloc((size_t)M * 4);
			uint16_t *y = malloc((size_t)M * N * 2);
			double *ref = malloc((size_t)M * N * sizeof(double));
			if (status_ok(shrink_cuda_quantize_i8(ctx, (shrink_cuda_dtype)dt, dx, M, K, w.cols_pad, dxq, dsx),
				      "quantize_i8")) {
				bool guard = dev_download(xq, dxq, (size_t)M * w.cols_pad) && dev_download(sx, dsx, M * 4);
				size_t bad = 0;
				for (int64_t t = 0; t < M; t++) {
					double amax = 0.0;
					for (int64_t k = 0; k < K; k++)
						amax = fmax(amax, fabs(ref_from_half(dt, x[t * K + k])));
					if (fabs(sx[t] - amax / 127.0) > 1e-6 * amax)
						bad++;
					for (int64_t k = 0; k < w.cols_pad; k++) {
						double want = k < K && amax > 0 ? ref_from_half(dt, x[t * K + k]) * 127.0 / amax : 0;
						if (fabs(xq[t * w.cols_pad + k] - want) > 0.5 + 1e-3)
							bad++;
					}
				}
				report(guard && bad == 0, "quantize_i8 %s M=%lld K=%lld bad=%zu%s", dt_name(dt), (long long)M,
				       (long long)K, bad, guard ? "" : " GUARD WRITTEN");
			}
			if (status_ok(shrink_cuda_w8a8_linear(ctx, &w, dxq, dsx, M, (shrink_cuda_dtype)dt, dy), "w8a8")) {
				bool guard = dev_download(y, dy, (size_t)M * N * 2);
				for (int64_t t = 0; t < M; t++)
					for (int64_t n = 0; n < N; n++) {
						double acc = 0.0;
						for (int64_t k = 0; k < K; k++)
							acc += (double)xq[t * w.cols_pad + k] * ((int)m.codes[n * K + k] - 128);
						ref[t * N + n] = acc * sx[t] * ref_f16_to_f32(m.scales[n]);
					}
				double err = ref_rel_err_half(dt, y, ref, (size_t)M * N);
				report(guard && err <= tol(dt), "w8a8 %s N=%lld K=%lld M=%lld err=%.2e%s", dt_name(dt),
				       (long long)N, (long long)K, (long long)M, err, guard ? "" : " GUARD WRITTEN");
			}
			cudaFree(dx), cudaFree(dxq), cudaFree(dsx), cudaFree(dy);
			free(x), free(xq), free(sx), free(y), free(ref);
			shrink_cuda_w8_free(&w);
			ref_qmatrix_free(&m);
		}
}

/* ---- element-wise and row ops --------------------------------------------------------------- */

static void test_embed(ref_rng *rng)
{
	static const int64_t dims[] = {64, 100};
	for (int dt = 0; dt < 2; dt++)
		for (int di = 0; di < 2; di++) {
			const int64_t V = 1000, D = dims[di], T = 9;
			uint16_t *table = random_half(dt, (size_t)V * D, 1.0, rng);
			int32_t ids[9];
			for (int t = 0; t < T; t++)
				ids[t] = (int32_t)(ref_next(rng) % V);
			ids[4] = (int32_t)V; /* out of range: a zero row */
			ids[6] = -1;
			void *dtab = dev_upload(table, (size_t)V * D * 2);
			void *dids = dev_upload(ids, sizeof ids);
			void *dout = dev_poisoned((size_t)T * D * 2);
			uint16_t *out = malloc((size_t)T * D * 2);
			if (status_ok(shrink_cuda_embed(ctx, (shrink_cuda_dtype)dt, dtab, V, D, dids, T, dout), "embed")) {
				bool guard = dev_download(out, dout, (size_t)T * D * 2);
				size_t bad = 0;
				for (int t = 0; t < T; t++)
					for (int64_t i = 0; i < D; i++) {
						uint16_t want = (ids[t] < 0 || ids[t] >= V) ? 0 : table[ids[t] * D + i];
						bad += out[t * D + i] != want;
					}
				report(guard && bad == 0, "embed %s D=%lld bad=%zu", dt_name(dt), (long long)D, bad);
			}
			cudaFree(dtab), cudaFree(dids), cudaFree(dout);
			free(table), free(out);
		}
}

static void test_rmsnorm(ref_rng *rng)
{
	static const int64_t dims[] = {64, 100, 4096, 5000};
	for (int dt = 0; dt < 2; dt++)
		for (int di = 0; di < 4; di++)
			for (int64_t T = 1; T <= 7; T += 6) {
				const int64_t D = dims[di];
				uint16_t *x = random_half(dt, (size_t)T * D, 3.0, rng);
				uint16_t *w = random_half(dt, (size_t)D, 1.0, rng);
				double *ref = malloc((size_t)T * D * sizeof(double));
				uint16_t *out = malloc((size_t)T * D * 2);
				ref_rmsnorm(dt, x, w, T, D, 1e-5f, ref);
				void *dx = dev_upload(x, (size_t)T * D * 2), *dw = dev_upload(w, (size_t)D * 2);
				void *dout = dev_poisoned((size_t)T * D * 2);
				if (status_ok(shrink_cuda_rmsnorm(ctx, (shrink_cuda_dtype)dt, dx, dw, T, D, 1e-5f, dout),
					      "rmsnorm")) {
					bool guard = dev_download(out, dout, (size_t)T * D * 2);
					double err = ref_rel_err_half(dt, out, ref, (size_t)T * D);
					report(guard && err <= tol(dt), "rmsnorm %s T=%lld D=%lld err=%.2e", dt_name(dt),
					       (long long)T, (long long)D, err);
				}
				cudaFree(dx), cudaFree(dw), cudaFree(dout);
				free(x), free(w), free(ref), free(out);
			}
}

static void test_rope(ref_rng *rng)
{
	static const int hds[] = {64, 128};
	static const int64_t pos[] = {0, 1000};
	for (int dt = 0; dt < 2; dt++)
		for (int hi = 0; hi < 2; hi++)
			for (int pi = 0; pi < 2; pi++) {
				const int hd = hds[hi], H = 8, KV = 2;
				const int64_t T = 5, p0 = pos[pi];
				float inv[64];
				for (int i = 0; i < hd / 2; i++)
					inv[i] = (float)pow(500000.0, -2.0 * i / hd);
				uint16_t *q = random_half(dt, (size_t)T * H * hd, 1.0, rng);
				uint16_t *k = random_half(dt, (size_t)T * KV * hd, 1.0, rng);
				double *rq = malloc((size_t)T * H * hd * sizeof(double));
				double *rk = malloc((size_t)T * KV * hd * sizeof(double));
				ref_rope(dt, q, T, H, hd, inv, p0, rq);
				ref_rope(dt, k, T, KV, hd, inv, p0, rk);
				void *dq = dev_upload(q, (size_t)T * H * hd * 2), *dk = dev_upload(k, (size_t)T * KV * hd * 2);
				void *dinv = dev_upload(inv, (size_t)hd / 2 * 4);
				if (status_ok(shrink_cuda_rope(ctx, (shrink_cuda_dtype)dt, dq, dk, T, H, KV, hd, dinv, p0),
					      "rope")) {
					bool guard = dev_download(q, dq, (size_t)T * H * hd * 2) &&
						     dev_download(k, dk, (size_t)T * KV * hd * 2);
					double eq = ref_rel_err_half(dt, q, rq, (size_t)T * H * hd);
					double ek = ref_rel_err_half(dt, k, rk, (size_t)T * KV * hd);
					report(guard && eq <= tol(dt) && ek <= tol(dt),
					       "rope %s hd=%d pos0=%lld err q %.2e k %.2e", dt_name(dt), hd, (long long)p0,
					       eq, ek);
				}
				cudaFree(dq), cudaFree(dk), cudaFree(dinv);
				free(q), free(k), free(rq), free(rk);
			}
}

static void test_elementwise(ref_rng *rng)
{
	static const int64_t ns[] = {1, 1000, 12345};
	for (int dt = 0; dt < 2; dt++)
		for (int ni = 0; ni < 3; ni++) {
			const int64_t n = ns[ni];
			uint16_t *a = random_half(dt, (size_t)n, 2.0, rng), *b = random_half(dt, (size_t)n, 2.0, rng);
			double *rs = malloc((size_t)n * sizeof(double)), *ra = malloc((size_t)n * sizeof(double));
			for (int64_t i = 0; i < n; i++) {
				double g = ref_from_half(dt, a[i]), u = ref_from_half(dt, b[i]);
				rs[i] = g / (1.0 + exp(-g)) * u;
				ra[i] = g + u;
			}
			void *da = dev_upload(a, (size_t)n * 2), *db = dev_upload(b, (size_t)n * 2);
			void *dout = dev_poisoned((size_t)n * 2);
			uint16_t *out = malloc((size_t)n * 2);
			if (status_ok(shrink_cuda_swiglu(ctx, (shrink_cuda_dtype)dt, da, db, n, dout), "swiglu")) {
				bool guard = dev_download(out, dout, (size_t)n * 2);
				double err = ref_rel_err_half(dt, out, rs, (size_t)n);
				report(guard && err <= tol(dt), "swiglu %s n=%lld err=%.2e", dt_name(dt), (long long)n, err);
			}
			/* in place: a = a + b */
			if (status_ok(shrink_cuda_add(ctx, (shrink_cuda_dtype)dt, da, db, n, da), "add")) {
				bool guard = dev_download(out, da, (size_t)n * 2);
				double err = ref_rel_err_half(dt, out, ra, (size_t)n);
				report(guard && err <= tol(dt), "add (in place) %s n=%lld err=%.2e", dt_name(dt),
				       (long long)n, err);
			}
			cudaFree(da), cudaFree(db), cudaFree(dout);
			free(a), free(b), free(rs), free(ra), free(out);
		}
}

static void test_argmax(ref_rng *rng)
{
	static const int64_t vocabs[] = {1, 1000, 128256};
	for (int dt = 0; dt < 3; dt++)
		for (int vi = 0; vi < 3; vi++) {
			const int64_t V = vocabs[vi], T = 4;
			const size_t es = dt == 2 ? 4 : 2;
			void *h = malloc((size_t)T * V * es);
			int32_t want[4], got[4];
			for (int64_t t = 0; t < T; t++) {
				for (int64_t i = 0; i < V; i++) {
					float v = (float)ref_normal(rng);
					if (dt == 2)
						((float *)h)[t * V + i] = v;
					else
						((uint16_t *)h)[t * V + i] = ref_to_half(dt, v);
				}
				/* row 1: a tie for the max; row 2: a NaN before the max */
				int64_t a = (int64_t)(ref_next(rng) % V), b = (int64_t)(ref_next(rng) % V);
				if (dt == 2) {
					((float *)h)[t * V + a] = 100.0f;
					if (t == 1)
						((float *)h)[t * V + b] = 100.0f;
					if (t == 2 && V > 1)
						((float *)h)[t * V + (a + 1) % V] = NAN;
				} else {
					((uint16_t *)h)[t * V + a] = ref_to_half(dt, 100.0f);
					if (t == 1)
						((uint16_t *)h)[t * V + b] = ref_to_half(dt, 100.0f);
					if (t == 2 && V > 1)
						((uint16_t *)h)[t * V + (a + 1) % V] = dt == 0 ? 0x7e00 : 0x7fc0; /* NaN */
				}
				want[t] = (int32_t)(t == 1 && b < a ? b : a);
			}
			void *dl = dev_upload(h, (size_t)T * V * es);
			void *dout = dev_poisoned(sizeof got);
			if (status_ok(shrink_cuda_argmax(ctx, (shrink_cuda_dtype)dt, dl, T, V, dout), "argmax")) {
				bool guard = dev_download(got, dout, sizeof got);
				bool ok = guard;
				for (int t = 0; t < T; t++)
					ok = ok && got[t] == want[t];
				report(ok, "argmax %s V=%lld got %d %d %d %d want %d %d %d %d", dt_name(dt), (long long)V,
				       got[0], got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
			}
			cudaFree(dl), cudaFree(dout);
			free(h);
		}
}

/* ---- KV cache and attention --------------------------------------------------------------- */

static void test_kv_store(ref_rng *rng)
{
	for (int dt = 0; dt < 2; dt++) {
		const int64_t cap = 40, kvd = 256, T = 7, p0 = 30;
		uint16_t *k = random_half(dt, (size_t)T * kvd, 1.0, rng), *v = random_half(dt, (size_t)T * kvd, 1.0, rng);
		void *dk = dev_upload(k, (size_t)T * kvd * 2), *dv = dev_upload(v, (size_t)T * kvd * 2);
		uint16_t *kc = dev_poisoned((size_t)cap * kvd * 2), *vc = dev_poisoned((size_t)cap * kvd * 2);
		uint16_t *hk = malloc((size_t)cap * kvd * 2), *hv = malloc((size_t)cap * kvd * 2);
		if (status_ok(shrink_cuda_kv_store(ctx, (shrink_cuda_dtype)dt, dk, dv, T, kvd, kc, vc, p0), "kv_store")) {
			bool guard = dev_download(hk, kc, (size_t)cap * kvd * 2) && dev_download(hv, vc, (size_t)cap * kvd * 2);
			size_t bad = 0;
			for (int64_t i = 0; i < cap * kvd; i++) {
				int64_t t = i / kvd - p0;
				uint16_t wk = 0xffff, wv = 0xffff;
				if (t >= 0 && t < T) {
					wk = ref_f32_to_f16(ref_from_half(dt, k[t * kvd + i % kvd]));
					wv = ref_f32_to_f16(ref_from_half(dt, v[t * kvd + i % kvd]));
				}
				bad += (hk[i] != wk) + (hv[i] != wv);
			}
			report(guard && bad == 0, "kv_store %s bad=%zu", dt_name(dt), bad);
		}
		cudaFree(dk), cudaFree(dv), cudaFree(kc), cudaFree(vc);
		free(k), free(v), free(hk), free(hv);
	}
}

static void check_attention(int dt, int H, int KV, int hd, int64_t T, int64_t p0, ref_rng *rng)
{
	const int64_t L = p0 + T;
	uint16_t *q = random_half(dt, (size_t)T * H * hd, 1.0, rng);
	uint16_t *kc = random_half(0, (size_t)L * KV * hd, 1.0, rng), *vc = random_half(0, (size_t)L * KV * hd, 1.0, rng);
	double *ref = malloc((size_t)T * H * hd * sizeof(double));
	uint16_t *out = malloc((size_t)T * H * hd * 2);
	const float scale = 1.0f / sqrtf((float)hd);
	ref_attention(dt, q, T, p0, H, KV, hd, kc, vc, scale, ref);
	void *dq = dev_upload(q, (size_t)T * H * hd * 2);
	void *dk = dev_upload(kc, (size_t)L * KV * hd * 2), *dv = dev_upload(vc, (size_t)L * KV * hd * 2);
	void *dout = dev_poisoned((size_t)T * H * hd * 2);
	if (status_ok(shrink_cuda_attention(ctx, (shrink_cuda_dtype)dt, dq, T, p0, H, KV, hd, dk, dv, scale, dout),
		      "attention")) {
		bool guard = dev_download(out, dout, (size_t)T * H * hd * 2);
		double err = ref_rel_err_half(dt, out, ref, (size_t)T * H * hd);
		report(guard && err <= tol(dt), "attention %s H=%d KV=%d hd=%d T=%lld pos0=%lld err=%.2e%s", dt_name(dt),
		       H, KV, hd, (long long)T, (long long)p0, err, guard ? "" : " GUARD WRITTEN");
	}
	cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dout);
	free(q), free(kc), free(vc), free(ref), free(out);
}

/* The decode step (rope, KV store, attention; position read from device memory) against
 * ref_rope then ref_attention over a cache holding the rotated key. graph: capture the call
 * once, then replay it at each position (the positions must be increasing). */
static void check_attention_decode(int dt, int H, int KV, int hd, int64_t cap, const int64_t *pos, int n_pos,
				   bool graph, ref_rng *rng)
{
	float inv[128];
	for (int i = 0; i < hd / 2; i++)
		inv[i] = (float)pow(500000.0, -2.0 * i / hd);
	const size_t kvd = (size_t)KV * hd;
	uint16_t *kc = random_half(0, (size_t)cap * kvd, 1.0, rng), *vc = random_half(0, (size_t)cap * kvd, 1.0, rng);
	uint16_t *dkc = dev_upload(kc, (size_t)cap * kvd * 2), *dvc = dev_upload(vc, (size_t)cap * kvd * 2);
	void *dinv = dev_upload(inv, (size_t)hd / 2 * 4);
	int32_t *dpos = dev_poisoned(4);
	void *dq = dev_poisoned((size_t)H * hd * 2), *dk = dev_poisoned(kvd * 2), *dv = dev_poisoned(kvd * 2);
	void *dout = dev_poisoned((size_t)H * hd * 2);
	const float scale = 1.0f / sqrtf((float)hd);
	shrink_cuda_graph *g = NULL;
	if (graph) {
		shrink_status st = shrink_cuda_capture_begin(ctx);
		if (status_ok(st, "capture_begin")) {
			st = shrink_cuda_attention_decode(ctx, (shrink_cuda_dtype)dt, dq, dk, dv, H, KV, hd, dinv, dpos, cap,
							  dkc, dvc, scale, dout);
			st = shrink_cuda_capture_end(ctx, st ? NULL : &g) || st;
			status_ok(st, "attention_decode capture");
		}
		if (!g)
			n_pos = 0;
	}
	for (int pi = 0; pi < n_pos; pi++) {
		const int64_t p = pos[pi];
		const int32_t p32 = (int32_t)p;
		uint16_t *q = random_half(dt, (size_t)H * hd, 1.0, rng), *k = random_half(dt, kvd, 1.0, rng);
		uint16_t *v = random_half(dt, kvd, 1.0, rng), *out = malloc((size_t)H * hd * 2);
		uint16_t *row = malloc(kvd * 2 * 2);
		double *rq = malloc((size_t)H * hd * sizeof(double)), *rk = malloc(kvd * sizeof(double));
		double *ref = malloc((size_t)H * hd * sizeof(double)), *ref_row = malloc(kvd * 2 * sizeof(double));
		CK(cudaMemcpy(dq, q, (size_t)H * hd * 2, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dk, k, kvd * 2, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dv, v, kvd * 2, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(dpos, &p32, 4, cudaMemcpyHostToDevice));
		shrink_status st = g ? shrink_cuda_graph_launch(ctx, g)
				     : shrink_cuda_attention_decode(ctx, (shrink_cuda_dtype)dt, dq, dk, dv, H, KV, hd, dinv,
								    dpos, cap, dkc, dvc, scale, dout);
		ref_rope(dt, q, 1, H, hd, inv, p, rq);
		ref_rope(dt, k, 1, KV, hd, inv, p, rk);
		for (size_t i = 0; i < (size_t)H * hd; i++)
			q[i] = ref_to_half(dt, (float)rq[i]); /* the rotated q, rounded as rope rounds it */
		for (size_t i = 0; i < kvd; i++) {
			kc[p * kvd + i] = ref_f32_to_f16(ref_from_half(dt, ref_to_half(dt, (float)rk[i])));
			vc[p * kvd + i] = ref_f32_to_f16(ref_from_half(dt, v[i]));
			ref_row[i] = ref_f16_to_f32(kc[p * kvd + i]), ref_row[kvd + i] = ref_f16_to_f32(vc[p * kvd + i]);
		}
		ref_attention(dt, q, 1, p, H, KV, hd, kc, vc, scale, ref);
		if (status_ok(st, "attention_decode")) {
			bool guard = dev_download(out, dout, (size_t)H * hd * 2);
			CK(cudaMemcpy(row, dkc + p * kvd, kvd * 2, cudaMemcpyDeviceToHost));
			CK(cudaMemcpy(row + kvd, dvc + p * kvd, kvd * 2, cudaMemcpyDeviceToHost));
			double err = ref_rel_err_half(dt, out, ref, (size_t)H * hd);
			double err_kv = ref_rel_err_half(0, row, ref_row, kvd * 2);
			report(guard && err <= tol(dt) && err_kv <= TOL_F16,
			       "attention_decode%s %s H=%d KV=%d hd=%d cap=%lld pos=%lld err=%.2e kv %.2e%s",
			       g ? " (graph)" : "", dt_name(dt), H, KV, hd, (long long)cap, (long long)p, err, err_kv,
			       guard ? "" : " GUARD WRITTEN");
		}
		free(q), free(k), free(v), free(out), free(row), free(rq), free(rk), free(ref), free(ref_row);
	}
	shrink_cuda_graph_free(g);
	cudaFree(dkc), cudaFree(dvc), cudaFree(dinv), cudaFree(dpos), cudaFree(dq), cudaFree(dk), cudaFree(dv),
		cudaFree(dout);
	free(kc), free(vc);
}

/* ---- attention over a compressed (kivi/gear) KV cache -------------------------------------- */

/* float64 attention of q [T][H][hd] at positions pos0.. over decoded keys/values [KV][L][hd] */
static void ref_attention_rows(const uint16_t *q, int64_t T, int64_t pos0, int H, int KV, int hd, const float *k,
			       const float *v, int64_t L, double scale, double *out)
{
	double *p = malloc((size_t)L * sizeof *p);
	for (int64_t t = 0; t < T; t++)
		for (int h = 0; h < H; h++) {
			const uint16_t *qh = q + (t * H + h) * hd;
			const float *kh = k + (size_t)(h / (H / KV)) * L * hd, *vh = v + (size_t)(h / (H / KV)) * L * hd;
			double mx = -INFINITY, sum = 0;
			for (int64_t j = 0; j <= pos0 + t; j++) {
				double s = 0;
				for (int i = 0; i < hd; i++)
					s += (double)ref_from_half(0, qh[i]) * kh[j * hd + i];
				p[j] = s * scale;
				mx = p[j] > mx ? p[j] : mx;
			}
			for (int64_t j = 0; j <= pos0 + t; j++)
				sum += p[j] = exp(p[j] - mx);
			for (int i = 0; i < hd; i++) {
				double o = 0;
				for (int64_t j = 0; j <= pos0 + t; j++)
					o += p[j] * vh[j * hd + i];
				out[(t * H + h) * hd + i] = o / sum;
			}
		}
	free(p);
}

/* lib/kv's cache (shrink_kv_new, store) holding L positions, the first `prefill` stored before an
 * end_forward (so they get rank_prefill); its records, ranks and the tail in an f16 ring go to the
 * device and the queries are the last T positions. Reference: float64 attention over the rows the
 * CPU decoder (load) gives, so this checks the GPU's record decoder against kv_decode.c. */
static void check_attention_packed(const char *spec, int H, int KV, int hd, int64_t L, int64_t T, int prefill,
				   ref_rng *rng)
{
	const int64_t kvd = (int64_t)KV * hd, pos0 = L - T;
	float *k = malloc((size_t)L * kvd * 4), *v = malloc((size_t)L * kvd * 4);
	shrink_error err;
	shrink_kv *kv = ref_kv_filled(spec, H, KV, hd, L, prefill, rng, k, v, &err);
	if (!kv) {
		report(false, "attention_packed %s: %s", spec, err.msg);
		free(k), free(v);
		return;
	}
	shrink_kv_view view;
	kv->ops->view(kv, 0, &view);
	const int64_t C = view.chunk, nc = view.n_chunks;
	uint16_t *ring = calloc((size_t)C * kvd, 2);
	for (int64_t p = nc * C; p < L; p++)
		for (int64_t i = 0; i < kvd; i++)
			ring[(p % C) * kvd + i] = ref_f32_to_f16(k[p * kvd + i]);
	uint16_t *vring = calloc((size_t)C * kvd, 2);
	for (int64_t p = nc * C; p < L; p++)
		for (int64_t i = 0; i < kvd; i++)
			vring[(p % C) * kvd + i] = ref_f32_to_f16(v[p * kvd + i]);
	size_t bk = (size_t)(nc * KV) * view.k.rec_bytes, bv = (size_t)(nc * KV) * view.v.rec_bytes;
	shrink_cuda_kv_packed dev = {.k = view.k, .v = view.v, .chunk = C, .n_chunks = nc};
	dev.rec_k = dev_upload(view.rec_k, bk ? bk : 1), dev.rec_v = dev_upload(view.rec_v, bv ? bv : 1);
	dev.rank = dev_upload(view.rank, nc ? (size_t)nc : 1);
	dev.k_ring = dev_upload(ring, (size_t)C * kvd * 2), dev.v_ring = dev_upload(vring, (size_t)C * kvd * 2);
	/* the reference reads the cache back through the CPU decoder */
	float *dk = malloc((size_t)KV * L * hd * 4), *dvv = malloc((size_t)KV * L * hd * 4);
	for (int g = 0; g < KV; g++)
		kv->ops->load(kv, 0, g, 0, (int)L, dk + (size_t)g * L * hd, dvv + (size_t)g * L * hd);
	uint16_t *q = random_half(0, (size_t)T * H * hd, 1.0, rng), *out = malloc((size_t)T * H * hd * 2);
	double *ref = malloc((size_t)T * H * hd * sizeof *ref);
	const float scale = 1.0f / sqrtf((float)hd);
	ref_attention_rows(q, T, pos0, H, KV, hd, dk, dvv, L, scale, ref);
	void *dq = dev_upload(q, (size_t)T * H * hd * 2), *dout = dev_poisoned((size_t)T * H * hd * 2);
	if (status_ok(shrink_cuda_attention_packed(ctx, SHRINK_CUDA_F16, dq, T, pos0, H, KV, hd, &dev, scale, dout),
		      "attention_packed")) {
		bool guard = dev_download(out, dout, (size_t)T * H * hd * 2);
		double e = ref_rel_err_half(0, out, ref, (size_t)T * H * hd);
		report(guard && e <= TOL_F16, "attention_packed %s H=%d KV=%d hd=%d L=%lld T=%lld chunks=%lld err=%.2e%s",
		       spec, H, KV, hd, (long long)L, (long long)T, (long long)nc, e, guard ? "" : " GUARD WRITTEN");
	}
	/* a layout that does not match the head size is refused */
	shrink_cuda_kv_packed bad = dev;
	bad.k.d = hd + 8;
	report(shrink_cuda_attention_packed(ctx, SHRINK_CUDA_F16, dq, T, pos0, H, KV, hd, &bad, scale, dout) ==
		       SHRINK_EUSAGE,
	       "attention_packed %s: a mismatched record layout is refused", spec);
	cudaFree((void *)dev.rec_k), cudaFree((void *)dev.rec_v), cudaFree((void *)dev.rank);
	cudaFree((void *)dev.k_ring), cudaFree((void *)dev.v_ring), cudaFree(dq), cudaFree(dout);
	free(k), free(v), free(ring), free(vring), free(dk), free(dvv), free(q), free(out), free(ref);
	shrink_kv_free(kv);
}

static void test_attention_packed(ref_rng *rng)
{
	static const struct {
		const char *spec;
		int H, KV, hd, L, T, prefill;
	} cases[] = {
		{"kivi", 8, 2, 128, 300, 1, 0},			     /* decode: 4 chunks + 44 in the ring */
		{"kivi", 8, 2, 128, 300, 100, 0},		     /* prefill-sized query block */
		{"kivi:bits=4,group=32,residual=64", 4, 4, 64, 200, 1, 0},
		{"kivi:bits=3", 6, 3, 96, 150, 20, 0},
		{"kivi:bits=8,group=16,residual=32", 8, 4, 8, 100, 7, 0}, /* stories260K's head_dim */
		{"gear", 8, 2, 128, 260, 1, 130},
		{"gear:rank=2,rank_prefill=6", 8, 2, 128, 300, 40, 130},
		{"gear:bits=4,outliers=0.1,rank=3", 8, 2, 64, 200, 1, 0},
		{"gear:bits=3,buffer=320", 4, 1, 64, 700, 3, 400}, /* 2-byte outlier indices */
		{"kivi", 32, 8, 128, 2000, 1, 0},		     /* long decode: split keys */
		{"gear", 14, 2, 64, 64, 64, 64},		     /* exactly one chunk, all compressed */
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		if (!quick || cases[i].L <= 300)
			check_attention_packed(cases[i].spec, cases[i].H, cases[i].KV, cases[i].hd, cases[i].L, cases[i].T,
					       cases[i].prefill, rng);
}

static void test_attention(ref_rng *rng)
{
	static const int heads[][3] = {{4, 4, 64}, {8, 2, 128}, {14, 2, 64}, {32, 8, 128}, {12, 1, 64}, {6, 3, 96}};
	const int n_heads_cfg = quick ? 3 : 6;
	for (int dt = 0; dt < 2; dt++)
		for (int c = 0; c < n_heads_cfg; c++) {
			const int H = heads[c][0], KV = heads[c][1], hd = heads[c][2];
			check_attention(dt, H, KV, hd, 1, 0, rng);                  /* first token */
			check_attention(dt, H, KV, hd, 1, quick ? 300 : 2000, rng); /* decode, split keys */
			check_attention(dt, H, KV, hd, quick ? 40 : 150, 0, rng);   /* prefill */
			check_attention(dt, H, KV, hd, 37, 50, rng);                 /* chunked prefill */
		}
	static const int64_t pos[] = {0, 1, 31, 32, 33, 300, 1999}, far[] = {4000, 5119};
	for (int dt = 0; dt < 2; dt++)
		for (int c = 0; c < n_heads_cfg; c++) {
			const int H = heads[c][0], KV = heads[c][1], hd = heads[c][2];
			check_attention_decode(dt, H, KV, hd, 2048, pos, quick ? 6 : 7, c == 0, rng);
			if (!quick) /* splits longer than a chunk */
				check_attention_decode(dt, H, KV, hd, 5120, far, 2, c == 1, rng);
		}
	check_attention_decode(0, 40, 5, 256, 64, pos, 4, false, rng); /* group 8, widest head */
	check_attention_decode(1, 4, 4, 8, 64, pos, 4, true, rng);    /* narrowest head */
}

int main(int argc, char **argv)
{
	uint64_t seed = 12345;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: test_cuda [--quick] [--seed N]\n");
			return 2;
		}
	}
	if (shrink_cuda_device_count() == 0) {
		printf("skip: no CUDA device\n");
		return 77;
	}
	cudaStream_t stream;
	CK(cudaStreamCreate(&stream));
	if (shrink_cuda_ctx_create(0, stream, &ctx) != SHRINK_OK || shrink_cuda_ctx_reserve(ctx, (size_t)256 << 20)) {
		fprintf(stderr, "test_cuda: cannot create the CUDA context\n");
		return 1;
	}
	ref_rng rng = {seed};
	test_qlinear(&rng);
	test_qlinear_tma_wide(&rng);
	test_qlinear_tma_long(&rng);
	test_qlinear_auto_rows();
	test_qlinear_rows4(&rng);
	test_qlinear_chain(&rng);
	test_qlinear_multi(&rng);
	test_qlinear_xin(&rng);
	test_w8a8(&rng);
	test_embed(&rng);
	test_rmsnorm(&rng);
	test_rope(&rng);
	test_elementwise(&rng);
	test_argmax(&rng);
	test_kv_store(&rng);
	test_attention(&rng);
	test_attention_packed(&rng);
	CK(cudaDeviceSynchronize());
	printf("test_cuda: %d passed, %d failed\n", n_pass, n_fail);
	shrink_cuda_ctx_destroy(ctx);
	cudaStreamDestroy(stream);
	return n_fail ? 1 : 0;
}
