/* kv_kivi.c: the KIVI backbone for one chunk of T tokens of one KV head.
 * Keys are quantized per channel over groups of `group` consecutive tokens
 * (outlier channels get their own range); values per token over groups of
 * `group` consecutive channels of the head's own vector (not of the flattened
 * H*d vector: a load reads one head, and with group <= head_dim both agree).
 * Also the record layout shared with GEAR. Decoding is kv_decode.c's; it keeps
 * no float tokens and no state: streaming and the float buffer are kv_stream.c's. */
#include <string.h>

#include "kv_impl.h"

void shrink_kv_side_layout(shrink_kv_side *s, bool keys, int T, int d, int bits, int group, float outliers,
			   int max_rank)
{
	memset(s, 0, sizeof *s);
	s->keys = keys;
	s->T = T, s->d = d, s->bits = bits, s->max_rank = max_rank;
	s->group = keys ? group : (group < d ? group : d);
	s->n_params = keys ? T / group * d : T * ((d + s->group - 1) / s->group);
	s->n_vec = keys ? d : T;
	s->vec_len = keys ? T : d;
	s->n_side = shrink_kv_outliers_per_side(outliers, s->vec_len);
	size_t n_out = (size_t)s->n_vec * 2 * s->n_side;
	s->off_min = (size_t)s->n_params * 2;
	s->off_oval = s->off_min + (size_t)s->n_params * 2;
	s->idx8 = s->vec_len <= 256;
	s->off_oidx = s->off_oval + n_out * 2;
	s->off_u = (s->off_oidx + n_out * (s->idx8 ? 1 : 2) + 1) & ~(size_t)1; /* f16 factors follow */
	s->off_vt = s->off_u + (size_t)T * max_rank * 2;
	s->off_codes = s->off_vt + (size_t)max_rank * d * 2;
	s->row_bytes = (size_t)shrink_kvq_row_bytes(d, bits);
	s->rec_bytes = (s->off_codes + (size_t)T * s->row_bytes + 1) & ~(size_t)1;
	s->avx2 = shrink_kv_side_avx2(s);
}

size_t shrink_kv_side_bytes(const shrink_kv_side *s, int rank)
{
	return s->rec_bytes - (size_t)(s->max_rank - rank) * (s->T + s->d) * 2;
}

static void encode_rows(const shrink_kv_side *s, const float *x, int t0, int t1, const float *min, const float *inv,
			int per_channel, uint8_t *rec)
{
	int levels = (1 << s->bits) - 1, d = s->d;
	uint8_t codes[SHRINK_KV_MAX_HEAD_DIM];
	for (int t = t0; t < t1; t++) {
		const float *row = x + (size_t)t * d;
		for (int j = 0; j < d; j++) {
			int g = per_channel ? j : j / s->group;
			codes[j] = (uint8_t)shrink_kvq_code(row[j], min[g], inv[g], levels);
		}
		shrink_kvq_pack_row(codes, d, s->bits, rec + s->off_codes + (size_t)t * s->row_bytes);
	}
}

/* the ranges of params [p0, p0 + n) as floats: min and 1 / scale (0 for a zero scale) */
static void params_float(const shrink_kv_side *s, const uint8_t *rec, int p0, int n, float *min, float *inv)
{
	const uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	for (int i = 0; i < n; i++) {
		float scale = shrink_kvq_h2f(sc[p0 + i]);
		min[i] = shrink_kvq_h2f(mn[p0 + i]);
		inv[i] = scale > 0 ? 1 / scale : 0;
	}
}

static void encode_keys(const shrink_kv_side *s, const float *x, uint8_t *rec)
{
	int d = s->d, G = s->group;
	uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	float min[SHRINK_KV_MAX_HEAD_DIM], inv[SHRINK_KV_MAX_HEAD_DIM];
	for (int g = 0; g < s->T / G; g++) {
		for (int j = 0; j < d; j++)
			shrink_kvq_range(x + (size_t)g * G * d + j, G, d, s->bits, &sc[g * d + j], &mn[g * d + j]);
		params_float(s, rec, g * d, d, min, inv);
		encode_rows(s, x, g * G, g * G + G, min, inv, 1, rec);
	}
}

static void encode_values(const shrink_kv_side *s, const float *x, uint8_t *rec)
{
	int d = s->d, G = s->group, n_g = s->n_params / s->T;
	uint16_t *sc = shrink_kv_rec16(rec, 0), *mn = shrink_kv_rec16(rec, s->off_min);
	float min[SHRINK_KV_MAX_HEAD_DIM], inv[SHRINK_KV_MAX_HEAD_DIM];
	for (int t = 0; t < s->T; t++) {
		for (int g = 0; g < n_g; g++) {
			int n = d - g * G < G ? d - g * G : G;
			shrink_kvq_range(x + (size_t)t * d + g * G, n, 1, s->bits, &sc[t * n_g + g], &mn[t * n_g + g]);
		}
		params_float(s, rec, t * n_g, n_g, min, inv);
		encode_rows(s, x, t, t + 1, min, inv, 0, rec);
	}
}

void shrink_kv_kivi_encode(const shrink_kv_side *s, const float *x, uint8_t *rec)
{
	if (s->keys)
		encode_keys(s, x, rec);
	else
		encode_values(s, x, rec);
}
