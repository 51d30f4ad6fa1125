/* cuda.h: host-callable entry points of kernels/cuda (built with --enable-cuda).
 *
 * What is here: the op set of a Llama forward pass over device memory, for one
 * sequence: weight-only quantized linear layers (2/3/4/5/6/8-bit codes with f16
 * group scales and optional zero points, as stored in the shrink container),
 * an int8 x int8 linear (W8A8), dense linear through cuBLAS, embedding,
 * RMSNorm, RoPE, SwiGLU, residual add, attention over an f16 KV cache, argmax.
 *
 * What is not: no model, no graph, no allocation inside an op (every op runs
 * inside CUDA graph capture), no batching of several sequences, no error
 * record (ops return a status; shrink_cuda_ctx_message says what failed).
 *
 * Conventions. Pointers named x, y, q, k, v, out are device memory. A linear
 * layer's weight is W [rows = N out features, cols = K in features] (Hugging
 * Face order) and computes y[t, n] = sum_k x[t, k] W[n, k] for n_tok tokens;
 * activations are row-major [n_tok, features] in f16 or bf16, accumulation
 * is float. Device buffers passed to ops must be 16-byte aligned. Every op is
 * asynchronous on the context's stream and returns SHRINK_OK, SHRINK_EUSAGE
 * (bad arguments, or a workspace too small for what was asked) or SHRINK_EIO
 * (a CUDA/cuBLAS failure: out of memory, no device, launch failure). */
#ifndef SHRINK_KERNELS_CUDA_H
#define SHRINK_KERNELS_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "kv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *shrink_cuda_stream; /* the same type as cudaStream_t */

typedef enum { SHRINK_CUDA_F16 = 0, SHRINK_CUDA_BF16 = 1, SHRINK_CUDA_F32 = 2 } shrink_cuda_dtype;

int shrink_cuda_device_count(void);

/* A context: device, stream, cuBLAS handle, SM count and one workspace that
 * ops use for split-K partials, padded copies and dequantized weights. */
typedef struct shrink_cuda_ctx shrink_cuda_ctx;

shrink_status shrink_cuda_ctx_create(int device, shrink_cuda_stream stream, shrink_cuda_ctx **out);
void shrink_cuda_ctx_destroy(shrink_cuda_ctx *ctx);
/* Grow the workspace to at least n_bytes (synchronises; never call during capture). */
shrink_status shrink_cuda_ctx_reserve(shrink_cuda_ctx *ctx, size_t n_bytes);
const char *shrink_cuda_ctx_message(const shrink_cuda_ctx *ctx); /* the last failure, "" if none */
/* Changes whenever shrink_cuda_ctx_reserve moves the workspace: a CUDA graph captured
 * before holds stale pointers. With stream NULL the context makes (and owns) its stream. */
unsigned shrink_cuda_ctx_generation(const shrink_cuda_ctx *ctx);
int shrink_cuda_ctx_sm_count(const shrink_cuda_ctx *ctx);

/* ---- weight-only quantized linear (W2..W8, A16) ---------------------------------------- */

/* A quantized weight repacked for the kernels (layout: kernels/cuda/qlayout.cuh). */
typedef struct {
	int bits;       /* 2, 3, 4, 5, 6 or 8 */
	int group_size; /* power of two >= 16, or 0: one group per row */
	bool symmetric;
	int64_t rows, cols;        /* N, K */
	int64_t row_tiles;         /* ceil(N / 16) */
	int64_t k_tiles;           /* ceil(K / 64) */
	int64_t n_groups;          /* groups per row over the padded K */
	void *qw;                  /* row_tiles * k_tiles tiles of 128 * bits bytes */
	uint32_t *scales;          /* [row_tiles][n_groups][8] f16 pairs (row r, row r + 8) */
	uint32_t *zeros;           /* same shape, zero points as u16 pairs; NULL when symmetric */
	int *counters;             /* row_tiles split-K arrival counters, kept at 0 between calls */
} shrink_cuda_qweight;

/* Repack a quantized matrix in the container's layout (lib/shrink/quant.h: per
 * row, element j in bits [j*b, (j+1)*b) of a little-endian bit stream; f16
 * scales [rows][ceil(cols/g)]; u8 zeros likewise when asymmetric) from host
 * memory into device memory. zeros must be NULL when symmetric. */
shrink_status shrink_cuda_qweight_upload(shrink_cuda_ctx *ctx, int bits, int group_size, bool symmetric, int64_t rows,
					 int64_t cols, const uint8_t *qweight, const uint16_t *scales,
					 const uint8_t *zeros, shrink_cuda_qweight *out);
void shrink_cuda_qweight_free(shrink_cuda_qweight *w);
/* Bytes the kernels stream per call: codes, scales and zero points as repacked. */
size_t shrink_cuda_qweight_bytes(const shrink_cuda_qweight *w);

typedef enum {
	SHRINK_CUDA_QPATH_AUTO = 0,
	SHRINK_CUDA_QPATH_GEMV,   /* weights staged through shared memory (cp.async), n_tok <= 32 */
	SHRINK_CUDA_QPATH_GEMM,   /* tiled warpgroup-MMA GEMM (sm_90a), any n_tok */
	SHRINK_CUDA_QPATH_CUBLAS, /* dequantize into the workspace, then cuBLAS */
	SHRINK_CUDA_QPATH_GEMV_REG, /* GEMV version streaming weights into registers, n_tok <= 32 */
	SHRINK_CUDA_QPATH_GEMV_TMA, /* GEMV fed by TMA bulk copies, n_tok <= 8, x must fit shared memory */
} shrink_cuda_qpath;

/* y [n_tok, rows] = x [n_tok, cols] W^T. dt: SHRINK_CUDA_F16 or SHRINK_CUDA_BF16. */
shrink_status shrink_cuda_qlinear(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, shrink_cuda_dtype dt,
				  const void *x, int64_t n_tok, void *y);
/* The same with the path and the split-K factor forced (split_k 0: chosen), for tests and benchmarks. */
shrink_status shrink_cuda_qlinear_path(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, shrink_cuda_dtype dt,
				       const void *x, int64_t n_tok, void *y, shrink_cuda_qpath path, int split_k);
/* What shrink_cuda_qlinear_path runs for n_tok tokens on ctx's device and workspace: the path
 * (AUTO resolved to the kernel it takes), the split-K factor, the GEMM's tokens a CTA, and whether
 * the GEMM's two splits add their sums in a cluster of two CTAs (else through float partials and
 * a reduction). For tests and benchmarks; the activations are taken to be 16-byte aligned. */
typedef struct {
	shrink_cuda_qpath path;
	int splits;
	int block_tokens; /* the GEMM's; 0 on the other paths */
	bool cluster;
	size_t workspace_bytes; /* of ctx's workspace that the call uses */
} shrink_cuda_qplan;
shrink_status shrink_cuda_qlinear_plan(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int64_t n_tok,
				       shrink_cuda_qpath path, int split_k, shrink_cuda_qplan *out);
/* Workspace bytes that let shrink_cuda_qlinear use its best path on ctx's device for up to max_tok
 * tokens (allow_cublas: include the dequantized copy that the cuBLAS path needs). */
size_t shrink_cuda_qlinear_workspace(const shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, int64_t max_tok,
				     bool allow_cublas);
/* y[i] [n_tok, rows of w[i]] = x W[i]^T for 1 to 3 weights with the same cols (q/k/v, gate/up):
 * one launch when they share bits, group size and symmetry and n_tok <= 32, else one call each. */
shrink_status shrink_cuda_qlinear_multi(shrink_cuda_ctx *ctx, int n_w, const shrink_cuda_qweight *const *w,
					shrink_cuda_dtype dt, const void *x, int64_t n_tok, void *const *y);
/* How shrink_cuda_qlinear_multi_xin forms its activations ([n_tok][K], dt):
 * PLAIN: x itself; SWIGLU: silu(x) * up elementwise (x the gate), as shrink_cuda_swiglu;
 * ADD_RMSNORM (f16 only): rmsnorm(res + x) * norm_w as shrink_cuda_add_rmsnorm_f32, but res
 * (float32 [n_tok][K], the residual stream) is read, not updated; x may be NULL (res alone).
 * Where the TMA GEMV takes the call this happens as it loads the activations (no launch of its
 * own); otherwise into scratch ([n_tok][K] of dt; for SWIGLU it may be x) before the GEMV. */
typedef enum { SHRINK_CUDA_XIN_PLAIN, SHRINK_CUDA_XIN_SWIGLU, SHRINK_CUDA_XIN_ADD_RMSNORM } shrink_cuda_xin_kind;
typedef struct {
	shrink_cuda_xin_kind kind;
	const void *x, *up;
	const float *res;
	const uint16_t *norm_w;
	float eps;
	void *scratch;
} shrink_cuda_xin;
/* Form the activations of in into in->scratch (what the unfused path runs; for dense weights). */
shrink_status shrink_cuda_xin_form(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const shrink_cuda_xin *in,
				   int64_t n_tok, int64_t K);
/* shrink_cuda_qlinear_multi over the activations in describes. */
shrink_status shrink_cuda_qlinear_multi_xin(shrink_cuda_ctx *ctx, int n_w, const shrink_cuda_qweight *const *w,
					    shrink_cuda_dtype dt, const shrink_cuda_xin *in, int64_t n_tok,
					    void *const *y);
/* Workspace bytes for shrink_cuda_qlinear_multi (and each weight alone) up to max_tok tokens. */
size_t shrink_cuda_qlinear_multi_workspace(const shrink_cuda_ctx *ctx, int n_w, const shrink_cuda_qweight *const *w,
					   int64_t max_tok);
/* out [rows, cols] (dt) = the dequantized weight. */
shrink_status shrink_cuda_qweight_dequant(shrink_cuda_ctx *ctx, const shrink_cuda_qweight *w, shrink_cuda_dtype dt,
					  void *out);

/* ---- W8A8: int8 weights (per-channel scale) x int8 activations (per-token scale) -------- */

typedef struct {
	int64_t rows, cols;          /* N, K */
	int64_t rows_pad, cols_pad;  /* N rounded up to 128, K rounded up to 128 */
	int8_t *q;                   /* [rows_pad][cols_pad], zero padded */
	float *scales;               /* [rows_pad] */
} shrink_cuda_w8;

/* From the container's 8-bit symmetric scheme with one group per row (group_size 0):
 * qweight [rows][cols] codes (w = scale * (q - 128)), scales [rows] f16. */
shrink_status shrink_cuda_w8_upload(shrink_cuda_ctx *ctx, int64_t rows, int64_t cols, const uint8_t *qweight,
				    const uint16_t *scales, shrink_cuda_w8 *out);
void shrink_cuda_w8_free(shrink_cuda_w8 *w);
/* xq [n_tok][cols_pad] int8 = round(x / s) with s[t] = max|x[t,:]| / 127 (s = 0 for a zero row);
 * columns cols..cols_pad-1 are written as 0. */
shrink_status shrink_cuda_quantize_i8(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *x, int64_t n_tok,
				      int64_t cols, int64_t cols_pad, int8_t *xq, float *x_scales);
/* y [n_tok, rows] = x_scales[t] * scales[n] * sum_k xq[t, k] q[n, k] */
shrink_status shrink_cuda_w8a8_linear(shrink_cuda_ctx *ctx, const shrink_cuda_w8 *w, const int8_t *xq,
				      const float *x_scales, int64_t n_tok, shrink_cuda_dtype dt, void *y);

/* ---- dense linear (float weights) through cuBLAS ---------------------------------------- */

/* y [n_tok, rows] = x [n_tok, cols] W^T, W [rows, cols] in dt. */
shrink_status shrink_cuda_linear_dense(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *w, int64_t rows,
				       int64_t cols, const void *x, int64_t n_tok, void *y);

/* ---- the rest of the forward pass -------------------------------------------------------- */

/* out [n_tok, dim] = table [vocab, dim] rows ids[t] (device int32); an id outside [0, vocab) gives a zero row. */
shrink_status shrink_cuda_embed(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *table, int64_t vocab,
				int64_t dim, const int32_t *ids, int64_t n_tok, void *out);
/* out = weight * (x / sqrt(mean(x^2) + eps)), per row of dim; the normalised row is rounded to dt
 * before the product (as Hugging Face does). out may be x. */
shrink_status shrink_cuda_rmsnorm(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *x, const void *weight,
				  int64_t n_tok, int64_t dim, float eps, void *out);
/* In place on q [n_tok, n_heads, head_dim] and k [n_tok, n_kv_heads, head_dim] (k may be NULL):
 * Hugging Face half-split rotation, pairs (i, i + head_dim/2), angle (pos0 + t) * inv_freq[i]
 * computed in float; inv_freq: device float [head_dim / 2] (Llama-3 scaling already applied). */
shrink_status shrink_cuda_rope(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, void *q, void *k, int64_t n_tok,
			       int n_heads, int n_kv_heads, int head_dim, const float *inv_freq, int64_t pos0);
/* out[i] = silu(gate[i]) * up[i]; out may alias gate or up. */
shrink_status shrink_cuda_swiglu(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *gate, const void *up,
				 int64_t n, void *out);
/* out[i] = a[i] + b[i]; out may alias a or b. */
shrink_status shrink_cuda_add(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *a, const void *b, int64_t n,
			      void *out);
/* out[t] = the index of the largest logits[t, :] (the first one on ties; NaN never wins). dt may be F32. */
shrink_status shrink_cuda_argmax(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *logits, int64_t n_tok,
				 int64_t vocab, int32_t *out);

/* KV cache of one layer: k_cache, v_cache [capacity][n_kv_heads * head_dim] f16 (token-major).
 * Store n_tok rows of k and v (dt, [n_tok][kv_dim]) at positions pos0.. */
shrink_status shrink_cuda_kv_store(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *k, const void *v,
				   int64_t n_tok, int64_t kv_dim, uint16_t *k_cache, uint16_t *v_cache, int64_t pos0);
/* Causal grouped-query attention of n_tok queries at positions pos0..pos0+n_tok-1 over the cache
 * (which must already hold positions 0..pos0+n_tok-1): out [n_tok, n_heads, head_dim] (dt),
 * q [n_tok, n_heads, head_dim] (dt); query head h reads KV head h / (n_heads / n_kv_heads).
 * head_dim: a multiple of 8 up to 256. Decode is n_tok = 1; prefill is pos0 = 0. */
shrink_status shrink_cuda_attention(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q, int64_t n_tok,
				    int64_t pos0, int n_heads, int n_kv_heads, int head_dim, const uint16_t *k_cache,
				    const uint16_t *v_cache, float scale, void *out);
/* A compressed (kivi/gear) KV cache of one layer as the GPU keeps it: the records of chunks
 * [0, n_chunks) exactly as lib/kv stores them (shrink_kv_view: [chunk][kv head] records, a rank
 * per chunk; device copies), and a ring [chunk][n_kv_heads * head_dim] of f16 rows holding the
 * positions after them (the last, incomplete chunk), position p at row p % chunk. */
typedef struct {
	shrink_kv_layout k, v;
	int64_t chunk, n_chunks;
	const uint8_t *rec_k, *rec_v, *rank;
	const uint16_t *k_ring, *v_ring;
} shrink_cuda_kv_packed;
/* shrink_cuda_attention over a compressed cache: keys and values of the compressed chunks are
 * decoded on the fly (codes * scale + min + low-rank term, outliers restored), as lib/kv does. */
shrink_status shrink_cuda_attention_packed(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q, int64_t n_tok,
					   int64_t pos0, int n_heads, int n_kv_heads, int head_dim,
					   const shrink_cuda_kv_packed *cache, float scale, void *out);
/* Workspace bytes for attention split over the keys (decode); without it attention runs unsplit. */
size_t shrink_cuda_attention_workspace(int64_t n_tok, int n_heads, int head_dim, int64_t n_keys);

/* One decode step with the position in device memory (*pos, int32; so that a CUDA graph of the
 * step serves every position): rope on q [n_heads, head_dim] and k [n_kv_heads, head_dim] as
 * shrink_cuda_rope (q and k themselves are left unrotated), store k and v (dt) at *pos in the
 * caches (capacity rows), then attention as shrink_cuda_attention over positions 0..*pos.
 * Nothing is written when *pos is outside [0, capacity). Needs
 * shrink_cuda_attention_decode_workspace bytes of workspace. */
shrink_status shrink_cuda_attention_decode(shrink_cuda_ctx *ctx, shrink_cuda_dtype dt, const void *q, const void *k,
					   const void *v, int n_heads, int n_kv_heads, int head_dim,
					   const float *inv_freq, const int32_t *pos, int64_t capacity,
					   uint16_t *k_cache, uint16_t *v_cache, float scale, void *out);
size_t shrink_cuda_attention_decode_workspace(int n_heads, int head_dim, int64_t capacity);

/* ---- for the model backend (backend.cu) --------------------------------------------------- */

/* CUDA graphs: the ops issued on the context's stream between capture_begin and capture_end
 * are recorded, not run (the stream must not be the legacy default stream); graph_launch
 * replays them. capture_end with out NULL abandons a capture (after a failed op). */
typedef struct shrink_cuda_graph shrink_cuda_graph;
shrink_status shrink_cuda_capture_begin(shrink_cuda_ctx *ctx);
shrink_status shrink_cuda_capture_end(shrink_cuda_ctx *ctx, shrink_cuda_graph **out);
shrink_status shrink_cuda_graph_launch(shrink_cuda_ctx *ctx, shrink_cuda_graph *g);
void shrink_cuda_graph_free(shrink_cuda_graph *g);
/* Asynchronous host -> device copy on the context's stream (a pageable src is staged before the
 * call returns and may be reused; a pinned one must stay valid until the stream reaches the copy). */
shrink_status shrink_cuda_upload_async(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes);

/* Device memory (cudaMalloc) and synchronous copies on the context's stream. */
shrink_status shrink_cuda_alloc(shrink_cuda_ctx *ctx, size_t n_bytes, void **out);
void shrink_cuda_release(void *p);
/* Page-locked host memory (cudaHostAlloc): copies to and from it need no staging. */
shrink_status shrink_cuda_host_alloc(shrink_cuda_ctx *ctx, size_t n_bytes, void **out);
void shrink_cuda_host_release(void *p);
shrink_status shrink_cuda_upload(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes);
shrink_status shrink_cuda_download(shrink_cuda_ctx *ctx, void *dst, const void *src, size_t n_bytes);
shrink_status shrink_cuda_sync(shrink_cuda_ctx *ctx); /* wait for the context's stream */
/* dst (F16 or F32) = src (F32, F16 or BF16), n elements, both in device memory. */
shrink_status shrink_cuda_convert(shrink_cuda_ctx *ctx, shrink_cuda_dtype src_dt, const void *src, int64_t n,
				  shrink_cuda_dtype dst_dt, void *dst);
/* x [n_tok, dim] float32 (the residual stream) += y (f16; skipped when y is NULL), then
 * out f16 [n_tok, dim] = x[t] / rms(x[t]) * weight (weight f16). out may alias y. */
shrink_status shrink_cuda_add_rmsnorm_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, const uint16_t *weight,
					  int64_t n_tok, int64_t dim, float eps, uint16_t *out);
/* The same with two pending f16 rows added in order, x += y then x += y2 (either may be NULL):
 * a decode step whose fused ADD_RMSNORM (shrink_cuda_xin) left the residual as it was. out may
 * alias y or y2. */
shrink_status shrink_cuda_add2_rmsnorm_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, const uint16_t *y2,
					   const uint16_t *weight, int64_t n_tok, int64_t dim, float eps,
					   uint16_t *out);
/* x (float32) += y (f16), n elements. */
shrink_status shrink_cuda_add_f32(shrink_cuda_ctx *ctx, float *x, const uint16_t *y, int64_t n);
/* y [n_tok, rows] (f16) += b [rows] (f16). */
shrink_status shrink_cuda_bias(shrink_cuda_ctx *ctx, uint16_t *y, const uint16_t *b, int64_t n_tok, int64_t rows);
/* y [n_tok, rows] float32 = x [n_tok, cols] W^T with x and W f16 (logits). */
shrink_status shrink_cuda_linear_dense_f32(shrink_cuda_ctx *ctx, const uint16_t *w, int64_t rows, int64_t cols,
					   const uint16_t *x, int64_t n_tok, float *y);

#ifdef __cplusplus
}
#endif
#endif
