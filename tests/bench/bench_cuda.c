/* bench_cuda.c: speed of the kernels in kernels/cuda on Llama-3-8B and -70B
 * layer shapes, against the ceilings measured in the same run: a large
 * device-to-device copy (bytes read + written), cuBLAS (cublasGemmEx, f16
 * or bf16 weights, f32 accumulation) on the same shapes, and a shape's read
 * floor (stream_read.cu: its compressed bytes read and nothing more, timed
 * as the GEMVs are).
 *
 * Method: every timed operation is captured into a CUDA graph that rotates
 * over several copies of its weights (together > 200 MB, four times the 50 MB
 * L2, so each launch reads HBM), the graph is replayed after a warm-up, each
 * replay timed with CUDA events, and the median replay time divided by the
 * launches in it is reported. Inputs are random (never zeros); outputs of the
 * quantized path are checked against cuBLAS on the dequantized weight before
 * anything is timed.
 *   bench_cuda [--quick] [--dtype f16|bf16] [--bits B] [--group G] [--asym]
 *   bench_cuda --decode   (one Llama-3-8B-shaped decode layer, op by op)
 *   bench_cuda --kv       (decode attention over the compressed KV caches against f16)
 *   bench_cuda --ops      (the other operations only: norms, RoPE, attention, ...)
 * Prints Markdown tables on stdout. Deliberately no correctness testing
 * beyond the sanity check (tests/cuda/test_cuda.c does that). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "cuda_ref.h"
#include "stream_read.h"

#define ROTATE_BYTES 200e6

static shrink_cuda_ctx *ctx;
static cudaStream_t stream;
static cublasHandle_t cublas;
static bool quick;
static int64_t max_batch = 1 << 30; /* --max-batch: skip larger batches (a short run) */
static int64_t min_batch = 0;       /* --min-batch: skip smaller ones */
static int force_split;             /* --split: the split-K factor of the 4-bit linear calls (0: planned) */
static bool asym;                   /* --asym: weights with zero points (shrink-quantize's default), else symmetric */
static int64_t listed[16];          /* --batches: the linear layers' batches instead of 1, 2, 4, ... 4096 */
static int n_listed;
static int dt = 0; /* 0 f16, 1 bf16 */
static double copy_gbps;
static int n_sms;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_cuda: %s: %s\n", what, why);
	exit(1);
}

/* "5,8,12": up to 16 batches of 1-4096 tokens */
static void list_batches(const char *arg)
{
	const char *p = arg;
	while (n_listed < (int)(sizeof listed / sizeof listed[0])) {
		char *end;
		const long long m = strtoll(p, &end, 10);
		if (m < 1 || m > 4096 || (*end && *end != ','))
			die("--batches", "expected numbers from 1 to 4096, separated by commas");
		listed[n_listed++] = m;
		if (!*end)
			return;
		p = end + 1;
	}
	die("--batches", "at most 16 batches");
}

#define CK(call)                                                                                                       \
	do {                                                                                                           \
		cudaError_t e_ = (call);                                                                               \
		if (e_ != cudaSuccess)                                                                                 \
			die(#call, cudaGetErrorString(e_));                                                            \
	} while (0)
#define CKS(call)                                                                                                      \
	do {                                                                                                           \
		if ((call) != SHRINK_OK)                                                                               \
			die(#call, shrink_cuda_ctx_message(ctx));                                                      \
	} while (0)

static void *dev_alloc(size_t n)
{
	void *p;
	CK(cudaMalloc(&p, n));
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- timing -------------------------------------------------------------------------------- */

typedef void (*launch_fn)(void *arg, int i);

/* Median microseconds per launch of f(arg, 0..n-1) captured in one graph. */
static double time_graph(launch_fn f, void *arg, int n, int replays)
{
	cudaGraph_t graph;
	cudaGraphExec_t exec;
	CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
	for (int i = 0; i < n; i++)
		f(arg, i);
	CK(cudaStreamEndCapture(stream, &graph));
	CK(cudaGraphInstantiate(&exec, graph, 0));
	cudaEvent_t ev[2];
	CK(cudaEventCreate(&ev[0]));
	CK(cudaEventCreate(&ev[1]));
	for (int w = 0; w < 2; w++)
		CK(cudaGraphLaunch(exec, stream));
	double *t = malloc((size_t)replays * sizeof(double));
	for (int r = 0; r < replays; r++) {
		float ms;
		CK(cudaEventRecord(ev[0], stream));
		CK(cudaGraphLaunch(exec, stream));
		CK(cudaEventRecord(ev[1], stream));
		CK(cudaEventSynchronize(ev[1]));
		CK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
		t[r] = 1000.0 * ms / n;
	}
	qsort(t, (size_t)replays, sizeof(double), cmp_double);
	double med = t[replays / 2];
	free(t);
	CK(cudaEventDestroy(ev[0]));
	CK(cudaEventDestroy(ev[1]));
	CK(cudaGraphExecDestroy(exec));
	CK(cudaGraphDestroy(graph));
	return med;
}

/* One direct launch after a warm-up: a rough microseconds estimate. */
static double estimate_us(launch_fn f, void *arg, int copies)
{
	cudaEvent_t e0, e1;
	float ms;
	f(arg, 0);
	CK(cudaStreamSynchronize(stream));
	CK(cudaEventCreate(&e0));
	CK(cudaEventCreate(&e1));
	CK(cudaEventRecord(e0, stream));
	f(arg, 1 % copies);
	CK(cudaEventRecord(e1, stream));
	CK(cudaEventSynchronize(e1));
	CK(cudaEventElapsedTime(&ms, e0, e1));
	CK(cudaEventDestroy(e0));
	CK(cudaEventDestroy(e1));
	return 1000.0 * ms;
}

/* Time f over `copies` rotating inputs: graphs of >= 2 ms, enough replays for ~0.2 s in all. */
static double time_auto(launch_fn f, void *arg, int copies)
{
	double est = estimate_us(f, arg, copies);
	if (est < 1.0)
		est = 1.0;
	int n = copies;
	while (n * est < 2000.0 && n < 64 * copies)
		n += copies;
	int replays = (int)(200000.0 / (n * est));
	replays = replays < 5 ? 5 : replays > 31 ? 31 : replays;
	return time_graph(f, arg, n, replays);
}

/* ---- copy ceiling ------------------------------------------------------------------------------ */

static void measure_copy(void)
{
	const size_t n = (size_t)1 << 30;
	void *a = dev_alloc(n), *b = dev_alloc(n);
	CK(cudaMemset(a, 1, n));
	cudaEvent_t e0, e1;
	CK(cudaEventCreate(&e0));
	CK(cudaEventCreate(&e1));
	double t[15];
	for (int r = 0; r < 17; r++) {
		float ms;
		CK(cudaEventRecord(e0, stream));
		CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream));
		CK(cudaEventRecord(e1, stream));
		CK(cudaEventSynchronize(e1));
		CK(cudaEventElapsedTime(&ms, e0, e1));
		if (r >= 2)
			t[r - 2] = ms;
	}
	qsort(t, 15, sizeof(double), cmp_double);
	copy_gbps = 2.0 * n / (t[7] * 1e-3) / 1e9;
	cudaFree(a);
	cudaFree(b);
	CK(cudaEventDestroy(e0));
	CK(cudaEventDestroy(e1));
}

/* ---- quantized linear vs cuBLAS --------------------------------------------------------------- */

typedef struct {
	int64_t K, N;
	int n_q, n_f;            /* weight copies for the rotation */
	shrink_cuda_qweight *q;  /* n_q repacked copies */
	void **wf;               /* n_f dense copies (dt) */
	void *x, *y;
	int64_t M;
	shrink_cuda_qpath path;
} lin_case;

static void launch_q(void *arg, int i)
{
	lin_case *c = arg;
	CKS(shrink_cuda_qlinear_path(ctx, &c->q[i % c->n_q], (shrink_cuda_dtype)dt, c->x, c->M, c->y, c->path,
				     force_split));
}

static void launch_cublas(void *arg, int i)
{
	lin_case *c = arg;
	const float alpha = 1.0f, beta = 0.0f;
	cudaDataType_t t = dt == 0 ? CUDA_R_16F : CUDA_R_16BF;
	if (cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)c->N, (int)c->M, (int)c->K, &alpha, c->wf[i % c->n_f], t,
			 (int)c->K, c->x, t, (int)c->K, &beta, c->y, t, (int)c->N, CUBLAS_COMPUTE_32F,
			 CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
		die("cublasGemmEx", "failed");
}

/* The dense copy alone, as the dequantize + cuBLAS path makes it (into wf[0]: same values). */
static void launch_dequant(void *arg, int i)
{
	lin_case *c = arg;
	CKS(shrink_cuda_qweight_dequant(ctx, &c->q[i % c->n_q], (shrink_cuda_dtype)dt, c->wf[0]));
}

static int copies_for(size_t bytes)
{
	int n = (int)ceil(ROTATE_BYTES / (double)bytes);
	return n < 2 ? 2 : n > 48 ? 48 : n;
}

/* The quantized output must match cuBLAS on the dequantized weight before any timing. */
static void sanity_check(lin_case *c, int64_t M)
{
	uint16_t *a = malloc((size_t)M * c->N * 2), *b = malloc((size_t)M * c->N * 2);
	c->M = M;
	c->path = SHRINK_CUDA_QPATH_AUTO;
	launch_q(c, 0);
	CK(cudaStreamSynchronize(stream));
	CK(cudaMemcpy(a, c->y, (size_t)M * c->N * 2, cudaMemcpyDeviceToHost));
	launch_cublas(c, 0); /* wf[0] is the dequantized q[0] */
	CK(cudaStreamSynchronize(stream));
	CK(cudaMemcpy(b, c->y, (size_t)M * c->N * 2, cudaMemcpyDeviceToHost));
	double num = 0, den = 0;
	for (int64_t i = 0; i < M * c->N; i++) {
		double u = ref_from_half(dt, a[i]), v = ref_from_half(dt, b[i]);
		num += (u - v) * (u - v);
		den += v * v;
	}
	double err = sqrt(num / den);
	if (!(err < (dt == 0 ? 3e-3 : 2e-2))) {
		fprintf(stderr, "bench_cuda: K=%lld N=%lld M=%lld: quantized output differs from cuBLAS (%.2e)\n",
			(long long)c->K, (long long)c->N, (long long)M, err);
		exit(1);
	}
	free(a);
	free(b);
}

static void setup_case(lin_case *c, int64_t K, int64_t N, int bits, int group, int64_t max_m, ref_rng *rng)
{
	memset(c, 0, sizeof *c);
	c->K = K, c->N = N;
	/* random codes: any byte string is a valid packing when K * bits is a multiple of 8 */
	size_t rb = ref_row_bytes(bits, K), ng = group ? (size_t)((K + group - 1) / group) : 1;
	uint8_t *packed = malloc((size_t)N * rb);
	uint16_t *scales = malloc((size_t)N * ng * 2);
	for (size_t i = 0; i < (size_t)N * rb; i += 8) {
		uint64_t r = ref_next(rng);
		memcpy(packed + i, &r, (size_t)N * rb - i < 8 ? (size_t)N * rb - i : 8);
	}
	for (size_t i = 0; i < (size_t)N * ng; i++)
		scales[i] = ref_f32_to_f16((float)((0.5 + ref_uniform(rng)) / (1 << (bits - 1)) * 0.05));
	uint8_t *zeros = asym ? malloc((size_t)N * ng) : NULL;
	for (size_t i = 0; asym && i < (size_t)N * ng; i++)
		zeros[i] = (uint8_t)(ref_next(rng) % (1u << bits));
	shrink_cuda_qweight probe;
	CKS(shrink_cuda_qweight_upload(ctx, bits, group, !asym, N, K, packed, scales, zeros, &probe));
	c->n_q = copies_for(shrink_cuda_qweight_bytes(&probe));
	c->q = malloc((size_t)c->n_q * sizeof *c->q);
	c->q[0] = probe;
	for (int i = 1; i < c->n_q; i++)
		CKS(shrink_cuda_qweight_upload(ctx, bits, group, !asym, N, K, packed, scales, zeros, &c->q[i]));
	c->n_f = copies_for((size_t)N * K * 2);
	c->wf = malloc((size_t)c->n_f * sizeof(void *));
	for (int i = 0; i < c->n_f; i++) {
		c->wf[i] = dev_alloc((size_t)N * K * 2);
		CKS(shrink_cuda_qweight_dequant(ctx, &c->q[0], (shrink_cuda_dtype)dt, c->wf[i]));
	}
	uint16_t *x = malloc((size_t)max_m * K * 2);
	for (size_t i = 0; i < (size_t)max_m * K; i++)
		x[i] = ref_to_half(dt, (float)ref_normal(rng));
	c->x = dev_alloc((size_t)max_m * K * 2);
	c->y = dev_alloc((size_t)max_m * N * 2);
	CK(cudaMemcpy(c->x, x, (size_t)max_m * K * 2, cudaMemcpyHostToDevice));
	CK(cudaStreamSynchronize(stream));
	free(x);
	free(packed);
	free(scales);
	free(zeros);
}

static void free_case(lin_case *c)
{
	for (int i = 0; i < c->n_q; i++)
		shrink_cuda_qweight_free(&c->q[i]);
	for (int i = 0; i < c->n_f; i++)
		cudaFree(c->wf[i]);
	free(c->q);
	free(c->wf);
	cudaFree(c->x);
	cudaFree(c->y);
}

/* The paths by the names --one takes and the tables print (cuBLAS: "dequant+cublas" there). */
static const struct {
	const char *name;
	shrink_cuda_qpath path;
} path_names[] = {{"auto", SHRINK_CUDA_QPATH_AUTO},         {"gemv", SHRINK_CUDA_QPATH_GEMV},
		  {"gemv-reg", SHRINK_CUDA_QPATH_GEMV_REG}, {"gemv-tma", SHRINK_CUDA_QPATH_GEMV_TMA},
		  {"gemm", SHRINK_CUDA_QPATH_GEMM},         {"cublas", SHRINK_CUDA_QPATH_CUBLAS}};

static const char *path_name(shrink_cuda_qpath p)
{
	if (p == SHRINK_CUDA_QPATH_CUBLAS)
		return "dequant+cublas";
	for (size_t i = 0; i < sizeof path_names / sizeof path_names[0]; i++)
		if (path_names[i].path == p)
			return path_names[i].name;
	return "?";
}

/* A row's path as the library plans it (shrink_cuda_qlinear_plan): auto's choice, and the GEMM's
 * tokens a CTA and splits ("gemm b16 k2 pair": 16 tokens, two splits adding in a cluster). */
static const char *path_label(const lin_case *c, int64_t M, shrink_cuda_qpath path)
{
	static char buf[80];
	shrink_cuda_qplan p;
	if (shrink_cuda_qlinear_plan(ctx, &c->q[0], M, path, force_split, &p) != SHRINK_OK)
		return path_name(path);
	int n = snprintf(buf, sizeof buf, "%s%s", path == SHRINK_CUDA_QPATH_AUTO ? "auto: " : "", path_name(p.path));
	if (p.path == SHRINK_CUDA_QPATH_GEMM)
		n += snprintf(buf + n, sizeof buf - n, " b%d", p.block_tokens);
	if (p.splits > 1)
		snprintf(buf + n, sizeof buf - n, " k%d%s", p.splits, p.cluster ? " pair" : "");
	return buf;
}

static void bench_row(lin_case *c, int64_t M, shrink_cuda_qpath path, double cublas_us)
{
	c->M = M;
	c->path = path;
	if (path == SHRINK_CUDA_QPATH_GEMV_TMA &&
	    shrink_cuda_qlinear_path(ctx, &c->q[0], (shrink_cuda_dtype)dt, c->x, M, c->y, path, 0) != SHRINK_OK)
		return; /* activations too large for its shared memory */
	const double flops = 2.0 * M * c->K * c->N;
	double us = time_auto(launch_q, c, c->n_q);
	const double qbytes = (double)shrink_cuda_qweight_bytes(&c->q[0]);
	const double gbps = qbytes / (us * 1e-6) / 1e9;
	printf("| %lldx%lld | %lld | %s | %.1f | %.1f | %.2fx | %.0f | %.0f%% | %.1f | %.1f |\n", (long long)c->K,
	       (long long)c->N, (long long)M, path_label(c, M, path), us, cublas_us, cublas_us / us, gbps,
	       100.0 * gbps / copy_gbps, flops / (us * 1e-6) / 1e12, flops / (cublas_us * 1e-6) / 1e12);
	fflush(stdout);
}

/* The read floor of a shape: its compressed bytes read and nothing done with them
 * (stream_read.cu), over the same number of rotating copies, launched the ordinary way and as
 * dependent launches. */
typedef struct {
	void **p;
	int n;
	size_t bytes;
	unsigned *sink;
	int dependent;
} read_case;

static void launch_read(void *arg, int i)
{
	read_case *r = arg;
	CK(bench_stream_read(r->p[i % r->n], r->bytes, r->sink, r->dependent, n_sms, stream));
}

static void bench_floor(const lin_case *c)
{
	read_case r = {0};
	r.n = c->n_q;
	r.bytes = (shrink_cuda_qweight_bytes(&c->q[0]) + 15) / 16 * 16;
	r.p = malloc((size_t)r.n * sizeof(void *));
	for (int i = 0; i < r.n; i++) {
		r.p[i] = dev_alloc(r.bytes);
		CK(cudaMemset(r.p[i], i + 1, r.bytes));
	}
	r.sink = dev_alloc(sizeof(unsigned));
	for (r.dependent = 0; r.dependent < 2; r.dependent++) {
		const double us = time_auto(launch_read, &r, r.n), gbps = (double)r.bytes / (us * 1e-6) / 1e9;
		printf("| %lldx%lld | - | read floor%s | %.1f | - | - | %.0f | %.0f%% | - | - |\n", (long long)c->K,
		       (long long)c->N, r.dependent ? ", dependent" : "", us, gbps, 100.0 * gbps / copy_gbps);
		fflush(stdout);
	}
	for (int i = 0; i < r.n; i++)
		cudaFree(r.p[i]);
	cudaFree(r.sink);
	free(r.p);
}

/* Whether the batch-1 rows run (the read floor goes beside them). */
static bool runs_batch_1(const int64_t *batches, int n)
{
	for (int b = 0; b < n; b++)
		if (batches[b] == 1)
			return min_batch <= 1 && max_batch >= 1;
	return false;
}

static void bench_linear(int bits, int group, ref_rng *rng)
{
	static const int64_t shapes[][2] = {{4096, 4096}, {4096, 14336}, {14336, 4096},
					    {8192, 8192}, {8192, 28672}, {28672, 8192}};
	static const int64_t default_batches[] = {1, 2, 4, 8, 16, 32, 64, 128, 4096};
	const int64_t *batches = n_listed ? listed : default_batches;
	const int n_shapes = quick ? 2 : 6, n_batches = n_listed ? n_listed : quick ? 8 : 9;
	printf("\n### W%dA16 g%d%s (%s activations) vs cuBLAS %s\n\n", bits, group, asym ? " asymmetric" : "",
	       dt ? "bf16" : "f16", dt ? "bf16" : "f16");
	printf("| shape KxN | batch | path | ours us | cuBLAS us | speedup | GB/s compressed | %% of copy BW | "
	       "TFLOP/s ours | TFLOP/s cuBLAS |\n|---|---|---|---|---|---|---|---|---|---|\n");
	for (int s = 0; s < n_shapes; s++) {
		lin_case c;
		int64_t max_m = 64; /* sanity_check below runs 64 tokens */
		for (int b = 0; b < n_batches; b++)
			max_m = batches[b] > max_m ? batches[b] : max_m;
		setup_case(&c, shapes[s][0], shapes[s][1], bits, group, max_m, rng);
		sanity_check(&c, 1);
		sanity_check(&c, 64);
		if (runs_batch_1(batches, n_batches))
			bench_floor(&c);
		for (int b = 0; b < n_batches; b++) {
			const int64_t M = batches[b];
			if (M > max_batch || M < min_batch)
				continue;
			c.M = M;
			double cub = time_auto(launch_cublas, &c, c.n_f);
			bench_row(&c, M, SHRINK_CUDA_QPATH_AUTO, cub);
			if (M >= 1024) {
				bench_row(&c, M, SHRINK_CUDA_QPATH_GEMM, cub);
				/* bytes: codes and scales read, the dense copy written */
				const double us = time_auto(launch_dequant, &c, c.n_q);
				const double bytes = shrink_cuda_qweight_bytes(&c.q[0]) + 2.0 * c.K * c.N;
				printf("| %lldx%lld | - | dequant only | %.1f | - | - | %.0f (read + written) | %.0f%% | - | - |\n",
				       (long long)c.K, (long long)c.N, us, bytes / (us * 1e-6) / 1e9,
				       100.0 * bytes / (us * 1e-6) / 1e9 / copy_gbps);
			}
			if (M <= 32)
				bench_row(&c, M, SHRINK_CUDA_QPATH_GEMV_REG, cub);
			if (M <= 8)
				bench_row(&c, M, SHRINK_CUDA_QPATH_GEMV_TMA, cub);
			if (M >= 8 && M <= 32)
				bench_row(&c, M, SHRINK_CUDA_QPATH_GEMM, cub);
		}
		free_case(&c);
	}
}

/* Batch-1 GEMV at every bit width, two shapes. */
static void bench_bits(ref_rng *rng)
{
	static const int64_t shapes[][2] = {{4096, 14336}, {8192, 8192}};
	static const int bits_list[] = {2, 3, 4, 5, 6, 8};
	printf("\n### GEMV batch 1 at every bit width (g128, %s)\n\n", dt ? "bf16" : "f16");
	printf("| shape KxN | bits | batch | path | ours us | cuBLAS us | speedup | GB/s compressed | %% of copy BW | "
	       "TFLOP/s ours | TFLOP/s cuBLAS |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (int s = 0; s < 2; s++)
		for (int b = 0; b < 6; b++) {
			lin_case c;
			setup_case(&c, shapes[s][0], shapes[s][1], bits_list[b], 128, 8, rng);
			sanity_check(&c, 1);
			c.M = 1;
			double cub = time_auto(launch_cublas, &c, c.n_f);
			static const shrink_cuda_qpath paths[] = {SHRINK_CUDA_QPATH_AUTO, SHRINK_CUDA_QPATH_GEMV_REG,
								  SHRINK_CUDA_QPATH_GEMV_TMA};
			static const char *names[] = {"auto", "gemv-reg", "gemv-tma"};
			for (int v = 0; v < 3; v++) {
				c.path = paths[v];
				const double us = time_auto(launch_q, &c, c.n_q);
				const double gbps = shrink_cuda_qweight_bytes(&c.q[0]) / (us * 1e-6) / 1e9;
				const double flops = 2.0 * c.K * c.N;
				printf("| %lldx%lld | %d | 1 | %s | %.1f | %.1f | %.2fx | %.0f | %.0f%% | %.2f | %.2f |\n",
				       (long long)c.K, (long long)c.N, bits_list[b], names[v], us, cub, cub / us,
				       gbps, 100 * gbps / copy_gbps, flops / (us * 1e-6) / 1e12, flops / (cub * 1e-6) / 1e12);
				fflush(stdout);
			}
			free_case(&c);
		}
}

/* ---- W8A8 -------------------------------------------------------------------------------------- */

typedef struct {
	int64_t K, N, M;
	int n_w;
	shrink_cuda_w8 *w;
	int8_t *xq;
	float *sx;
	void *x, *y;
	lin_case *dense;
} w8_case;

static void launch_w8(void *arg, int i)
{
	w8_case *c = arg;
	CKS(shrink_cuda_quantize_i8(ctx, (shrink_cuda_dtype)dt, c->x, c->M, c->K, c->w[0].cols_pad, c->xq, c->sx));
	CKS(shrink_cuda_w8a8_linear(ctx, &c->w[i % c->n_w], c->xq, c->sx, c->M, (shrink_cuda_dtype)dt, c->y));
}

static void bench_w8a8(ref_rng *rng)
{
	static const int64_t shapes[][2] = {{4096, 4096}, {4096, 14336}, {14336, 4096},
					    {8192, 8192}, {8192, 28672}, {28672, 8192}};
	static const int64_t batches[] = {1, 16, 128, 4096};
	const int n_shapes = quick ? 1 : 6;
	printf("\n### W8A8 (int8 tensor cores, activation quantization included) vs cuBLAS %s\n\n",
	       dt ? "bf16" : "f16");
	printf("| shape KxN | batch | ours us | cuBLAS us | speedup | GB/s weights | %% of copy BW | TOP/s ours | "
	       "TFLOP/s cuBLAS |\n|---|---|---|---|---|---|---|---|---|\n");
	for (int s = 0; s < n_shapes; s++) {
		const int64_t K = shapes[s][0], N = shapes[s][1];
		lin_case dense;
		setup_case(&dense, K, N, 8, 0, 4096, rng); /* 8-bit per-row codes: reuse them as the W8 weight */
		uint8_t *codes = malloc((size_t)N * K);
		uint16_t *scales = malloc((size_t)N * 2);
		for (size_t i = 0; i < (size_t)N * K; i++)
			codes[i] = (uint8_t)ref_next(rng);
		for (int64_t i = 0; i < N; i++)
			scales[i] = ref_f32_to_f16(0.01f);
		w8_case c;
		memset(&c, 0, sizeof c);
		c.K = K, c.N = N, c.x = dense.x, c.y = dense.y;
		c.n_w = copies_for((size_t)N * K);
		c.w = malloc((size_t)c.n_w * sizeof *c.w);
		for (int i = 0; i < c.n_w; i++)
			CKS(shrink_cuda_w8_upload(ctx, N, K, codes, scales, &c.w[i]));
		c.xq = dev_alloc((size_t)4096 * c.w[0].cols_pad);
		c.sx = dev_alloc(4096 * sizeof(float));
		for (int b = 0; b < 4; b++) {
			c.M = dense.M = batches[b];
			double cub = time_auto(launch_cublas, &dense, dense.n_f);
			double us = time_auto(launch_w8, &c, c.n_w);
			const double gbps = (double)N * K / (us * 1e-6) / 1e9, ops = 2.0 * c.M * K * N;
			printf("| %lldx%lld | %lld | %.1f | %.1f | %.2fx | %.0f | %.0f%% | %.1f | %.1f |\n", (long long)K,
			       (long long)N, (long long)c.M, us, cub, cub / us, gbps, 100 * gbps / copy_gbps,
			       ops / (us * 1e-6) / 1e12, ops / (cub * 1e-6) / 1e12);
			fflush(stdout);
		}
		for (int i = 0; i < c.n_w; i++)
			shrink_cuda_w8_free(&c.w[i]);
		free(c.w);
		cudaFree(c.xq);
		cudaFree(c.sx);
		free(codes);
		free(scales);
		free_case(&dense);
	}
}

/* ---- the other ops ------------------------------------------------------------------------------- */

typedef struct {
	int op;
	int64_t T, D;
	int copies;
	void **a, **b, **out;
	void *w;
	int32_t *ids;
	float *inv;
	uint16_t *kc, *vc;
	int H, KV, hd;
	int64_t pos0;
	int32_t *pos_dev;
	shrink_cuda_kv_packed *packed; /* OP_ATTN_PACKED: `copies` device copies of one cache */
} op_case;

enum { OP_RMSNORM, OP_ROPE, OP_SWIGLU, OP_ADD, OP_EMBED, OP_ARGMAX, OP_ATTN, OP_ATTN_DEC, OP_ADDNORM, OP_ATTN_PACKED };

static void launch_op(void *arg, int i)
{
	op_case *c = arg;
	const int k = i % c->copies;
	const shrink_cuda_dtype t = (shrink_cuda_dtype)dt;
	switch (c->op) {
	case OP_RMSNORM: CKS(shrink_cuda_rmsnorm(ctx, t, c->a[k], c->w, c->T, c->D, 1e-5f, c->out[k])); break;
	case OP_ROPE: CKS(shrink_cuda_rope(ctx, t, c->a[k], c->b[k], c->T, c->H, c->KV, c->hd, c->inv, c->pos0)); break;
	case OP_SWIGLU: CKS(shrink_cuda_swiglu(ctx, t, c->a[k], c->b[k], c->T * c->D, c->out[k])); break;
	case OP_ADD: CKS(shrink_cuda_add(ctx, t, c->a[k], c->b[k], c->T * c->D, c->out[k])); break;
	case OP_EMBED: CKS(shrink_cuda_embed(ctx, t, c->w, c->D /* vocab */, 4096, c->ids, c->T, c->out[k])); break;
	case OP_ARGMAX: CKS(shrink_cuda_argmax(ctx, t, c->a[k], c->T, c->D, (int32_t *)c->out[k])); break;
	case OP_ADDNORM:
		CKS(shrink_cuda_add_rmsnorm_f32(ctx, c->a[k], c->b[k], c->w, c->T, c->D, 1e-5f, c->out[k]));
		break;
	case OP_ATTN_DEC:
		CKS(shrink_cuda_attention_decode(ctx, t, c->a[k], c->b[k], c->b[k], c->H, c->KV, c->hd, c->inv,
						 c->pos_dev, c->pos0 + 1, c->kc, c->vc, 1.0f / sqrtf((float)c->hd),
						 c->out[k]));
		break;
	case OP_ATTN_PACKED:
		CKS(shrink_cuda_attention_packed(ctx, t, c->a[k], c->T, c->pos0, c->H, c->KV, c->hd, &c->packed[k],
						 1.0f / sqrtf((float)c->hd), c->out[k]));
		break;
	default:
		CKS(shrink_cuda_attention(ctx, t, c->a[k], c->T, c->pos0, c->H, c->KV, c->hd, c->kc, c->vc,
					  1.0f / sqrtf((float)c->hd), c->out[k]));
	}
}

static void **alloc_copies(int n, size_t bytes)
{
	void **p = malloc((size_t)n * sizeof(void *));
	for (int i = 0; i < n; i++) {
		p[i] = dev_alloc(bytes);
		CK(cudaMemset(p[i], 0x3c, bytes)); /* 1.0-ish halves: not zeros, finite */
	}
	return p;
}

static void free_copies(void **p, int n)
{
	for (int i = 0; p && i < n; i++)
		cudaFree(p[i]);
	free(p);
}

static void bench_op(const char *name, op_case *c, size_t bytes_in, size_t bytes_out, double bytes_moved)
{
	c->copies = copies_for(bytes_in + bytes_out);
	c->a = alloc_copies(c->copies, bytes_in);
	c->b = alloc_copies(c->copies, bytes_in);
	c->out = alloc_copies(c->copies, bytes_out > 0 ? bytes_out : 16);
	double us = time_auto(launch_op, c, c->copies);
	double gbps = bytes_moved / (us * 1e-6) / 1e9;
	printf("| %s | %.1f | %.0f | %.0f%% |\n", name, us, gbps, 100 * gbps / copy_gbps);
	fflush(stdout);
	free_copies(c->a, c->copies);
	free_copies(c->b, c->copies);
	free_copies(c->out, c->copies);
}

static void bench_ops(void)
{
	char name[160];
	printf("\n### Other ops (%s), bytes = inputs read + outputs written once\n\n", dt ? "bf16" : "f16");
	printf("| op | us | GB/s | %% of copy BW |\n|---|---|---|---|\n");
	const int64_t dims[] = {4096, 8192};
	const int64_t toks[] = {1, 128, 4096};
	for (int di = 0; di < 2; di++)
		for (int ti = 0; ti < 3; ti++) {
			const int64_t D = dims[di], T = toks[ti];
			op_case c = {.op = OP_RMSNORM, .T = T, .D = D};
			c.w = dev_alloc((size_t)D * 2);
			CK(cudaMemset(c.w, 0x3c, (size_t)D * 2));
			snprintf(name, sizeof name, "rmsnorm T=%lld D=%lld", (long long)T, (long long)D);
			bench_op(name, &c, (size_t)T * D * 2, (size_t)T * D * 2, 4.0 * T * D);
			cudaFree(c.w);
			const int64_t F = D == 4096 ? 14336 : 28672;
			op_case s = {.op = OP_SWIGLU, .T = T, .D = F};
			snprintf(name, sizeof name, "swiglu T=%lld F=%lld", (long long)T, (long long)F);
			bench_op(name, &s, (size_t)T * F * 2, (size_t)T * F * 2, 6.0 * T * F);
			op_case a = {.op = OP_ADD, .T = T, .D = D};
			snprintf(name, sizeof name, "add T=%lld D=%lld", (long long)T, (long long)D);
			bench_op(name, &a, (size_t)T * D * 2, (size_t)T * D * 2, 6.0 * T * D);
			const int H = D == 4096 ? 32 : 64, KV = 8, hd = 128;
			op_case r = {.op = OP_ROPE, .T = T, .H = H, .KV = KV, .hd = hd, .pos0 = 100};
			r.inv = dev_alloc(64 * sizeof(float));
			CK(cudaMemset(r.inv, 0, 64 * sizeof(float)));
			snprintf(name, sizeof name, "rope T=%lld q %d heads, k %d heads", (long long)T, H, KV);
			bench_op(name, &r, (size_t)T * H * hd * 2, 0, 4.0 * T * (H + KV) * hd);
			cudaFree(r.inv);
		}
	for (int ti = 0; ti < 3; ti++) {
		const int64_t T = toks[ti], V = 128256;
		op_case c = {.op = OP_ARGMAX, .T = T, .D = V};
		snprintf(name, sizeof name, "argmax T=%lld V=%lld", (long long)T, (long long)V);
		bench_op(name, &c, (size_t)T * V * 2, (size_t)T * 4, 2.0 * T * V);
		op_case e = {.op = OP_EMBED, .T = T, .D = V};
		e.w = dev_alloc((size_t)V * 4096 * 2);
		CK(cudaMemset(e.w, 0x3c, (size_t)V * 4096 * 2));
		int32_t *ids = malloc((size_t)T * 4);
		for (int64_t i = 0; i < T; i++)
			ids[i] = (int32_t)((i * 7919) % V);
		e.ids = dev_alloc((size_t)T * 4);
		CK(cudaMemcpy(e.ids, ids, (size_t)T * 4, cudaMemcpyHostToDevice));
		snprintf(name, sizeof name, "embed T=%lld D=4096", (long long)T);
		bench_op(name, &e, 16, (size_t)T * 4096 * 2, 4.0 * T * 4096);
		cudaFree(e.w);
		cudaFree(e.ids);
		free(ids);
	}
	/* attention, Llama-3-8B (32 q heads, 8 KV heads, 128) and 70B (64, 8, 128) */
	const int cfg[][2] = {{32, 8}, {64, 8}};
	const int64_t ctxs[] = {512, 4096, 32768};
	for (int ci = 0; ci < 2; ci++) {
		const int H = cfg[ci][0], KV = cfg[ci][1], hd = 128;
		for (int li = 0; li < 3; li++) {
			const int64_t L = ctxs[li];
			op_case c = {.op = OP_ATTN, .T = 1, .H = H, .KV = KV, .hd = hd, .pos0 = L - 1};
			c.kc = dev_alloc((size_t)L * KV * hd * 2);
			c.vc = dev_alloc((size_t)L * KV * hd * 2);
			CK(cudaMemset(c.kc, 0x3c, (size_t)L * KV * hd * 2));
			CK(cudaMemset(c.vc, 0x3c, (size_t)L * KV * hd * 2));
			snprintf(name, sizeof name, "attention decode H=%d KV=%d ctx=%lld (one cache)", H, KV, (long long)L);
			bench_op(name, &c, (size_t)H * hd * 2, (size_t)H * hd * 2, 4.0 * L * KV * hd);
			/* the fused decode step (rope + KV store + attention, position in device memory) */
			op_case d = c;
			d.op = OP_ATTN_DEC;
			d.inv = dev_alloc(64 * sizeof(float));
			CK(cudaMemset(d.inv, 0, 64 * sizeof(float)));
			const int32_t last = (int32_t)(L - 1);
			d.pos_dev = dev_alloc(4);
			CK(cudaMemcpy(d.pos_dev, &last, 4, cudaMemcpyHostToDevice));
			snprintf(name, sizeof name, "attention_decode (rope + store + attention) H=%d KV=%d ctx=%lld", H, KV,
				 (long long)L);
			bench_op(name, &d, (size_t)H * hd * 2, (size_t)H * hd * 2, 4.0 * L * KV * hd);
			cudaFree(d.inv);
			cudaFree(d.pos_dev);
			if (li < 2) {
				op_case p = {.op = OP_ATTN, .T = L, .H = H, .KV = KV, .hd = hd, .pos0 = 0};
				p.kc = c.kc, p.vc = c.vc;
				snprintf(name, sizeof name, "attention prefill H=%d KV=%d T=%lld (GB/s: q, cache, out once)",
					 H, KV, (long long)L);
				bench_op(name, &p, (size_t)L * H * hd * 2, (size_t)L * H * hd * 2,
					 4.0 * L * H * hd + 4.0 * L * KV * hd);
			}
			cudaFree(c.kc);
			cudaFree(c.vc);
		}
	}
}

/* ---- decode attention over the compressed KV caches ------------------------------------------- */

/* ref_kv_filled's one-layer cache of L random positions, uploaded `n` times so that the timed calls
 * rotate over more than L2 holds. */
static shrink_cuda_kv_packed *packed_copies(const char *spec, int H, int KV, int hd, int64_t L, int n, size_t *bytes,
					    ref_rng *rng)
{
	shrink_error err;
	shrink_kv *kv = ref_kv_filled(spec, H, KV, hd, L, 0, rng, NULL, NULL, &err);
	if (!kv)
		die("kv", err.msg);
	const int64_t kvd = (int64_t)KV * hd;
	*bytes = kv->ops->n_bytes(kv);
	shrink_kv_view view;
	kv->ops->view(kv, 0, &view);
	const int64_t C = view.chunk, nc = view.n_chunks;
	size_t bk = (size_t)nc * KV * view.k.rec_bytes, bv = (size_t)nc * KV * view.v.rec_bytes;
	shrink_cuda_kv_packed *p = calloc((size_t)n, sizeof *p);
	for (int i = 0; i < n; i++) {
		p[i] = (shrink_cuda_kv_packed){.k = view.k, .v = view.v, .chunk = C, .n_chunks = nc};
		void *rk = dev_alloc(bk ? bk : 16), *rv = dev_alloc(bv ? bv : 16), *rank = dev_alloc((size_t)nc + 16);
		void *kr = dev_alloc((size_t)C * kvd * 2), *vr = dev_alloc((size_t)C * kvd * 2);
		CK(cudaMemcpy(rk, view.rec_k, bk, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(rv, view.rec_v, bv, cudaMemcpyHostToDevice));
		CK(cudaMemcpy(rank, view.rank, (size_t)nc, cudaMemcpyHostToDevice));
		CK(cudaMemset(kr, 0x3c, (size_t)C * kvd * 2));
		CK(cudaMemset(vr, 0x3c, (size_t)C * kvd * 2));
		p[i].rec_k = rk, p[i].rec_v = rv, p[i].rank = rank, p[i].k_ring = kr, p[i].v_ring = vr;
	}
	shrink_kv_free(kv);
	return p;
}

static void free_packed(shrink_cuda_kv_packed *p, int n)
{
	for (int i = 0; i < n; i++) {
		cudaFree((void *)p[i].rec_k), cudaFree((void *)p[i].rec_v), cudaFree((void *)p[i].rank);
		cudaFree((void *)p[i].k_ring), cudaFree((void *)p[i].v_ring);
	}
	free(p);
}

/* One decode token's attention (Llama-3-8B: 32 q heads, 8 KV heads, 128) over an f16 cache and over
 * compressed ones; GB/s counts the cache's bytes (lib/kv's n_bytes: records + f16 tail) once. */
static void bench_kv(ref_rng *rng)
{
	printf("\n### Decode attention over compressed KV caches (%s), H=32 KV=8 head_dim 128\n\n", dt ? "bf16" : "f16");
	printf("| cache | ctx | us | cache MB | GB/s | time vs f16 |\n|---|---|---|---|---|---|\n");
	const int H = 32, KV = 8, hd = 128;
	const char *specs[] = {"kivi", "kivi:bits=4", "gear"};
	const int64_t ctxs[] = {4096, 32768};
	for (int li = 0; li < 2; li++) {
		const int64_t L = ctxs[li];
		const size_t f16_bytes = (size_t)L * KV * hd * 2 * 2;
		op_case f = {.op = OP_ATTN, .T = 1, .H = H, .KV = KV, .hd = hd, .pos0 = L - 1};
		f.kc = dev_alloc(f16_bytes / 2), f.vc = dev_alloc(f16_bytes / 2);
		CK(cudaMemset(f.kc, 0x3c, f16_bytes / 2));
		CK(cudaMemset(f.vc, 0x3c, f16_bytes / 2));
		f.copies = 2; /* the f16 cache alone (134 MB at 32k) is not rotated; at 4k it partly fits L2 */
		f.a = alloc_copies(2, (size_t)H * hd * 2), f.b = f.a, f.out = alloc_copies(2, (size_t)H * hd * 2);
		const double us_f16 = time_auto(launch_op, &f, 2);
		printf("| f16 | %lld | %.1f | %.1f | %.0f | 1.00x |\n", (long long)L, us_f16, f16_bytes / 1e6,
		       f16_bytes / (us_f16 * 1e-6) / 1e9);
		for (size_t si = 0; si < sizeof specs / sizeof *specs; si++) {
			size_t bytes;
			const int n = copies_for(L * KV * hd); /* about the 2-bit size */
			op_case c = f;
			c.op = OP_ATTN_PACKED;
			c.packed = packed_copies(specs[si], H, KV, hd, L, n, &bytes, rng);
			c.copies = n;
			void **q = alloc_copies(n, (size_t)H * hd * 2), **o = alloc_copies(n, (size_t)H * hd * 2);
			c.a = q, c.out = o;
			const double us = time_auto(launch_op, &c, n);
			printf("| %s | %lld | %.1f | %.1f | %.0f | %.2fx |\n", specs[si], (long long)L, us, bytes / 1e6,
			       bytes / (us * 1e-6) / 1e9, us / us_f16);
			fflush(stdout);
			free_packed(c.packed, n);
			free_copies(q, n), free_copies(o, n);
		}
		free_copies(f.a, 2), free_copies(f.out, 2);
		cudaFree(f.kc), cudaFree(f.vc);
	}
}

/* ---- one decode step of a Llama-3-8B-shaped layer, op by op ---------------------------------- */

typedef struct {
	lin_case part[3];
	int n;
	bool multi; /* one shrink_cuda_qlinear_multi call, else one call per weight */
} multi_case;

static void launch_multi(void *arg, int i)
{
	multi_case *m = arg;
	const shrink_cuda_qweight *w[3];
	void *y[3];
	for (int j = 0; j < m->n; j++)
		w[j] = &m->part[j].q[i % m->part[j].n_q], y[j] = m->part[j].y;
	if (m->multi)
		CKS(shrink_cuda_qlinear_multi(ctx, m->n, w, (shrink_cuda_dtype)dt, m->part[0].x, 1, y));
	else
		for (int j = 0; j < m->n; j++)
			CKS(shrink_cuda_qlinear(ctx, w[j], (shrink_cuda_dtype)dt, m->part[0].x, 1, y[j]));
}

static void bench_multi(const char *name, int n, const int64_t *rows, int64_t K, ref_rng *rng)
{
	multi_case m = {.n = n};
	double bytes = 0;
	for (int j = 0; j < n; j++) {
		setup_case(&m.part[j], K, rows[j], 4, 128, 1, rng);
		bytes += (double)shrink_cuda_qweight_bytes(&m.part[j].q[0]);
	}
	for (int multi = 0; multi < 2; multi++) {
		m.multi = multi;
		double us = time_auto(launch_multi, &m, m.part[0].n_q);
		double gbps = bytes / (us * 1e-6) / 1e9;
		printf("| %s, %s | %.1f | %.0f | %.0f%% |\n", name, multi ? "one launch" : "one launch each", us, gbps,
		       100 * gbps / copy_gbps);
		fflush(stdout);
	}
	for (int j = 0; j < n; j++)
		free_case(&m.part[j]);
}

static void bench_decode(ref_rng *rng)
{
	printf("\n### Decode step ops of a Llama-3-8B-shaped layer (1 token, 4-bit g128 symmetric, %s)\n\n",
	       dt ? "bf16" : "f16");
	printf("| op | us | GB/s | %% of copy BW |\n|---|---|---|---|\n");
	const int64_t qkv[] = {4096, 1024, 1024}, gu[] = {14336, 14336};
	bench_multi("q/k/v 4096 -> 4096+1024+1024", 3, qkv, 4096, rng);
	bench_multi("gate/up 4096 -> 2x14336", 2, gu, 4096, rng);
	lin_case head;
	setup_case(&head, 4096, 128256, 8, 128, 1, rng);
	head.M = 1;
	head.path = SHRINK_CUDA_QPATH_AUTO;
	double us = time_auto(launch_q, &head, head.n_q);
	double gbps = (double)shrink_cuda_qweight_bytes(&head.q[0]) / (us * 1e-6) / 1e9;
	printf("| lm_head 8-bit g128 4096 -> 128256 | %.1f | %.0f | %.0f%% |\n", us, gbps, 100 * gbps / copy_gbps);
	free_case(&head);
	op_case c = {.op = OP_ADDNORM, .T = 1, .D = 4096};
	c.w = dev_alloc(4096 * 2);
	CK(cudaMemset(c.w, 0x3c, 4096 * 2));
	bench_op("add_rmsnorm_f32 D=4096 (residual f32 + f16, normed f16 out)", &c, 4096 * 4, 4096 * 2, 4096 * 12.0);
	cudaFree(c.w);
}

/* One quantized linear call (after one warm-up call), for a profiler: --one K N M gemv|gemm|cublas */
static shrink_cuda_qpath path_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof path_names / sizeof path_names[0]; i++)
		if (!strcmp(name, path_names[i].name))
			return path_names[i].path;
	die("--one", "no such path (auto, gemv, gemv-reg, gemv-tma, gemm, cublas)");
	return SHRINK_CUDA_QPATH_AUTO;
}

static void run_one(int64_t K, int64_t N, int64_t M, shrink_cuda_qpath path, int bits, int group)
{
	ref_rng rng = {7};
	lin_case c;
	setup_case(&c, K, N, bits, group, M, &rng);
	c.M = M;
	c.path = path;
	printf("%lldx%lld, %lld tokens: %s\n", (long long)K, (long long)N, (long long)M, path_label(&c, M, path));
	launch_q(&c, 0);
	launch_q(&c, 1 % c.n_q);
	CK(cudaStreamSynchronize(stream));
	free_case(&c);
}

int main(int argc, char **argv)
{
	int bits = 4, group = 128;
	bool only_linear = false, decode = false, kv = false, ops = false, w8a8 = false;
	int64_t one[3] = {0, 0, 0};
	bool one_call = false;
	shrink_cuda_qpath one_path = SHRINK_CUDA_QPATH_AUTO;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--one") && i + 4 < argc) {
			one[0] = atoll(argv[i + 1]), one[1] = atoll(argv[i + 2]), one[2] = atoll(argv[i + 3]);
			one_path = path_by_name(argv[i + 4]);
			one_call = true;
			i += 4;
		} else if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--linear"))
			only_linear = true;
		else if (!strcmp(argv[i], "--decode"))
			decode = true;
		else if (!strcmp(argv[i], "--kv"))
			kv = true;
		else if (!strcmp(argv[i], "--ops"))
			ops = true;
		else if (!strcmp(argv[i], "--w8a8"))
			w8a8 = true;
		else if (!strcmp(argv[i], "--max-batch") && i + 1 < argc)
			max_batch = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--min-batch") && i + 1 < argc)
			min_batch = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
			list_batches(argv[++i]);
		else if (!strcmp(argv[i], "--split") && i + 1 < argc)
			force_split = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
			dt = !strcmp(argv[++i], "bf16");
		else if (!strcmp(argv[i], "--bits") && i + 1 < argc)
			bits = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--group") && i + 1 < argc)
			group = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--asym"))
			asym = true;
		else {
			fprintf(stderr, "usage: bench_cuda [--quick] [--linear] [--min-batch M] [--max-batch M] "
					"[--batches M,M,...] [--split S] [--decode] [--kv] [--ops] [--w8a8] [--dtype f16|bf16] "
					"[--bits B] [--group G] [--asym]\n"
					"       bench_cuda --one K N M auto|gemv|gemv-reg|gemv-tma|gemm|cublas   (one call, for a "
					"profiler)\n");
			return 2;
		}
	}
	if (shrink_cuda_device_count() == 0) {
		printf("skip: no CUDA device\n");
		return 77;
	}
	struct cudaDeviceProp prop;
	CK(cudaGetDeviceProperties(&prop, 0));
	n_sms = prop.multiProcessorCount;
	CK(cudaStreamCreate(&stream));
	CKS(shrink_cuda_ctx_create(0, stream, &ctx));
	CKS(shrink_cuda_ctx_reserve(ctx, (size_t)28672 * 8192 * 2 + ((size_t)64 << 20)));
	if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(cublas, stream) != CUBLAS_STATUS_SUCCESS)
		die("cublas", "cannot create a handle");
	void *cublas_ws = dev_alloc((size_t)32 << 20);
	cublasSetWorkspace(cublas, cublas_ws, (size_t)32 << 20);
	if (one_call) {
		run_one(one[0], one[1], one[2], one_path, bits, group);
		return 0;
	}
	measure_copy();
	printf("# bench_cuda: %s, %d SMs, L2 %d MB; device-to-device copy %.0f GB/s (read + write)\n", prop.name,
	       prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbps);
	printf("Median over CUDA-graph replays rotating >= 200 MB of weights; speedup = cuBLAS us / ours us;\n"
	       "GB/s counts the repacked quantized weight (codes + f16 scales) once per call.\n");
	ref_rng rng = {42};
	if (decode) {
		bench_decode(&rng);
		return 0;
	}
	if (kv) {
		bench_kv(&rng);
		return 0;
	}
	if (ops) {
		bench_ops();
		return 0;
	}
	if (w8a8) {
		bench_w8a8(&rng);
		return 0;
	}
	bench_linear(bits, group, &rng);
	if (!only_linear) {
		bench_bits(&rng);
		bench_w8a8(&rng);
		bench_ops();
	}
	cublasDestroy(cublas);
	cudaFree(cublas_ws);
	shrink_cuda_ctx_destroy(ctx);
	return 0;
}
