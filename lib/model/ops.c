/* ops.c: embed, rmsnorm, linear, rope, swiglu and add on CPU. Each op is a
 * plain function over float arrays; linear hands the matrix work to kernels/. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"
#include "repack.h"
#include "shrink/quant.h"

/* below this many tokens quantized weights take the int8 path (kernels.h) */
#define LINEAR_I8_MAX_TOKENS 8

float op_elem(const shrink_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case SHRINK_F16: return shrink_f16_to_f32(((const uint16_t *)t->data)[i]);
	case SHRINK_BF16: return shrink_bf16_to_f32(((const uint16_t *)t->data)[i]);
	default: return ((const float *)t->data)[i];
	}
}

static void row_to_f32(const shrink_tensor *t, int64_t row, int64_t width, float *out)
{
	const char *base = t->data;
	if (t->dtype == SHRINK_QPACKED) {
		shrink_kq q = repack_kq_of(t->data);
		shrink_kernel_dequant_q_row(&q, row, out);
		return;
	}
	switch (t->dtype) {
	case SHRINK_F16: shrink_kernel_f16_to_f32((const uint16_t *)base + row * width, out, width); break;
	case SHRINK_BF16: shrink_kernel_bf16_to_f32((const uint16_t *)base + row * width, out, width); break;
	default: memcpy(out, (const float *)base + row * width, (size_t)width * 4); break;
	}
}

void op_embed(const shrink_tensor *emb, const int *tokens, int n_tok, int dim, float *out)
{
	for (int t = 0; t < n_tok; t++)
		row_to_f32(emb, tokens[t], dim, out + (int64_t)t * dim);
}

void op_rmsnorm(const float *x, const shrink_tensor *w, int n_tok, int dim, float eps, float *out)
{
	for (int t = 0; t < n_tok; t++) {
		const float *xt = x + (int64_t)t * dim;
		float *ot = out + (int64_t)t * dim;
		double ss = 0;
		for (int i = 0; i < dim; i++)
			ss += (double)xt[i] * xt[i];
		float scale = (float)(1.0 / sqrt(ss / dim + eps));
		for (int i = 0; i < dim; i++)
			ot[i] = xt[i] * scale * op_elem(w, i);
	}
}

static shrink_kw_type kw_type(shrink_dtype d)
{
	return d == SHRINK_F16 ? SHRINK_KW_F16 : d == SHRINK_BF16 ? SHRINK_KW_BF16 : SHRINK_KW_F32;
}

/* Quantized weights: the load-time interleaved copy where there is one
 * (repack.c), else the container layout; decode (few tokens) takes int8
 * activations and integer dots where the scheme allows, as llama.cpp does
 * (rounds x slightly), else codes expanded to float. */
static void linear_quantized(const shrink_tensor *w, const float *x, int n_tok, float *y, float *scratch)
{
	const shrink_kqx *px = repack_find(w->data);
	if (px && shrink_kernel_linear_qx(px, x, n_tok, y, scratch, SHRINK_KI8_AUTO) == 0)
		return;
	shrink_kq q = repack_kq_of(w->data);
	bool i8 = n_tok < LINEAR_I8_MAX_TOKENS && shrink_kernel_linear_q_i8_ok(&q);
	if (!i8 || shrink_kernel_linear_q_i8(&q, x, n_tok, y, SHRINK_KI8_AUTO) != 0)
		shrink_kernel_linear_q(&q, x, n_tok, y, scratch);
}

void op_linear(const shrink_tensor *w, const shrink_tensor *b, const float *x, int n_tok, float *y, float *scratch)
{
	int64_t rows = w->shape[0], cols = w->shape[1];
	if (w->dtype == SHRINK_QPACKED)
		linear_quantized(w, x, n_tok, y, scratch);
	else
		shrink_kernel_linear(w->data, kw_type(w->dtype), rows, cols, x, n_tok, y, scratch);
	if (b)
		for (int t = 0; t < n_tok; t++)
			for (int64_t r = 0; r < rows; r++)
				y[t * rows + r] += op_elem(b, r);
}

void op_rope_inv_freq(const shrink_config *c, float *inv_freq)
{
	int hd = c->head_dim;
	for (int i = 0; i < hd / 2; i++) {
		double f = pow((double)c->rope_theta, -2.0 * i / hd);
		if (c->rope_scaling == SHRINK_ROPE_SCALING_LINEAR) {
			f /= c->rope_factor;
		} else if (c->rope_scaling == SHRINK_ROPE_SCALING_LLAMA3) {
			double wavelen = 2 * M_PI / f, orig = c->rope_orig_max_pos;
			double low_wl = orig / c->rope_low_freq_factor, high_wl = orig / c->rope_high_freq_factor;
			if (wavelen > low_wl) {
				f /= c->rope_factor;
			} else if (wavelen >= high_wl) {
				double smooth = (orig / wavelen - c->rope_low_freq_factor) /
						(c->rope_high_freq_factor - c->rope_low_freq_factor);
				f = (1 - smooth) * f / c->rope_factor + smooth * f;
			}
		}
		inv_freq[i] = (float)f;
	}
}

static void rotate(float *v, int hd, const float *cs, const float *sn)
{
	int half = hd / 2;
	for (int i = 0; i < half; i++) {
		float x0 = v[i], x1 = v[i + half];
		v[i] = x0 * cs[i] - x1 * sn[i];
		v[i + half] = x0 * sn[i] + x1 * cs[i];
	}
}

void op_rope(float *q, float *k, int n_tok, int pos0, int n_heads, int n_kv, int hd, const float *inv_freq)
{
	float cs[512], sn[512]; /* head_dim <= 1024 is checked at load */
	for (int t = 0; t < n_tok; t++) {
		for (int i = 0; i < hd / 2; i++) {
			double a = (double)(pos0 + t) * inv_freq[i];
			cs[i] = (float)cos(a);
			sn[i] = (float)sin(a);
		}
		for (int h = 0; h < n_heads; h++)
			rotate(q + ((int64_t)t * n_heads + h) * hd, hd, cs, sn);
		for (int h = 0; h < n_kv; h++)
			rotate(k + ((int64_t)t * n_kv + h) * hd, hd, cs, sn);
	}
}

void op_swiglu(float *g, const float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void op_add(float *x, const float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		x[i] += y[i];
}
