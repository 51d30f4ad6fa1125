/* eval.h: perplexity with llama.cpp's protocol, KL divergence and top-1
 * agreement against a reference model on the same tokens, and gates. */
#ifndef SHRINK_EVAL_H
#define SHRINK_EVAL_H

#include "model.h"

typedef struct {
	int ctx;        /* window length; each window scored on its second half */
	int max_chunks; /* 0 = all */
	const char *kv_spec;
	void (*progress)(void *user, int done, int total);
	void *user;
} shrink_ppl_params;

typedef struct {
	double ppl, ppl_err, nll_mean;
	size_t n_scored;
	int n_chunks;
	double seconds, tokens_per_s;
	double kv_bytes_per_token, kv_f16_bytes_per_token; /* measured at the end of a window */
	/* against a reference model (when given) */
	bool has_ref;
	double ref_ppl, ref_ppl_err, delta_ppl, ppl_ratio;
	double kl_mean, kl_median, kl_p99, kl_max, top1;
} shrink_ppl_result;

shrink_status shrink_eval_perplexity(const shrink_model *m, const shrink_model *ref, const int *tokens, size_t n_tokens,
				     const shrink_ppl_params *p, shrink_ppl_result *r, shrink_error *err);

#endif
