/* shrink-calibrate: run calibration text through a model and write how
 * sensitive each weight tensor is to quantization (HAWQ-V2 traces, the proxy
 * Hessian, activation statistics, measured KL) as a calibration file, with the
 * imatrix and the Pareto frontier as side files on request.
 * Arguments, messages and exit codes only: the work is lib/sense. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "shrink/sense.h"

typedef struct {
	const char *model, *data, *output, *tokenizer, *imatrix, *pareto, *metric;
	long threads;
	shrink_calib_params p;
} options;

_Noreturn static void usage(void)
{
	printf("Usage: %s [OPTION]... MODEL -d TEXT\n"
	       "Measure how sensitive each weight tensor of MODEL is to quantization on calibration TEXT and\n"
	       "write a calibration file (JSON): HAWQ-V2 Hessian traces with standard errors, the layer-local\n"
	       "proxy, activation statistics and, on request, the KL divergence per tensor and scheme.\n\n"
	       "  -d, --data TEXT        calibration text (.gz read transparently; - for standard input)\n"
	       "  -o, --output FILE      calibration file (default: standard output)\n"
	       "  -n, --samples N        windows of calibration text (default 16)\n"
	       "  -c, --ctx N            tokens per window (default 256)\n"
	       "      --seed N           seed of the windows and the Rademacher vectors (default 0)\n"
	       "      --hessian MODE     hutchinson, proxy (no backward pass) or none (default hutchinson)\n"
	       "      --hvp METHOD       forward or central differences of gradients (default forward)\n"
	       "      --hvp-step X       difference step relative to the RMS weight (default 0.001)\n"
	       "      --tol X            stop a tensor once its trace moves by at most X relative (default 0.001)\n"
	       "      --min-iter N       Hutchinson iterations at least (default 10)\n"
	       "      --max-iter N       Hutchinson iterations at most (default 100)\n"
	       "      --checkpoint       keep only block inputs and recompute blocks in the backward pass\n"
	       "      --bits LIST        candidate bit widths, comma-separated (default 2,3,4,5,6,8)\n"
	       "      --group LIST       group sizes, comma-separated (up to 4; each bit width is tried\n"
	       "                         with each), 0 = one group per row (default 128)\n"
	       "      --asym             asymmetric quantization (default symmetric)\n"
	       "      --measure kl       also measure the KL divergence with each tensor alone quantized\n"
	       "      --device DEV       where --measure kl runs the model: cpu (default) or cuda\n"
	       "      --imatrix FILE     write per-channel activation mean squares (safetensors)\n"
	       "      --pareto FILE      write the Pareto frontier of size against summed sensitivity (TSV)\n"
	       "      --pareto-metric M  omega, proxy or kl (default omega with traces, else proxy)\n"
	       "      --tokenizer FILE   take the tokenizer from FILE (GGUF or tokenizer.json)\n"
	       "  -t, --threads N        threads (default: all cores); results do not depend on it\n"
	       "      --progress         show progress bars even when standard error is not a terminal\n"
	       "  -q, --quiet            no progress bars and no summary\n"
	       "  -h, --help             show this help and exit\n"
	       "  -V, --version          show the version and exit\n\n"
	       "Exit status: 0 success, 2 usage error, 3 bad input, 4 I/O or resource failure, 5 internal error.\n",
	       cli_prog);
	exit(0);
}

static void parse_bits(const char *s, shrink_calib_params *p)
{
	char *end;
	p->n_bits = 0;
	for (;;) {
		if (p->n_bits == SHRINK_CALIB_MAX_SCHEMES)
			cli_usage_error("--bits %s: at most %d bit widths", s, SHRINK_CALIB_MAX_SCHEMES);
		long b = strtol(s, &end, 10);
		if (end == s || (*end && *end != ',') || b < 2 || b > 8 || b == 7)
			cli_usage_error("--bits: expected a comma-separated list of 2, 3, 4, 5, 6, 8");
		for (int i = 0; i < p->n_bits; i++)
			if (p->bits[i] == b)
				cli_usage_error("--bits: %ld given twice", b);
		p->bits[p->n_bits++] = (int)b;
		if (!*end)
			return;
		s = end + 1;
	}
}

static void parse_groups(const char *s, shrink_calib_params *p)
{
	char *end;
	p->n_groups = 0;
	for (;;) {
		if (p->n_groups == SHRINK_CALIB_MAX_GROUPS)
			cli_usage_error("--group %s: at most %d group sizes", s, SHRINK_CALIB_MAX_GROUPS);
		long g = strtol(s, &end, 10);
		if (end == s || (*end && *end != ',') || g < 0 || g > 1024)
			cli_usage_error("--group: expected a comma-separated list of group sizes (0..1024)");
		for (int i = 0; i < p->n_groups; i++)
			if (p->groups[i] == g)
				cli_usage_error("--group: %ld given twice", g);
		p->groups[p->n_groups++] = (int)g;
		if (!*end)
			break;
		s = end + 1;
	}
	p->group_size = p->groups[0];
	if (p->n_groups == 1)
		p->n_groups = 0; /* one group size: the file looks as before */
}

static int pick(const char *opt, const char *v, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	cli_usage_error("%s %s: unknown value", opt, v);
}

enum { O_SEED = 256, O_HESSIAN, O_HVP, O_STEP, O_TOL, O_MIN, O_MAX, O_CKPT, O_BITS, O_GROUP, O_ASYM, O_MEASURE,
       O_IMATRIX, O_PARETO, O_METRIC, O_TOK, O_PROGRESS, O_DEV };

static const struct option longs[] = {
	{"data", 1, 0, 'd'},	      {"output", 1, 0, 'o'},	  {"samples", 1, 0, 'n'},
	{"ctx", 1, 0, 'c'},	      {"seed", 1, 0, O_SEED},	  {"hessian", 1, 0, O_HESSIAN},
	{"hvp", 1, 0, O_HVP},	      {"hvp-step", 1, 0, O_STEP}, {"tol", 1, 0, O_TOL},
	{"min-iter", 1, 0, O_MIN},    {"max-iter", 1, 0, O_MAX},  {"checkpoint", 0, 0, O_CKPT},
	{"bits", 1, 0, O_BITS},	      {"group", 1, 0, O_GROUP},	  {"asym", 0, 0, O_ASYM},
	{"measure", 1, 0, O_MEASURE}, {"imatrix", 1, 0, O_IMATRIX}, {"pareto", 1, 0, O_PARETO},
	{"pareto-metric", 1, 0, O_METRIC}, {"tokenizer", 1, 0, O_TOK}, {"threads", 1, 0, 't'},
	{"progress", 0, 0, O_PROGRESS}, {"device", 1, 0, O_DEV},  {"quiet", 0, 0, 'q'},	  {"help", 0, 0, 'h'},
	{"version", 0, 0, 'V'},	      {0, 0, 0, 0}};

static void parse_long(int c, options *o)
{
	static const char *const hessians[] = {"hutchinson", "proxy", "none"}, *const hvps[] = {"central", "forward"};
	shrink_calib_params *p = &o->p;
	switch (c) {
	case O_SEED: p->seed = (uint64_t)cli_long("--seed", optarg, 0, 1L << 53); break;
	case O_HESSIAN: p->hessian = (shrink_hessian_mode)pick("--hessian", optarg, hessians, 3); break;
	case O_HVP: p->hvp = (shrink_hvp_method)pick("--hvp", optarg, hvps, 2); break;
	case O_STEP: p->hvp_step = cli_double("--hvp-step", optarg, 1e-8, 1); break;
	case O_TOL: p->tol = cli_double("--tol", optarg, 0, 1); break;
	case O_MIN: p->min_iter = (int)cli_long("--min-iter", optarg, 1, 1000000); break;
	case O_MAX: p->max_iter = (int)cli_long("--max-iter", optarg, 1, 1000000); break;
	case O_CKPT: p->checkpoint = true; break;
	case O_BITS: parse_bits(optarg, p); break;
	case O_GROUP: parse_groups(optarg, p); break;
	case O_ASYM: p->symmetric = false; break;
	case O_MEASURE:
		if (strcmp(optarg, "kl") != 0)
			cli_usage_error("--measure %s: only 'kl' is measured", optarg);
		p->measure_kl = true;
		break;
	case O_IMATRIX: o->imatrix = optarg; break;
	case O_PARETO: o->pareto = optarg; break;
	case O_METRIC: o->metric = optarg; break;
	case O_TOK: o->tokenizer = optarg; break;
	case O_PROGRESS: cli_progress_forced = true; break;
	case O_DEV:
		if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0)
			cli_usage_error("--device %s: expected cpu or cuda", optarg);
		p->device = optarg;
		break;
	default: cli_usage_error("unknown option");
	}
}

static void parse(int argc, char **argv, options *o)
{
	int c;
	while ((c = getopt_long(argc, argv, "d:o:n:c:t:qhV", longs, NULL)) != -1) {
		switch (c) {
		case 'd': o->data = optarg; break;
		case 'o': o->output = optarg; break;
		case 'n': o->p.n_samples = (int)cli_long("--samples", optarg, 1, 1 << 20); break;
		case 'c': o->p.ctx = (int)cli_long("--ctx", optarg, 2, 1 << 20); break;
		case 't': o->threads = cli_long("--threads", optarg, 1, 1024); break;
		case 'q': cli_quiet = true; break;
		case 'h': usage();
		case 'V': cli_version();
		default: parse_long(c, o);
		}
	}
	if (optind < argc)
		o->model = argv[optind++];
	if (optind < argc)
		cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->model)
		cli_usage_error("no model given");
	if (!o->data)
		cli_usage_error("no calibration text given (-d TEXT)");
	if (o->p.max_iter < o->p.min_iter)
		cli_usage_error("--max-iter %d is below --min-iter %d", o->p.max_iter, o->p.min_iter);
}

static shrink_metric pareto_metric(const options *o)
{
	static const char *const names[] = {"omega", "proxy", "kl"};
	shrink_metric m = o->metric ? (shrink_metric)pick("--pareto-metric", o->metric, names, 3)
				    : o->p.hessian == SHRINK_HESSIAN_HUTCHINSON ? SHRINK_METRIC_OMEGA
									: SHRINK_METRIC_PROXY;
	bool have = m == SHRINK_METRIC_OMEGA ? o->p.hessian == SHRINK_HESSIAN_HUTCHINSON
		    : m == SHRINK_METRIC_PROXY ? o->p.hessian != SHRINK_HESSIAN_NONE
					       : o->p.measure_kl;
	if (!have)
		cli_usage_error("--pareto-metric %s is not measured by this run (see --hessian and --measure)",
				names[m]);
	return m;
}

static void progress(void *user, const char *phase, int done, int total)
{
	static const char *last;
	if (phase != last && !cli_quiet && (cli_progress_forced || isatty(2)))
		fprintf(stderr, "%s: %s\n", cli_prog, phase);
	last = phase;
	cli_progress(user, done, total);
}

static void summary(const options *o, const shrink_calibration *c)
{
	if (cli_quiet)
		return;
	fprintf(stderr, "%s: %d tensors, %lld parameters, loss %.4f", cli_prog, c->n_tensors, (long long)c->n_params,
		c->loss);
	if (c->params.hessian == SHRINK_HESSIAN_HUTCHINSON) {
		int converged = 0;
		for (int i = 0; i < c->n_tensors; i++)
			converged += c->tensors[i].converged;
		fprintf(stderr, ", %d Hutchinson iterations, %d/%d traces converged", c->hutch_iterations, converged,
			c->n_tensors);
	}
	fprintf(stderr, "%s%s\n", o->output ? ", wrote " : "", o->output ? o->output : "");
}

static void write_outputs(const options *o, const shrink_calibration *c, shrink_metric metric)
{
	shrink_error err = {0};
	if (shrink_calibration_write(c, o->model, o->data, o->output ? o->output : "-", &err) ||
	    (o->imatrix && shrink_imatrix_write(c, o->imatrix, &err)) ||
	    (o->pareto && shrink_pareto_write(c, metric, o->pareto, &err)))
		cli_exit_error(&err);
}

int main(int argc, char **argv)
{
	cli_start("shrink-calibrate");
	options o = {0};
	shrink_calib_defaults(&o.p);
	parse(argc, argv, &o);
	shrink_metric metric = o.pareto ? pareto_metric(&o) : SHRINK_METRIC_OMEGA;
	shrink_set_threads(o.threads ? (int)o.threads : cli_default_threads());
	shrink_model *m = cli_load_model(o.model, o.tokenizer, true);
	size_t n_tokens;
	int *tokens = cli_tokenize_file(m, o.data, false, &n_tokens);
	shrink_error err = {0};
	if (n_tokens + (shrink_tokenizer_bos(m->tok) >= 0) < (size_t)o.p.ctx) {
		shrink_fail(&err, SHRINK_EINPUT, "%s: %zu tokens, fewer than one window of %d (lower --ctx)", o.data,
			    n_tokens, o.p.ctx);
		cli_exit_error(&err);
	}
	o.p.progress = progress;
	shrink_calibration c;
	if (shrink_calibrate(m, tokens, n_tokens, &o.p, &c, &err))
		cli_exit_error(&err);
	write_outputs(&o, &c, metric);
	summary(&o, &c);
	shrink_calibration_free(&c);
	free(tokens);
	shrink_model_free(m);
	return 0;
}
