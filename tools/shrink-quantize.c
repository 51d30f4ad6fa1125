/* shrink-quantize: quantize a model's weights (RTN or GPTQ) into a shrink
 * container, with one scheme for all or, under a size budget, one per tensor
 * chosen from a calibration file. Argument handling, the plan and allocation
 * printouts and signal-safe cleanup live here; planning and quantizing are
 * lib/quant, choosing schemes lib/alloc. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_RULES 256
#define MAX_COSTS 64

typedef struct {
	const char *model, *out, *data, *tokenizer;
	long bits, group, samples, ctx, threads, embed_bits;
	unsigned long seed;
	double damp;
	bool sym, gptq, act_order, clip, dry_run, json;
	shrink_tensor_rule rules[MAX_RULES];
	int n_rules;
	/* mixed precision under a budget */
	const char *calib, *cost_table;
	double budget_bpw, budget_size, cost_budget, time_limit;
	shrink_alloc_params alloc;
	shrink_cost_entry costs[MAX_COSTS];
} options;

_Noreturn static void usage(void)
{
	printf("Usage: %s [OPTION]... MODEL -o OUT\n"
	       "Quantize the weights of MODEL into OUT, a shrink container (a .safetensors file).\n\n"
	       "  -o, --output FILE        file to write (replaced only on success)\n"
	       "  -b, --bits B             bits per weight of the linear layers: 2, 3, 4, 5, 6 or 8 (default 4)\n"
	       "  -g, --group G            weights per scale: a power of two from 16 to 1024, or 0 for one\n"
	       "                           group per row (default 128)\n"
	       "      --sym                symmetric quantization (no zero points; default asymmetric)\n"
	       "      --method M           rtn (round to nearest, default) or gptq\n"
	       "      --clip-search        search each group's clipping range for the least weight error\n"
	       "      --data FILE          calibration text for gptq (.gz read transparently)\n"
	       "      --samples N          calibration windows (default 32)\n"
	       "      --ctx N              tokens per calibration window (default 512, at most the model's context)\n"
	       "      --seed S             choice of the calibration windows (default 0)\n"
	       "      --damp X             gptq damping, fraction of the mean Hessian diagonal (default 0.01)\n"
	       "      --act-order          gptq: quantize columns by decreasing Hessian diagonal\n"
	       "      --embed-bits B       bits of the embeddings and output head (default 8; 0 keeps them in float)\n"
	       "      --tensor-bits RE=B   bits B for the tensors whose name matches the extended regular\n"
	       "                           expression RE (repeatable; the last match wins; B=0 keeps float)\n"
	       "      --keep RE            keep matching tensors in float (same as --tensor-bits RE=0)\n"
	       "      --calib FILE         calibration file (shrink-calibrate) for --budget-bpw/--budget-size\n"
	       "      --budget-bpw X       choose a scheme per tensor from the calibration's candidates so that\n"
	       "                           the whole output has at most X bits per weight\n"
	       "      --budget-size SIZE   the same with at most SIZE bytes (suffix K, M, G: powers of 1024)\n"
	       "      --objective O        what the allocation minimises: hawq (sum of Omega, default), kl,\n"
	       "                           proxy, or decoupled (MixDQ: normalised Omega and KL)\n"
	       "      --weights A,B        decoupled: A * Omega/N_Omega + B * KL/N_KL (default 1,1)\n"
	       "      --metric-cap X       decoupled with one weight 0: that metric's normalised sum at most X\n"
	       "      --cost-table FILE    per-scheme cost per weight (lines: BITS GROUP|* COST), with\n"
	       "      --budget-cost X      at most X in total (bit operations, latency, ...)\n"
	       "      --time-limit S       stop the solver after S seconds with its best allocation (default none)\n"
	       "      --tokenizer FILE     take the tokenizer from FILE (GGUF or tokenizer.json)\n"
	       "      --dry-run            print the per-tensor plan, size and bits per weight; write nothing\n"
	       "      --json               print the plan and the result as one JSON object\n"
	       "  -t, --threads N          threads (default: all cores); the output does not depend on it\n"
	       "      --progress           show a progress bar even when stderr is not a terminal\n"
	       "  -q, --quiet              no progress bar\n"
	       "  -h, --help               show this help and exit\n"
	       "  -V, --version            show the version and exit\n\n"
	       "Norms and biases stay in float. Under a budget, --tensor-bits RE=B sets a minimum of B bits\n"
	       "for matching tensors. Exit status: 0 success, 2 usage error, 3 bad input (also a budget\n"
	       "nothing fits: the message gives the smallest feasible one), 4 I/O or resource failure (e.g.\n"
	       "disk full), 5 internal error.\n",
	       cli_prog);
	exit(0);
}

static void add_rule(options *o, const char *re, long bits)
{
	if (o->n_rules == MAX_RULES)
		cli_usage_error("too many --tensor-bits/--keep rules");
	o->rules[o->n_rules++] = (shrink_tensor_rule){re, (int)bits};
}

static void parse_rule(options *o, char *arg)
{
	char *eq = strrchr(arg, '=');
	if (!eq || eq == arg)
		cli_usage_error("--tensor-bits %s: expected REGEX=BITS", arg);
	*eq = '\0';
	add_rule(o, arg, cli_long("--tensor-bits", eq + 1, 0, 8));
}

/* "2.1G" -> bytes (K, M, G, T: powers of 1024) */
static double parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end), mul = 1;
	const char *units = "KMGT";
	const char *u = *end ? strchr(units, *end) : NULL;
	if (u && *end) {
		for (const char *c = units; c <= u; c++)
			mul *= 1024;
		end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (end == s || *end || !(v > 0) || !(v * mul < 9e18))
		cli_usage_error("--budget-size %s: expected a positive size such as 2.1G", s);
	return v * mul;
}

static void parse_weights(const char *s, double w[2])
{
	char *end;
	w[0] = strtod(s, &end);
	if (end == s || *end != ',')
		cli_usage_error("--weights %s: expected A,B", s);
	const char *b = end + 1;
	w[1] = strtod(b, &end);
	if (end == b || *end || !(w[0] >= 0) || !(w[1] >= 0) || w[0] + w[1] <= 0 || !isfinite(w[0] + w[1]))
		cli_usage_error("--weights %s: expected two non-negative numbers, not both 0", s);
}

/* Lines "BITS GROUP COST", GROUP * for any; # comments. */
static void read_cost_table(options *o)
{
	shrink_error err;
	char *text = NULL;
	size_t n;
	if (shrink_read_text(o->cost_table, &text, &n, &err))
		cli_exit_error(&err);
	int count = 0, line = 0;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		char group[32];
		int bits;
		double cost;
		if (l[strspn(l, " \t\r")] == '#' || l[strspn(l, " \t\r")] == '\0')
			continue;
		if (sscanf(l, "%d %31s %lf", &bits, group, &cost) != 3 || !isfinite(cost) || count == MAX_COSTS) {
			shrink_fail(&err, SHRINK_EINPUT, "%s: line %d: expected BITS GROUP|* COST (at most %d lines)",
				    o->cost_table, line, MAX_COSTS);
			cli_exit_error(&err);
		}
		o->costs[count++] = (shrink_cost_entry){bits, strcmp(group, "*") == 0 ? -1 : atoi(group), cost};
	}
	free(text);
	o->alloc.cost_table = o->costs, o->alloc.n_cost = count;
}

static void check_budget(options *o)
{
	bool budget = o->budget_bpw > 0 || o->budget_size > 0;
	if (o->budget_bpw > 0 && o->budget_size > 0)
		cli_usage_error("--budget-bpw and --budget-size: give one");
	if (budget != (o->calib != NULL))
		cli_usage_error(budget ? "a budget needs a calibration file (--calib FILE)"
				       : "--calib is used with --budget-bpw or --budget-size");
	if ((o->cost_table != NULL) != (o->cost_budget > 0))
		cli_usage_error("--cost-table and --budget-cost go together");
	if (o->cost_table && !budget)
		cli_usage_error("--cost-table needs --budget-bpw or --budget-size");
	if (o->alloc.cap > 0 && o->alloc.objective != SHRINK_OBJ_DECOUPLED)
		cli_usage_error("--metric-cap is for --objective decoupled");
	o->alloc.cost_budget = o->cost_budget;
	o->alloc.time_limit = o->time_limit;
}

static void parse(int argc, char **argv, options *o)
{
	enum { O_SYM = 256, O_METHOD, O_CLIP, O_DATA, O_SAMPLES, O_CTX, O_SEED, O_DAMP, O_ACT, O_EMBED, O_TB, O_KEEP,
	       O_TOK, O_DRY, O_JSON, O_PROGRESS, O_CALIB, O_BPW, O_BSIZE, O_OBJ, O_WEIGHTS, O_CAP, O_CTABLE, O_BCOST,
	       O_TLIM };
	static const struct option longs[] = {
		{"output", 1, 0, 'o'},	      {"bits", 1, 0, 'b'},	   {"group", 1, 0, 'g'},   {"sym", 0, 0, O_SYM},
		{"method", 1, 0, O_METHOD},   {"clip-search", 0, 0, O_CLIP}, {"data", 1, 0, O_DATA}, {"samples", 1, 0, O_SAMPLES},
		{"ctx", 1, 0, O_CTX},	      {"seed", 1, 0, O_SEED},	   {"damp", 1, 0, O_DAMP}, {"act-order", 0, 0, O_ACT},
		{"embed-bits", 1, 0, O_EMBED}, {"tensor-bits", 1, 0, O_TB}, {"keep", 1, 0, O_KEEP}, {"tokenizer", 1, 0, O_TOK},
		{"dry-run", 0, 0, O_DRY},     {"json", 0, 0, O_JSON},	   {"threads", 1, 0, 't'}, {"progress", 0, 0, O_PROGRESS},
		{"quiet", 0, 0, 'q'},	      {"help", 0, 0, 'h'},	   {"version", 0, 0, 'V'}, {"calib", 1, 0, O_CALIB},
		{"budget-bpw", 1, 0, O_BPW},  {"budget-size", 1, 0, O_BSIZE}, {"objective", 1, 0, O_OBJ},
		{"weights", 1, 0, O_WEIGHTS}, {"metric-cap", 1, 0, O_CAP}, {"cost-table", 1, 0, O_CTABLE},
		{"budget-cost", 1, 0, O_BCOST}, {"time-limit", 1, 0, O_TLIM}, {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "o:b:g:t:qhV", longs, NULL)) != -1) {
		switch (c) {
		case 'o': o->out = optarg; break;
		case 'b': o->bits = cli_long("--bits", optarg, 2, 8); break;
		case 'g': o->group = cli_long("--group", optarg, 0, 1 << 20); break;
		case O_SYM: o->sym = true; break;
		case O_METHOD:
			if (strcmp(optarg, "rtn") && strcmp(optarg, "gptq"))
				cli_usage_error("--method %s: expected rtn or gptq", optarg);
			o->gptq = strcmp(optarg, "gptq") == 0;
			break;
		case O_CLIP: o->clip = true; break;
		case O_DATA: o->data = optarg; break;
		case O_SAMPLES: o->samples = cli_long("--samples", optarg, 1, 1 << 20); break;
		case O_CTX: o->ctx = cli_long("--ctx", optarg, 2, 1 << 20); break;
		case O_SEED: o->seed = (unsigned long)cli_long("--seed", optarg, 0, 1L << 62); break;
		case O_DAMP: o->damp = cli_double("--damp", optarg, 0, 10); break;
		case O_ACT: o->act_order = true; break;
		case O_EMBED: o->embed_bits = cli_long("--embed-bits", optarg, 0, 8); break;
		case O_TB: parse_rule(o, optarg); break;
		case O_KEEP: add_rule(o, optarg, 0); break;
		case O_TOK: o->tokenizer = optarg; break;
		case O_DRY: o->dry_run = true; break;
		case O_JSON: o->json = true; break;
		case 't': o->threads = cli_long("--threads", optarg, 1, 1024); break;
		case O_PROGRESS: cli_progress_forced = true; break;
		case O_CALIB: o->calib = optarg; break;
		case O_BPW: o->budget_bpw = cli_double("--budget-bpw", optarg, 0.01, 64); break;
		case O_BSIZE: o->budget_size = parse_size(optarg); break;
		case O_OBJ:
			if (shrink_objective_parse(optarg) < 0)
				cli_usage_error("--objective %s: expected hawq, kl, proxy or decoupled", optarg);
			o->alloc.objective = (shrink_objective)shrink_objective_parse(optarg);
			break;
		case O_WEIGHTS: parse_weights(optarg, o->alloc.weight); break;
		case O_CAP: o->alloc.cap = cli_double("--metric-cap", optarg, 1e-12, 1e12); break;
		case O_CTABLE: o->cost_table = optarg; break;
		case O_BCOST: o->cost_budget = cli_double("--budget-cost", optarg, 1e-300, 1e300); break;
		case O_TLIM: o->time_limit = cli_double("--time-limit", optarg, 0.001, 1e6); break;
		case 'q': cli_quiet = true; break;
		case 'h': usage();
		case 'V': cli_version();
		default: cli_usage_error("unknown option");
		}
	}
	if (optind < argc)
		o->model = argv[optind++];
	if (optind < argc)
		cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->model)
		cli_usage_error("no model given");
	if (!o->out && !o->dry_run)
		cli_usage_error("no output given (-o OUT), and not --dry-run");
	if (o->gptq && !o->data && !o->dry_run)
		cli_usage_error("--method gptq needs calibration text (--data FILE)");
	check_budget(o);
}

/* The recipe records what shapes the output, not where it went or how fast:
 * output name, threads and progress flags are left out, so the same inputs
 * give the same bytes whatever those are. */
static bool recorded(const char *arg)
{
	static const char *skip[] = {"-o", "--output", "-t", "--threads", "-q", "--quiet", "--progress", "--json"};
	for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
		size_t n = strlen(skip[i]);
		if (strncmp(arg, skip[i], n) == 0 && (arg[n] == '\0' || arg[n] == '=' || (skip[i][1] != '-' && arg[n])))
			return false;
	}
	return true;
}

static int takes_value(const char *arg)
{
	return (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0 || strcmp(arg, "-t") == 0 ||
		strcmp(arg, "--threads") == 0);
}

/* The allocation: what was minimised under which budget, the solver's
 * verdict and each tensor's scheme. Times only on request (the recipe keeps
 * the same bytes for the same inputs). */
typedef struct {
	const shrink_calibration *c;
	const shrink_allocation *a;
	const shrink_quant_plan *plan;
	int64_t budget;
} allocation_view;

static cJSON *allocation_json(const options *o, const allocation_view *v, bool with_time)
{
	const shrink_allocation *a = v->a;
	const shrink_knapsack_solution *s = &a->solution;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "calibration", o->calib);
	cJSON_AddStringToObject(j, "objective", shrink_objective_name(o->alloc.objective));
	if (o->alloc.objective == SHRINK_OBJ_DECOUPLED) {
		cJSON *w = cJSON_AddArrayToObject(j, "weights");
		cJSON_AddItemToArray(w, cJSON_CreateNumber(o->alloc.weight[0]));
		cJSON_AddItemToArray(w, cJSON_CreateNumber(o->alloc.weight[1]));
		cJSON_AddNumberToObject(j, "metric_cap", o->alloc.cap);
	}
	cJSON_AddNumberToObject(j, "budget_bytes", (double)v->budget);
	cJSON_AddNumberToObject(j, "total_bytes", (double)v->plan->total_bytes);
	cJSON_AddNumberToObject(j, "fixed_bytes", (double)a->fixed_bytes);
	cJSON_AddNumberToObject(j, "value", s->cost);
	cJSON_AddStringToObject(j, "solver", "glpk");
	cJSON_AddStringToObject(j, "status", s->status);
	cJSON_AddNumberToObject(j, "gap", isfinite(s->gap) ? s->gap : -1);
	cJSON_AddNumberToObject(j, "lp_bound", s->lp_bound);
	if (with_time)
		cJSON_AddNumberToObject(j, "seconds", s->seconds);
	cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
	for (int i = 0; i < a->n; i++) {
		const shrink_plan_entry *e = &v->plan->e[a->entry[i]];
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "name", e->name);
		cJSON_AddNumberToObject(t, "bits", e->scheme.bits);
		cJSON_AddNumberToObject(t, "group", e->scheme.group_size);
		cJSON_AddItemToArray(ts, t);
	}
	return j;
}

static char *recipe(const options *o, int argc, char **argv, const allocation_view *v)
{
	cJSON *r = cJSON_CreateObject(), *args = cJSON_AddArrayToObject(r, "arguments");
	cJSON_AddStringToObject(r, "program", "shrink-quantize");
	cJSON_AddStringToObject(r, "version", shrink_version());
	for (int i = 1; i < argc; i++) {
		if (!recorded(argv[i])) {
			i += takes_value(argv[i]);
			continue;
		}
		cJSON_AddItemToArray(args, cJSON_CreateString(argv[i]));
	}
	if (o->gptq) {
		cJSON *c = cJSON_AddObjectToObject(r, "calibration");
		cJSON_AddStringToObject(c, "data", o->data);
		cJSON_AddNumberToObject(c, "samples", (double)o->samples);
		cJSON_AddNumberToObject(c, "ctx", (double)o->ctx);
		cJSON_AddNumberToObject(c, "seed", (double)o->seed);
	}
	if (v)
		cJSON_AddItemToObject(r, "allocation", allocation_json(o, v, false));
	char *s = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return s;
}

/* n_samples windows of ctx tokens at seeded random offsets (deterministic) */
static int *calibration_windows(const shrink_model *m, options *o)
{
	size_t n;
	int *all = cli_tokenize_file(m, o->data, false, &n);
	if (n < (size_t)o->ctx) {
		shrink_error err;
		shrink_fail(&err, SHRINK_EINPUT, "%s: %zu tokens, fewer than one window of --ctx %ld", o->data, n, o->ctx);
		cli_exit_error(&err);
	}
	int *w = malloc((size_t)o->samples * (size_t)o->ctx * sizeof *w);
	uint64_t state = o->seed * 6364136223846793005ull + 1442695040888963407ull;
	int bos = m->file.vocab.add_bos ? m->file.vocab.bos_id : -1;
	for (long i = 0; i < o->samples; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		size_t start = (size_t)((state >> 33) % (n - (size_t)o->ctx + 1));
		memcpy(w + i * o->ctx, all + start, (size_t)o->ctx * sizeof *w);
		if (bos >= 0)
			w[i * o->ctx] = bos;
	}
	free(all);
	return w;
}

static void scheme_text(const shrink_plan_entry *e, char *buf, size_t cap)
{
	if (!e->quantized)
		snprintf(buf, cap, "%s", shrink_dtype_name(e->dtype));
	else if (e->scheme.group_size)
		snprintf(buf, cap, "q%d g%d %s", e->scheme.bits, e->scheme.group_size, e->scheme.symmetric ? "sym" : "asym");
	else
		snprintf(buf, cap, "q%d row %s", e->scheme.bits, e->scheme.symmetric ? "sym" : "asym");
}

static void print_plan_total(const shrink_quant_plan *plan, bool wrote, const char *out);

static void print_plan_text(const shrink_quant_plan *plan, bool wrote, const char *out)
{
	char sch[64];
	printf("%-56s %-16s %-16s %12s\n", "tensor", "shape", "scheme", "bytes");
	for (size_t i = 0; i < plan->n; i++) {
		const shrink_plan_entry *e = &plan->e[i];
		char shape[48];
		snprintf(shape, sizeof shape, e->cols > 1 ? "[%lld, %lld]" : "[%lld]", (long long)e->rows, (long long)e->cols);
		scheme_text(e, sch, sizeof sch);
		printf("%-56s %-16s %-16s %12zu\n", e->name, shape, sch, e->n_bytes);
	}
	print_plan_total(plan, wrote, out);
}

static void print_plan_total(const shrink_quant_plan *plan, bool wrote, const char *out)
{
	printf("total: %zu bytes (%.2f MiB) for %lld parameters, %.4f bits per weight (f16: %.2f MiB)%s%s\n",
	       plan->total_bytes, plan->total_bytes / 1048576.0, (long long)plan->n_params, plan->bpw,
	       plan->n_params * 2 / 1048576.0, wrote ? "; written to " : "", wrote ? out : "");
}

static void print_allocation_text(const options *o, const allocation_view *v)
{
	const shrink_allocation *a = v->a;
	const shrink_knapsack_solution *s = &a->solution;
	printf("%-56s %4s %5s %12s %12s %12s\n", "tensor", "bits", "group", "bytes", "omega", "kl");
	for (int i = 0; i < a->n; i++) {
		const shrink_plan_entry *e = &v->plan->e[a->entry[i]];
		const shrink_scheme_sense *ss = &v->c->tensors[a->tensor[i]].schemes[a->scheme[i]];
		printf("%-56s %4d %5d %12zu %12.5g %12.5g\n", e->name, e->scheme.bits, e->scheme.group_size, e->n_bytes,
		       ss->omega, ss->kl);
	}
	printf("objective %s: %.9g; solver glpk %s, gap %g, LP bound %.9g, %.3f s\n",
	       shrink_objective_name(o->alloc.objective), s->cost, s->status, s->gap, s->lp_bound, s->seconds);
	printf("budget %lld bytes (%.4f bits per weight); %d tensors allocated, %lld bytes fixed\n", (long long)v->budget,
	       v->plan->n_params ? 8.0 * (double)v->budget / (double)v->plan->n_params : 0, a->n,
	       (long long)a->fixed_bytes);
}

static void print_plan_json(const shrink_quant_plan *plan, bool wrote, const char *out, cJSON *alloc)
{
	cJSON *r = cJSON_CreateObject(), *ts = cJSON_AddArrayToObject(r, "tensors");
	for (size_t i = 0; i < plan->n; i++) {
		const shrink_plan_entry *e = &plan->e[i];
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "name", e->name);
		cJSON_AddBoolToObject(t, "quantized", e->quantized);
		if (e->quantized) {
			cJSON_AddNumberToObject(t, "bits", e->scheme.bits);
			cJSON_AddNumberToObject(t, "group", e->scheme.group_size);
			cJSON_AddBoolToObject(t, "sym", e->scheme.symmetric);
		} else {
			cJSON_AddStringToObject(t, "dtype", shrink_dtype_name(e->dtype));
		}
		cJSON_AddNumberToObject(t, "params", (double)e->n_params);
		cJSON_AddNumberToObject(t, "bytes", (double)e->n_bytes);
		cJSON_AddItemToArray(ts, t);
	}
	cJSON_AddNumberToObject(r, "total_bytes", (double)plan->total_bytes);
	cJSON_AddNumberToObject(r, "n_params", (double)plan->n_params);
	cJSON_AddNumberToObject(r, "bpw", plan->bpw);
	if (wrote)
		cJSON_AddStringToObject(r, "output", out);
	if (alloc)
		cJSON_AddItemToObject(r, "allocation", alloc);
	char *s = cJSON_PrintUnformatted(r);
	puts(s);
	free(s);
	cJSON_Delete(r);
}

/* Read the calibration, solve under the budget, rewrite the plan. Under a
 * budget, --tensor-bits rules are minimum bits for the tensors they match. */
static void allocate(options *o, shrink_calibration *c, shrink_quant_plan *plan, shrink_allocation *a, int64_t *budget)
{
	shrink_error err = {0};
	if (shrink_calibration_read(o->calib, c, &err))
		cli_exit_error(&err);
	if (o->cost_table)
		read_cost_table(o);
	*budget = o->budget_size > 0 ? (int64_t)o->budget_size
				     : (int64_t)floor(o->budget_bpw * (double)plan->n_params / 8);
	o->alloc.budget_bytes = *budget;
	o->alloc.min_bits = o->rules, o->alloc.n_min_bits = o->n_rules;
	if (shrink_allocate(c, plan, &o->alloc, a, &err)) {
		shrink_fail_prefix(&err, "%s: ", o->calib);
		cli_exit_error(&err);
	}
}

static void on_signal(int sig)
{
	shrink_outfile_unlink_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	cli_start("shrink-quantize");
	options o = {.bits = 4, .group = 128, .samples = 32, .ctx = 512, .damp = 0.01, .embed_bits = 8,
		     .alloc = {.objective = SHRINK_OBJ_HAWQ, .weight = {1, 1}}};
	parse(argc, argv, &o);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit becomes a write error (exit 4), not a kill */
	shrink_set_threads(o.threads ? (int)o.threads : cli_default_threads());
	shrink_model *m = cli_load_model(o.model, o.tokenizer, o.gptq && !o.dry_run);
	if (m->config->max_seq > 0 && o.ctx > m->config->max_seq)
		o.ctx = m->config->max_seq;
	shrink_quantize_params p = {
		.scheme = {(int)o.bits, (int)o.group, o.sym},
		.embed_bits = (int)o.embed_bits,
		.rules = o.rules,
		.n_rules = o.n_rules,
		.method = o.gptq ? SHRINK_METHOD_GPTQ : SHRINK_METHOD_RTN,
		.clip_search = o.clip,
		.gptq = {o.damp, 128, o.act_order, o.clip},
		.n_samples = (int)o.samples,
		.ctx = (int)o.ctx,
		.progress = cli_progress,
	};
	shrink_quant_plan plan;
	shrink_error err = {0};
	if (o.embed_bits > 0 && o.embed_bits < 2)
		cli_usage_error("--embed-bits %ld: expected 0 or 2..8", o.embed_bits);
	if (shrink_quant_plan_make(m, &p, &plan, &err))
		cli_exit_error(&err);
	shrink_calibration calib = {0};
	shrink_allocation alloc = {0};
	allocation_view view = {&calib, &alloc, &plan, 0};
	if (o.calib)
		allocate(&o, &calib, &plan, &alloc, &view.budget);
	char *rec = recipe(&o, argc, argv, o.calib ? &view : NULL);
	p.recipe_json = rec;
	int *windows = NULL;
	if (!o.dry_run) {
		if (o.gptq)
			p.calib_tokens = windows = calibration_windows(m, &o);
		if (shrink_quantize_model(m, &plan, &p, o.out, &err))
			cli_exit_error(&err);
	}
	if (o.json) {
		print_plan_json(&plan, !o.dry_run, o.out, o.calib ? allocation_json(&o, &view, true) : NULL);
	} else if (o.calib && (o.dry_run || !cli_quiet)) {
		print_allocation_text(&o, &view);
		print_plan_total(&plan, !o.dry_run, o.out);
	} else if (o.dry_run || !cli_quiet) {
		print_plan_text(&plan, !o.dry_run, o.out);
	}
	shrink_allocation_free(&alloc);
	shrink_calibration_free(&calib);
	free(windows);
	free(rec);
	shrink_quant_plan_free(&plan);
	shrink_model_free(m);
	return 0;
}
