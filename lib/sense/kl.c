/* kl.c: measured sensitivity (MixDQ's direct metric): the mean over every
 * position of every calibration window of KL(P || P_i,b), where P is the
 * model's next-token distribution and P_i,b the same model with tensor i alone
 * round-to-nearest quantized to scheme b. Runs the inference forward pass on a
 * shadow model whose tensor set borrows the original weights and points one
 * tensor at a float32 buffer at a time; with a device (shrink_calib_params's
 * device) the shadow runs there and only the changed tensor is sent again.
 * Reference log-probabilities and probabilities are kept for all windows
 * (refused above MAX_REF_BYTES: lower --samples or --ctx), so each position
 * costs one exp per vocabulary entry. Not here: quantizing several tensors at
 * once, perplexity (lib/eval). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sense_impl.h"

#define MAX_REF_BYTES ((size_t)2 << 30)
#define MAX_BATCH 512

static void shadow_free(shrink_model *m)
{
	if (!m)
		return;
	shrink_model_set_device(m, "cpu", NULL); /* frees the device copy */
	free(m->layers);
	shrink_tensor_set_free(&m->file.weights);
	free(m);
}

static shrink_status shadow_new(const shrink_model *src, shrink_model **out, shrink_error *err)
{
	shrink_model *m = calloc(1, sizeof *m);
	if (!m)
		return shrink_fail(err, SHRINK_EIO, "out of memory");
	snprintf(m->path, sizeof m->path, "%s", src->path);
	m->file.format = src->file.format;
	m->file.config = src->file.config;
	shrink_status st = SHRINK_OK;
	for (size_t i = 0; !st && i < src->file.weights.n; i++) {
		shrink_tensor *t = shrink_tensor_set_add(&m->file.weights, err);
		if (!t) {
			st = SHRINK_EIO;
			break;
		}
		*t = src->file.weights.tensors[i];
		t->owned = NULL;
	}
	if (!st)
		st = shrink_model_bind(m, err);
	if (st) {
		shadow_free(m);
		return st;
	}
	*out = m;
	return SHRINK_OK;
}

static shrink_status forward_window(const shrink_model *m, shrink_state *s, const int *tokens, int n, float *logits,
				    shrink_error *err)
{
	size_t vocab = (size_t)m->config->vocab_size;
	shrink_state_reset(s);
	for (int i = 0; i < n; i += MAX_BATCH) {
		int k = n - i < MAX_BATCH ? n - i : MAX_BATCH;
		shrink_status st = shrink_forward(m, s, tokens + i, k, logits + i * vocab, true, err);
		if (st)
			return st;
	}
	return SHRINK_OK;
}

static void log_softmax_rows(float *z, int rows, int vocab)
{
#pragma omp parallel for if ((int64_t)rows * vocab > 65536)
	for (int r = 0; r < rows; r++) {
		float *row = z + (size_t)r * vocab, mx = row[0];
		for (int j = 1; j < vocab; j++)
			mx = row[j] > mx ? row[j] : mx;
		double sum = 0;
		for (int j = 0; j < vocab; j++)
			sum += exp((double)row[j] - mx);
		float lse = (float)(mx + log(sum));
		for (int j = 0; j < vocab; j++)
			row[j] -= lse;
	}
}

/* sum over rows of KL(ref || softmax(z)) = sum_j p_j (lp_j - z_j + lse(z)): lp
 * and p hold the reference's log-probabilities and probabilities; row_kl: rows scratch */
static double kl_rows(const float *lp, const float *p, const float *z, int rows, int vocab, double *row_kl)
{
#pragma omp parallel for if ((int64_t)rows * vocab > 65536)
	for (int r = 0; r < rows; r++) {
		const float *lpr = lp + (size_t)r * vocab, *pr = p + (size_t)r * vocab, *q = z + (size_t)r * vocab;
		float mx = q[0];
		for (int j = 1; j < vocab; j++)
			mx = q[j] > mx ? q[j] : mx;
		double sum = 0, kl = 0;
		for (int j = 0; j < vocab; j++)
			sum += exp((double)q[j] - mx);
		double lse = mx + log(sum);
		for (int j = 0; j < vocab; j++)
			kl += (double)pr[j] * ((double)lpr[j] - q[j] + lse);
		row_kl[r] = kl;
	}
	double total = 0;
	for (int r = 0; r < rows; r++)
		total += row_kl[r];
	return total;
}

typedef struct {
	shrink_model *m;
	shrink_state *state;
	float *ref, *ref_p, *logits, *wq; /* ref: log-probabilities, ref_p: probabilities */
	double *row_kl;
	size_t vocab;
	int done, total; /* (tensor, scheme) pairs */
} kl_work;

static shrink_status tensor_kl(sense_run *r, kl_work *k, const shrink_param *p, shrink_tensor_sense *ts,
			       shrink_error *err)
{
	const shrink_calib_params *cp = r->p;
	shrink_tensor *t = shrink_tensor_set_find_mut(&k->m->file.weights, p->src->name);
	shrink_tensor saved = *t;
	shrink_status st = SHRINK_OK;
	for (int b = 0; !st && b < shrink_calib_n_schemes(cp); b++) {
		shrink_qscheme s = sense_scheme(cp, b);
		if ((st = sense_qdq(r->theta + p->offset, p->rows, p->cols, &s, k->wq, err)))
			break;
		t->data = k->wq, t->dtype = SHRINK_F32, t->n_bytes = (size_t)p->numel * sizeof(float);
		st = shrink_model_reload_weight(k->m, t, err);
		double total = 0;
		for (int w = 0; !st && w < cp->n_samples; w++) {
			size_t at = (size_t)w * cp->ctx * k->vocab;
			st = forward_window(k->m, k->state, r->windows + (size_t)w * cp->ctx, cp->ctx, k->logits, err);
			if (!st)
				total += kl_rows(k->ref + at, k->ref_p + at, k->logits, cp->ctx, (int)k->vocab, k->row_kl);
		}
		ts->schemes[b].kl = total / ((double)cp->n_samples * cp->ctx);
		sense_progress(r, "kl", ++k->done, k->total);
	}
	*t = saved;
	if (!st)
		st = shrink_model_reload_weight(k->m, t, err);
	return st ? shrink_fail_prefix(err, "tensor '%s': ", p->name) : SHRINK_OK;
}

static shrink_status kl_setup(sense_run *r, kl_work *k, shrink_error *err)
{
	const shrink_calib_params *cp = r->p;
	k->vocab = (size_t)r->lay.config->vocab_size;
	size_t ref_n = (size_t)cp->n_samples * cp->ctx * k->vocab, max_numel = 0;
	if (ref_n * 2 * sizeof(float) > MAX_REF_BYTES)
		return shrink_fail(err, SHRINK_EUSAGE,
				   "--measure kl keeps %zu MiB of reference probabilities (limit %zu MiB): lower "
				   "--samples or --ctx",
				   ref_n * 2 * sizeof(float) >> 20, MAX_REF_BYTES >> 20);
	for (int i = 0; i < r->lay.n; i++) {
		max_numel = (size_t)r->lay.params[i].numel > max_numel ? (size_t)r->lay.params[i].numel : max_numel;
		k->total += r->lay.params[i].cols > 0 ? shrink_calib_n_schemes(cp) : 0;
	}
	shrink_status st = shadow_new(r->model, &k->m, err);
	if (!st && cp->device)
		st = shrink_model_set_device(k->m, cp->device, err);
	if (!st)
		st = shrink_state_new(k->m, cp->ctx, cp->ctx < MAX_BATCH ? cp->ctx : MAX_BATCH, "f32", &k->state, err);
	if (st)
		return st;
	k->ref = malloc(ref_n * sizeof *k->ref);
	k->ref_p = malloc(ref_n * sizeof *k->ref_p);
	k->logits = malloc((size_t)cp->ctx * k->vocab * sizeof *k->logits);
	k->wq = malloc(max_numel * sizeof *k->wq);
	k->row_kl = malloc((size_t)cp->ctx * sizeof *k->row_kl);
	if (!k->ref || !k->ref_p || !k->logits || !k->wq || !k->row_kl)
		return shrink_fail(err, SHRINK_EIO, "out of memory for --measure kl");
	for (int w = 0; !st && w < cp->n_samples; w++) {
		float *lp = k->ref + (size_t)w * cp->ctx * k->vocab;
		st = forward_window(k->m, k->state, r->windows + (size_t)w * cp->ctx, cp->ctx, lp, err);
		if (!st)
			log_softmax_rows(lp, cp->ctx, (int)k->vocab);
	}
	if (!st) {
#pragma omp parallel for
		for (int64_t i = 0; i < (int64_t)ref_n; i++)
			k->ref_p[i] = (float)exp((double)k->ref[i]);
	}
	return st;
}

shrink_status sense_kl_pass(sense_run *r, shrink_error *err)
{
	kl_work k = {0};
	shrink_status st = kl_setup(r, &k, err);
	for (int i = 0; !st && i < r->lay.n; i++)
		if (r->lay.params[i].cols > 0)
			st = tensor_kl(r, &k, &r->lay.params[i], &r->out->tensors[i], err);
	shrink_state_free(k.state);
	shadow_free(k.m);
	free(k.ref), free(k.ref_p), free(k.logits), free(k.wq), free(k.row_kl);
	return st;
}
