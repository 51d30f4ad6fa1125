/* quantize.h: quantizing a whole model into a shrink container.
 * A plan (one scheme per tensor, from defaults, --tensor-bits rules and --keep
 * rules) is made first; running it streams tensor by tensor (RTN) or layer by
 * layer (GPTQ, each layer calibrated on the outputs of the already-quantized
 * layers before it), so peak memory stays near one layer plus buffers. */
#ifndef SHRINK_QUANTIZE_H
#define SHRINK_QUANTIZE_H

#include "model.h"
#include "quant.h"

typedef enum { SHRINK_METHOD_RTN, SHRINK_METHOD_GPTQ } shrink_qmethod;

typedef struct {
	const char *regex; /* POSIX extended, matched against HF tensor names */
	int bits;          /* 0 = keep in float */
} shrink_tensor_rule;

typedef struct {
	shrink_qscheme scheme;        /* linear layers */
	int embed_bits;               /* embeddings and output head (default 8) */
	const shrink_tensor_rule *rules; /* later rules win; applied after the defaults */
	int n_rules;
	shrink_qmethod method;
	bool clip_search;
	shrink_gptq_params gptq;
	const int *calib_tokens; /* GPTQ: calibration windows, n_samples x ctx tokens */
	int n_samples, ctx;
	const char *recipe_json; /* the program's own record (program, version, arguments, ...) */
	void (*progress)(void *user, int done, int total);
	void *user;
} shrink_quantize_params;

typedef struct {
	char name[SHRINK_NAME_MAX];
	bool quantized;
	shrink_qscheme scheme;
	int64_t rows, cols;
	shrink_dtype dtype; /* stored dtype when kept in float */
	size_t n_bytes;     /* bytes in the output */
	int64_t n_params;
} shrink_plan_entry;

typedef struct {
	shrink_plan_entry *e;
	size_t n;
	size_t total_bytes;
	int64_t n_params;
	double bpw; /* total bits / parameters, everything included */
} shrink_quant_plan;

shrink_status shrink_quant_plan_make(const shrink_model *m, const shrink_quantize_params *p, shrink_quant_plan *plan,
				     shrink_error *err);
void shrink_quant_plan_free(shrink_quant_plan *plan);
/* Quantize and write `out_path` (crash-safe: temporary file, fsync, rename). */
shrink_status shrink_quantize_model(const shrink_model *m, const shrink_quant_plan *plan,
				    const shrink_quantize_params *p, const char *out_path, shrink_error *err);

#endif
