/* shrink-eval: perplexity over a text with llama.cpp's protocol, divergence
 * from a reference model, speed, and quality gates for CI. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
	const char *model, *file, *ref, *tokenizer, *kv, *device;
	long ctx, chunks, threads;
	bool json, bench, verify;
	double max_ppl, max_ppl_ratio, max_kl, min_top1; /* NAN = gate off */
} options;

_Noreturn static void usage(void)
{
	printf("Usage: %s [OPTION]... MODEL -f TEXT\n"
	       "Measure the perplexity of MODEL on TEXT (windows of --ctx tokens, each scored on its\n"
	       "second half, as llama.cpp's llama-perplexity does), optionally against a reference model.\n\n"
	       "  -f, --file TEXT        text to evaluate (.gz read transparently; - for standard input)\n"
	       "  -c, --ctx N            window length in tokens (default 512)\n"
	       "      --chunks N         evaluate at most N windows (default: all)\n"
	       "      --ref MODEL        reference model: adds KL divergence, top-1 agreement and delta perplexity\n"
	       "      --tokenizer FILE   take the tokenizer from FILE (GGUF or tokenizer.json)\n"
	       "      --kv SPEC          KV cache: f32 (default), f16, kivi[:bits=2,group=64,residual=64] or\n"
	       "                         gear[:bits=2,rank=4,outliers=0.02,buffer=64]; compressed as tokens arrive\n"
	       "      --json             print one JSON object instead of text\n"
	       "      --bench            also measure decode speed (tokens/s, one token at a time)\n"
	       "      --verify           only check MODEL: every tensor's CRC-32 (shrink files), shapes and\n"
	       "                         types; print a summary and exit (0 intact, 3 damaged)\n"
	       "      --max-ppl X        gate: fail (exit 1) if perplexity > X\n"
	       "      --max-ppl-ratio X  gate: fail if perplexity / reference perplexity > X (needs --ref)\n"
	       "      --max-kl X         gate: fail if mean KL divergence > X (needs --ref)\n"
	       "      --min-top1 X       gate: fail if top-1 agreement < X, a fraction in [0,1] (needs --ref)\n"
	       "  -t, --threads N        threads (default: all cores); results do not depend on it\n"
	       "      --device DEV       cpu (default) or cuda (MODEL and --ref on the GPU)\n"
	       "      --progress         show a progress bar even when stderr is not a terminal\n"
	       "  -q, --quiet            no progress bar\n"
	       "  -h, --help             show this help and exit\n"
	       "  -V, --version          show the version and exit\n\n"
	       "Exit status: 0 success, 1 a quality gate failed, 2 usage error, 3 bad input,\n"
	       "4 I/O or resource failure, 5 internal error.\n",
	       cli_prog);
	exit(0);
}

static void parse(int argc, char **argv, options *o)
{
	enum { O_CHUNKS = 256, O_REF, O_TOK, O_KV, O_JSON, O_BENCH, O_MAXPPL, O_MAXRATIO, O_MAXKL, O_MINTOP1, O_PROGRESS, O_VERIFY, O_DEV };
	static const struct option longs[] = {
		{"file", 1, 0, 'f'},	     {"ctx", 1, 0, 'c'},	      {"chunks", 1, 0, O_CHUNKS}, {"ref", 1, 0, O_REF},
		{"tokenizer", 1, 0, O_TOK},  {"kv", 1, 0, O_KV},	      {"json", 0, 0, O_JSON},	  {"bench", 0, 0, O_BENCH},
		{"max-ppl", 1, 0, O_MAXPPL}, {"max-ppl-ratio", 1, 0, O_MAXRATIO}, {"max-kl", 1, 0, O_MAXKL},
		{"min-top1", 1, 0, O_MINTOP1}, {"threads", 1, 0, 't'},	{"progress", 0, 0, O_PROGRESS},
		{"verify", 0, 0, O_VERIFY}, {"device", 1, 0, O_DEV},	{"quiet", 0, 0, 'q'},	     {"help", 0, 0, 'h'},	      {"version", 0, 0, 'V'},	  {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "f:c:t:qhV", longs, NULL)) != -1) {
		switch (c) {
		case 'f': o->file = optarg; break;
		case 'c': o->ctx = cli_long("--ctx", optarg, 4, 1 << 20); break;
		case O_CHUNKS: o->chunks = cli_long("--chunks", optarg, 1, 1 << 30); break;
		case O_REF: o->ref = optarg; break;
		case O_TOK: o->tokenizer = optarg; break;
		case O_KV: o->kv = optarg; break;
		case O_JSON: o->json = true; break;
		case O_BENCH: o->bench = true; break;
		case O_VERIFY: o->verify = true; break;
		case O_DEV: o->device = optarg; break;
		case O_MAXPPL: o->max_ppl = cli_double("--max-ppl", optarg, 0, INFINITY); break;
		case O_MAXRATIO: o->max_ppl_ratio = cli_double("--max-ppl-ratio", optarg, 0, INFINITY); break;
		case O_MAXKL: o->max_kl = cli_double("--max-kl", optarg, 0, INFINITY); break;
		case O_MINTOP1: o->min_top1 = cli_double("--min-top1", optarg, 0, 1); break;
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
	if (!o->file && !o->verify)
		cli_usage_error("no text given (-f TEXT)");
	if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0)
		cli_usage_error("--device %s: expected cpu or cuda", o->device);
	if (!o->ref && (!isnan(o->max_ppl_ratio) || !isnan(o->max_kl) || !isnan(o->min_top1)))
		cli_usage_error("--max-ppl-ratio, --max-kl and --min-top1 need --ref MODEL");
}

static double decode_speed(const shrink_model *m, const int *tokens, size_t n, const char *kv)
{
	shrink_error err = {0};
	shrink_state *s;
	int steps = n < 64 ? (int)n : 64;
	if (shrink_state_new(m, steps, 1, kv, &s, &err))
		cli_exit_error(&err);
	float *logits = malloc((size_t)m->config->vocab_size * sizeof(float));
	double t0 = shrink_now();
	for (int i = 0; i < steps; i++)
		if (shrink_forward(m, s, &tokens[i], 1, logits, false, &err))
			cli_exit_error(&err);
	double dt = shrink_now() - t0;
	free(logits);
	shrink_state_free(s);
	return steps / dt;
}

static void print_text(const options *o, const shrink_ppl_result *r, size_t n_tokens, double decode_tps)
{
	printf("model: %s\ntext: %s (%zu tokens)\n", o->model, o->file, n_tokens);
	printf("windows: %d x %ld tokens, %zu scored\n", r->n_chunks, o->ctx, r->n_scored);
	printf("perplexity: %.4f +/- %.5f\n", r->ppl, r->ppl_err);
	if (r->has_ref) {
		printf("reference perplexity: %.4f +/- %.5f (%s)\n", r->ref_ppl, r->ref_ppl_err, o->ref);
		printf("delta perplexity: %+.4f (ratio %.5f)\n", r->delta_ppl, r->ppl_ratio);
		printf("KL divergence: mean %.6f, median %.6f, p99 %.6f, max %.6f\n", r->kl_mean, r->kl_median, r->kl_p99,
		       r->kl_max);
		printf("top-1 agreement: %.3f%%\n", 100 * r->top1);
	}
	if (r->kv_bytes_per_token > 0)
		printf("KV cache: %s, %.1f bytes per token (%.2fx smaller than f16)\n", o->kv ? o->kv : "f32",
		       r->kv_bytes_per_token, r->kv_f16_bytes_per_token / r->kv_bytes_per_token);
	else /* --device cuda with an uncompressed cache: it lives on the GPU, in f16 */
		printf("KV cache: f16 on the GPU (its size is not measured)\n");
	printf("prefill speed: %.1f tokens/s\n", r->tokens_per_s);
	if (o->bench)
		printf("decode speed: %.1f tokens/s\n", decode_tps);
}

static void print_json(const options *o, const shrink_ppl_result *r, size_t n_tokens, double decode_tps)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "model", o->model);
	cJSON_AddStringToObject(j, "text", o->file);
	cJSON_AddNumberToObject(j, "tokens", (double)n_tokens);
	cJSON_AddNumberToObject(j, "ctx", (double)o->ctx);
	cJSON_AddNumberToObject(j, "windows", r->n_chunks);
	cJSON_AddNumberToObject(j, "scored", (double)r->n_scored);
	cJSON_AddNumberToObject(j, "ppl", r->ppl);
	cJSON_AddNumberToObject(j, "ppl_err", r->ppl_err);
	cJSON_AddNumberToObject(j, "prefill_tokens_per_s", r->tokens_per_s);
	cJSON_AddStringToObject(j, "kv", o->kv ? o->kv : "f32");
	cJSON_AddNumberToObject(j, "kv_bytes_per_token", r->kv_bytes_per_token);
	if (r->kv_bytes_per_token > 0)
		cJSON_AddNumberToObject(j, "kv_ratio_vs_f16", r->kv_f16_bytes_per_token / r->kv_bytes_per_token);
	else
		cJSON_AddNullToObject(j, "kv_ratio_vs_f16");
	if (o->bench)
		cJSON_AddNumberToObject(j, "decode_tokens_per_s", decode_tps);
	if (r->has_ref) {
		cJSON_AddStringToObject(j, "ref", o->ref);
		cJSON_AddNumberToObject(j, "ref_ppl", r->ref_ppl);
		cJSON_AddNumberToObject(j, "ref_ppl_err", r->ref_ppl_err);
		cJSON_AddNumberToObject(j, "delta_ppl", r->delta_ppl);
		cJSON_AddNumberToObject(j, "ppl_ratio", r->ppl_ratio);
		cJSON_AddNumberToObject(j, "kl_mean", r->kl_mean);
		cJSON_AddNumberToObject(j, "kl_median", r->kl_median);
		cJSON_AddNumberToObject(j, "kl_p99", r->kl_p99);
		cJSON_AddNumberToObject(j, "kl_max", r->kl_max);
		cJSON_AddNumberToObject(j, "top1", r->top1);
	}
	cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)shrink_peak_rss());
	char *txt = cJSON_PrintUnformatted(j);
	puts(txt);
	free(txt);
	cJSON_Delete(j);
}

static int gate(const char *name, bool failed, double value, const char *op, double limit)
{
	if (failed)
		fprintf(stderr, "%s: gate %s failed: %.6g %s %.6g\n", cli_prog, name, value, op, limit);
	return failed;
}

static int check_gates(const options *o, const shrink_ppl_result *r)
{
	int failed = 0;
	if (!isnan(o->max_ppl))
		failed += gate("--max-ppl", !(r->ppl <= o->max_ppl), r->ppl, ">", o->max_ppl);
	if (!isnan(o->max_ppl_ratio))
		failed += gate("--max-ppl-ratio", !(r->ppl_ratio <= o->max_ppl_ratio), r->ppl_ratio, ">", o->max_ppl_ratio);
	if (!isnan(o->max_kl))
		failed += gate("--max-kl", !(r->kl_mean <= o->max_kl), r->kl_mean, ">", o->max_kl);
	if (!isnan(o->min_top1))
		failed += gate("--min-top1", !(r->top1 >= o->min_top1), r->top1, "<", o->min_top1);
	return failed ? SHRINK_EGATE : 0;
}

int main(int argc, char **argv)
{
	cli_start("shrink-eval");
	options o = {.device = "cpu", .ctx = 512, .max_ppl = NAN, .max_ppl_ratio = NAN, .max_kl = NAN, .min_top1 = NAN};
	parse(argc, argv, &o);
	shrink_set_threads(o.threads ? (int)o.threads : cli_default_threads());
	shrink_model *m = cli_load_model(o.model, o.tokenizer, !o.verify);
	if (o.verify) {
		printf("%s: %zu tensors, %lld parameters: intact%s\n", o.model, m->file.weights.n,
		       (long long)shrink_model_n_params(m), m->file.format == SHRINK_FMT_SHRINK ? " (CRC-32 verified)" : "");
		shrink_model_free(m);
		return 0;
	}
	shrink_model *ref = o.ref ? cli_load_model(o.ref, o.tokenizer, false) : NULL;
	shrink_error err = {0};
	if (shrink_model_set_device(m, o.device, &err) || (ref && shrink_model_set_device(ref, o.device, &err)))
		cli_exit_error(&err);
	size_t n;
	int *tokens = cli_tokenize_file(m, o.file, true, &n);
	shrink_ppl_params p = {.ctx = (int)o.ctx, .max_chunks = (int)o.chunks, .kv_spec = o.kv, .progress = cli_progress};
	shrink_ppl_result r;
	if (shrink_eval_perplexity(m, ref, tokens, n, &p, &r, &err)) {
		if (err.code == SHRINK_EINPUT)
			shrink_fail_prefix(&err, "%s: ", o.file);
		cli_exit_error(&err);
	}
	double decode_tps = o.bench ? decode_speed(m, tokens, n, o.kv) : 0;
	if (o.json)
		print_json(&o, &r, n, decode_tps);
	else
		print_text(&o, &r, n, decode_tps);
	free(tokens);
	shrink_model_free(ref);
	shrink_model_free(m);
	return check_gates(&o, &r);
}
