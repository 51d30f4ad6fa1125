/* test_kernels.c: the CPU kernels against float64 recomputation: float
 * linear (f32/f16/bf16, few and many tokens) and the fused quantized linear
 * for every bit width, group size, symmetric or not, odd shapes, few tokens
 * (register dequantization) and many (block dequantization + sgemm); the
 * int8-activation path against exact integer sums, and its thread independence;
 * the same for the interleaved (repacked) layout, whose impls must also agree
 * bit for bit, and its dequantized tiles against the container layout's. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
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

/* The int8 path's activation rounding, written out from its definition in
 * kernels.h: per block of 32 columns, d = max|x|/127, codes round(x * 127/max|x|). */
static float ref_quantize_block(const float *x, int n, int *q)
{
	float amax = 0;
	for (int j = 0; j < n; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	for (int j = 0; j < n; j++)
		q[j] = amax > 0 ? (int)nearbyintf(x[j] * (127.0f / amax)) : 0;
	return amax / 127.0f;
}

Test(kernels, int8_block_quantizer)
{
	float x[32];
	int8_t q[32];
	int ref[32];
	int32_t sum;
	for (int n = 1; n <= 32; n += 7) {
		for (int rep = 0; rep < 50; rep++) {
			for (int j = 0; j < n; j++)
				x[j] = frand() * (rep + 1);
			float d = shrink_kernel_quantize_i8(x, n, q, &sum);
			float dr = ref_quantize_block(x, n, ref);
			cr_assert_eq(d, dr);
			int64_t s = 0, amax = 0;
			for (int j = 0; j < n; j++) {
				cr_assert_eq(q[j], ref[j], "n %d j %d", n, j);
				cr_assert_leq(fabs(x[j] - (double)d * q[j]), 0.5001 * d);
				s += q[j];
				amax = q[j] > amax ? q[j] : -q[j] > amax ? -q[j] : amax;
			}
			cr_assert_eq(sum, s);
			cr_assert_eq(amax, 127);
		}
	}
	for (int j = 0; j < 32; j++)
		x[j] = 0;
	cr_assert_eq(shrink_kernel_quantize_i8(x, 32, q, &sum), 0.0f);
	cr_assert_eq(sum, 0);
}

/* ref[t, r] = sum_g s * sum_b d_b * isum_b with the integer sums exact in
 * int64 and the rest in float64; bound[t, r] = the same over absolute values,
 * which scales the tolerance of the kernel's float products and sums. */
static void ref_linear_i8(const shrink_kq *k, const float *x, int n_tok, double *ref, double *bound)
{
	uint8_t *codes = malloc(k->cols);
	int *xq = malloc(k->cols * sizeof(int));
	float *d = malloc(((k->cols + 31) / 32) * sizeof(float));
	for (int t = 0; t < n_tok; t++) {
		for (int64_t b = 0; b * 32 < k->cols; b++)
			d[b] = ref_quantize_block(x + t * k->cols + b * 32, k->cols - b * 32 < 32 ? (int)(k->cols - b * 32) : 32,
						  xq + b * 32);
		for (int64_t r = 0; r < k->rows; r++) {
			shrink_unpack_bits(k->q + r * k->row_bytes, k->cols, k->bits, codes);
			double acc = 0, mag = 0;
			for (int64_t b = 0; b * 32 < k->cols; b++) {
				int64_t g = b * 32 / k->group, isum = 0;
				int zero = k->zeros ? k->zeros[r * k->n_groups + g] : 1 << (k->bits - 1);
				for (int64_t c = b * 32; c < b * 32 + 32 && c < k->cols; c++)
					isum += (int64_t)xq[c] * (codes[c] - zero);
				double term = (double)shrink_f16_to_f32(k->scales[r * k->n_groups + g]) * d[b] * (double)isum;
				acc += term;
				mag += fabs(term);
			}
			ref[t * k->rows + r] = acc;
			bound[t * k->rows + r] = mag;
		}
	}
	free(codes), free(xq), free(d);
}

static void check_i8(int bits, int group, bool sym, int64_t rows, int64_t cols, int n_tok)
{
	shrink_qscheme s = {bits, group, sym};
	shrink_error err = {0};
	float *w = malloc(rows * cols * 4), *x = malloc(n_tok * cols * 4), *y = malloc(n_tok * rows * 4);
	float *yf = malloc(n_tok * rows * 4), *scratch = malloc(shrink_kernel_linear_scratch(rows, cols, n_tok) * 4 + 4);
	double *ref = malloc(n_tok * rows * 8), *bound = malloc(n_tok * rows * 8);
	for (int64_t i = 0; i < rows * cols; i++)
		w[i] = frand();
	for (int64_t i = 0; i < n_tok * cols; i++)
		x[i] = frand() * (i % 7 == 0 ? 4 : 1); /* uneven magnitudes across blocks */
	int64_t groups = shrink_qscheme_groups(&s, cols);
	uint8_t *q = malloc(rows * shrink_qrow_bytes(bits, cols)), *z = sym ? NULL : malloc(rows * groups);
	uint16_t *sc = malloc(rows * groups * 2);
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &s, false, q, sc, z, &err), SHRINK_OK, "%s", err.msg);
	shrink_kq k = {bits, group ? group : (int)cols, rows, cols, groups, shrink_qrow_bytes(bits, cols), q, sc, z};
	cr_assert(shrink_kernel_linear_q_i8_ok(&k));
	ref_linear_i8(&k, x, n_tok, ref, bound);
	shrink_kernel_linear_q(&k, x, n_tok, yf, scratch);
	shrink_ki8_impl impls[] = {SHRINK_KI8_C, SHRINK_KI8_AVX2, SHRINK_KI8_VNNI, SHRINK_KI8_AUTO};
	for (int i = 0; i < 4; i++) {
		if (!shrink_kernel_i8_available(impls[i]))
			continue;
		cr_assert_eq(shrink_kernel_linear_q_i8(&k, x, n_tok, y, impls[i]), 0);
		double worst = 0, far = 0, m = 1e-12;
		for (int64_t j = 0; j < n_tok * rows; j++) {
			worst = fmax(worst, fabs(y[j] - ref[j]) / (bound[j] + 1e-30));
			far = fmax(far, fabs(yf[j] - ref[j]));
			m = fmax(m, fabs(ref[j]));
		}
		cr_expect_lt(worst, 4e-6, "impl %d bits %d group %d %s %lldx%lld tokens %d: error %g of the magnitude",
			     impls[i], bits, group, sym ? "sym" : "asym", (long long)rows, (long long)cols, n_tok, worst);
		/* and still the same product as the float-activation kernel, to the
		 * rounding of x (about 1/254 of each block's largest value) */
		cr_expect_lt(far / m, 0.03, "bits %d group %d: int8 and float paths differ by %g", bits, group, far / m);
	}
	free(w), free(x), free(y), free(yf), free(scratch), free(ref), free(bound), free(q), free(z), free(sc);
}

Test(kernels, int8_linear_matches_exact_integer_reference)
{
	int bits[] = {4, 8}, groups[] = {32, 64, 128, 0}, toks[] = {1, 3, 8};
	for (int b = 0; b < 2; b++)
		for (int g = 0; g < 4; g++)
			for (int t = 0; t < 3; t++) {
				check_i8(bits[b], groups[g], true, 37, 256, toks[t]);
				check_i8(bits[b], groups[g], false, 19, 160, toks[t]); /* short last group */
				check_i8(bits[b], groups[g], false, 7, 96, toks[t]);
			}
	for (int b = 0; b < 2; b++) {
		check_i8(bits[b], 0, false, 5, 33, 2);	 /* per row, a one-column last block */
		check_i8(bits[b], 0, true, 3, 100, 1);	 /* per row, a 4-column last block */
		check_i8(bits[b], 32, false, 9, 45, 2);	 /* a short last group of 13 */
		check_i8(bits[b], 64, true, 11, 577, 1); /* odd width, one column past the blocks */
	}
}

Test(kernels, int8_linear_refuses_other_schemes)
{
	uint8_t q[64] = {0};
	uint16_t sc[8] = {0};
	float x[48] = {0}, y[2] = {0};
	shrink_kq k3 = {3, 32, 2, 48, 2, shrink_qrow_bytes(3, 48), q, sc, NULL};
	shrink_kq g16 = {4, 16, 2, 48, 3, shrink_qrow_bytes(4, 48), q, sc, NULL};
	cr_assert(!shrink_kernel_linear_q_i8_ok(&k3));
	cr_assert(!shrink_kernel_linear_q_i8_ok(&g16));
	cr_assert_eq(shrink_kernel_linear_q_i8(&k3, x, 1, y, SHRINK_KI8_AUTO), -1);
	cr_assert_eq(shrink_kernel_linear_q_i8(&g16, x, 1, y, SHRINK_KI8_C), -1);
}

Test(kernels, int8_linear_same_bits_for_any_thread_count)
{
	int64_t rows = 301, cols = 576;
	int bits[] = {4, 8};
	for (int b = 0; b < 2; b++) {
		shrink_qscheme s = {bits[b], 32, false};
		shrink_error err = {0};
		float *w = malloc(rows * cols * 4), *x = malloc(2 * cols * 4), *y1 = malloc(2 * rows * 4),
		      *y3 = malloc(2 * rows * 4);
		for (int64_t i = 0; i < rows * cols; i++)
			w[i] = frand();
		for (int64_t i = 0; i < 2 * cols; i++)
			x[i] = frand();
		int64_t groups = shrink_qscheme_groups(&s, cols);
		uint8_t *q = malloc(rows * shrink_qrow_bytes(bits[b], cols)), *z = malloc(rows * groups);
		uint16_t *sc = malloc(rows * groups * 2);
		cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &s, false, q, sc, z, &err), SHRINK_OK, "%s", err.msg);
		shrink_kq k = {bits[b], 32, rows, cols, groups, shrink_qrow_bytes(bits[b], cols), q, sc, z};
		omp_set_num_threads(1);
		cr_assert_eq(shrink_kernel_linear_q_i8(&k, x, 2, y1, SHRINK_KI8_AUTO), 0);
		omp_set_num_threads(3);
		cr_assert_eq(shrink_kernel_linear_q_i8(&k, x, 2, y3, SHRINK_KI8_AUTO), 0);
		cr_assert_arr_eq(y1, y3, 2 * rows * 4, "bits %d: results depend on the thread count", bits[b]);
		free(w), free(x), free(y1), free(y3), free(q), free(z), free(sc);
	}
}

/* A random quantized matrix, and its repacked interleaved copy. */
typedef struct {
	shrink_kq k;
	shrink_kqx x;
	uint8_t *q, *z;
	uint16_t *sc;
	void *mem;
} qx_case;

static void qx_make(qx_case *c, int bits, int group, bool sym, int64_t rows, int64_t cols)
{
	shrink_qscheme s = {bits, group, sym};
	shrink_error err = {0};
	float *w = malloc(rows * cols * 4);
	for (int64_t i = 0; i < rows * cols; i++)
		w[i] = frand();
	int64_t groups = shrink_qscheme_groups(&s, cols);
	c->q = malloc(rows * shrink_qrow_bytes(bits, cols));
	c->z = sym ? NULL : malloc(rows * groups);
	c->sc = malloc(rows * groups * 2);
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &s, false, c->q, c->sc, c->z, &err), SHRINK_OK, "%s", err.msg);
	c->k = (shrink_kq){
	    bits, group ? group : (int)cols, rows, cols, groups, shrink_qrow_bytes(bits, cols), c->q, c->sc, c->z};
	cr_assert(shrink_kernel_qx_ok(&c->k));
	size_t n = shrink_kernel_qx_bytes(&c->k);
	c->mem = aligned_alloc(64, n);
	shrink_kernel_qx_pack(&c->k, c->mem, &c->x);
	free(w);
}

static void qx_free(qx_case *c)
{
	free(c->q), free(c->z), free(c->sc), free(c->mem);
}

/* decode over the interleaved copy: every impl against the exact integer
 * reference, and all of them the same bits */
static void check_qx(int bits, int group, bool sym, int64_t rows, int64_t cols, int n_tok)
{
	qx_case c;
	qx_make(&c, bits, group, sym, rows, cols);
	float *x = malloc(n_tok * cols * 4), *y = malloc(n_tok * rows * 4), *yc = malloc(n_tok * rows * 4);
	double *ref = malloc(n_tok * rows * 8), *bound = malloc(n_tok * rows * 8);
	for (int64_t i = 0; i < n_tok * cols; i++)
		x[i] = frand() * (i % 7 == 0 ? 4 : 1);
	for (int64_t j = 0; j < 32 && j < cols; j++)
		x[j] = 0; /* a block of zeros: d = 0 */
	ref_linear_i8(&c.k, x, n_tok, ref, bound);
	cr_assert_eq(shrink_kernel_linear_qx(&c.x, x, n_tok, yc, NULL, SHRINK_KI8_C), 0);
	shrink_ki8_impl impls[] = {SHRINK_KI8_C, SHRINK_KI8_AVX2, SHRINK_KI8_VNNI, SHRINK_KI8_AUTO};
	for (int i = 0; i < 4; i++) {
		if (!shrink_kernel_i8_available(impls[i]))
			continue;
		cr_assert_eq(shrink_kernel_linear_qx(&c.x, x, n_tok, y, NULL, impls[i]), 0);
		double worst = 0;
		for (int64_t j = 0; j < n_tok * rows; j++)
			worst = fmax(worst, fabs(y[j] - ref[j]) / (bound[j] + 1e-30));
		cr_expect_lt(worst, 4e-6, "impl %d bits %d group %d %s %lldx%lld tokens %d: error %g of the magnitude",
			     impls[i], bits, group, sym ? "sym" : "asym", (long long)rows, (long long)cols, n_tok,
			     worst);
		cr_expect_arr_eq(y, yc, n_tok * rows * 4,
				 "impl %d bits %d group %d %lldx%lld: not the bits of the C path", impls[i], bits,
				 group, (long long)rows, (long long)cols);
	}
	free(x), free(y), free(yc), free(ref), free(bound);
	qx_free(&c);
}

Test(kernels, interleaved_decode_matches_exact_integer_reference)
{
	int bits[] = {4, 8}, groups[] = {32, 64, 128, 0}, toks[] = {1, 3, 7};
	for (int b = 0; b < 2; b++)
		for (int g = 0; g < 4; g++)
			for (int t = 0; t < 3; t++) {
				check_qx(bits[b], groups[g], true, 37, 256, toks[t]);  /* 5 rows in the last tile */
				check_qx(bits[b], groups[g], false, 19, 160, toks[t]); /* short last group */
				check_qx(bits[b], groups[g], false, 8, 96, toks[t]);
			}
	for (int b = 0; b < 2; b++) {
		check_qx(bits[b], 0, false, 5, 33, 2);	 /* one tile, one group per row, a one-column last block */
		check_qx(bits[b], 0, true, 3, 100, 1);	 /* per row, a 4-column last block */
		check_qx(bits[b], 32, false, 9, 45, 2);	 /* a short last group of 13 */
		check_qx(bits[b], 64, true, 11, 577, 1); /* odd width, one column past the blocks */
		check_qx(bits[b], 32, true, 1, 32, 1);	 /* a single row */
	}
}

/* the repacked copy dequantizes to what the container layout does, and many
 * tokens (dequantized tiles + sgemm) match float64 */
static void check_qx_many(int bits, int group, bool sym)
{
	int64_t rows = 141, cols = 288, n_tok = 9; /* 18 tiles: two sgemm blocks */
	qx_case c;
	qx_make(&c, bits, group, sym, rows, cols);
	float *deq = malloc(rows * cols * 4), *tile = malloc(8 * cols * 4);
	float *x = malloc(n_tok * cols * 4), *y = malloc(n_tok * rows * 4);
	float *scratch = malloc(shrink_kernel_linear_scratch(rows, cols, n_tok) * 4);
	double *ref = malloc(n_tok * rows * 8);
	shrink_qmatrix m = {{bits, group, sym}, rows, cols, c.q, c.sc, c.z};
	for (int64_t r = 0; r < rows; r++)
		shrink_qmatrix_row(&m, r, deq + r * cols);
	for (int64_t t = 0; t < c.x.n_tiles; t++) {
		shrink_kernel_qx_dequant_tile(&c.x, t, tile);
		for (int64_t k = 0; k < 8 && t * 8 + k < rows; k++)
			for (int64_t j = 0; j < cols; j++) {
				float want = deq[(t * 8 + k) * cols + j];
				cr_assert_float_eq(tile[k * cols + j], want, 1e-6 * (1 + fabsf(want)),
						   "bits %d group %d row %lld col %lld", bits, group,
						   (long long)(t * 8 + k), (long long)j);
			}
	}
	for (int64_t i = 0; i < n_tok * cols; i++)
		x[i] = frand();
	for (int64_t t = 0; t < n_tok; t++)
		for (int64_t r = 0; r < rows; r++) {
			double acc = 0;
			for (int64_t j = 0; j < cols; j++)
				acc += (double)deq[r * cols + j] * x[t * cols + j];
			ref[t * rows + r] = acc;
		}
	cr_assert_eq(shrink_kernel_linear_qx(&c.x, x, n_tok, y, scratch, SHRINK_KI8_AUTO), 0);
	double e = max_rel_err(y, ref, n_tok * rows);
	cr_expect_lt(e, 2e-5, "bits %d group %d: rel err %g", bits, group, e);
	free(deq), free(tile), free(x), free(y), free(scratch), free(ref);
	qx_free(&c);
}

Test(kernels, interleaved_dequant_and_many_tokens)
{
	int bits[] = {4, 8}, groups[] = {32, 128, 0};
	for (int b = 0; b < 2; b++)
		for (int g = 0; g < 3; g++) {
			check_qx_many(bits[b], groups[g], true);
			check_qx_many(bits[b], groups[g], false);
		}
}

Test(kernels, interleaved_same_bits_for_any_thread_count)
{
	int bits[] = {4, 8};
	for (int b = 0; b < 2; b++) {
		int64_t rows = 301, cols = 576;
		qx_case c;
		qx_make(&c, bits[b], 32, false, rows, cols);
		float *x = malloc(2 * cols * 4), *y1 = malloc(2 * rows * 4), *y3 = malloc(2 * rows * 4);
		for (int64_t i = 0; i < 2 * cols; i++)
			x[i] = frand();
		omp_set_num_threads(1);
		cr_assert_eq(shrink_kernel_linear_qx(&c.x, x, 2, y1, NULL, SHRINK_KI8_AUTO), 0);
		omp_set_num_threads(3);
		cr_assert_eq(shrink_kernel_linear_qx(&c.x, x, 2, y3, NULL, SHRINK_KI8_AUTO), 0);
		cr_assert_arr_eq(y1, y3, 2 * rows * 4, "bits %d: results depend on the thread count", bits[b]);
		free(x), free(y1), free(y3);
		qx_free(&c);
	}
}
