/* kv_spec.c: parses the --kv spec string "kind[:key=value,...]" into
 * shrink_kv_params. Kinds: f32, f16 (no parameters), kivi (bits, group,
 * residual), gear (bits, group, buffer, rank, rank_prefill, outliers, iters).
 * It checks what the spec alone decides (ranges, divisibility of the chunk by
 * the group); checks against the model (head_dim) are the constructor's job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_impl.h"

typedef struct {
	const char *name;
	int *i;	  /* integer parameter, or */
	float *f; /* fraction parameter */
	double lo, hi;
	bool given;
} param;

static void defaults(shrink_kv_kind kind, shrink_kv_params *p)
{
	*p = (shrink_kv_params){kind, 2, 64, 64, 0, 0, -1, 3};
	if (kind == SHRINK_KV_GEAR) {
		p->outliers = 0.02f;
		p->rank = 4;
	}
	if (kind != SHRINK_KV_GEAR)
		p->rank_prefill = 0;
}

static int table(shrink_kv_params *p, param *t)
{
	int n = 0;
	t[n++] = (param){"bits", &p->bits, NULL, 2, 8, false};
	t[n++] = (param){"group", &p->group, NULL, 1, SHRINK_KV_MAX_CHUNK, false};
	if (p->kind == SHRINK_KV_KIVI) {
		t[n++] = (param){"residual", &p->chunk, NULL, 1, SHRINK_KV_MAX_CHUNK, false};
		return n;
	}
	t[n++] = (param){"buffer", &p->chunk, NULL, 1, SHRINK_KV_MAX_CHUNK, false};
	t[n++] = (param){"rank", &p->rank, NULL, 0, SHRINK_KV_MAX_RANK, false};
	t[n++] = (param){"rank_prefill", &p->rank_prefill, NULL, 0, SHRINK_KV_MAX_RANK, false};
	t[n++] = (param){"outliers", NULL, &p->outliers, 0, 0.5, false};
	t[n++] = (param){"iters", &p->iters, NULL, 1, 100, false};
	return n;
}

static shrink_status set_value(const char *kind, param *q, const char *val, shrink_error *err)
{
	char *end;
	errno = 0;
	double x = q->i ? (double)strtol(val, &end, 10) : strtod(val, &end);
	if (end == val || *end || errno)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: %s=%s: not %s", kind, q->name, val,
				   q->i ? "an integer" : "a number");
	if (!(x >= q->lo && x <= q->hi) || (q->f && x >= q->hi))
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: %s=%s: out of range (%g to %g%s)", kind, q->name, val,
				   q->lo, q->hi, q->f ? ", exclusive" : "");
	if (q->given)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: %s given twice", kind, q->name);
	q->given = true;
	if (q->i)
		*q->i = (int)x;
	else
		*q->f = (float)x;
	return SHRINK_OK;
}

static shrink_status one_pair(const char *kind, param *t, int n, const char *item, shrink_error *err)
{
	const char *eq = strchr(item, '=');
	size_t key_len = eq ? (size_t)(eq - item) : strlen(item);
	for (int i = 0; i < n; i++)
		if (strlen(t[i].name) == key_len && strncmp(t[i].name, item, key_len) == 0) {
			if (!eq)
				return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: %s needs a value (%s=N)", kind,
						   t[i].name, t[i].name);
			return set_value(kind, &t[i], eq + 1, err);
		}
	char names[160] = "";
	for (int i = 0; i < n; i++)
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", t[i].name);
	return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: unknown parameter '%.*s' (%s)", kind, (int)key_len, item,
			   names);
}

static shrink_status check(const char *kind, const shrink_kv_params *p, shrink_error *err)
{
	const char *chunk = p->kind == SHRINK_KV_KIVI ? "residual" : "buffer";
	if (p->bits != 2 && p->bits != 3 && p->bits != 4 && p->bits != 8)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: bits=%d: must be 2, 3, 4 or 8", kind, p->bits);
	if (p->chunk % p->group)
		return shrink_fail(
		    err, SHRINK_EUSAGE,
		    "--kv %s: %s=%d: must be a multiple of group=%d (keys are quantized over whole groups "
		    "of tokens)",
		    kind, chunk, p->chunk, p->group);
	if (p->rank > p->chunk || p->rank_prefill > p->chunk)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: rank=%d/rank_prefill=%d: larger than %s=%d", kind,
				   p->rank, p->rank_prefill, chunk, p->chunk);
	return SHRINK_OK;
}

static shrink_status parse_kind(const char *spec, size_t len, shrink_kv_kind *kind, shrink_error *err)
{
	static const char *names[] = {"f32", "f16", "kivi", "gear"};
	for (int i = 0; i < 4; i++)
		if (strlen(names[i]) == len && strncmp(spec, names[i], len) == 0) {
			*kind = (shrink_kv_kind)i;
			return SHRINK_OK;
		}
	return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: unknown KV cache type '%.*s' (f32, f16, kivi, gear)", spec,
			   (int)len, spec);
}

shrink_status shrink_kv_parse_spec(const char *spec, shrink_kv_params *p, shrink_error *err)
{
	if (!spec)
		spec = "f32";
	const char *colon = strchr(spec, ':');
	size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
	shrink_kv_kind kind = SHRINK_KV_F32;
	shrink_status st = parse_kind(spec, kind_len, &kind, err);
	if (st)
		return st;
	defaults(kind, p);
	char name[16];
	snprintf(name, sizeof name, "%.*s", (int)kind_len, spec);
	if (!colon) {
		if (p->rank_prefill < 0)
			p->rank_prefill = p->rank;
		return SHRINK_OK;
	}
	if (kind == SHRINK_KV_F32 || kind == SHRINK_KV_F16)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv %s: %s takes no parameters", spec, name);
	param t[8];
	int n = table(p, t);
	char items[256];
	if (snprintf(items, sizeof items, "%s", colon + 1) >= (int)sizeof items)
		return shrink_fail(err, SHRINK_EUSAGE, "--kv: spec too long");
	char *save = NULL;
	for (char *item = strtok_r(items, ",", &save); item; item = strtok_r(NULL, ",", &save))
		if ((st = one_pair(name, t, n, item, err)))
			return st;
	if (p->rank_prefill < 0)
		p->rank_prefill = p->rank;
	return check(name, p, err);
}
