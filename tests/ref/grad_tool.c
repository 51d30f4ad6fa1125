/* grad_tool: test helper for the float64 NumPy references of the backward pass
 * and the Hessian (tests/ref/test_grad_ref.py, test_hessian_ref.py), and a side
 * by side timing of forward, gradient and Hessian-vector product.
 *   grad_tool grad  MODEL --tokens 1,2,3 [--checkpoint] [-o GRAD.f32]
 *   grad_tool hvp   MODEL --tokens ... [--seed S] [--step X] [--method central|forward] -o V_HV.f32
 *   grad_tool trace MODEL --tokens ... [--seed S] [--step X] [--method M] [--min-iter N] [--max-iter N] [--tol X]
 *   grad_tool bench MODEL [--ctx N] [--reps N]
 * Common: [--tokenizer F] [--threads N]. grad, hvp and trace print one JSON
 * object (loss, parameter layout, traces); binary outputs are little-endian
 * float32 in parameter order (hvp: v then H v). Not a user program. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shrink/shrink.h"
#include "shrink/sense.h"

typedef struct {
	const char *cmd, *model, *tokens, *tokenizer, *out, *method;
	int threads, min_iter, max_iter, ctx, reps;
	bool checkpoint;
	double step, tol;
	uint64_t seed;
} options;

static int fail(const shrink_error *err)
{
	fprintf(stderr, "grad_tool: %s\n", err->msg);
	return err->code ? (int)err->code : 5;
}

static int parse_tokens(const char *s, int **out)
{
	int n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	int *ids = malloc((size_t)n * sizeof *ids);
	char *end;
	for (int i = 0; i < n; i++) {
		ids[i] = (int)strtol(s, &end, 10);
		s = end + (*end == ',');
	}
	*out = ids;
	return n;
}

static bool parse(int argc, char **argv, options *o)
{
	*o = (options){.method = "central", .min_iter = 1, .max_iter = 100, .ctx = 256, .reps = 3, .step = 1e-3};
	if (argc < 3)
		return false;
	o->cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--checkpoint") == 0)
			o->checkpoint = true;
		else if (!v || a[0] != '-')
			o->model = a;
		else if ((++i, strcmp(a, "--tokens") == 0))
			o->tokens = v;
		else if (strcmp(a, "--tokenizer") == 0)
			o->tokenizer = v;
		else if (strcmp(a, "-o") == 0)
			o->out = v;
		else if (strcmp(a, "--method") == 0)
			o->method = v;
		else if (strcmp(a, "--threads") == 0)
			o->threads = atoi(v);
		else if (strcmp(a, "--seed") == 0)
			o->seed = strtoull(v, NULL, 10);
		else if (strcmp(a, "--step") == 0)
			o->step = atof(v);
		else if (strcmp(a, "--tol") == 0)
			o->tol = atof(v);
		else if (strcmp(a, "--min-iter") == 0)
			o->min_iter = atoi(v);
		else if (strcmp(a, "--max-iter") == 0)
			o->max_iter = atoi(v);
		else if (strcmp(a, "--ctx") == 0)
			o->ctx = atoi(v);
		else if (strcmp(a, "--reps") == 0)
			o->reps = atoi(v);
		else
			return false;
	}
	return o->model && (o->tokens || strcmp(o->cmd, "bench") == 0);
}

static cJSON *layout_json(const shrink_param_layout *lay)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < lay->n; i++) {
		const shrink_param *p = &lay->params[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", p->name);
		cJSON_AddNumberToObject(o, "offset", (double)p->offset);
		cJSON_AddNumberToObject(o, "numel", (double)p->numel);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static int write_f32(const char *path, const float *a, int64_t n, const float *b)
{
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(a, sizeof *a, (size_t)n, f) == (size_t)n &&
		  (!b || fwrite(b, sizeof *b, (size_t)n, f) == (size_t)n);
	if (f)
		ok &= fclose(f) == 0;
	if (!ok)
		perror(path);
	return ok ? 0 : 4;
}

static void print_json(cJSON *j)
{
	char *s = cJSON_Print(j);
	puts(s);
	free(s);
	cJSON_Delete(j);
}

typedef struct {
	shrink_model *m;
	shrink_param_layout lay;
	float *theta;
	shrink_train *train;
	int *ids, n;
	shrink_window_loss wl;
	shrink_state *state; /* bench: the inference pass */
	float *logits;
} setup;

static int setup_new(const options *o, int ctx, setup *s)
{
	shrink_error err = {0};
	memset(s, 0, sizeof *s);
	s->n = o->tokens ? parse_tokens(o->tokens, &s->ids) : 0;
	if (shrink_model_load(o->model, o->tokenizer, &s->m, &err) || shrink_param_layout_init(s->m, &s->lay, &err))
		return fail(&err);
	s->theta = malloc((size_t)s->lay.n_params * sizeof *s->theta);
	if (shrink_param_gather(&s->lay, s->theta, &err) ||
	    shrink_train_new(&s->lay, ctx ? ctx : s->n, o->checkpoint, &s->train, &err))
		return fail(&err);
	s->wl = (shrink_window_loss){s->train, s->ids, 1, s->n, 0};
	return 0;
}

static void setup_free(setup *s)
{
	shrink_train_free(s->train);
	shrink_state_free(s->state);
	free(s->logits);
	free(s->theta);
	shrink_param_layout_free(&s->lay);
	shrink_model_free(s->m);
	free(s->ids);
}

static int cmd_grad(const options *o, setup *s)
{
	shrink_error err = {0};
	float *g = calloc((size_t)s->lay.n_params, sizeof *g);
	double loss;
	if (shrink_train_grad(s->train, s->theta, s->ids, s->n, 1.0f, g, &loss, &err))
		return fail(&err);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "loss", loss);
	cJSON_AddNumberToObject(j, "n_params", (double)s->lay.n_params);
	cJSON_AddItemToObject(j, "params", layout_json(&s->lay));
	print_json(j);
	int rc = o->out ? write_f32(o->out, g, s->lay.n_params, NULL) : 0;
	free(g);
	return rc;
}

static shrink_hvp_method method_of(const options *o)
{
	return strcmp(o->method, "forward") == 0 ? SHRINK_HVP_FORWARD : SHRINK_HVP_CENTRAL;
}

static int cmd_hvp(const options *o, setup *s)
{
	shrink_error err = {0};
	int64_t n = s->lay.n_params;
	float *v = malloc((size_t)n * sizeof *v), *hv = malloc((size_t)n * sizeof *hv);
	uint64_t x = o->seed * 2654435761u + 12345;
	for (int64_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		v[i] = (x >> 63) ? 1.0f : -1.0f;
	}
	shrink_fd_hvp h;
	double eps = shrink_hvp_step(s->theta, n, o->step);
	if (shrink_fd_hvp_init(&h, shrink_window_grad, &s->wl, s->theta, n, method_of(o), eps, &err) ||
	    shrink_fd_hvp_apply(&h, v, hv, &err))
		return fail(&err);
	shrink_fd_hvp_free(&h);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "eps", eps);
	cJSON_AddItemToObject(j, "params", layout_json(&s->lay));
	print_json(j);
	int rc = o->out ? write_f32(o->out, v, n, hv) : 0;
	free(v), free(hv);
	return rc;
}

static int cmd_trace(const options *o, setup *s)
{
	shrink_error err = {0};
	int64_t n = s->lay.n_params, *start = malloc(((size_t)s->lay.n + 1) * sizeof *start);
	for (int i = 0; i < s->lay.n; i++)
		start[i] = s->lay.params[i].offset;
	start[s->lay.n] = n;
	shrink_fd_hvp h;
	shrink_trace *tr = calloc((size_t)s->lay.n, sizeof *tr);
	shrink_hutch_params hp = {o->min_iter, o->max_iter, o->tol, o->seed, NULL, NULL};
	int iters;
	double eps = shrink_hvp_step(s->theta, n, o->step);
	if (shrink_fd_hvp_init(&h, shrink_window_grad, &s->wl, s->theta, n, method_of(o), eps, &err) ||
	    shrink_hutchinson(n, s->lay.n, start, shrink_fd_hvp_apply, &h, &hp, tr, &iters, &err))
		return fail(&err);
	shrink_fd_hvp_free(&h);
	cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "traces");
	cJSON_AddNumberToObject(j, "iterations", iters);
	for (int i = 0; i < s->lay.n; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", s->lay.params[i].name);
		cJSON_AddNumberToObject(e, "trace", tr[i].trace);
		cJSON_AddNumberToObject(e, "se", tr[i].se);
		cJSON_AddNumberToObject(e, "iterations", tr[i].iterations);
		cJSON_AddItemToArray(a, e);
	}
	print_json(j);
	free(tr), free(start);
	return 0;
}

typedef shrink_status (*bench_fn)(setup *s, const int *tok, int n, float *buf, shrink_error *err);

static shrink_status b_infer(setup *s, const int *tok, int n, float *buf, shrink_error *err)
{
	if (!s->state && shrink_state_new(s->m, n, n, "f32", &s->state, err))
		return err->code;
	if (!s->logits)
		s->logits = malloc((size_t)n * s->m->config->vocab_size * sizeof *s->logits);
	shrink_state_reset(s->state);
	return shrink_forward(s->m, s->state, tok, n, s->logits, true, err);
}

static shrink_status b_loss(setup *s, const int *tok, int n, float *buf, shrink_error *err)
{
	double loss;
	return shrink_train_loss(s->train, s->theta, tok, n, &loss, err);
}

static shrink_status b_grad(setup *s, const int *tok, int n, float *buf, shrink_error *err)
{
	return shrink_train_grad(s->train, s->theta, tok, n, 1.0f, buf, NULL, err);
}

/* Best wall and process CPU seconds over reps (CPU time is the steadier
 * measure on a shared machine; with --threads 1 it is the work done). */
typedef struct {
	double wall, cpu;
} timing;

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void keep_best(timing *best, double w0, double c0)
{
	double w = shrink_now() - w0, c = cpu_now() - c0;
	best->wall = w < best->wall ? w : best->wall;
	best->cpu = c < best->cpu ? c : best->cpu;
}

static timing best_time(bench_fn fn, setup *s, const int *tok, int n, float *buf, int reps, shrink_error *err)
{
	timing best = {INFINITY, INFINITY};
	for (int r = 0; r < reps; r++) {
		double w0 = shrink_now(), c0 = cpu_now();
		if (fn(s, tok, n, buf, err))
			return best;
		keep_best(&best, w0, c0);
	}
	return best;
}

static timing time_hvp(setup *s, shrink_hvp_method m, const float *v, float *hv, int reps, shrink_error *err)
{
	shrink_fd_hvp h;
	timing best = {INFINITY, INFINITY};
	if (shrink_fd_hvp_init(&h, shrink_window_grad, &s->wl, s->theta, s->lay.n_params, m, 1e-4, err))
		return best;
	for (int r = 0; r <= reps; r++) { /* the first forward-differences call also computes g(theta) */
		double w0 = shrink_now(), c0 = cpu_now();
		if (shrink_fd_hvp_apply(&h, v, hv, err))
			break;
		if (r > 0)
			keep_best(&best, w0, c0);
	}
	shrink_fd_hvp_free(&h);
	return best;
}

/* One Hutchinson iteration (Rademacher draw, the --method product, per-tensor dots): the
 * time of a run of 3 iterations less that of a run of 1, halved, so that allocating and first
 * touching the vectors (once per run) is left out. */
static timing run_iterations(setup *s, shrink_fd_hvp *h, const int64_t *start, shrink_trace *tr, int k,
			     shrink_error *err)
{
	shrink_hutch_params hp = {k, k, 0, 0, NULL, NULL};
	int iters;
	double w0 = shrink_now(), c0 = cpu_now();
	shrink_hutchinson(s->lay.n_params, s->lay.n, start, shrink_fd_hvp_apply, h, &hp, tr, &iters, err);
	timing t = {shrink_now() - w0, cpu_now() - c0};
	return t;
}

static timing time_iteration(setup *s, shrink_hvp_method method, int reps, shrink_error *err)
{
	int64_t n = s->lay.n_params, *start = malloc(((size_t)s->lay.n + 1) * sizeof *start);
	for (int i = 0; i < s->lay.n; i++)
		start[i] = s->lay.params[i].offset;
	start[s->lay.n] = n;
	shrink_trace *tr = calloc((size_t)s->lay.n, sizeof *tr);
	shrink_fd_hvp h;
	timing best = {INFINITY, INFINITY};
	if (!shrink_fd_hvp_init(&h, shrink_window_grad, &s->wl, s->theta, n, method, 1e-4, err)) {
		run_iterations(s, &h, start, tr, 1, err); /* forward differences compute g(theta) here, once */
		for (int r = 0; r < reps && !err->code; r++) {
			timing one = run_iterations(s, &h, start, tr, 1, err), three = run_iterations(s, &h, start, tr, 3, err);
			best.wall = fmin(best.wall, (three.wall - one.wall) / 2);
			best.cpu = fmin(best.cpu, (three.cpu - one.cpu) / 2);
		}
		shrink_fd_hvp_free(&h);
	}
	free(tr), free(start);
	return best;
}

static void row(const char *what, timing t, timing base)
{
	printf("%-28s %10.4f %10.2f %10.4f %10.2f\n", what, t.wall, t.wall / base.wall, t.cpu, t.cpu / base.cpu);
}

static int cmd_bench(const options *o, setup *s)
{
	shrink_error err = {0};
	int n = o->ctx, V = s->m->config->vocab_size;
	int *tok = malloc((size_t)n * sizeof *tok);
	for (int i = 0; i < n; i++)
		tok[i] = (i * 7919 + 13) % V;
	s->wl = (shrink_window_loss){s->train, tok, 1, n, 0};
	int64_t np = s->lay.n_params;
	float *buf = calloc((size_t)np, sizeof *buf), *v = malloc((size_t)np * sizeof *v);
	for (int64_t i = 0; i < np; i++)
		v[i] = i % 3 ? 1.0f : -1.0f;
	timing t_inf = best_time(b_infer, s, tok, n, buf, o->reps, &err);
	timing t_loss = best_time(b_loss, s, tok, n, buf, o->reps, &err);
	timing t_grad = best_time(b_grad, s, tok, n, buf, o->reps, &err);
	timing t_hc = time_hvp(s, SHRINK_HVP_CENTRAL, v, buf, o->reps, &err);
	timing t_hf = time_hvp(s, SHRINK_HVP_FORWARD, v, buf, o->reps, &err);
	timing t_it = time_iteration(s, method_of(o), o->reps, &err);
	if (err.code)
		return fail(&err);
	printf("model %s: %lld parameters, %d tokens, %d threads, checkpoint %s (%.1f MiB of activations), best of %d\n",
	       o->model, (long long)np, n, shrink_get_threads(), o->checkpoint ? "on" : "off",
	       shrink_train_bytes(s->train) / 1048576.0, o->reps);
	printf("%-28s %10s %10s %10s %10s\n", "pass", "wall s", "x forward", "CPU s", "x forward");
	row("inference forward", t_inf, t_inf);
	row("training forward (loss)", t_loss, t_inf);
	row("gradient", t_grad, t_inf);
	row("Hv, central differences", t_hc, t_inf);
	row("Hv, forward differences", t_hf, t_inf);
	row(strcmp(o->method, "forward") == 0 ? "Hutchinson iteration (fwd)" : "Hutchinson iteration (central)", t_it,
	    t_inf);
	free(tok), free(buf), free(v);
	return 0;
}

int main(int argc, char **argv)
{
	options o;
	if (!parse(argc, argv, &o)) {
		fprintf(stderr,
			"usage: grad_tool grad|hvp|trace|bench MODEL [--tokens 1,2,3] [options] (see the source)\n");
		return 2;
	}
	if (o.threads > 0)
		shrink_set_threads(o.threads);
	setup s;
	int rc = setup_new(&o, strcmp(o.cmd, "bench") == 0 ? o.ctx : 0, &s);
	if (!rc) {
		if (strcmp(o.cmd, "grad") == 0)
			rc = cmd_grad(&o, &s);
		else if (strcmp(o.cmd, "hvp") == 0)
			rc = cmd_hvp(&o, &s);
		else if (strcmp(o.cmd, "trace") == 0)
			rc = cmd_trace(&o, &s);
		else if (strcmp(o.cmd, "bench") == 0)
			rc = cmd_bench(&o, &s);
		else
			rc = 2;
	}
	setup_free(&s);
	return rc;
}
