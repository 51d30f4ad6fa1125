/* test_kv.c: the KV caches of lib/kv on a fake config (no model): spec
 * parsing and its errors; f16 against f32; the pieces of GEAR alone (code
 * packing, power iteration against LAPACK's SVD optimum, monotone in rank);
 * KIVI and GEAR reconstruction errors against the quantizer's bound computed
 * here from the data; outliers back bit-exact; GEAR-2 beating KIVI-2 on data
 * with outliers and low-rank structure; n_bytes against a hand count; loads of
 * sub-ranges (across chunk and buffer boundaries) equal slices of a full load;
 * stores out of order refused, reset starting over. */
#include <criterion/criterion.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_impl.h"
#include "shrink/shrink.h"

static uint64_t rng_state = 1;

static float frand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((rng_state >> 40) / (float)(1 << 24)) * 2 - 1;
}

static float gauss(void)
{
	float u = (frand() + 1.0001f) / 2.0001f, v = frand();
	return sqrtf(-2 * logf(u)) * cosf(3.14159265f * v);
}

static float r16(float x)
{
	return shrink_f16_to_f32(shrink_f32_to_f16(x));
}

/* 2 layers with n_kv0 and n_kv1 KV heads of head_dim hd */
static shrink_config *fake_config(int n_kv0, int n_kv1, int hd)
{
	shrink_config *c = calloc(1, sizeof *c);
	snprintf(c->arch, sizeof c->arch, "llama");
	c->n_layers = 2, c->head_dim = hd, c->vocab_size = 32, c->max_seq = 4096;
	c->layers[0] = (shrink_layer_config){2 * n_kv0, n_kv0, 64};
	c->layers[1] = (shrink_layer_config){2 * n_kv1, n_kv1, 64};
	c->dim = c->layers[0].n_heads * hd;
	return c;
}

/* per layer: k, v [T][n_kv * hd], values exactly representable in f16 */
typedef struct {
	int T, hd, n_kv[2];
	float *k[2], *v[2];
} dataset;

static float *at(const dataset *ds, float *const *x, int l, int t, int h)
{
	return x[l] + ((size_t)t * ds->n_kv[l] + h) * ds->hd;
}

/* low-rank signal of `rank` (per head), gaussian noise, and per chunk of 64 tokens one positive and one
 * negative spike per key channel (over tokens) and per value token (over channels) */
static dataset make_data(const shrink_config *c, int T, int rank, float noise, float spike)
{
	dataset ds = {T, c->head_dim, {c->layers[0].n_kv_heads, c->layers[1].n_kv_heads}, {0}, {0}};
	int hd = ds.hd;
	for (int l = 0; l < 2; l++) {
		ds.k[l] = calloc((size_t)T * ds.n_kv[l] * hd, 4);
		ds.v[l] = calloc((size_t)T * ds.n_kv[l] * hd, 4);
		for (int side = 0; side < 2; side++)
			for (int h = 0; h < ds.n_kv[l]; h++) {
				float *a = malloc((size_t)T * 8 * 4), *b = malloc((size_t)8 * hd * 4);
				for (int i = 0; i < T * 8; i++)
					a[i] = gauss();
				for (int i = 0; i < 8 * hd; i++)
					b[i] = gauss() / (1 + (i / hd));
				for (int t = 0; t < T; t++) {
					float *row = at(&ds, side ? ds.v : ds.k, l, t, h);
					for (int j = 0; j < hd; j++) {
						float s = noise * gauss();
						for (int i = 0; i < rank; i++)
							s += a[t * 8 + i] * b[i * hd + j];
						row[j] = s;
					}
				}
				free(a), free(b);
			}
		for (int t = 0; t < T && spike > 0; t++)
			for (int h = 0; h < ds.n_kv[l]; h++) {
				float *vr = at(&ds, ds.v, l, t, h);
				vr[(t * 3 + h) % hd] = spike * (1 + 0.01f * (t % 7));
				vr[(t * 3 + h + 11) % hd] = -spike * (1 + 0.013f * (t % 5));
				for (int j = 0; j < hd; j++) {
					if (t % 64 == (j * 5 + h) % 64)
						at(&ds, ds.k, l, t, h)[j] = spike * (1 + 0.011f * (j % 9));
					if (t % 64 == (j * 5 + h + 17) % 64)
						at(&ds, ds.k, l, t, h)[j] = -spike * (1 + 0.007f * (j % 4));
				}
			}
		for (size_t i = 0; i < (size_t)T * ds.n_kv[l] * hd; i++) {
			ds.k[l][i] = r16(ds.k[l][i]);
			ds.v[l][i] = r16(ds.v[l][i]);
		}
	}
	return ds;
}

static void free_data(dataset *ds)
{
	for (int l = 0; l < 2; l++)
		free(ds->k[l]), free(ds->v[l]);
}

static shrink_kv *new_kv(const char *spec, const shrink_config *c, int max_tokens)
{
	shrink_kv *kv = NULL;
	shrink_error err = {0};
	shrink_status st = shrink_kv_new(spec, c, max_tokens, &kv, &err);
	cr_assert_eq(st, SHRINK_OK, "%s: %s", spec, err.msg);
	return kv;
}

/* store tokens [from, to) of every layer, token by token, as the forward pass does */
static void fill(shrink_kv *kv, const dataset *ds, int from, int to)
{
	shrink_error err = {0};
	for (int t = from; t < to; t++)
		for (int l = 0; l < 2; l++) {
			shrink_status st =
			    kv->ops->store(kv, l, t, at(ds, ds->k, l, t, 0), at(ds, ds->v, l, t, 0), &err);
			cr_assert_eq(st, SHRINK_OK, "store %d: %s", t, err.msg);
		}
}

/* tokens [0, T) of one head, loaded in chunks of 64 as attention does */
static void load_all(const shrink_kv *kv, int l, int h, int T, float *k, float *v)
{
	for (int t0 = 0; t0 < T; t0 += 64) {
		int n = T - t0 < 64 ? T - t0 : 64;
		kv->ops->load(kv, l, h, t0, n, k + (size_t)t0 * kv->head_dim, v + (size_t)t0 * kv->head_dim);
	}
}

/* ---- spec parsing ---- */

static void expect_usage(const char *spec, int hd, const char *needle)
{
	shrink_config *c = fake_config(2, 2, hd);
	shrink_kv *kv = NULL;
	shrink_error err = {0};
	cr_expect_eq(shrink_kv_new(spec, c, 128, &kv, &err), SHRINK_EUSAGE, "%s accepted", spec);
	cr_expect_null(kv);
	cr_expect_not_null(strstr(err.msg, needle), "%s: message '%s' does not name '%s'", spec, err.msg, needle);
	free(c);
}

Test(kv_spec, parses_parameters)
{
	shrink_kv_params p;
	shrink_error err = {0};
	cr_assert_eq(shrink_kv_parse_spec("gear:bits=4,rank=2,outliers=0.05,buffer=128,group=32,iters=5", &p, &err), 0,
		     "%s", err.msg);
	cr_expect(p.kind == SHRINK_KV_GEAR && p.bits == 4 && p.rank == 2 && p.rank_prefill == 2 && p.chunk == 128 &&
		  p.group == 32 && p.iters == 5 && fabsf(p.outliers - 0.05f) < 1e-7f);
	cr_assert_eq(shrink_kv_parse_spec("kivi:bits=3,group=32,residual=96", &p, &err), 0, "%s", err.msg);
	cr_expect(p.kind == SHRINK_KV_KIVI && p.bits == 3 && p.group == 32 && p.chunk == 96 && p.rank == 0 &&
		  p.outliers == 0);
	cr_assert_eq(shrink_kv_parse_spec("gear", &p, &err), 0);
	cr_expect(p.bits == 2 && p.rank == 4 && p.rank_prefill == 4 && p.chunk == 64 && p.group == 64 && p.iters == 3);
	cr_assert_eq(shrink_kv_parse_spec("gear:rank=2,rank_prefill=4", &p, &err), 0);
	cr_expect(p.rank == 2 && p.rank_prefill == 4);
	cr_assert_eq(shrink_kv_parse_spec(NULL, &p, &err), 0);
	cr_expect_eq(p.kind, SHRINK_KV_F32);
}

Test(kv_spec, errors_name_the_parameter)
{
	expect_usage("kivi:bits=5", 64, "bits");
	expect_usage("kivi:bits=", 64, "bits");
	expect_usage("gear:rank=x", 64, "rank");
	expect_usage("gear:rank=40", 64, "rank");
	expect_usage("gear:foo=1", 64, "foo");
	expect_usage("kivi:rank=2", 64, "rank");
	expect_usage("kivi:residual=100", 64, "residual");
	expect_usage("gear:buffer=96,group=64", 64, "buffer");
	expect_usage("gear:outliers=0.5", 64, "outliers");
	expect_usage("gear:outliers=-0.1", 64, "outliers");
	expect_usage("gear:iters=0", 64, "iters");
	expect_usage("gear:bits=2,bits=4", 64, "bits");
	expect_usage("gear:rank", 64, "rank");
	expect_usage("f16:bits=2", 64, "f16");
	expect_usage("zstd", 64, "zstd");
	expect_usage("gear", 12, "head_dim");
	expect_usage("gear:rank=32,buffer=64", 16, "rank");
}

/* ---- f32 / f16 ---- */

Test(kv_float, f16_reproduces_f32_to_f16_precision)
{
	shrink_config *c = fake_config(2, 3, 16);
	dataset ds = make_data(c, 100, 3, 1, 0);
	for (int l = 0; l < 2; l++) /* undo the f16 rounding: exercise the conversion */
		for (size_t i = 0; i < (size_t)100 * ds.n_kv[l] * 16; i++)
			ds.k[l][i] *= 1.0001f, ds.v[l][i] *= 0.9999f;
	shrink_kv *a = new_kv("f32", c, 128), *b = new_kv("f16", c, 128);
	fill(a, &ds, 0, 100);
	fill(b, &ds, 0, 100);
	float ka[100 * 16], va[100 * 16], kb[100 * 16], vb[100 * 16];
	for (int l = 0; l < 2; l++)
		for (int h = 0; h < ds.n_kv[l]; h++) {
			load_all(a, l, h, 100, ka, va);
			load_all(b, l, h, 100, kb, vb);
			for (int t = 0; t < 100; t++)
				for (int j = 0; j < 16; j++) {
					int i = t * 16 + j;
					cr_assert_eq(ka[i], at(&ds, ds.k, l, t, h)[j]);
					cr_assert_eq(va[i], at(&ds, ds.v, l, t, h)[j]);
					cr_assert_leq(fabsf(kb[i] - ka[i]), fabsf(ka[i]) * 0x1p-11f + 0x1p-25f);
					cr_assert_leq(fabsf(vb[i] - va[i]), fabsf(va[i]) * 0x1p-11f + 0x1p-25f);
				}
		}
	shrink_kv_free(a), shrink_kv_free(b), free_data(&ds), free(c);
}

/* ---- the pieces ---- */

Test(kv_quant, packing_round_trips)
{
	int bits[] = {2, 3, 4, 8}, dims[] = {8, 16, 64, 128};
	uint8_t c[128], back[128], row[128];
	for (int b = 0; b < 4; b++)
		for (int di = 0; di < 4; di++) {
			int d = dims[di];
			for (int j = 0; j < d; j++)
				c[j] = (uint8_t)((unsigned)(frand() * 1000 + 1000) % (1u << bits[b]));
			shrink_kvq_pack_row(c, d, bits[b], row);
			shrink_kvq_unpack_row(row, d, bits[b], back);
			cr_assert_arr_eq(c, back, (size_t)d, "bits %d d %d", bits[b], d);
		}
}

Test(kv_quant, range_is_safe_after_f16_rounding)
{
	for (int trial = 0; trial < 2000; trial++) {
		float x[16];
		float amp = powf(10, 3 * frand()), off = 100 * frand();
		for (int i = 0; i < 16; i++)
			x[i] = off + amp * frand();
		if (trial % 100 == 0)
			for (int i = 0; i < 16; i++)
				x[i] = off; /* constant group */
		for (int bits = 2; bits <= 8; bits *= 2) {
			uint16_t sh, mh;
			shrink_kvq_range(x, 16, 1, bits, &sh, &mh);
			float s = shrink_f16_to_f32(sh), m = shrink_f16_to_f32(mh), inv = s > 0 ? 1 / s : 0;
			int L = (1 << bits) - 1;
			for (int i = 0; i < 16; i++) {
				float y = (float)shrink_kvq_code(x[i], m, inv, L) * s + m;
				cr_assert_leq(fabsf(y - x[i]), s / 2 + 1e-6f * (fabsf(x[i]) + s * L),
					      "trial %d bits %d: %g -> %g (scale %g)", trial, bits, x[i], y, s);
			}
		}
	}
}

/* Frobenius norm of R - qt^T pt */
static double lowrank_error(const float *R, int T, int d, int r, const float *qt, const float *pt)
{
	double e = 0;
	for (int t = 0; t < T; t++)
		for (int j = 0; j < d; j++) {
			double x = R[t * d + j];
			for (int k = 0; k < r; k++)
				x -= (double)qt[k * T + t] * pt[k * d + j];
			e += x * x;
		}
	return sqrt(e);
}

/* optimal rank-r errors sqrt(sum_{i >= r} sigma_i^2) for r = 0 .. min(T, d) - 1, from LAPACK's SVD */
static void svd_tail(const float *R, int T, int d, double *tail)
{
	int m = T < d ? T : d;
	double *a = malloc((size_t)T * d * 8), *s = malloc((size_t)m * 8);
	for (int i = 0; i < T * d; i++)
		a[i] = R[i];
	cr_assert_eq(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', T, d, a, d, s, NULL, T, NULL, d), 0);
	for (int r = 0; r < m; r++) {
		double e = 0;
		for (int i = r; i < m; i++)
			e += s[i] * s[i];
		tail[r] = sqrt(e);
	}
	free(a), free(s);
}

static void lowrank_case(int T, int d, float noise)
{
	float *R = malloc((size_t)T * d * 4), *qt = malloc((size_t)6 * T * 4), *pt = malloc((size_t)6 * d * 4);
	for (int t = 0; t < T; t++)
		for (int j = 0; j < d; j++)
			R[t * d + j] = noise * gauss();
	for (int i = 0; i < 8; i++) { /* sigma_i roughly halving */
		float u[256], w = 8.0f / (float)(1 << i);
		for (int t = 0; t < T; t++)
			u[t] = gauss() * w;
		for (int j = 0; j < d; j++) {
			float v = gauss();
			for (int t = 0; t < T; t++)
				R[t * d + j] += u[t] * v;
		}
	}
	double tail[256], prev = INFINITY;
	svd_tail(R, T, d, tail);
	for (int r = 1; r <= 6; r++) {
		shrink_lowrank_fit(R, T, d, r, 30, qt, pt);
		double e = lowrank_error(R, T, d, r, qt, pt);
		cr_expect_leq(e, 1.01 * tail[r], "T %d d %d rank %d: error %g, optimum %g", T, d, r, e, tail[r]);
		cr_expect_lt(e, prev, "T %d d %d: error not decreasing at rank %d (%g >= %g)", T, d, r, e, prev);
		shrink_lowrank_fit(R, T, d, r, 3, qt, pt);
		double e3 = lowrank_error(R, T, d, r, qt, pt);
		cr_log_info("lowrank T %d d %d rank %d: 30 iters %.5f, 3 iters %.5f x optimum", T, d, r, e / tail[r],
			    e3 / tail[r]);
		prev = e;
	}
	free(R), free(qt), free(pt);
}

Test(kv_lowrank, power_iteration_reaches_svd_optimum_and_is_monotone)
{
	rng_state = 11;
	lowrank_case(64, 64, 0.05f);
	lowrank_case(64, 16, 0.05f);
	lowrank_case(128, 64, 0.2f);
}

Test(kv_lowrank, rank_deficient_matrix)
{
	float R[32 * 16], qt[4 * 32], pt[4 * 16];
	for (int t = 0; t < 32; t++)
		for (int j = 0; j < 16; j++)
			R[t * 16 + j] = (float)(t - 16) * (float)(j + 1) * 0.01f; /* rank 1 */
	shrink_lowrank_fit(R, 32, 16, 4, 3, qt, pt);
	cr_expect_leq(lowrank_error(R, 32, 16, 4, qt, pt), 1e-4);
	for (int k = 0; k < 4; k++)
		for (int t = 0; t < 32; t++)
			cr_assert(isfinite(qt[k * 32 + t]));
}

Test(kv_outliers, counts_and_extraction)
{
	cr_expect_eq(shrink_kv_outliers_per_side(0, 64), 0);
	cr_expect_eq(shrink_kv_outliers_per_side(0.02f, 64), 1);
	cr_expect_eq(shrink_kv_outliers_per_side(0.1f, 64), 3);
	cr_expect_eq(shrink_kv_outliers_per_side(0.4f, 4), 1);
	float x[10] = {1, 9, 2, -7, 3, 4, 8, -1, 0, 5}, y[20];
	for (int i = 0; i < 10; i++)
		y[2 * i] = x[i], y[2 * i + 1] = 99;
	uint16_t val[4], idx[4];
	shrink_kv_outliers_extract(y, 10, 2, 2, val, idx);
	cr_expect(idx[0] == 1 && idx[1] == 6 && idx[2] == 3 && idx[3] == 7);
	cr_expect(shrink_f16_to_f32(val[0]) == 9 && shrink_f16_to_f32(val[3]) == -1);
	for (int e = 0; e < 4; e++)
		cr_expect_eq(y[2 * idx[e]], (1 + 2 + 3 + 4 + 0 + 5) / 6.0f);
	cr_expect_eq(y[1], 99);
}

/* ---- whole caches against bounds computed here ---- */

/* range of x[i * stride], i in [0, n), skipping one largest and one smallest when skip */
static void range_of(const float *x, int n, int stride, bool skip, float *lo, float *hi)
{
	int imax = 0, imin = 0;
	for (int i = 1; i < n; i++) {
		imax = x[i * stride] > x[imax * stride] ? i : imax;
		imin = x[i * stride] < x[imin * stride] ? i : imin;
	}
	*lo = INFINITY, *hi = -INFINITY;
	for (int i = 0; i < n; i++) {
		if (skip && (i == imax || i == imin))
			continue;
		*lo = fminf(*lo, x[i * stride]);
		*hi = fmaxf(*hi, x[i * stride]);
	}
}

/* is x[pos * stride] the largest or smallest of its vector (of tied extremes, the first, as GEAR picks) */
static bool is_extreme(const float *x, int n, int stride, int pos)
{
	int above = 0, below = 0, tied_before = 0;
	for (int i = 0; i < n; i++) {
		above += x[i * stride] > x[pos * stride], below += x[i * stride] < x[pos * stride];
		tied_before += i < pos && x[i * stride] == x[pos * stride];
	}
	return (above == 0 || below == 0) && !tied_before;
}

typedef struct {
	double err2, bound_slack_min;
	int violations, outliers_checked;
} error_stats;

/* Check every compressed value of one head against |err| <= scale/2 (+ the low-rank part when lowrank is
 * given: the difference to the rank-0 reconstruction). gear: outliers excluded from ranges and exact. */
static void check_head(const dataset *ds, int l, int h, int T, int bits, int group, bool gear, const float *k,
		       const float *v, const float *k0, const float *v0, error_stats *st)
{
	int hd = ds->hd, L = (1 << bits) - 1;
	for (int side = 0; side < 2; side++)
		for (int t = 0; t < T; t++)
			for (int j = 0; j < hd; j++) {
				const float *xs = at(ds, side ? ds->v : ds->k, l, 0, h);
				int stride = ds->n_kv[l] * hd; /* token stride in the dataset */
				float x = xs[(size_t)t * stride + j], lo, hi;
				float y = (side ? v : k)[t * hd + j], y0 = k0 ? (side ? v0 : k0)[t * hd + j] : y;
				const float *vec;
				int n, vs, pos;
				if (!side) { /* key: channel j over the key group (= the outlier vector for gear) */
					vec = xs + (size_t)(t / group * group) * stride + j, n = group, vs = stride,
					pos = t % group;
				} else { /* value: channels of the group of token t */
					vec = xs + (size_t)t * stride + j / group * group, n = group < hd ? group : hd,
					vs = 1, pos = j % group;
				}
				if (gear && is_extreme(vec, n, vs, pos)) {
					cr_assert_eq(memcmp(&x, &y, 4), 0, "outlier l%d h%d side %d t%d j%d: %a vs %a",
						     l, h, side, t, j, x, y);
					st->outliers_checked++;
					continue;
				}
				range_of(vec, n, vs, gear, &lo, &hi);
				float bound = 0.5f * (hi - lo) / L * (1 + 0x1p-9f) + 1e-6f + fabsf(y - y0);
				st->err2 += (double)(x - y) * (x - y);
				st->violations += fabsf(x - y) > bound;
				if (bound - fabsf(x - y) < st->bound_slack_min)
					st->bound_slack_min = bound - fabsf(x - y);
			}
}

/* compressed part of every head of every layer: reconstruction errors and bound violations */
static error_stats check_cache_spiked(const char *spec, const char *spec0, int bits, int group, bool gear,
				      int T_comp, int T_all, float spike)
{
	shrink_config *c = fake_config(2, 3, 64);
	rng_state = 5;
	dataset ds = make_data(c, T_all, 3, 0.3f, spike);
	shrink_kv *kv = new_kv(spec, c, 512), *kv0 = spec0 ? new_kv(spec0, c, 512) : NULL;
	fill(kv, &ds, 0, T_all);
	if (kv0)
		fill(kv0, &ds, 0, T_all);
	float *k = malloc((size_t)T_all * 64 * 4 * 4), *v = k + T_all * 64, *k0 = v + T_all * 64, *v0 = k0 + T_all * 64;
	error_stats st = {0, INFINITY, 0, 0};
	for (int l = 0; l < 2; l++)
		for (int h = 0; h < ds.n_kv[l]; h++) {
			load_all(kv, l, h, T_all, k, v);
			if (kv0)
				load_all(kv0, l, h, T_all, k0, v0);
			check_head(&ds, l, h, T_comp, bits, group, gear, k, v, kv0 ? k0 : NULL, kv0 ? v0 : NULL, &st);
			for (int t = T_comp; t < T_all; t++) /* the f16 buffer is exact */
				cr_assert_arr_eq(k + t * 64, at(&ds, ds.k, l, t, h), 64 * 4);
		}
	free(k), free(ds.k[0]), free(ds.k[1]), free(ds.v[0]), free(ds.v[1]);
	shrink_kv_free(kv), shrink_kv_free(kv0), free(c);
	return st;
}

static error_stats check_cache(const char *spec, const char *spec0, int bits, int group, bool gear, int T_comp,
			       int T_all)
{
	return check_cache_spiked(spec, spec0, bits, group, gear, T_comp, T_all, 6);
}

Test(kv_kivi, error_within_quantizer_bound)
{
	const char *specs[] = {"kivi:bits=2,group=32,residual=64", "kivi:bits=4,group=32,residual=64",
			       "kivi:bits=3,group=64,residual=128", "kivi:bits=8,group=16,residual=64"};
	int bits[] = {2, 4, 3, 8}, groups[] = {32, 32, 64, 16}, comp[] = {128, 128, 128, 128};
	for (int i = 0; i < 4; i++) {
		error_stats st = check_cache(specs[i], NULL, bits[i], groups[i], false, comp[i], 150);
		cr_expect_eq(st.violations, 0, "%s: %d values beyond the bound", specs[i], st.violations);
		cr_expect_gt(st.err2, 0, "%s: suspiciously exact", specs[i]);
		cr_log_info("%s: rms error %.5f", specs[i], sqrt(st.err2 / (128 * 5 * 64 * 2)));
	}
}

Test(kv_gear, error_within_bound_and_outliers_exact)
{
	int bits[] = {2, 4};
	for (int i = 0; i < 2; i++) {
		char spec[96], spec0[96];
		snprintf(spec, sizeof spec, "gear:bits=%d,rank=4,outliers=0.02,buffer=64,group=64", bits[i]);
		snprintf(spec0, sizeof spec0, "gear:bits=%d,rank=0,outliers=0.02,buffer=64,group=64", bits[i]);
		error_stats s0 = check_cache(spec0, NULL, bits[i], 64, true, 128, 150);
		error_stats sr = check_cache(spec, spec0, bits[i], 64, true, 128, 150);
		cr_expect_eq(s0.violations, 0, "%s: %d values beyond scale/2", spec0, s0.violations);
		cr_expect_eq(sr.violations, 0, "%s: %d values beyond scale/2 + low rank", spec, sr.violations);
		/* 2 outliers per key channel and per value token, 2 chunks, 5 heads */
		cr_expect_eq(s0.outliers_checked, 2 * 5 * 2 * (64 * 2), "%d outliers", s0.outliers_checked);
		cr_expect_lt(sr.err2, s0.err2, "%s: low rank does not help (%g >= %g)", spec, sr.err2, s0.err2);
		cr_log_info("%s: error^2 %.4f, rank 0: %.4f", spec, sr.err2, s0.err2);
	}
}

/* chunks longer than 256 tokens store key outlier indices in two bytes, not one */
Test(kv_gear, long_chunks_keep_outliers_exact)
{
	const char *spec = "gear:bits=2,rank=4,outliers=0.007,buffer=300,group=300";
	/* no planted spikes: they repeat over 300 tokens, and ties make "the" extreme ambiguous */
	error_stats s = check_cache_spiked(spec, "gear:bits=2,rank=0,outliers=0.007,buffer=300,group=300", 2, 300, true,
					   300, 310, 0);
	cr_expect_eq(s.violations, 0, "%s: %d values beyond their bound", spec, s.violations);
	/* one outlier per side: 64 key channels and 300 value tokens per head, 5 heads */
	cr_expect_eq(s.outliers_checked, 5 * 2 * (64 + 300), "%d outliers", s.outliers_checked);
}

/* sum over compressed heads of the squared error, for one spec on data with outliers and low-rank structure */
static double total_error(const char *spec, const dataset *ds, const shrink_config *c, int T_comp)
{
	shrink_kv *kv = new_kv(spec, c, 512);
	fill(kv, ds, 0, ds->T);
	float *k = malloc((size_t)ds->T * ds->hd * 8), *v = k + ds->T * ds->hd;
	double e = 0;
	for (int l = 0; l < 2; l++)
		for (int h = 0; h < ds->n_kv[l]; h++) {
			load_all(kv, l, h, ds->T, k, v);
			for (int t = 0; t < T_comp; t++)
				for (int j = 0; j < ds->hd; j++) {
					float dk = k[t * ds->hd + j] - at(ds, ds->k, l, t, h)[j];
					float dv = v[t * ds->hd + j] - at(ds, ds->v, l, t, h)[j];
					e += (double)dk * dk + (double)dv * dv;
				}
		}
	free(k), shrink_kv_free(kv);
	return e;
}

Test(kv_gear, beats_kivi_on_outliers_and_low_rank_and_improves_with_rank)
{
	shrink_config *c = fake_config(2, 2, 64);
	rng_state = 9;
	dataset ds = make_data(c, 256, 4, 0.05f, 12);
	double kivi2 = total_error("kivi:bits=2,group=64,residual=64", &ds, c, 256);
	double gear2 = total_error("gear:bits=2,rank=4,outliers=0.02,buffer=64", &ds, c, 256);
	double kivi4 = total_error("kivi:bits=4,group=64,residual=64", &ds, c, 256);
	double gear4 = total_error("gear:bits=4,rank=4,outliers=0.02,buffer=64", &ds, c, 256);
	cr_log_info("squared error: KIVI-2 %.2f GEAR-2 %.2f KIVI-4 %.3f GEAR-4 %.3f", kivi2, gear2, kivi4, gear4);
	cr_expect_lt(gear2, 0.5 * kivi2, "GEAR-2 %g vs KIVI-2 %g", gear2, kivi2);
	cr_expect_lt(gear4, 0.5 * kivi4, "GEAR-4 %g vs KIVI-4 %g", gear4, kivi4);
	double prev = INFINITY;
	for (int r = 0; r <= 6; r++) {
		char spec[96];
		snprintf(spec, sizeof spec, "gear:bits=2,rank=%d,outliers=0.02,buffer=64,iters=10", r);
		double e = total_error(spec, &ds, c, 256);
		cr_expect_lt(e, prev, "rank %d: %g not below %g", r, e, prev);
		prev = e;
	}
	free_data(&ds), free(c);
}

/* Frobenius error of one side (0: K, 1: V) of head 0, layer 0, tokens [0, 64) under spec; resid: the error matrix */
static double side_error(const char *spec, const shrink_config *c, const dataset *ds, int side, float *resid)
{
	shrink_kv *kv = new_kv(spec, c, 64);
	fill(kv, ds, 0, 64);
	float k[64 * 64], v[64 * 64];
	load_all(kv, 0, 0, 64, k, v);
	double e = 0;
	for (int t = 0; t < 64; t++)
		for (int j = 0; j < 64; j++) {
			float x = at(ds, side ? ds->v : ds->k, 0, t, 0)[j], d = x - (side ? v : k)[t * 64 + j];
			if (resid)
				resid[t * 64 + j] = d;
			e += (double)d * d;
		}
	shrink_kv_free(kv);
	return sqrt(e);
}

/* The low rank of a whole GEAR cache against the SVD optimum of the residual that rank 0 leaves (outliers
 * come back exact after the low-rank term, so GEAR may even end below that optimum). */
Test(kv_gear, low_rank_part_near_svd_optimum)
{
	shrink_config *c = fake_config(1, 1, 64);
	rng_state = 21;
	dataset ds = make_data(c, 64, 4, 0.05f, 12);
	for (int side = 0; side < 2; side++) {
		float R[64 * 64];
		double tail[64];
		side_error("gear:bits=2,rank=0,buffer=64", c, &ds, side, R);
		svd_tail(R, 64, 64, tail);
		for (int r = 1; r <= 6; r++) {
			char spec[96];
			snprintf(spec, sizeof spec, "gear:bits=2,rank=%d,buffer=64,iters=30", r);
			double e = side_error(spec, c, &ds, side, NULL);
			snprintf(spec, sizeof spec, "gear:bits=2,rank=%d,buffer=64,iters=3", r);
			double e3 = side_error(spec, c, &ds, side, NULL);
			cr_log_info("GEAR-2 %s chunk rank %d: error / SVD optimum %.5f (30 iters), %.5f (3 iters)",
				    side ? "V" : "K", r, e / tail[r], e3 / tail[r]);
			cr_expect_leq(e, 1.01 * tail[r] + 2e-3 * tail[0], "side %d rank %d: %g vs optimum %g", side, r,
				      e, tail[r]);
		}
	}
	free_data(&ds), free(c);
}

/* ---- bytes ---- */

Test(kv_bytes, match_hand_count)
{
	shrink_config *c = fake_config(2, 3, 64); /* 5 KV heads in all */
	rng_state = 3;
	dataset ds = make_data(c, 150, 2, 0.5f, 0);
	/* 150 tokens = 2 chunks of 64 + 22 in the f16 buffer (K and V, 64 channels, 2 bytes) per head */
	size_t buffer = 22 * 2 * 64 * 2;
	/* KIVI-2, group 64: codes 64 x 16 B; K (scale, min) per channel, V per token: 64 x 4 B each */
	size_t kivi2 = 2 * (64 * 16 + 64 * 4);
	/* 3 bits: 24 B per row */
	size_t kivi3 = 2 * (64 * 24 + 64 * 4);
	/* GEAR-2 rank 4: + 2 outliers x 64 vectors x (2 B value + 1 B index: vectors of 64) + (64 + 64) x 4 f16
	 * factors, per side */
	size_t gear2 = kivi2 + 2 * (2 * 64 * 3 + 128 * 4 * 2);
	struct {
		const char *spec;
		size_t bytes;
	} cases[] = {
	    {"f32", 5 * 150 * 2 * 64 * 4},
	    {"f16", 5 * 150 * 2 * 64 * 2},
	    {"kivi:bits=2,group=64,residual=64", 5 * (2 * kivi2 + buffer)},
	    {"kivi:bits=3,group=64,residual=64", 5 * (2 * kivi3 + buffer)},
	    {"gear:bits=2,rank=4,outliers=0.02,buffer=64", 5 * (2 * gear2 + buffer)},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		shrink_kv *kv = new_kv(cases[i].spec, c, 256);
		cr_expect_eq(kv->ops->n_bytes(kv), 0);
		fill(kv, &ds, 0, 150);
		cr_expect_eq(kv->ops->n_bytes(kv), cases[i].bytes, "%s: %zu bytes, hand count %zu", cases[i].spec,
			     kv->ops->n_bytes(kv), cases[i].bytes);
		shrink_kv_free(kv);
	}
	/* rank_prefill for the chunk compressed before the first end_forward, rank after */
	shrink_kv *kv = new_kv("gear:bits=2,rank=2,rank_prefill=4,buffer=64", c, 256);
	fill(kv, &ds, 0, 100);
	shrink_kv_end_forward(kv);
	fill(kv, &ds, 100, 128);
	size_t lr4 = 2 * 128 * 4 * 2, lr2 = 2 * 128 * 2 * 2;
	cr_expect_eq(kv->ops->n_bytes(kv), 5 * (2 * (gear2 - lr4) + lr4 + lr2));
	shrink_kv_free(kv), free_data(&ds), free(c);
}

/* ---- loads of sub-ranges, order, reset ---- */

Test(kv_load, sub_ranges_equal_slices_of_a_full_load)
{
	const char *specs[] = {"f32",
			       "f16",
			       "kivi:bits=2,group=32,residual=64",
			       "kivi:bits=3,group=64,residual=128",
			       "kivi:bits=4,group=64,residual=64",
			       "kivi:bits=8,group=16,residual=32",
			       "gear:bits=2,rank=4,outliers=0.02,buffer=64",
			       "gear:bits=4,rank=2,outliers=0.1,buffer=128,group=32"};
	int ranges[][2] = {{0, 1},   {5, 64},	{40, 48},  {60, 80}, {63, 2},
			   {64, 64}, {120, 80}, {150, 50}, {199, 1}, {0, 200}};
	shrink_config *c = fake_config(2, 3, 16);
	rng_state = 4;
	dataset ds = make_data(c, 200, 3, 0.2f, 5);
	float full_k[200 * 16], full_v[200 * 16], k[200 * 16], v[200 * 16];
	for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
		shrink_kv *kv = new_kv(specs[s], c, 256);
		fill(kv, &ds, 0, 200);
		for (int l = 0; l < 2; l++)
			for (int h = 0; h < ds.n_kv[l]; h++) {
				kv->ops->load(kv, l, h, 0, 200, full_k, full_v);
				for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
					int t0 = ranges[r][0], n = ranges[r][1];
					kv->ops->load(kv, l, h, t0, n, k, v);
					cr_assert_arr_eq(k, full_k + t0 * 16, (size_t)n * 16 * 4, "%s [%d, +%d)",
							 specs[s], t0, n);
					cr_assert_arr_eq(v, full_v + t0 * 16, (size_t)n * 16 * 4, "%s [%d, +%d)",
							 specs[s], t0, n);
				}
			}
		shrink_kv_free(kv);
	}
	free_data(&ds), free(c);
}

Test(kv_load, order_enforced_and_reset_starts_over)
{
	shrink_config *c = fake_config(2, 2, 64);
	rng_state = 8;
	dataset ds = make_data(c, 130, 3, 0.2f, 5), other = make_data(c, 130, 2, 1, 0);
	shrink_kv *kv = new_kv("gear:bits=2,rank=4,buffer=64", c, 130),
		  *fresh = new_kv("gear:bits=2,rank=4,buffer=64", c, 130);
	shrink_error err = {0};
	fill(kv, &other, 0, 70);
	cr_expect_eq(kv->ops->store(kv, 0, 72, ds.k[0], ds.v[0], &err), SHRINK_EUSAGE);
	cr_expect_not_null(strstr(err.msg, "72"), "%s", err.msg);
	cr_expect_eq(kv->ops->store(kv, 0, 5, ds.k[0], ds.v[0], &err), SHRINK_EUSAGE);
	kv->ops->reset(kv);
	cr_expect_eq(kv->ops->n_bytes(kv), 0);
	fill(kv, &ds, 0, 130);
	fill(fresh, &ds, 0, 130);
	cr_expect_eq(kv->ops->store(kv, 0, 130, ds.k[0], ds.v[0], &err), SHRINK_EUSAGE, "store past the context");
	cr_expect_eq(kv->ops->n_bytes(kv), fresh->ops->n_bytes(fresh));
	float a[130 * 64 * 2], b[130 * 64 * 2];
	for (int l = 0; l < 2; l++)
		for (int h = 0; h < 2; h++) {
			kv->ops->load(kv, l, h, 0, 130, a, a + 130 * 64);
			fresh->ops->load(fresh, l, h, 0, 130, b, b + 130 * 64);
			cr_assert_arr_eq(a, b, sizeof a);
		}
	shrink_kv_free(kv), shrink_kv_free(fresh), free_data(&ds), free_data(&other), free(c);
}

/* ---- the AVX2 decoding kernel against the portable one ---- */

Test(kv_decode, avx2_and_portable_paths_agree)
{
	int bits[] = {2, 4, 8}, ranks[] = {0, 3, 4, 9}, groups[] = {64, 16};
	rng_state = 13;
	float x[64 * 128], a[64 * 128], b[64 * 128];
	for (int i = 0; i < 64 * 128; i++)
		x[i] = r16(gauss() + (i % 128 == 5 ? 9 : 0));
	for (int bi = 0; bi < 3; bi++)
		for (int ri = 0; ri < 4; ri++)
			for (int gi = 0; gi < 2; gi++)
				for (int keys = 0; keys < 2; keys++) {
					shrink_kv_side s;
					shrink_kv_side_layout(&s, keys, 64, 128, bits[bi], groups[gi], 0.02f,
							      ranks[ri]);
					uint8_t *rec = calloc(1, s.rec_bytes);
					float *work = malloc(shrink_kv_gear_work(&s) * 4);
					shrink_kv_gear_encode(&s, x, ranks[ri], 3, rec, work);
					shrink_kv_chunk_decode(&s, rec, ranks[ri], 3, 61, a);
					bool fast = s.avx2;
					s.avx2 = false;
					shrink_kv_chunk_decode(&s, rec, ranks[ri], 3, 61, b);
					for (int i = 0; i < 58 * 128; i++)
						cr_assert_leq(
						    fabsf(a[i] - b[i]), 1e-5f * (1 + fabsf(b[i])),
						    "bits %d rank %d group %d keys %d (avx2 %d): %d: %g vs %g",
						    bits[bi], ranks[ri], groups[gi], keys, fast, i, a[i], b[i]);
					free(rec), free(work);
				}
}
