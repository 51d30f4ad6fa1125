/* test_quant.c: lib/quant alone: scheme checks and bits-per-weight by hand count;
 * pack/unpack round trips for every width against a bit-by-bit packer written here
 * (odd lengths, padding, no write past the row); RTN error <= scale/2 per element for
 * every scheme; clipping never worse; all-zero groups, NaN/Inf and f16 overflow;
 * GPTQ: equals RTN for H = I (no error feedback), beats RTN on a correlated layer,
 * dead columns, non-positive-definite H; the Hessian accumulator against a direct sum;
 * outputs bit-identical for 1, 2 and 3 threads (OpenMP and OpenBLAS). The NumPy cross-check of the
 * exact values lives in tests/ref/test_quant_ref.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/shrink.h"

static const int all_bits[] = {2, 3, 4, 5, 6, 8};
static const int all_groups[] = {0, 32, 64, 128};

static uint64_t rng_state = 7;

static double urand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
	return sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand());
}

static float *random_matrix(int64_t rows, int64_t cols, double sd)
{
	float *w = malloc((size_t)(rows * cols) * sizeof *w);
	for (int64_t i = 0; i < rows * cols; i++)
		w[i] = (float)(sd * gauss());
	return w;
}

/* A quantized matrix with its own buffers. */
typedef struct {
	shrink_qmatrix m;
	uint8_t *qweight, *zeros;
	uint16_t *scales;
	float *deq;
} qbuf;

static void qbuf_init(qbuf *b, shrink_qscheme s, int64_t rows, int64_t cols)
{
	int64_t ng = shrink_qscheme_groups(&s, cols);
	b->qweight = calloc((size_t)rows * shrink_qrow_bytes(s.bits, cols) + 1, 1);
	b->scales = calloc((size_t)(rows * ng) + 1, sizeof *b->scales);
	b->zeros = s.symmetric ? NULL : calloc((size_t)(rows * ng) + 1, 1);
	b->deq = calloc((size_t)(rows * cols), sizeof *b->deq);
	b->m = (shrink_qmatrix){s, rows, cols, b->qweight, b->scales, b->zeros};
}

static void qbuf_dequant(qbuf *b)
{
	for (int64_t r = 0; r < b->m.rows; r++)
		shrink_qmatrix_row(&b->m, r, b->deq + r * b->m.cols);
}

static void qbuf_free(qbuf *b)
{
	free(b->qweight);
	free(b->scales);
	free(b->zeros);
	free(b->deq);
}

static bool qbuf_equal(const qbuf *a, const qbuf *b)
{
	const shrink_qscheme *s = &a->m.scheme;
	int64_t rows = a->m.rows, cols = a->m.cols, ng = shrink_qscheme_groups(s, cols);
	return !memcmp(a->qweight, b->qweight, (size_t)rows * shrink_qrow_bytes(s->bits, cols)) &&
	       !memcmp(a->scales, b->scales, (size_t)(rows * ng) * 2) &&
	       (s->symmetric || !memcmp(a->zeros, b->zeros, (size_t)(rows * ng)));
}

static void rtn(qbuf *b, const float *w, bool clip)
{
	shrink_error err = {0};
	shrink_status st =
	    shrink_quantize_rtn(w, b->m.rows, b->m.cols, &b->m.scheme, clip, b->qweight, b->scales, b->zeros, &err);
	cr_assert_eq(st, SHRINK_OK, "%s", err.msg);
	qbuf_dequant(b);
}

static double sq_error(const float *a, const float *b, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return s;
}

/* ---- schemes and sizes ---- */

Test(quant, scheme_check)
{
	shrink_error err;
	for (int b = 0; b <= 9; b++) {
		shrink_qscheme s = {b, 32, true};
		bool ok = b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8;
		cr_expect_eq(shrink_qscheme_check(&s, 64, &err), ok ? SHRINK_OK : SHRINK_EUSAGE, "bits %d", b);
	}
	const int bad_groups[] = {-1, 1, 8, 48, 100, 2048};
	for (size_t i = 0; i < sizeof bad_groups / sizeof *bad_groups; i++) {
		shrink_qscheme s = {4, bad_groups[i], false};
		cr_expect_eq(shrink_qscheme_check(&s, 64, &err), SHRINK_EUSAGE, "group %d", bad_groups[i]);
	}
	for (size_t i = 0; i < 4; i++) {
		shrink_qscheme s = {4, all_groups[i], false};
		cr_expect_eq(shrink_qscheme_check(&s, 7, &err), SHRINK_OK, "group %d", all_groups[i]);
	}
	shrink_qscheme s = {4, 32, true};
	cr_expect_eq(shrink_qscheme_check(&s, 0, &err), SHRINK_EINPUT);
	cr_expect_eq(shrink_qscheme_check(NULL, 8, &err), SHRINK_EUSAGE);
}

Test(quant, sizes_and_bpw)
{
	shrink_qscheme s4 = {4, 128, true}, a4 = {4, 128, false}, s3 = {3, 64, true}, a2 = {2, 32, false},
		       r8 = {8, 0, true};
	cr_expect_float_eq(shrink_qscheme_bpw(&s4, 8, 4096), 4.125, 1e-12);
	cr_expect_float_eq(shrink_qscheme_bpw(&a4, 8, 4096), 4.1875, 1e-12);
	cr_expect_float_eq(shrink_qscheme_bpw(&s3, 8, 4096), 3.25, 1e-12);
	cr_expect_float_eq(shrink_qscheme_bpw(&a2, 8, 4096), 2.75, 1e-12);
	cr_expect_float_eq(shrink_qscheme_bpw(&r8, 8, 4096), 8 + 16.0 / 4096, 1e-12);
	cr_expect_eq(shrink_qmatrix_bytes(&s4, 3, 4096), 3 * (2048 + 32 * 2));
	/* 100 columns, 3 bits: 300 bits -> 38 bytes; groups of 32 -> 4 groups (the last of 4 columns) */
	shrink_qscheme a3 = {3, 32, false};
	cr_expect_eq(shrink_qscheme_groups(&a3, 100), 4);
	cr_expect_eq(shrink_qrow_bytes(3, 100), 38);
	cr_expect_eq(shrink_qmatrix_bytes(&a3, 2, 100), 2 * (38 + 4 * 3));
	cr_expect_eq(shrink_qrow_bytes(5, 1), 1);
	cr_expect_eq(shrink_qrow_bytes(6, 9), 7);
}

/* ---- packing ---- */

static void pack_by_bits(const uint8_t *q, int64_t n, int bits, uint8_t *out)
{
	memset(out, 0, shrink_qrow_bytes(bits, n));
	for (int64_t i = 0; i < n; i++)
		for (int b = 0; b < bits; b++)
			if (q[i] >> b & 1)
				out[(i * bits + b) / 8] |= (uint8_t)(1u << ((i * bits + b) % 8));
}

Test(quant, pack_round_trip)
{
	const int64_t lengths[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 255, 257, 1023};
	uint8_t q[1024], back[1024], packed[1024 + 16], want[1024];
	for (size_t bi = 0; bi < 6; bi++) {
		int bits = all_bits[bi];
		for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
			int64_t n = lengths[li];
			size_t nb = shrink_qrow_bytes(bits, n);
			for (int64_t i = 0; i < n; i++)
				q[i] = (uint8_t)(urand() * 256); /* high bits set too: the packer must drop them */
			memset(packed, 0xa5, sizeof packed);
			shrink_pack_bits(q, n, bits, packed);
			for (int64_t i = 0; i < n; i++)
				q[i] &= (uint8_t)((1u << bits) - 1);
			pack_by_bits(q, n, bits, want);
			cr_assert(!memcmp(packed, want, nb), "bits %d n %lld: layout", bits, (long long)n);
			cr_assert_eq(packed[nb], 0xa5, "bits %d n %lld: wrote past the row", bits, (long long)n);
			memset(back, 0xff, sizeof back);
			shrink_unpack_bits(packed, n, bits, back);
			cr_assert(!memcmp(q, back, (size_t)n), "bits %d n %lld: round trip", bits, (long long)n);
			cr_assert_eq(back[n], 0xff, "bits %d n %lld: unpacked past n", bits, (long long)n);
		}
	}
}

/* ---- RTN ---- */

/* Every element within half its group's stored scale. */
static void expect_within_half_scale(const qbuf *b, const float *w)
{
	const shrink_qscheme *s = &b->m.scheme;
	int64_t cols = b->m.cols, ng = shrink_qscheme_groups(s, cols);
	for (int64_t r = 0; r < b->m.rows; r++)
		for (int64_t c = 0; c < cols; c++) {
			int64_t k = s->group_size ? c / s->group_size : 0;
			double scale = shrink_f16_to_f32(b->scales[r * ng + k]);
			double e = fabs((double)w[r * cols + c] - b->deq[r * cols + c]);
			cr_assert(e <= scale / 2 * (1 + 1e-12), "b%d g%d %s: row %lld col %lld error %g > scale/2 %g",
				  s->bits, s->group_size, s->symmetric ? "sym" : "asym", (long long)r, (long long)c, e,
				  scale / 2);
		}
}

Test(quant, rtn_error_at_most_half_scale)
{
	int64_t rows = 6, cols = 333;
	float *w = random_matrix(rows, cols, 0.02);
	w[5] = 3.0f; /* an outlier */
	for (int64_t c = 0; c < cols; c++)
		w[2 * cols + c] = fabsf(w[2 * cols + c]) + 0.5f; /* all positive */
	for (size_t bi = 0; bi < 6; bi++)
		for (size_t gi = 0; gi < 4; gi++)
			for (int sym = 0; sym < 2; sym++) {
				qbuf b;
				qbuf_init(&b, (shrink_qscheme){all_bits[bi], all_groups[gi], sym}, rows, cols);
				rtn(&b, w, false);
				expect_within_half_scale(&b, w);
				qbuf_free(&b);
			}
	free(w);
}

Test(quant, clip_search_never_worse)
{
	int64_t rows = 8, cols = 256;
	float *w = random_matrix(rows, cols, 1.0);
	for (int64_t i = 0; i < rows * cols; i += 37)
		w[i] *= 6; /* heavy tails make clipping worth it */
	double gain = 0;
	for (size_t bi = 0; bi < 6; bi++)
		for (size_t gi = 0; gi < 4; gi++)
			for (int sym = 0; sym < 2; sym++) {
				shrink_qscheme s = {all_bits[bi], all_groups[gi], sym};
				qbuf plain, clip;
				qbuf_init(&plain, s, rows, cols);
				qbuf_init(&clip, s, rows, cols);
				rtn(&plain, w, false);
				rtn(&clip, w, true);
				double e0 = sq_error(w, plain.deq, rows * cols),
				       e1 = sq_error(w, clip.deq, rows * cols);
				cr_assert(e1 <= e0, "b%d g%d sym %d: clip %g > plain %g", s.bits, s.group_size, sym, e1,
					  e0);
				gain += e0 - e1;
				qbuf_free(&plain);
				qbuf_free(&clip);
			}
	cr_expect(gain > 0, "the clipping search never helped");
	free(w);
}

Test(quant, zero_and_constant_groups)
{
	int64_t rows = 2, cols = 96;
	float *w = calloc((size_t)(rows * cols), sizeof *w);
	for (int64_t c = 32; c < 64; c++)
		w[cols + c] = -0.75f; /* row 1: groups zero, constant, zero */
	for (int sym = 0; sym < 2; sym++) {
		qbuf b;
		qbuf_init(&b, (shrink_qscheme){3, 32, sym}, rows, cols);
		rtn(&b, w, true);
		for (int k = 0; k < 3; k++)
			cr_expect_eq(b.scales[k], 0, "all-zero group %d has scale %x", k, b.scales[k]);
		cr_expect_eq(b.scales[3], 0);
		cr_expect_neq(b.scales[4], 0);
		for (int64_t i = 0; i < rows * cols; i++)
			if (w[i] == 0)
				cr_assert_eq(b.deq[i], 0.0f, "element %lld", (long long)i);
		expect_within_half_scale(&b, w);
		qbuf_free(&b);
	}
	free(w);
}

Test(quant, bad_weights_rejected)
{
	int64_t rows = 4, cols = 64;
	float *w = random_matrix(rows, cols, 1.0);
	qbuf b;
	qbuf_init(&b, (shrink_qscheme){4, 32, false}, rows, cols);
	shrink_error err = {0};
	w[2 * cols + 5] = NAN;
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &b.m.scheme, false, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "row 2") && strstr(err.msg, "column 5"), "%s", err.msg);
	w[2 * cols + 5] = INFINITY;
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &b.m.scheme, false, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EINPUT);
	w[2 * cols + 5] = 0;
	w[3 * cols + 40] = 3e6f; /* 4-bit asym scale 2e5 > the largest f16 */
	cr_assert_eq(shrink_quantize_rtn(w, rows, cols, &b.m.scheme, false, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "row 3") && strstr(err.msg, "f16"), "%s", err.msg);
	cr_expect_eq(shrink_quantize_rtn(w, rows, cols, &b.m.scheme, false, b.qweight, b.scales, NULL, &err),
		     SHRINK_EUSAGE);
	qbuf_free(&b);
	free(w);
}

/* ---- GPTQ ---- */

/* n inputs of width cols with correlated columns: x = z M, M = I + 0.4 * noise. */
static float *correlated_inputs(int64_t n, int64_t cols)
{
	double *mix = malloc((size_t)(cols * cols) * sizeof *mix);
	for (int64_t i = 0; i < cols * cols; i++)
		mix[i] = 0.4 * gauss() + (i % (cols + 1) == 0);
	float *x = malloc((size_t)(n * cols) * sizeof *x);
	double *z = malloc((size_t)cols * sizeof *z);
	for (int64_t s = 0; s < n; s++) {
		for (int64_t k = 0; k < cols; k++)
			z[k] = gauss();
		for (int64_t c = 0; c < cols; c++) {
			double v = 0;
			for (int64_t k = 0; k < cols; k++)
				v += z[k] * mix[k * cols + c];
			x[s * cols + c] = (float)v;
		}
	}
	free(mix);
	free(z);
	return x;
}

static double *hessian_of(const float *x, int64_t n, int64_t cols)
{
	shrink_hessian h;
	shrink_error err;
	cr_assert_eq(shrink_hessian_init(&h, cols, &err), SHRINK_OK);
	shrink_hessian_add(&h, x, n);
	double *H = h.H;
	h.H = NULL;
	shrink_hessian_free(&h);
	return H;
}

/* ||W X^T - Q X^T||^2 over the n inputs. */
static double output_error(const float *w, const float *q, int64_t rows, int64_t cols, const float *x, int64_t n)
{
	double total = 0;
	for (int64_t r = 0; r < rows; r++)
		for (int64_t s = 0; s < n; s++) {
			double d = 0;
			for (int64_t c = 0; c < cols; c++)
				d += ((double)w[r * cols + c] - q[r * cols + c]) * x[s * cols + c];
			total += d * d;
		}
	return total;
}

static void gptq(qbuf *b, const float *w, const double *H, shrink_gptq_params p)
{
	shrink_error err = {0};
	shrink_status st =
	    shrink_quantize_gptq(w, b->m.rows, b->m.cols, H, &b->m.scheme, &p, b->qweight, b->scales, b->zeros, &err);
	cr_assert_eq(st, SHRINK_OK, "%s", err.msg);
	qbuf_dequant(b);
}

Test(quant, gptq_beats_rtn_on_correlated_layer)
{
	int64_t rows = 16, cols = 64, n = 256;
	float *w = random_matrix(rows, cols, 0.05), *x = correlated_inputs(n, cols);
	double *H = hessian_of(x, n, cols);
	const shrink_qscheme schemes[] = {{4, 32, true}, {3, 64, false}, {2, 0, true}, {4, 128, false}};
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		for (int act = 0; act < 2; act++) {
			qbuf qr, qg;
			qbuf_init(&qr, schemes[i], rows, cols);
			qbuf_init(&qg, schemes[i], rows, cols);
			rtn(&qr, w, false);
			gptq(&qg, w, H, (shrink_gptq_params){0.01, 128, act, false});
			double er = output_error(w, qr.deq, rows, cols, x, n),
			       eg = output_error(w, qg.deq, rows, cols, x, n);
			cr_log_info("b%d g%d %s act_order %d: ||WX - QX||^2 rtn %.4g gptq %.4g (%.2fx)",
				    schemes[i].bits, schemes[i].group_size, schemes[i].symmetric ? "sym" : "asym", act,
				    er, eg, er / eg);
			cr_expect(eg < er, "b%d g%d act %d: gptq %g >= rtn %g", schemes[i].bits, schemes[i].group_size,
				  act, eg, er);
			qbuf_free(&qr);
			qbuf_free(&qg);
		}
	free(w);
	free(x);
	free(H);
}

Test(quant, gptq_with_identity_hessian_is_rtn)
{
	int64_t rows = 5, cols = 100;
	float *w = random_matrix(rows, cols, 0.1);
	double *H = calloc((size_t)(cols * cols), sizeof *H);
	for (int64_t i = 0; i < cols; i++)
		H[i * cols + i] = 1;
	for (size_t bi = 0; bi < 6; bi++)
		for (int sym = 0; sym < 2; sym++) {
			shrink_qscheme s = {all_bits[bi], 32, sym};
			qbuf qr, qg;
			qbuf_init(&qr, s, rows, cols);
			qbuf_init(&qg, s, rows, cols);
			rtn(&qr, w, true);
			gptq(&qg, w, H, (shrink_gptq_params){0, 24, false, true});
			cr_expect(qbuf_equal(&qr, &qg), "b%d sym %d: GPTQ with H = I differs from RTN", s.bits, sym);
			qbuf_free(&qr);
			qbuf_free(&qg);
		}
	free(w);
	free(H);
}

Test(quant, gptq_dead_columns_and_bad_hessian)
{
	int64_t rows = 4, cols = 48, n = 200;
	float *w = random_matrix(rows, cols, 0.1), *x = correlated_inputs(n, cols);
	for (int64_t s = 0; s < n; s++)
		x[s * cols + 9] = 0;
	double *H = hessian_of(x, n, cols);
	qbuf b;
	qbuf_init(&b, (shrink_qscheme){4, 16, false}, rows, cols);
	for (int act = 0; act < 2; act++) {
		gptq(&b, w, H, (shrink_gptq_params){0.01, 128, act, false});
		for (int64_t r = 0; r < rows; r++)
			cr_expect_eq(b.deq[r * cols + 9], 0.0f, "act %d row %lld: dead column not zero", act,
				     (long long)r);
	}
	shrink_error err = {0};
	for (int64_t i = 0; i < cols * cols; i++)
		H[i] = -H[i];
	shrink_gptq_params p = {0.01, 128, false, false};
	cr_expect_eq(shrink_quantize_gptq(w, rows, cols, H, &b.m.scheme, &p, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EINPUT);
	cr_expect(strstr(err.msg, "not positive definite"), "%s", err.msg);
	H[3] = NAN;
	cr_expect_eq(shrink_quantize_gptq(w, rows, cols, H, &b.m.scheme, &p, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EINPUT);
	p.block = 0;
	cr_expect_eq(shrink_quantize_gptq(w, rows, cols, H, &b.m.scheme, &p, b.qweight, b.scales, b.zeros, &err),
		     SHRINK_EUSAGE);
	qbuf_free(&b);
	free(w);
	free(x);
	free(H);
}

Test(quant, hessian_matches_direct_sum)
{
	int64_t n = 300, cols = 20;
	float *x = random_matrix(n, cols, 1.0);
	shrink_hessian h;
	shrink_error err;
	cr_assert_eq(shrink_hessian_init(&h, cols, &err), SHRINK_OK);
	shrink_hessian_add(&h, x, 7);
	shrink_hessian_add(&h, x + 7 * cols, 0);
	shrink_hessian_add(&h, x + 7 * cols, n - 7); /* crosses the internal chunk size */
	cr_expect_eq(h.n_samples, n);
	for (int64_t i = 0; i < cols; i++)
		for (int64_t j = 0; j < cols; j++) {
			double want = 0;
			for (int64_t s = 0; s < n; s++)
				want += (double)x[s * cols + i] * x[s * cols + j];
			want *= 2.0 / n;
			cr_expect(fabs(h.H[i * cols + j] - want) <= 1e-12 * (1 + fabs(want)), "H[%lld][%lld] %g vs %g",
				  (long long)i, (long long)j, h.H[i * cols + j], want);
		}
	shrink_hessian_free(&h);
	free(x);
}

/* ---- determinism ---- */

/* shrink_set_threads: the programs' knob, OpenMP and OpenBLAS (the Cholesky) together. */
static void quantize_with_threads(int threads, qbuf *b, const float *w, const double *H, int method)
{
	shrink_set_threads(threads);
	if (method == 0)
		rtn(b, w, true);
	else
		gptq(b, w, H, (shrink_gptq_params){0.01, 32, method == 2, method == 2});
}

Test(quant, same_result_for_any_thread_count)
{
	int64_t rows = 70, cols = 160, n = 400;
	float *w = random_matrix(rows, cols, 0.05), *x = correlated_inputs(n, cols);
	double *H = hessian_of(x, n, cols);
	const shrink_qscheme schemes[] = {{4, 32, true}, {3, 64, false}, {5, 0, false}};
	for (size_t i = 0; i < 3; i++)
		for (int method = 0; method < 3; method++) {
			qbuf one, two, three;
			qbuf_init(&one, schemes[i], rows, cols);
			qbuf_init(&two, schemes[i], rows, cols);
			qbuf_init(&three, schemes[i], rows, cols);
			quantize_with_threads(1, &one, w, H, method);
			quantize_with_threads(2, &two, w, H, method);
			quantize_with_threads(3, &three, w, H, method);
			cr_expect(qbuf_equal(&one, &two) && qbuf_equal(&one, &three), "scheme %zu method %d", i,
				  method);
			qbuf_free(&one);
			qbuf_free(&two);
			qbuf_free(&three);
		}
	free(w);
	free(x);
	free(H);
}
