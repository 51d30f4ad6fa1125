/* sense.h: how sensitive each weight tensor is to quantization (lib/sense).
 *
 * - HAWQ-V2: per-tensor Hessian traces Tr(H_i) by Hutchinson's estimator, one
 *   shared Rademacher vector v per iteration and the estimate v_i^T (Hv)_i per
 *   tensor; Hv by differences of gradients (grad.h). Sensitivity of tensor i at
 *   scheme b: Omega_i(b) = Tr(H_i) / n_i * ||Q_b(W_i) - W_i||^2.
 * - The layer-local proxy tr(dW H dW^T) with H = 2 X X^T / N from the inputs X
 *   of each linear layer (no backward pass), and per-channel activation mean
 *   squares (what llama.cpp's imatrix stores).
 * - Measured sensitivity: the KL divergence of the output distribution when
 *   that tensor alone is quantized (MixDQ's direct metric).
 * - The Pareto frontier of size against summed sensitivity (exact
 *   multiple-choice knapsack), and the calibration file (man shrink-calibrate).
 *
 * Not here: choosing bits under a budget (lib/alloc), writing quantized models
 * (lib/quant), reading text files (the program tokenizes; this takes tokens). */
#ifndef SHRINK_SENSE_H
#define SHRINK_SENSE_H

#include <stdbool.h>

#include "grad.h"
#include "quant.h"

/* ---- calibration windows ---- */

/* n_samples windows of ctx tokens from tokens[0..n_tokens) at start offsets drawn
 * from a GSL mt19937 generator seeded with seed. When bos >= 0, each window is
 * bos followed by ctx - 1 text tokens. windows: n_samples * ctx ints.
 * SHRINK_EINPUT when the text is shorter than one window. */
shrink_status shrink_calib_windows(const int *tokens, size_t n_tokens, int n_samples, int ctx, int bos, uint64_t seed,
				   int *windows, shrink_error *err);

/* ---- Hessian-vector products from differences of gradients ---- */

/* grad[n] += scale * dLoss/dtheta at theta. */
typedef shrink_status (*shrink_grad_fn)(void *user, const float *theta, float scale, float *grad, shrink_error *err);
/* hv[n] = H v. */
typedef shrink_status (*shrink_hvp_fn)(void *user, const float *v, float *hv, shrink_error *err);

typedef enum {
	SHRINK_HVP_CENTRAL, /* (g(theta + eps v) - g(theta - eps v)) / (2 eps): two gradients, error O(eps^2) */
	SHRINK_HVP_FORWARD, /* (g(theta + eps v) - g(theta)) / eps, g(theta) computed once: one gradient, O(eps) */
} shrink_hvp_method;

typedef struct {
	shrink_grad_fn grad;
	void *user;
	const float *theta;
	int64_t n;
	shrink_hvp_method method;
	double eps;        /* absolute step */
	float *theta_step; /* internal: theta +- eps v */
	float *g0;         /* internal: forward differences' g(theta) */
	bool have_g0;
} shrink_fd_hvp;

shrink_status shrink_fd_hvp_init(shrink_fd_hvp *h, shrink_grad_fn grad, void *user, const float *theta, int64_t n,
				 shrink_hvp_method method, double eps, shrink_error *err);
void shrink_fd_hvp_free(shrink_fd_hvp *h);
/* A shrink_hvp_fn: user is a shrink_fd_hvp. */
shrink_status shrink_fd_hvp_apply(void *h, const float *v, float *hv, shrink_error *err);
/* The step rel * rms(theta): a perturbation of relative size rel for a typical weight. */
double shrink_hvp_step(const float *theta, int64_t n, double rel);

/* The model's mean loss over calibration windows, as a shrink_grad_fn (user: this struct). */
typedef struct {
	shrink_train *train;
	const int *windows;
	int n_windows, ctx;
	double loss; /* mean loss of the last call */
} shrink_window_loss;

shrink_status shrink_window_grad(void *wl, const float *theta, float scale, float *grad, shrink_error *err);

/* ---- Hutchinson trace estimator ---- */

typedef struct {
	int min_iter, max_iter;
	double tol; /* a block stops when |mean_k - mean_{k-1}| <= tol * |mean_{k-1}| at k >= min_iter */
	uint64_t seed;
	void (*progress)(void *user, int done, int total);
	void *user;
} shrink_hutch_params;

typedef struct {
	double trace;   /* mean of v_i^T (H v)_i over the block's iterations */
	double se;      /* its standard error (sd / sqrt(iterations)); NAN below 2 iterations */
	int iterations; /* samples in the estimate */
	bool converged; /* stopped by tol rather than max_iter */
} shrink_trace;

/* Traces of the diagonal blocks [start[i], start[i+1]) of the n x n Hessian behind
 * hvp, i < n_blocks. Each block keeps its own running mean (GSL rstat) and stops
 * on its own; iterations go on while any block runs. v: Rademacher, one bit per
 * entry from GSL mt19937 seeded with seed. *n_iter: iterations run. */
shrink_status shrink_hutchinson(int64_t n, int n_blocks, const int64_t *start, shrink_hvp_fn hvp, void *user,
				const shrink_hutch_params *p, shrink_trace *traces, int *n_iter, shrink_error *err);

/* ---- Pareto frontier (HAWQ-V2) ---- */

typedef struct {
	size_t n;            /* points, by increasing size and strictly decreasing cost */
	int n_items;
	int64_t *size_bytes; /* n */
	double *cost;        /* n */
	uint8_t *choice;     /* n * n_items: the choice of each item at each point */
	int64_t quantum;     /* sizes were counted in units of this many bytes */
	bool exact;          /* quantum divides every size (else sizes were rounded up to it) */
} shrink_pareto_front;

/* Exact multiple-choice knapsack by dynamic programming over total size: for each
 * reachable total, the least summed cost; the frontier keeps the totals whose
 * cost beats every smaller one. size_bytes, cost: n_items x n_choices, row-major;
 * every cost must be finite. */
shrink_status shrink_pareto(int n_items, int n_choices, const int64_t *size_bytes, const double *cost,
			    shrink_pareto_front *out, shrink_error *err);
void shrink_pareto_free(shrink_pareto_front *f);

/* ---- calibration ---- */

typedef enum {
	SHRINK_HESSIAN_HUTCHINSON, /* traces (backward passes), plus the proxy */
	SHRINK_HESSIAN_PROXY,      /* the layer-local proxy only (forward passes) */
	SHRINK_HESSIAN_NONE,       /* activation statistics only */
} shrink_hessian_mode;

typedef enum { SHRINK_METRIC_OMEGA, SHRINK_METRIC_PROXY, SHRINK_METRIC_KL } shrink_metric;

#define SHRINK_CALIB_MAX_SCHEMES 8 /* bit widths */
#define SHRINK_CALIB_MAX_GROUPS 4  /* group sizes */

typedef struct {
	int n_samples, ctx;
	uint64_t seed;
	shrink_hessian_mode hessian;
	shrink_hvp_method hvp;
	double hvp_step; /* relative: eps = hvp_step * rms(theta) */
	int min_iter, max_iter;
	double tol;
	bool checkpoint;
	int n_bits;
	int bits[SHRINK_CALIB_MAX_SCHEMES];
	int group_size; /* the group size when n_groups is 0 */
	int n_groups;   /* 0, or the candidate group sizes groups[0..n_groups) */
	int groups[SHRINK_CALIB_MAX_GROUPS];
	bool symmetric;
	bool measure_kl;
	const char *device; /* where --measure kl runs its forward passes: NULL or "cpu", "cuda" */
	void (*progress)(void *user, const char *phase, int done, int total);
	void *user;
} shrink_calib_params;

void shrink_calib_defaults(shrink_calib_params *p);
/* The candidate schemes are every bit width with every group size, bit-major:
 * scheme i has bits[i / G] and group groups[i % G], G = max(n_groups, 1). */
int shrink_calib_n_schemes(const shrink_calib_params *p);
shrink_qscheme shrink_calib_scheme(const shrink_calib_params *p, int i);

typedef struct {
	int bits, group_size;
	int64_t size_bits; /* qweight + scales (+ zeros), shrink_qmatrix_bytes * 8 */
	double dw_sq;      /* ||Q_b(W) - W||^2 */
	double omega;      /* Tr(H) / n * dw_sq; NAN without traces */
	double proxy;      /* tr(dW H dW^T), H = 2 X X^T / N; NAN without the proxy */
	double kl;         /* mean KL(P || P with this tensor quantized); NAN unless measured */
} shrink_scheme_sense;

typedef struct {
	char name[SHRINK_NAME_MAX];
	int64_t rows, cols, n_params; /* cols 0 for vectors */
	double trace, trace_se;       /* NAN without Hutchinson */
	int iterations;
	bool converged;
	shrink_scheme_sense *schemes; /* shrink_calib_n_schemes; NULL for vectors (norms, biases stay in float) */
	float *act_sq_mean;           /* per input channel mean of x^2 (act_width); NULL when not a linear weight */
	int64_t act_width, act_rows;  /* act_rows: the rows (tokens) averaged */
} shrink_tensor_sense;

typedef struct {
	shrink_calib_params params;
	int n_tensors;
	shrink_tensor_sense *tensors; /* in the model's parameter order (grad.h) */
	int64_t n_params;
	size_t n_text_tokens;
	double loss;          /* mean next-token cross-entropy over the windows */
	int hutch_iterations; /* iterations run (0 without Hutchinson) */
	double hvp_eps;       /* absolute step used */
} shrink_calibration;

/* Everything the parameters ask for, on the tokens of a calibration text. */
shrink_status shrink_calibrate(const shrink_model *m, const int *tokens, size_t n_tokens, const shrink_calib_params *p,
			       shrink_calibration *out, shrink_error *err);
void shrink_calibration_free(shrink_calibration *c);

/* The calibration file (JSON, "version": 1; see shrink-calibrate(1)); malloc'd. */
char *shrink_calibration_json(const shrink_calibration *c, const char *model, const char *data);
/* Read a calibration file back (JSON text of len bytes; name labels messages).
 * Everything is validated (types, ranges, counts, finite numbers, sizes that
 * match the shapes); malformed input is SHRINK_EINPUT, never a crash. The result
 * has no activation statistics (act_sq_mean NULL); free with
 * shrink_calibration_free. */
shrink_status shrink_calibration_parse(const char *json, size_t len, const char *name, shrink_calibration *out,
				       shrink_error *err);
shrink_status shrink_calibration_read(const char *path, shrink_calibration *out, shrink_error *err);
/* Write the JSON to path ("-" = stdout) through a temporary file and a rename. */
shrink_status shrink_calibration_write(const shrink_calibration *c, const char *model, const char *data,
				       const char *path, shrink_error *err);
/* Per-channel activation mean squares as safetensors: "<weight name>" -> F32 [cols]. */
shrink_status shrink_imatrix_write(const shrink_calibration *c, const char *path, shrink_error *err);
/* The Pareto frontier of the 2-D tensors under metric, as TSV. */
shrink_status shrink_pareto_write(const shrink_calibration *c, shrink_metric metric, const char *path,
				  shrink_error *err);

#endif
