/* test_kernels.c: the CPU kernels against float64 recomputation: float
 * linear (f32/f16/bf16, few and many tokens) and the fused quantized linear
 * for every bit width, group size, symmetric or not, odd shapes, few tokens
 * (register dequantization) and many (block dequantization + sgemm). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "kernels.h"
#include "shrink/quant.h"
#include "shrink/tensor.h"

static uint64_t seed = 99;

static float frand(void)
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((seed >> 40) / 16777216.0 * 2 - 1);
}

static double max_rel_err(const float *y, const double *ref, int64_t n)
{
	double d = 0, m = 1e-12;
	for (int64_t i = 0; i < n; i++) {
		d = fmax(d, fabs(y[i] - ref[i]));
		m = fmax(m, fabs(ref[i]));
	}
	return d / m;
}

static void check_q(int bits, int group, bool sym, int64_t rows, int64_t cols, int n_tok)
{
	shrink_qscheme s = {bits, group, sym};
	shrink_error err = {0};
	float *w = malloc(rows * cols * 4), *x = malloc(n_tok * cols * 4), *y = malloc(n_tok * rows * 4);
	float *row = malloc(cols * 4), *scratch = malloc(shrink_kernel_linear_scratch(rows, cols, n_tok) * 4 + 4);
	double *ref = malloc(n_tok * rows * 8);
	for (int64_t i = 0; i < rows * cols; i++)
		w[i] = frand();
	for (int64_t i = 0; i < n_tok * cols; i++)
		x[i] = frand();
	int64_t groups = shrink_qscheme_groups(&s, cols);
	uint8_t *q = malloc(rows * shrink_qrow_bytes(bits, cols)), *z = sym ? NULL : malloc(rows * groups);
	uint16_t *sc = malloc(rows * groups * 2);
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &s, false, q, sc, z, &err), SHRINK_OK, "%s", err.msg);
	shrink_qmatrix m = {s, rows, cols, q, sc, z};
	for (int64_t r = 0; r < rows; r++) {
		shrink_qmatrix_row(&m, r, row);
		for (int t = 0; t < n_tok; t++) {
			double acc = 0;
			for (int64_t c = 0; c < cols; c++)
				acc += (double)row[c] * x[t * cols + c];
			ref[t * rows + r] = acc;
		}
	}
	shrink_kq k = {bits, group ? group : (int)cols, rows, cols, groups, shrink_qrow_bytes(bits, cols), q, sc, z};
	shrink_kernel_linear_q(&k, x, n_tok, y, scratch);
	double e = max_rel_err(y, ref, n_tok * rows);
	cr_expect_lt(e, 2e-5, "bits %d group %d %s %lldx%lld tokens %d: rel err %g", bits, group, sym ? "sym" : "asym",
		     (long long)rows, (long long)cols, n_tok, e);
	free(w), free(x), free(y), free(row), free(scratch), free(ref), free(q), free(z), free(sc);
}

Test(kernels, quantized_linear_matches_float64)
{
	int bits[] = {2, 3, 4, 5, 6, 8}, groups[] = {32, 64, 128, 0}, toks[] = {1, 3, 8, 21};
	for (int b = 0; b < 6; b++)
		for (int g = 0; g < 4; g++)
			for (int t = 0; t < 4; t++) {
				check_q(bits[b], groups[g], true, 37, 256, toks[t]);
				check_q(bits[b], groups[g], false, 19, 160, toks[t]); /* short last group */
			}
	check_q(4, 32, false, 5, 33, 2); /* odd width */
	check_q(8, 16, true, 3, 48, 9);
}

Test(kernels, float_linear_matches_float64)
{
	int64_t rows = 29, cols = 75;
	int toks[] = {1, 5, 12};
	for (int ti = 0; ti < 3; ti++) {
		int n = toks[ti];
		float *w = malloc(rows * cols * 4), *x = malloc(n * cols * 4), *y = malloc(n * rows * 4);
		uint16_t *h = malloc(rows * cols * 2), *bf = malloc(rows * cols * 2);
		float *scratch = malloc(shrink_kernel_linear_scratch(rows, cols, n) * 4 + 4);
		double *ref = malloc(n * rows * 8);
		for (int64_t i = 0; i < rows * cols; i++) {
			w[i] = frand();
			h[i] = shrink_f32_to_f16(w[i]);
			bf[i] = shrink_f32_to_bf16(w[i]);
		}
		for (int64_t i = 0; i < n * cols; i++)
			x[i] = frand();
		for (int kind = 0; kind < 3; kind++) {
			for (int t = 0; t < n; t++)
				for (int64_t r = 0; r < rows; r++) {
					double acc = 0;
					for (int64_t c = 0; c < cols; c++) {
						float wv = kind == 0 ? w[r * cols + c]
							 : kind == 1 ? shrink_f16_to_f32(h[r * cols + c])
								     : shrink_bf16_to_f32(bf[r * cols + c]);
						acc += (double)wv * x[t * cols + c];
					}
					ref[t * rows + r] = acc;
				}
			const void *src = kind == 0 ? (const void *)w : kind == 1 ? (const void *)h : (const void *)bf;
			shrink_kernel_linear(src, (shrink_kw_type)kind, rows, cols, x, n, y, scratch);
			double e = max_rel_err(y, ref, n * rows);
			cr_expect_lt(e, 1e-5, "type %d tokens %d: rel err %g", kind, n, e);
		}
		free(w), free(x), free(y), free(h), free(bf), free(scratch), free(ref);
	}
}
