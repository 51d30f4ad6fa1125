/* scheme.c: quantization scheme checks and size accounting (bytes, bits per weight).
 * Deliberately not here: anything that touches weights. */
#include "quant_impl.h"

static bool bits_supported(int bits)
{
	return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}

static bool group_supported(int g)
{
	return g == 0 || (g >= 16 && g <= 1024 && (g & (g - 1)) == 0);
}

shrink_status shrink_qscheme_check(const shrink_qscheme *s, int64_t cols, shrink_error *err)
{
	if (!s)
		return shrink_fail(err, SHRINK_EUSAGE, "no quantization scheme given");
	if (!bits_supported(s->bits))
		return shrink_fail(err, SHRINK_EUSAGE, "unsupported bit width %d (2, 3, 4, 5, 6 or 8)", s->bits);
	if (!group_supported(s->group_size))
		return shrink_fail(
		    err, SHRINK_EUSAGE,
		    "unsupported group size %d (0 for one group per row, or a power of two from 16 to 1024)",
		    s->group_size);
	if (cols < 1)
		return shrink_fail(err, SHRINK_EINPUT, "matrix has %lld columns; need at least 1", (long long)cols);
	if (cols > INT64_MAX / 8)
		return shrink_fail(err, SHRINK_EINPUT, "matrix has too many columns (%lld)", (long long)cols);
	return SHRINK_OK;
}

int64_t shrink_qscheme_groups(const shrink_qscheme *s, int64_t cols)
{
	if (!s->group_size)
		return 1;
	return (cols + s->group_size - 1) / s->group_size;
}

size_t shrink_qrow_bytes(int bits, int64_t cols)
{
	return (size_t)((cols * bits + 7) / 8);
}

size_t shrink_qmatrix_bytes(const shrink_qscheme *s, int64_t rows, int64_t cols)
{
	size_t per_group = s->symmetric ? 2 : 3;
	size_t row = shrink_qrow_bytes(s->bits, cols) + per_group * (size_t)shrink_qscheme_groups(s, cols);
	return (size_t)rows * row;
}

double shrink_qscheme_bpw(const shrink_qscheme *s, int64_t rows, int64_t cols)
{
	if (rows < 1 || cols < 1)
		return 0;
	return 8.0 * (double)shrink_qmatrix_bytes(s, rows, cols) / ((double)rows * (double)cols);
}
