/* windows.c: cutting calibration windows out of a tokenized text, at start
 * offsets drawn from a seeded GSL generator (so a seed names the windows).
 * Not here: reading or tokenizing the text (the program does), shuffling or
 * deduplicating windows (they may overlap when the text is short). */
#include <gsl/gsl_rng.h>
#include <string.h>

#include "sense_impl.h"

shrink_status shrink_calib_windows(const int *tokens, size_t n_tokens, int n_samples, int ctx, int bos, uint64_t seed,
				   int *windows, shrink_error *err)
{
	if (n_samples < 1 || ctx < 2)
		return shrink_fail(err, SHRINK_EUSAGE, "calibration: %d windows of %d tokens (need >= 1 of >= 2)",
				   n_samples, ctx);
	size_t from_text = (size_t)ctx - (bos >= 0 ? 1 : 0);
	if (n_tokens < from_text)
		return shrink_fail(err, SHRINK_EINPUT,
				   "calibration text has %zu tokens, fewer than one window of %d (lower --ctx)",
				   n_tokens, ctx);
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	if (!r)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	gsl_rng_set(r, (unsigned long)seed);
	for (int s = 0; s < n_samples; s++) {
		size_t start = gsl_rng_uniform_int(r, n_tokens - from_text + 1);
		int *w = windows + (size_t)s * ctx;
		if (bos >= 0)
			*w++ = bos;
		memcpy(w, tokens + start, from_text * sizeof *w);
	}
	gsl_rng_free(r);
	return SHRINK_OK;
}
