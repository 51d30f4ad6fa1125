/* shrink-quantize: quantize a model's weights (RTN or GPTQ) into a shrink
 * container. Argument handling, the plan printout and signal-safe cleanup
 * live here; planning and quantizing are lib/quant. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_RULES 256

typedef struct {
	const char *model, *out, *data, *tokenizer;
	long bits, group, samples, ctx, threads, embed_bits;
	unsigned long seed;
	double damp;
	bool sym, gptq, act_order, clip, dry_run, json;
	shrink_tensor_rule rules[MAX_RULES];
	int n_rules;
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
	       "      --tokenizer FILE     take the tokenizer from FILE (GGUF or tokenizer.json)\n"
	       "      --dry-run            print the per-tensor plan, size and bits per weight; write nothing\n"
	       "      --json               print the plan and the result as one JSON object\n"
	       "  -t, --threads N          threads (default: all cores); the output does not depend on it\n"
	       "      --progress           show a progress bar even when stderr is not a terminal\n"
	       "  -q, --quiet              no progress bar\n"
	       "  -h, --help               show this help and exit\n"
	       "  -V, --version            show the version and exit\n\n"
	       "Norms and biases stay in float. Exit status: 0 success, 2 usage error, 3 bad input,\n"
	       "4 I/O or resource failure (e.g. disk full), 5 internal error.\n",
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

static void parse(int argc, char **argv, options *o)
{
	enum { O_SYM = 256, O_METHOD, O_CLIP, O_DATA, O_SAMPLES, O_CTX, O_SEED, O_DAMP, O_ACT, O_EMBED, O_TB, O_KEEP,
	       O_TOK, O_DRY, O_JSON, O_PROGRESS };
	static const struct option longs[] = {
		{"output", 1, 0, 'o'},	      {"bits", 1, 0, 'b'},	   {"group", 1, 0, 'g'},   {"sym", 0, 0, O_SYM},
		{"method", 1, 0, O_METHOD},   {"clip-search", 0, 0, O_CLIP}, {"data", 1, 0, O_DATA}, {"samples", 1, 0, O_SAMPLES},
		{"ctx", 1, 0, O_CTX},	      {"seed", 1, 0, O_SEED},	   {"damp", 1, 0, O_DAMP}, {"act-order", 0, 0, O_ACT},
		{"embed-bits", 1, 0, O_EMBED}, {"tensor-bits", 1, 0, O_TB}, {"keep", 1, 0, O_KEEP}, {"tokenizer", 1, 0, O_TOK},
		{"dry-run", 0, 0, O_DRY},     {"json", 0, 0, O_JSON},	   {"threads", 1, 0, 't'}, {"progress", 0, 0, O_PROGRESS},
		{"quiet", 0, 0, 'q'},	      {"help", 0, 0, 'h'},	   {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
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

static char *recipe(const options *o, int argc, char **argv)
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
	printf("total: %zu bytes (%.2f MiB) for %lld parameters, %.4f bits per weight (f16: %.2f MiB)%s%s\n",
	       plan->total_bytes, plan->total_bytes / 1048576.0, (long long)plan->n_params, plan->bpw,
	       plan->n_params * 2 / 1048576.0, wrote ? "; written to " : "", wrote ? out : "");
}

static void print_plan_json(const shrink_quant_plan *plan, bool wrote, const char *out)
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
	char *s = cJSON_PrintUnformatted(r);
	puts(s);
	free(s);
	cJSON_Delete(r);
}

static void on_signal(int sig)
{
	shrink_outfile_unlink_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	cli_prog = "shrink-quantize";
	options o = {.bits = 4, .group = 128, .samples = 32, .ctx = 512, .damp = 0.01, .embed_bits = 8};
	parse(argc, argv, &o);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit becomes a write error (exit 4), not a kill */
	shrink_set_threads(o.threads ? (int)o.threads : cli_default_threads());
	shrink_model *m = cli_load_model(o.model, o.tokenizer, o.gptq && !o.dry_run);
	if (m->config->max_seq > 0 && o.ctx > m->config->max_seq)
		o.ctx = m->config->max_seq;
	char *rec = recipe(&o, argc, argv);
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
		.recipe_json = rec,
		.progress = cli_progress,
	};
	shrink_quant_plan plan;
	shrink_error err = {0};
	if (o.embed_bits > 0 && o.embed_bits < 2)
		cli_usage_error("--embed-bits %ld: expected 0 or 2..8", o.embed_bits);
	if (shrink_quant_plan_make(m, &p, &plan, &err))
		cli_exit_error(&err);
	int *windows = NULL;
	if (!o.dry_run) {
		if (o.gptq)
			p.calib_tokens = windows = calibration_windows(m, &o);
		if (shrink_quantize_model(m, &plan, &p, o.out, &err))
			cli_exit_error(&err);
	}
	if (o.json)
		print_plan_json(&plan, !o.dry_run, o.out);
	else if (o.dry_run || !cli_quiet)
		print_plan_text(&plan, !o.dry_run, o.out);
	free(windows);
	free(rec);
	shrink_quant_plan_free(&plan);
	shrink_model_free(m);
	return 0;
}
