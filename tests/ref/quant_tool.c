/* quant_tool.c: test helper for tests/ref/test_quant_ref.py. Runs RTN, GPTQ or the
 * Hessian accumulator of lib/quant on raw little-endian files and writes the results
 * as raw files, so NumPy can check them against an independent reference.
 * Deliberately not a user tool: positional arguments, no help beyond the usage line.
 *
 *   quant_tool rtn  BITS GROUP sym|asym CLIP ROWS COLS W.f32 OUT
 *   quant_tool gptq BITS GROUP sym|asym CLIP ROWS COLS W.f32 OUT H.f64 DAMP BLOCK ACT_ORDER
 *   quant_tool hessian ROWS COLS X.f32 CHUNK OUT.f64
 * rtn/gptq write OUT.deq (f32, rows x cols), OUT.qweight, OUT.scales (f16 bits), OUT.zeros
 * (asymmetric). The exit status is the shrink_status (0 success). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shrink/quant.h"

static void *read_file(const char *path, size_t n_bytes)
{
	FILE *f = fopen(path, "rb");
	void *buf = malloc(n_bytes ? n_bytes : 1);
	if (!f || !buf || fread(buf, 1, n_bytes, f) != n_bytes) {
		fprintf(stderr, "quant_tool: cannot read %zu bytes from %s\n", n_bytes, path);
		exit(SHRINK_EIO);
	}
	fclose(f);
	return buf;
}

static void write_file(const char *prefix, const char *suffix, const void *buf, size_t n_bytes)
{
	char path[4096];
	snprintf(path, sizeof path, "%s%s", prefix, suffix);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, n_bytes, f) != n_bytes || fclose(f)) {
		fprintf(stderr, "quant_tool: cannot write %s\n", path);
		exit(SHRINK_EIO);
	}
}

static int usage(void)
{
	fprintf(stderr,
		"usage: quant_tool rtn BITS GROUP sym|asym CLIP ROWS COLS W.f32 OUT\n"
		"       quant_tool gptq BITS GROUP sym|asym CLIP ROWS COLS W.f32 OUT H.f64 DAMP BLOCK ACT_ORDER\n"
		"       quant_tool hessian ROWS COLS X.f32 CHUNK OUT.f64\n");
	return SHRINK_EUSAGE;
}

static int hessian(char **argv)
{
	int64_t rows = atoll(argv[0]), cols = atoll(argv[1]), chunk = atoll(argv[3]);
	float *x = read_file(argv[2], (size_t)(rows * cols) * sizeof(float));
	shrink_hessian h;
	shrink_error err;
	if (shrink_hessian_init(&h, cols, &err)) {
		fprintf(stderr, "quant_tool: %s\n", err.msg);
		return err.code;
	}
	for (int64_t r0 = 0; r0 < rows; r0 += chunk)
		shrink_hessian_add(&h, x + r0 * cols, rows - r0 < chunk ? rows - r0 : chunk);
	write_file(argv[4], "", h.H, (size_t)(cols * cols) * sizeof(double));
	shrink_hessian_free(&h);
	free(x);
	return 0;
}

static void write_results(const shrink_qscheme *s, int64_t rows, int64_t cols, const char *out, const uint8_t *qweight,
			  const uint16_t *scales, const uint8_t *zeros)
{
	int64_t n_groups = shrink_qscheme_groups(s, cols);
	size_t row_bytes = shrink_qrow_bytes(s->bits, cols);
	float *deq = malloc((size_t)(rows * cols) * sizeof(float) + 4);
	shrink_qmatrix m = {*s, rows, cols, qweight, scales, s->symmetric ? NULL : zeros};
	for (int64_t r = 0; r < rows; r++)
		shrink_qmatrix_row(&m, r, deq + r * cols);
	write_file(out, ".deq", deq, (size_t)(rows * cols) * sizeof(float));
	write_file(out, ".qweight", qweight, (size_t)rows * row_bytes);
	write_file(out, ".scales", scales, (size_t)(rows * n_groups) * 2);
	if (!s->symmetric)
		write_file(out, ".zeros", zeros, (size_t)(rows * n_groups));
	free(deq);
}

static int quantize(bool gptq, char **argv)
{
	shrink_qscheme s = {atoi(argv[0]), atoi(argv[1]), !strcmp(argv[2], "sym")};
	bool clip = atoi(argv[3]) != 0;
	int64_t rows = atoll(argv[4]), cols = atoll(argv[5]);
	const char *out = argv[7];
	shrink_error err = {0};
	if (shrink_qscheme_check(&s, cols, &err)) {
		fprintf(stderr, "quant_tool: %s\n", err.msg);
		return err.code;
	}
	float *w = read_file(argv[6], (size_t)(rows * cols) * sizeof(float));
	int64_t n_groups = shrink_qscheme_groups(&s, cols);
	size_t row_bytes = shrink_qrow_bytes(s.bits, cols);
	uint8_t *qweight = malloc((size_t)rows * row_bytes + 1), *zeros = malloc((size_t)(rows * n_groups) + 1);
	uint16_t *scales = malloc((size_t)(rows * n_groups) * 2 + 2);
	shrink_status st;
	if (gptq) {
		double *H = read_file(argv[8], (size_t)(cols * cols) * sizeof(double));
		shrink_gptq_params p = {atof(argv[9]), atoi(argv[10]), atoi(argv[11]) != 0, clip};
		st = shrink_quantize_gptq(w, rows, cols, H, &s, &p, qweight, scales, s.symmetric ? NULL : zeros, &err);
		free(H);
	} else {
		st = shrink_quantize_rtn(w, rows, cols, &s, clip, qweight, scales, s.symmetric ? NULL : zeros, &err);
	}
	if (st)
		fprintf(stderr, "quant_tool: %s\n", err.msg);
	else
		write_results(&s, rows, cols, out, qweight, scales, zeros);
	free(w);
	free(qweight);
	free(zeros);
	free(scales);
	return st;
}

int main(int argc, char **argv)
{
	if (argc >= 7 && !strcmp(argv[1], "hessian"))
		return hessian(argv + 2);
	if (argc >= 10 && !strcmp(argv[1], "rtn"))
		return quantize(false, argv + 2);
	if (argc >= 14 && !strcmp(argv[1], "gptq"))
		return quantize(true, argv + 2);
	return usage();
}
