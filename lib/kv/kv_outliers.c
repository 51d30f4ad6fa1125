/* kv_outliers.c: GEAR's sparse part. Per vector (a key channel over the
 * chunk's tokens, or a value token over the head's channels) the n largest and
 * n smallest entries are kept exactly in f16 with their index, and replaced by
 * the mean of the remaining entries before quantization. GEAR's code uses the
 * mean of the whole vector; the mean of the rest lies inside the rest's range,
 * so the replacement never widens the quantization range. Selection is a plain
 * repeated scan: n is a few entries per vector. Restoring is kv_stream.c's. */
#include <math.h>
#include <string.h>

#include "kv_impl.h"
#include "shrink/tensor.h"

int shrink_kv_outliers_per_side(float s, int len)
{
	if (s <= 0)
		return 0;
	int n = (int)lroundf(s * (float)len / 2);
	if (n < 1)
		n = 1;
	return n > (len - 1) / 2 ? (len - 1) / 2 : n;
}

/* index of the largest (sign > 0) or smallest (sign < 0) entry not yet taken; ties go to the lowest index */
static int extreme(const float *x, int len, int stride, const uint8_t *taken, int sign)
{
	int best = -1;
	for (int i = 0; i < len; i++) {
		if (taken[i])
			continue;
		float v = x[(size_t)i * stride];
		if (best < 0 || (sign > 0 ? v > x[(size_t)best * stride] : v < x[(size_t)best * stride]))
			best = i;
	}
	return best;
}

void shrink_kv_outliers_extract(float *x, int len, int stride, int n_side, uint16_t *val_h, uint16_t *idx)
{
	uint8_t taken[SHRINK_KV_MAX_CHUNK > SHRINK_KV_MAX_HEAD_DIM ? SHRINK_KV_MAX_CHUNK : SHRINK_KV_MAX_HEAD_DIM];
	memset(taken, 0, (size_t)len);
	for (int e = 0; e < 2 * n_side; e++) {
		int i = extreme(x, len, stride, taken, e < n_side ? 1 : -1);
		taken[i] = 1;
		idx[e] = (uint16_t)i;
		val_h[e] = shrink_f32_to_f16(x[(size_t)i * stride]);
	}
	double sum = 0;
	for (int i = 0; i < len; i++)
		if (!taken[i])
			sum += x[(size_t)i * stride];
	float mean = (float)(sum / (len - 2 * n_side));
	for (int e = 0; e < 2 * n_side; e++)
		x[(size_t)idx[e] * stride] = mean;
}
