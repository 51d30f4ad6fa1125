/* perplexity.c: llama.cpp's perplexity protocol, so numbers are comparable:
 * the text is tokenized once (with BOS), cut into windows of ctx tokens, the
 * first token of each window replaced by BOS, and each window scored on its
 * second half (positions ctx/2 .. ctx-2 predicting the next token). With a
 * reference model the same windows also give per-token KL(P_ref || P),
 * top-1 agreement and the reference perplexity. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/eval.h"

#define EVAL_BATCH 128

typedef struct {
	const shrink_model *m;
	shrink_state *s;
	float *logits; /* [EVAL_BATCH, vocab] */
} runner;

typedef struct {
	double nll, nll2;
	size_t count;
} nll_acc;

static void log_softmax(const float *x, int n, double *out)
{
	double mx = x[0], sum = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > mx)
			mx = x[i];
	for (int i = 0; i < n; i++)
		sum += exp((double)x[i] - mx);
	double lse = mx + log(sum);
	for (int i = 0; i < n; i++)
		out[i] = (double)x[i] - lse;
}

static void add_nll(nll_acc *a, double nll)
{
	a->nll += nll;
	a->nll2 += nll * nll;
	a->count++;
}

static void finish(const nll_acc *a, double *ppl, double *err, double *mean)
{
	double m = a->count ? a->nll / a->count : 0;
	double var = a->count > 1 ? (a->nll2 / a->count - m * m) / (a->count - 1) : 0;
	*mean = m;
	*ppl = exp(m);
	*err = *ppl * sqrt(var > 0 ? var : 0);
}

static shrink_status runner_new(runner *r, const shrink_model *m, int ctx, const char *kv_spec, shrink_error *err)
{
	r->m = m;
	r->logits = malloc((size_t)EVAL_BATCH * m->config->vocab_size * sizeof(float));
	if (!r->logits)
		return shrink_fail(err, SHRINK_EIO, "out of memory for logits");
	return shrink_state_new(m, ctx, EVAL_BATCH, kv_spec, &r->s, err);
}

static void runner_free(runner *r)
{
	shrink_state_free(r->s);
	free(r->logits);
}

static int bos_of(const shrink_model *m)
{
	const shrink_vocab_spec *v = &m->file.vocab;
	return v->kind != SHRINK_VOCAB_NONE && v->add_bos ? v->bos_id : -1;
}

typedef struct {
	nll_acc main, ref;
	double *kl;
	size_t n_kl, n_top1;
	double *lp, *lq;
	double seconds;
} scorer;

static void score_row(scorer *sc, const float *lm, const float *lr, int vocab, int target)
{
	log_softmax(lm, vocab, sc->lp);
	add_nll(&sc->main, -sc->lp[target]);
	if (!lr)
		return;
	log_softmax(lr, vocab, sc->lq);
	add_nll(&sc->ref, -sc->lq[target]);
	double kl = 0;
	for (int i = 0; i < vocab; i++)
		kl += exp(sc->lq[i]) * (sc->lq[i] - sc->lp[i]);
	sc->kl[sc->n_kl++] = kl > 0 ? kl : 0;
	sc->n_top1 += shrink_argmax(lm, vocab) == shrink_argmax(lr, vocab);
}

static shrink_status eval_window(runner *rm, runner *rr, const int *win, int ctx, scorer *sc, shrink_error *err)
{
	int first = ctx / 2, vocab = rm->m->config->vocab_size;
	shrink_state_reset(rm->s);
	if (rr)
		shrink_state_reset(rr->s);
	for (int b0 = 0; b0 < ctx; b0 += EVAL_BATCH) {
		int n = ctx - b0 < EVAL_BATCH ? ctx - b0 : EVAL_BATCH;
		double t0 = shrink_now();
		shrink_status st = shrink_forward(rm->m, rm->s, win + b0, n, rm->logits, true, err);
		sc->seconds += shrink_now() - t0;
		if (!st && rr)
			st = shrink_forward(rr->m, rr->s, win + b0, n, rr->logits, true, err);
		if (st)
			return st;
		for (int j = b0 > first ? b0 : first; j < b0 + n && j < ctx - 1; j++)
			score_row(sc, rm->logits + (size_t)(j - b0) * vocab, rr ? rr->logits + (size_t)(j - b0) * vocab : NULL,
				  vocab, win[j + 1]);
	}
	return SHRINK_OK;
}

static double kv_bytes(const shrink_state *s)
{
	const shrink_kv *kv = shrink_state_kv(s);
	return (double)kv->ops->n_bytes(kv);
}

static double f16_bytes_per_token(const shrink_config *c)
{
	double b = 0;
	for (int l = 0; l < c->n_layers; l++)
		b += 2.0 * 2.0 * c->layers[l].n_kv_heads * c->head_dim;
	return b;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void kl_stats(scorer *sc, shrink_ppl_result *r)
{
	if (!sc->n_kl)
		return;
	double sum = 0;
	for (size_t i = 0; i < sc->n_kl; i++)
		sum += sc->kl[i];
	qsort(sc->kl, sc->n_kl, sizeof(double), cmp_double);
	r->kl_mean = sum / sc->n_kl;
	r->kl_median = sc->kl[sc->n_kl / 2];
	r->kl_p99 = sc->kl[(size_t)(0.99 * (sc->n_kl - 1))];
	r->kl_max = sc->kl[sc->n_kl - 1];
	r->top1 = (double)sc->n_top1 / sc->n_kl;
}

static shrink_status check_inputs(const shrink_model *m, const shrink_model *ref, size_t n_tokens,
				  const shrink_ppl_params *p, shrink_error *err)
{
	if (p->ctx < 4)
		return shrink_fail(err, SHRINK_EUSAGE, "--ctx %d: too small (at least 4)", p->ctx);
	if (n_tokens < (size_t)p->ctx)
		return shrink_fail(err, SHRINK_EINPUT, "the text has %zu tokens, fewer than one window of --ctx %d", n_tokens,
				   p->ctx);
	if (ref && ref->config->vocab_size != m->config->vocab_size)
		return shrink_fail(err, SHRINK_EINPUT, "%s: vocabulary of %d tokens differs from %s (%d)", ref->path,
				   ref->config->vocab_size, m->path, m->config->vocab_size);
	return SHRINK_OK;
}

shrink_status shrink_eval_perplexity(const shrink_model *m, const shrink_model *ref, const int *tokens, size_t n_tokens,
				     const shrink_ppl_params *p, shrink_ppl_result *r, shrink_error *err)
{
	memset(r, 0, sizeof *r);
	shrink_status st = check_inputs(m, ref, n_tokens, p, err);
	if (st)
		return st;
	int ctx = p->ctx, n_chunks = (int)(n_tokens / (size_t)ctx), vocab = m->config->vocab_size, bos = bos_of(m);
	if (p->max_chunks > 0 && p->max_chunks < n_chunks)
		n_chunks = p->max_chunks;
	runner rm = {0}, rr = {0};
	scorer sc = {0};
	int *win = malloc((size_t)ctx * sizeof *win);
	sc.lp = malloc((size_t)vocab * sizeof(double));
	sc.lq = malloc((size_t)vocab * sizeof(double));
	sc.kl = ref ? malloc((size_t)n_chunks * ctx * sizeof(double)) : NULL;
	if (!win || !sc.lp || !sc.lq || (ref && !sc.kl))
		st = shrink_fail(err, SHRINK_EIO, "out of memory");
	if (!st)
		st = runner_new(&rm, m, ctx, p->kv_spec, err);
	if (!st && ref)
		st = runner_new(&rr, ref, ctx, NULL, err); /* the reference keeps an exact cache */
	for (int c = 0; c < n_chunks && !st; c++) {
		memcpy(win, tokens + (size_t)c * ctx, (size_t)ctx * sizeof *win);
		if (bos >= 0)
			win[0] = bos;
		st = eval_window(&rm, ref ? &rr : NULL, win, ctx, &sc, err);
		if (!st)
			r->kv_bytes_per_token = kv_bytes(rm.s) / ctx;
		if (!st && p->progress)
			p->progress(p->user, c + 1, n_chunks);
	}
	if (!st) {
		r->n_chunks = n_chunks;
		r->n_scored = sc.main.count;
		finish(&sc.main, &r->ppl, &r->ppl_err, &r->nll_mean);
		r->seconds = sc.seconds;
		r->tokens_per_s = sc.seconds > 0 ? (double)n_chunks * ctx / sc.seconds : 0;
		r->kv_f16_bytes_per_token = f16_bytes_per_token(m->config);
		if (ref) {
			double mean;
			r->has_ref = true;
			finish(&sc.ref, &r->ref_ppl, &r->ref_ppl_err, &mean);
			r->delta_ppl = r->ppl - r->ref_ppl;
			r->ppl_ratio = r->ppl / r->ref_ppl;
			kl_stats(&sc, r);
		}
	}
	runner_free(&rm);
	if (ref)
		runner_free(&rr);
	free(win), free(sc.lp), free(sc.lq), free(sc.kl);
	return st;
}
