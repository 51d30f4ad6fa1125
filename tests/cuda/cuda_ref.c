/* cuda_ref.c: CPU references for the CUDA kernel tests (see cuda_ref.h).
 * Plain float64 loops written for clarity, not speed. */
#include "cuda_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t ref_next(ref_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double ref_uniform(ref_rng *r)
{
	return (double)(ref_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double ref_normal(ref_rng *r)
{
	double u = ref_uniform(r), v = ref_uniform(r);
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

uint16_t ref_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000u;
	int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	uint32_t mant = x & 0x7fffffu;
	if (((x >> 23) & 0xff) == 0xff)
		return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00u);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		mant |= 0x800000u;
		int shift = 14 - exp;
		uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
		h++; /* may carry into the exponent, up to infinity: correct */
	return (uint16_t)(sign | h);
}

float ref_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
	if (exp == 0) {
		float v = (float)mant * 5.9604644775390625e-8f; /* 2^-24 */
		return sign ? -v : v;
	}
	if (exp == 31)
		return bits_f32(sign | 0x7f800000u | (mant << 13));
	return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t ref_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

float ref_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t ref_to_half(int dt, float f)
{
	return dt == 0 ? ref_f32_to_f16(f) : ref_f32_to_bf16(f);
}

float ref_from_half(int dt, uint16_t h)
{
	return dt == 0 ? ref_f16_to_f32(h) : ref_bf16_to_f32(h);
}

size_t ref_row_bytes(int bits, int64_t cols)
{
	return (size_t)((cols * bits + 7) / 8);
}

void ref_pack_row(const uint8_t *codes, int64_t cols, int bits, uint8_t *out)
{
	memset(out, 0, ref_row_bytes(bits, cols));
	for (int64_t j = 0; j < cols; j++)
		for (int b = 0; b < bits; b++)
			if (codes[j] >> b & 1) {
				int64_t bit = j * bits + b;
				out[bit >> 3] |= (uint8_t)(1u << (bit & 7));
			}
}

void ref_qmatrix_random(ref_qmatrix *m, int bits, int group_size, bool symmetric, int64_t rows, int64_t cols,
			ref_rng *rng)
{
	memset(m, 0, sizeof *m);
	m->bits = bits, m->group_size = group_size, m->symmetric = symmetric;
	m->rows = rows, m->cols = cols;
	m->n_groups = group_size == 0 ? 1 : (cols + group_size - 1) / group_size;
	size_t rb = ref_row_bytes(bits, cols);
	m->codes = malloc((size_t)rows * cols);
	m->packed = malloc((size_t)rows * rb);
	m->scales = malloc((size_t)rows * m->n_groups * 2);
	m->zeros = symmetric ? NULL : malloc((size_t)rows * m->n_groups);
	for (int64_t i = 0; i < rows * cols; i++)
		m->codes[i] = (uint8_t)(ref_next(rng) & ((1u << bits) - 1));
	for (int64_t r = 0; r < rows; r++)
		ref_pack_row(m->codes + r * cols, cols, bits, m->packed + r * rb);
	/* scales around 1 / 2^(b-1) so that weights are O(1), with a spread of 4x */
	for (int64_t i = 0; i < rows * m->n_groups; i++) {
		double s = (0.25 + ref_uniform(rng)) / (double)(1 << (bits - 1));
		m->scales[i] = ref_f32_to_f16((float)s);
		if (m->zeros)
			m->zeros[i] = (uint8_t)(ref_next(rng) % (1u << bits));
	}
}

void ref_qmatrix_free(ref_qmatrix *m)
{
	free(m->codes);
	free(m->packed);
	free(m->scales);
	free(m->zeros);
	memset(m, 0, sizeof *m);
}

double ref_qmatrix_weight(const ref_qmatrix *m, int64_t r, int64_t c)
{
	int64_t g = m->group_size == 0 ? 0 : c / m->group_size;
	double s = ref_f16_to_f32(m->scales[r * m->n_groups + g]);
	int z = m->symmetric ? 1 << (m->bits - 1) : m->zeros[r * m->n_groups + g];
	return s * ((int)m->codes[r * m->cols + c] - z);
}

void ref_qlinear(const ref_qmatrix *m, int dt, const uint16_t *x, int64_t n_tok, double *y)
{
	double *w = malloc((size_t)m->cols * sizeof(double));
	double *xd = malloc((size_t)n_tok * m->cols * sizeof(double));
	for (int64_t i = 0; i < n_tok * m->cols; i++)
		xd[i] = ref_from_half(dt, x[i]);
	for (int64_t n = 0; n < m->rows; n++) {
		for (int64_t k = 0; k < m->cols; k++)
			w[k] = ref_qmatrix_weight(m, n, k);
		for (int64_t t = 0; t < n_tok; t++) {
			double acc = 0.0;
			const double *xr = xd + t * m->cols;
			for (int64_t k = 0; k < m->cols; k++)
				acc += xr[k] * w[k];
			y[t * m->rows + n] = acc;
		}
	}
	free(w);
	free(xd);
}

double ref_rel_err_half(int dt, const uint16_t *out, const double *ref, size_t n)
{
	double num = 0.0, den = 0.0;
	for (size_t i = 0; i < n; i++) {
		double o = ref_from_half(dt, out[i]);
		if (!isfinite(o))
			return INFINITY;
		num += (o - ref[i]) * (o - ref[i]);
		den += ref[i] * ref[i];
	}
	return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

double ref_rel_err_f32(const float *out, const double *ref, size_t n)
{
	double num = 0.0, den = 0.0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(out[i]))
			return INFINITY;
		num += (out[i] - ref[i]) * (out[i] - ref[i]);
		den += ref[i] * ref[i];
	}
	return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

void ref_rmsnorm(int dt, const uint16_t *x, const uint16_t *w, int64_t n_tok, int64_t dim, float eps, double *out)
{
	for (int64_t t = 0; t < n_tok; t++) {
		double ss = 0.0;
		for (int64_t i = 0; i < dim; i++) {
			double v = ref_from_half(dt, x[t * dim + i]);
			ss += v * v;
		}
		double inv = 1.0 / sqrt(ss / (double)dim + eps);
		for (int64_t i = 0; i < dim; i++)
			out[t * dim + i] = ref_from_half(dt, w[i]) * ref_from_half(dt, x[t * dim + i]) * inv;
	}
}

void ref_rope(int dt, const uint16_t *x, int64_t n_tok, int n_heads, int head_dim, const float *inv_freq,
	      int64_t pos0, double *out)
{
	int half = head_dim / 2;
	for (int64_t t = 0; t < n_tok; t++)
		for (int h = 0; h < n_heads; h++) {
			const uint16_t *v = x + (t * n_heads + h) * head_dim;
			double *o = out + (t * n_heads + h) * head_dim;
			for (int i = 0; i < half; i++) {
				float angle = (float)(pos0 + t) * inv_freq[i]; /* float, as Hugging Face computes it */
				double c = cos((double)angle), s = sin((double)angle);
				double x1 = ref_from_half(dt, v[i]), x2 = ref_from_half(dt, v[i + half]);
				o[i] = x1 * c - x2 * s;
				o[i + half] = x2 * c + x1 * s;
			}
		}
}

void ref_attention(int dt, const uint16_t *q, int64_t n_tok, int64_t pos0, int n_heads, int n_kv, int head_dim,
		   const uint16_t *kc, const uint16_t *vc, float scale, double *out)
{
	int group = n_heads / n_kv;
	int64_t n_keys_max = pos0 + n_tok;
	double *s = malloc((size_t)n_keys_max * sizeof(double));
	for (int64_t t = 0; t < n_tok; t++)
		for (int h = 0; h < n_heads; h++) {
			int kh = h / group;
			int64_t n_keys = pos0 + t + 1;
			const uint16_t *qr = q + (t * n_heads + h) * head_dim;
			double mx = -INFINITY;
			for (int64_t j = 0; j < n_keys; j++) {
				const uint16_t *kr = kc + (j * n_kv + kh) * head_dim;
				double acc = 0.0;
				for (int d = 0; d < head_dim; d++)
					acc += (double)ref_from_half(dt, qr[d]) * ref_f16_to_f32(kr[d]);
				s[j] = acc * scale;
				if (s[j] > mx)
					mx = s[j];
			}
			double sum = 0.0;
			for (int64_t j = 0; j < n_keys; j++) {
				s[j] = exp(s[j] - mx);
				sum += s[j];
			}
			double *o = out + (t * n_heads + h) * head_dim;
			for (int d = 0; d < head_dim; d++) {
				double acc = 0.0;
				for (int64_t j = 0; j < n_keys; j++)
					acc += s[j] * ref_f16_to_f32(vc[(j * n_kv + kh) * head_dim + d]);
				o[d] = acc / sum;
			}
		}
	free(s);
}

shrink_kv *ref_kv_filled(const char *spec, int H, int KV, int hd, int64_t L, int prefill, ref_rng *rng, float *k,
			 float *v, shrink_error *err)
{
	static shrink_config cfg; /* the cache keeps a pointer to it */
	memset(&cfg, 0, sizeof cfg);
	cfg.n_layers = 1, cfg.head_dim = hd, cfg.dim = H * hd, cfg.vocab_size = 1;
	shrink_config_set_uniform(&cfg, H, KV, 4 * hd);
	shrink_kv *kv;
	if (shrink_kv_new(spec, &cfg, (int)L + 8, &kv, err))
		return NULL;
	const int64_t kvd = (int64_t)KV * hd;
	float *rk = malloc((size_t)kvd * 4), *rv = malloc((size_t)kvd * 4);
	for (int64_t p = 0; p < L; p++) {
		float *kp = k ? k + p * kvd : rk, *vp = v ? v + p * kvd : rv;
		for (int64_t i = 0; i < kvd; i++) /* channel 5 of every head 8x wider: outlier channels for GEAR */
			kp[i] = (float)ref_normal(rng) * (i % hd == 5 ? 8 : 1), vp[i] = (float)ref_normal(rng);
		if (kv->ops->store(kv, 0, (int)p, kp, vp, err)) {
			shrink_kv_free(kv);
			kv = NULL;
			break;
		}
		if (p + 1 == prefill)
			shrink_kv_end_forward(kv);
	}
	free(rk), free(rv);
	return kv;
}
