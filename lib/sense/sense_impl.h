/* sense_impl.h: what the parts of lib/sense share (internal). */
#ifndef SHRINK_SENSE_IMPL_H
#define SHRINK_SENSE_IMPL_H

#include <stdio.h>

#include "shrink/sense.h"

/* One calibration run's working set. */
typedef struct {
	const shrink_model *model;
	const shrink_calib_params *p;
	shrink_param_layout lay;
	float *theta; /* lay.n_params */
	int *windows; /* n_samples * ctx */
	shrink_train *train;
	shrink_calibration *out;
} sense_run;

static inline shrink_qscheme sense_scheme(const shrink_calib_params *p, int i)
{
	return shrink_calib_scheme(p, i);
}

static inline void sense_progress(const sense_run *r, const char *phase, int done, int total)
{
	if (r->p->progress)
		r->p->progress(r->p->user, phase, done, total);
}

/* out[rows * cols] = dequantize(RTN(w)) under scheme s. */
shrink_status sense_qdq(const float *w, int64_t rows, int64_t cols, const shrink_qscheme *s, float *out,
			shrink_error *err);
/* sum (a - b)^2 in double */
double sense_sq_diff(const float *a, const float *b, int64_t n);

/* Activation mean squares, the proxy and the loss, layer by layer (layerstats.c). */
shrink_status sense_layer_pass(sense_run *r, shrink_error *err);
/* Hutchinson traces of every parameter tensor (calibrate.c). */
shrink_status sense_trace_pass(sense_run *r, shrink_error *err);
/* Measured KL for every 2-D tensor and scheme (kl.c). */
shrink_status sense_kl_pass(sense_run *r, shrink_error *err);

/* Write size bytes to path ("-" = stdout), crash-safe (shrink_outfile). */
shrink_status sense_write_file(const char *path, const void *data, size_t size, shrink_error *err);

#endif
