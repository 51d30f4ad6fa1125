/* shrink-run: generate text from a model (original or compressed).
 * Only argument handling and printing live here; the model, the sampler and
 * the streaming decoder are in libshrink. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
	const char *model, *prompt, *prompt_file, *tokenizer, *kv, *device;
	long n_predict, ctx, threads, top_k;
	double temp, top_p;
	unsigned long long seed;
	bool stats;
} options;

_Noreturn static void usage(void)
{
	printf("Usage: %s [OPTION]... MODEL\n"
	       "Generate text from MODEL (a Hugging Face directory, GGUF, llama2.c .bin or shrink file).\n\n"
	       "  -m, --model MODEL      the model (instead of the positional argument)\n"
	       "  -p, --prompt TEXT      prompt text (default: read standard input)\n"
	       "  -f, --file FILE        read the prompt from FILE\n"
	       "  -n, --n-predict N      tokens to generate (default 128; -1: until EOS or the context is full)\n"
	       "      --temp T           sampling temperature; 0 is greedy (default 0.8)\n"
	       "      --top-k K          keep the K most likely tokens; 0 keeps all (default 40)\n"
	       "      --top-p P          then the smallest set of those with probability >= P (default 0.95)\n"
	       "      --seed S           random seed (default 42)\n"
	       "  -c, --ctx N            context length in tokens (default: the model's, at most 4096)\n"
	       "      --kv SPEC          KV cache: f32 (default), f16, kivi[:bits=2,group=64,residual=64] or\n"
	       "                         gear[:bits=2,rank=4,outliers=0.02,buffer=64]\n"
	       "      --tokenizer FILE   take the tokenizer from FILE (GGUF or tokenizer.json)\n"
	       "  -t, --threads N        threads (default: all cores); results do not depend on it\n"
	       "      --device DEV       cpu (default) or cuda\n"
	       "      --stats            print prefill and decode tokens/s and peak memory to stderr\n"
	       "  -q, --quiet            no progress messages\n"
	       "  -h, --help             show this help and exit\n"
	       "  -V, --version          show the version and exit\n\n"
	       "The prompt is echoed, then the continuation is streamed to standard output.\n"
	       "Exit status: 0 success, 2 usage error, 3 bad input, 4 I/O or resource failure, 5 internal error.\n",
	       cli_prog);
	exit(0);
}

static void parse(int argc, char **argv, options *o)
{
	enum { O_TEMP = 256, O_TOPK, O_TOPP, O_SEED, O_KV, O_TOK, O_DEV, O_STATS };
	static const struct option longs[] = {
		{"model", 1, 0, 'm'},	 {"prompt", 1, 0, 'p'},	  {"file", 1, 0, 'f'},	    {"n-predict", 1, 0, 'n'},
		{"temp", 1, 0, O_TEMP},	 {"top-k", 1, 0, O_TOPK}, {"top-p", 1, 0, O_TOPP}, {"seed", 1, 0, O_SEED},
		{"ctx", 1, 0, 'c'},	 {"kv", 1, 0, O_KV},	  {"tokenizer", 1, 0, O_TOK}, {"threads", 1, 0, 't'},
		{"device", 1, 0, O_DEV}, {"stats", 0, 0, O_STATS}, {"quiet", 0, 0, 'q'},   {"help", 0, 0, 'h'},
		{"version", 0, 0, 'V'},	 {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "m:p:f:n:c:t:qhV", longs, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'f': o->prompt_file = optarg; break;
		case 'n': o->n_predict = cli_long("--n-predict", optarg, -1, 1 << 24); break;
		case O_TEMP: o->temp = cli_double("--temp", optarg, 0, 100); break;
		case O_TOPK: o->top_k = cli_long("--top-k", optarg, 0, 1 << 24); break;
		case O_TOPP: o->top_p = cli_double("--top-p", optarg, 1e-9, 1); break;
		case O_SEED: o->seed = (unsigned long long)cli_double("--seed", optarg, 0, 1.8e19); break;
		case 'c': o->ctx = cli_long("--ctx", optarg, 1, 1 << 22); break;
		case O_KV: o->kv = optarg; break;
		case O_TOK: o->tokenizer = optarg; break;
		case 't': o->threads = cli_long("--threads", optarg, 1, 1024); break;
		case O_DEV: o->device = optarg; break;
		case O_STATS: o->stats = true; break;
		case 'q': cli_quiet = true; break;
		case 'h': usage();
		case 'V': cli_version();
		default: cli_usage_error("unknown option");
		}
	}
	if (optind < argc && !o->model)
		o->model = argv[optind++];
	if (optind < argc)
		cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->model)
		cli_usage_error("no model given");
	if (o->prompt && o->prompt_file)
		cli_usage_error("give either --prompt or --file, not both");
	if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0)
		cli_usage_error("--device %s: expected cpu or cuda", o->device);
}

static char *read_prompt(const options *o, size_t *len)
{
	shrink_error err = {0};
	char *text;
	if (o->prompt) {
		*len = strlen(o->prompt);
		return strdup(o->prompt);
	}
	if (shrink_read_text(o->prompt_file ? o->prompt_file : "-", &text, len, &err))
		cli_exit_error(&err);
	return text;
}

static void emit(shrink_decoder *d, int id, char *buf, size_t cap)
{
	size_t n = shrink_decoder_push(d, id, buf, cap);
	fwrite(buf, 1, n, stdout);
	fflush(stdout);
}

/* Feed n tokens; with want, return the token to follow them: at --temp 0 through
 * shrink_forward_greedy (on the GPU only the id comes back), else drawn from the logits. */
static int feed(const options *o, shrink_model *m, shrink_state *s, shrink_sampler *smp, float *logits,
		const int *tokens, int n, bool want)
{
	shrink_error err = {0};
	int next = -1;
	bool greedy = want && o->temp == 0;
	if (greedy ? shrink_forward_greedy(m, s, tokens, n, &next, &err)
		   : shrink_forward(m, s, tokens, n, want ? logits : NULL, false, &err))
		cli_exit_error(&err);
	return greedy || !want ? next : shrink_sample(smp, logits);
}

static int generate(const options *o, shrink_model *m, const int *prompt, size_t n_prompt)
{
	shrink_error err = {0};
	shrink_state *s;
	shrink_sampler *smp;
	int ctx = o->ctx ? (int)o->ctx : (m->config->max_seq > 0 && m->config->max_seq < 4096 ? m->config->max_seq : 4096);
	if ((size_t)ctx <= n_prompt)
		cli_usage_error("the prompt (%zu tokens) does not fit the context of %d tokens", n_prompt, ctx);
	if (shrink_state_new(m, ctx, 512, o->kv, &s, &err) ||
	    shrink_sampler_new((float)o->temp, (int)o->top_k, (float)o->top_p, o->seed, m->config->vocab_size, &smp, &err))
		cli_exit_error(&err);
	float *logits = malloc((size_t)m->config->vocab_size * sizeof(float));
	shrink_decoder d;
	shrink_decoder_init(&d, m->tok);
	size_t cap = shrink_decoder_max_bytes(m->tok);
	char *text = malloc(cap);
	for (size_t i = 0; i < n_prompt; i++)
		emit(&d, prompt[i], text, cap);
	double t0 = shrink_now();
	int next = -1;
	for (size_t i = 0; i < n_prompt; i += 512) {
		int n = n_prompt - i < 512 ? (int)(n_prompt - i) : 512;
		next = feed(o, m, s, smp, logits, prompt + i, n, i + n == n_prompt);
	}
	double t1 = shrink_now();
	long produced = 0;
	int eos = shrink_tokenizer_eos(m->tok);
	while (o->n_predict < 0 || produced < o->n_predict) {
		if (next == eos)
			break;
		emit(&d, next, text, cap);
		produced++;
		if (shrink_state_pos(s) >= ctx)
			break;
		next = feed(o, m, s, smp, logits, &next, 1, true);
	}
	double t2 = shrink_now();
	fwrite(text, 1, shrink_decoder_flush(&d, text, cap), stdout);
	putchar('\n');
	if (o->stats)
		fprintf(stderr,
			"%s: prefill %zu tokens in %.3f s (%.1f tokens/s); decode %ld tokens in %.3f s (%.1f tokens/s); "
			"peak memory %.1f MiB; KV cache %s; device %s\n",
			cli_prog, n_prompt, t1 - t0, n_prompt / (t1 - t0 + 1e-12), produced, t2 - t1,
			produced / (t2 - t1 + 1e-12), shrink_peak_rss() / 1048576.0,
			strcmp(o->device, "cuda") == 0 ? "f16" : o->kv ? o->kv : "f32", o->device);
	free(logits);
	free(text);
	shrink_sampler_free(smp);
	shrink_state_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	cli_start("shrink-run");
	options o = {.n_predict = 128, .temp = 0.8, .top_k = 40, .top_p = 0.95, .seed = 42, .device = "cpu"};
	parse(argc, argv, &o);
	shrink_set_threads(o.threads ? (int)o.threads : cli_default_threads());
	shrink_model *m = cli_load_model(o.model, o.tokenizer, true);
	shrink_error err = {0};
	if (shrink_model_set_device(m, o.device, &err))
		cli_exit_error(&err);
	size_t len, n_prompt;
	char *text = read_prompt(&o, &len);
	int *ids;
	if (shrink_tokenize(m->tok, text, len, true, &ids, &n_prompt, &err))
		cli_exit_error(&err);
	free(text);
	if (n_prompt == 0)
		cli_usage_error("empty prompt");
	int rc = generate(&o, m, ids, n_prompt);
	free(ids);
	shrink_model_free(m);
	return rc;
}
