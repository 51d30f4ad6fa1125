/* hf_config.c: Hugging Face config.json <-> shrink_config for the Llama family
 * (llama, mistral, qwen2 and configs whose "architectures" names one of them).
 * Every number is checked to be an integer in range (or a finite float)
 * before it is stored; the result goes through shrink_config_validate.
 * Per-layer dimensions of pruned models travel in a non-standard
 * "shrink_layers" list that Hugging Face tools ignore. to_json writes the
 * same keys so that from_hf_json(to_json(c)) gives c back exactly.
 * It does not read generation_config.json or tokenizer files (hf_dir.c does),
 * and supports no RoPE scaling other than "linear" and "llama3". */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "shrink/config.h"

typedef struct {
	const char *what;
	shrink_error *err;
} reader;

static const struct {
	const char *model_type, *class_name;
} archs[] = {
    {"llama", "LlamaForCausalLM"},
    {"mistral", "MistralForCausalLM"},
    {"qwen2", "Qwen2ForCausalLM"},
};

static const cJSON *field(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNull(v) ? NULL : v;
}

static shrink_status int_value(reader *r, const cJSON *v, const char *key, int lo, int hi, int *out)
{
	double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
	if (!(d >= lo && d <= hi) || floor(d) != d)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"%s\" must be an integer in %d..%d", r->what, key, lo,
				   hi);
	*out = (int)d;
	return SHRINK_OK;
}

/* An integer in [lo, hi]; `def` when absent and not required. */
static shrink_status get_int(reader *r, const cJSON *obj, const char *key, int required, int def, int lo, int hi,
			     int *out)
{
	const cJSON *v = field(obj, key);
	if (v)
		return int_value(r, v, key, lo, hi, out);
	if (required)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: missing \"%s\"", r->what, key);
	*out = def;
	return SHRINK_OK;
}

static shrink_status get_float(reader *r, const cJSON *obj, const char *key, int required, float def, float *out)
{
	const cJSON *v = field(obj, key);
	if (!v) {
		if (required)
			return shrink_fail(r->err, SHRINK_EINPUT, "%s: missing \"%s\"", r->what, key);
		*out = def;
		return SHRINK_OK;
	}
	if (!cJSON_IsNumber(v) || !isfinite((float)v->valuedouble))
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"%s\" must be a finite number", r->what, key);
	*out = (float)v->valuedouble;
	return SHRINK_OK;
}

static shrink_status get_bool(reader *r, const cJSON *obj, const char *key, bool def, bool *out)
{
	const cJSON *v = field(obj, key);
	if (!v) {
		*out = def;
		return SHRINK_OK;
	}
	if (!cJSON_IsBool(v))
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"%s\" must be true or false", r->what, key);
	*out = cJSON_IsTrue(v);
	return SHRINK_OK;
}

/* A token id: an integer, a list whose first element is taken, or null (-1). */
static shrink_status get_token(reader *r, const cJSON *obj, const char *key, int *out)
{
	const cJSON *v = field(obj, key);
	if (cJSON_IsArray(v))
		v = cJSON_GetArrayItem(v, 0);
	if (!v) {
		*out = -1;
		return SHRINK_OK;
	}
	return int_value(r, v, key, 0, INT_MAX, out);
}

static shrink_status parse_arch(reader *r, const cJSON *root, shrink_config *c)
{
	const cJSON *type = field(root, "model_type");
	const cJSON *classes = field(root, "architectures");
	const cJSON *cls = cJSON_IsArray(classes) ? cJSON_GetArrayItem(classes, 0) : NULL;
	if (type && !cJSON_IsString(type))
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"model_type\" must be a string", r->what);
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
		int by_type = type && strcmp(type->valuestring, archs[i].model_type) == 0;
		int by_class = cJSON_IsString(cls) && strcmp(cls->valuestring, archs[i].class_name) == 0;
		if (by_type || by_class) {
			snprintf(c->arch, sizeof c->arch, "%s", archs[i].model_type);
			return SHRINK_OK;
		}
	}
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: unsupported model_type '%.40s' (llama, mistral and qwen2 are)",
			   r->what, type ? type->valuestring : "(none)");
}

/* The Llama family uses SwiGLU; a config that names another activation is not one of ours. */
static shrink_status check_activation(reader *r, const cJSON *root)
{
	const cJSON *act = field(root, "hidden_act");
	if (!act || (cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
		return SHRINK_OK;
	return shrink_fail(r->err, SHRINK_EINPUT, "%s: unsupported \"hidden_act\" (only \"silu\" is)", r->what);
}

static shrink_status parse_rope_scaling(reader *r, const cJSON *root, shrink_config *c)
{
	const cJSON *rs = field(root, "rope_scaling");
	c->rope_scaling = SHRINK_ROPE_SCALING_NONE;
	if (!rs)
		return SHRINK_OK;
	const cJSON *kind = field(rs, "rope_type") ? field(rs, "rope_type") : field(rs, "type");
	if (!cJSON_IsObject(rs) || !cJSON_IsString(kind))
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"rope_scaling\" needs a \"rope_type\"", r->what);
	if (strcmp(kind->valuestring, "default") == 0)
		return SHRINK_OK;
	if (strcmp(kind->valuestring, "linear") == 0) {
		c->rope_scaling = SHRINK_ROPE_SCALING_LINEAR;
		return get_float(r, rs, "factor", 1, 0, &c->rope_factor);
	}
	if (strcmp(kind->valuestring, "llama3") != 0)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: unsupported rope_scaling type '%.40s' (linear, llama3 are)", r->what,
				   kind->valuestring);
	c->rope_scaling = SHRINK_ROPE_SCALING_LLAMA3;
	shrink_status st = get_float(r, rs, "factor", 1, 0, &c->rope_factor);
	if (!st)
		st = get_float(r, rs, "low_freq_factor", 1, 0, &c->rope_low_freq_factor);
	if (!st)
		st = get_float(r, rs, "high_freq_factor", 1, 0, &c->rope_high_freq_factor);
	if (!st)
		st = get_int(r, rs, "original_max_position_embeddings", 1, 0, 1, INT_MAX, &c->rope_orig_max_pos);
	return st;
}

static shrink_status parse_layers(reader *r, const cJSON *root, shrink_config *c)
{
	const cJSON *list = field(root, "shrink_layers");
	if (!list)
		return SHRINK_OK;
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != c->n_layers)
		return shrink_fail(r->err, SHRINK_EINPUT, "%s: \"shrink_layers\" must list %d layers", r->what,
				   c->n_layers);
	int i = 0;
	const cJSON *l;
	cJSON_ArrayForEach(l, list)
	{
		shrink_layer_config *lc = &c->layers[i++];
		shrink_status st = get_int(r, l, "n_heads", 1, 0, 0, INT_MAX, &lc->n_heads);
		if (!st)
			st = get_int(r, l, "n_kv_heads", 1, 0, 0, INT_MAX, &lc->n_kv_heads);
		if (!st)
			st = get_int(r, l, "ffn_dim", 1, 0, 0, INT_MAX, &lc->ffn_dim);
		if (st)
			return shrink_fail_prefix(r->err, "shrink_layers[%d]: ", i - 1);
	}
	return SHRINK_OK;
}

static shrink_status parse_dims(reader *r, const cJSON *root, shrink_config *c)
{
	int heads = 0, kv_heads = 0, ffn = 0;
	shrink_status st = get_int(r, root, "hidden_size", 1, 0, 1, INT_MAX, &c->dim);
	if (!st)
		st = get_int(r, root, "num_hidden_layers", 1, 0, 1, SHRINK_MAX_LAYERS, &c->n_layers);
	if (!st)
		st = get_int(r, root, "num_attention_heads", 1, 0, 1, INT_MAX, &heads);
	if (!st)
		st = get_int(r, root, "num_key_value_heads", 0, heads, 1, INT_MAX, &kv_heads);
	if (!st)
		st = get_int(r, root, "intermediate_size", 1, 0, 1, INT_MAX, &ffn);
	if (!st)
		st = get_int(r, root, "vocab_size", 1, 0, 1, INT_MAX, &c->vocab_size);
	if (!st)
		st = get_int(r, root, "max_position_embeddings", 0, 2048, 1, INT_MAX, &c->max_seq);
	if (!st)
		st = get_int(r, root, "head_dim", 0, c->dim / heads, 1, INT_MAX, &c->head_dim);
	if (st)
		return st;
	if (!field(root, "head_dim") && c->dim % heads != 0)
		return shrink_fail(r->err, SHRINK_EINPUT,
				   "%s: no \"head_dim\" and hidden_size %d is not a multiple of num_attention_heads %d",
				   r->what, c->dim, heads);
	shrink_config_set_uniform(c, heads, kv_heads, ffn);
	return parse_layers(r, root, c);
}

static shrink_status parse_rest(reader *r, const cJSON *root, shrink_config *c)
{
	bool attention_bias = false;
	shrink_status st = get_float(r, root, "rms_norm_eps", 0, 1e-6f, &c->norm_eps);
	if (!st)
		st = get_float(r, root, "rope_theta", 0, 10000.0f, &c->rope_theta);
	if (!st)
		st = parse_rope_scaling(r, root, c);
	if (!st)
		st = get_bool(r, root, "tie_word_embeddings", false, &c->tied_embeddings);
	if (!st)
		st = get_bool(r, root, "attention_bias", false, &attention_bias);
	if (!st)
		st = get_token(r, root, "bos_token_id", &c->bos_id);
	if (!st)
		st = get_token(r, root, "eos_token_id", &c->eos_id);
	c->qkv_bias = !st && (attention_bias || strcmp(c->arch, "qwen2") == 0);
	return st;
}

shrink_status shrink_config_from_hf_json(const char *json, const char *what, shrink_config *c, shrink_error *err)
{
	reader r = {what, err};
	memset(c, 0, sizeof *c);
	c->bos_id = c->eos_id = -1;
	cJSON *root = cJSON_Parse(json);
	shrink_status st;
	if (!root)
		st = shrink_fail(err, SHRINK_EINPUT, "%s: not valid JSON", what);
	else if (!cJSON_IsObject(root))
		st = shrink_fail(err, SHRINK_EINPUT, "%s: not a JSON object", what);
	else if (!(st = parse_arch(&r, root, c)) && !(st = check_activation(&r, root)) &&
		 !(st = parse_dims(&r, root, c)))
		st = parse_rest(&r, root, c);
	cJSON_Delete(root);
	return st ? st : shrink_config_validate(c, what, err);
}

/* ---- writing ---- */

/* The shortest decimal that reads back as the same float ("1e-05", not 9.99999974737875e-06). */
static void add_float(cJSON *obj, const char *key, float x)
{
	char buf[32];
	if (!isfinite(x)) {
		cJSON_AddNullToObject(obj, key);
		return;
	}
	for (int digits = 1; digits <= 9; digits++) {
		snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
		if (strtof(buf, NULL) == x)
			break;
	}
	if (!strpbrk(buf, ".eE"))
		strcat(buf, ".0");
	cJSON_AddRawToObject(obj, key, buf);
}

static void add_token(cJSON *obj, const char *key, int id)
{
	if (id < 0)
		cJSON_AddNullToObject(obj, key);
	else
		cJSON_AddNumberToObject(obj, key, id);
}

static int layers_uniform(const shrink_config *c, int n)
{
	for (int i = 1; i < n; i++)
		if (memcmp(&c->layers[i], &c->layers[0], sizeof c->layers[0]) != 0)
			return 0;
	return 1;
}

static void add_layers(cJSON *root, const shrink_config *c, int n)
{
	cJSON *list = cJSON_AddArrayToObject(root, "shrink_layers");
	for (int i = 0; list && i < n; i++) {
		cJSON *l = cJSON_CreateObject();
		cJSON_AddNumberToObject(l, "n_heads", c->layers[i].n_heads);
		cJSON_AddNumberToObject(l, "n_kv_heads", c->layers[i].n_kv_heads);
		cJSON_AddNumberToObject(l, "ffn_dim", c->layers[i].ffn_dim);
		cJSON_AddItemToArray(list, l);
	}
}

static void add_rope_scaling(cJSON *root, const shrink_config *c)
{
	if (c->rope_scaling == SHRINK_ROPE_SCALING_NONE) {
		cJSON_AddNullToObject(root, "rope_scaling");
		return;
	}
	cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
	if (!rs)
		return;
	int llama3 = c->rope_scaling == SHRINK_ROPE_SCALING_LLAMA3;
	cJSON_AddStringToObject(rs, "rope_type", llama3 ? "llama3" : "linear");
	add_float(rs, "factor", c->rope_factor);
	if (llama3) {
		add_float(rs, "low_freq_factor", c->rope_low_freq_factor);
		add_float(rs, "high_freq_factor", c->rope_high_freq_factor);
		cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_orig_max_pos);
	}
}

static const char *class_name(const char *arch)
{
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
		if (strcmp(arch, archs[i].model_type) == 0)
			return archs[i].class_name;
	return "LlamaForCausalLM";
}

char *shrink_config_to_json(const shrink_config *c)
{
	int n = c->n_layers < 0 ? 0 : c->n_layers > SHRINK_MAX_LAYERS ? SHRINK_MAX_LAYERS : c->n_layers;
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	cJSON *classes = cJSON_AddArrayToObject(root, "architectures");
	if (classes)
		cJSON_AddItemToArray(classes, cJSON_CreateString(class_name(c->arch)));
	cJSON_AddStringToObject(root, "model_type", c->arch);
	cJSON_AddNumberToObject(root, "hidden_size", c->dim);
	cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
	cJSON_AddNumberToObject(root, "num_attention_heads", c->layers[0].n_heads);
	cJSON_AddNumberToObject(root, "num_key_value_heads", c->layers[0].n_kv_heads);
	cJSON_AddNumberToObject(root, "intermediate_size", c->layers[0].ffn_dim);
	cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
	cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
	cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_seq);
	add_float(root, "rms_norm_eps", c->norm_eps);
	add_float(root, "rope_theta", c->rope_theta);
	add_rope_scaling(root, c);
	cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied_embeddings);
	cJSON_AddBoolToObject(root, "attention_bias", c->qkv_bias);
	add_token(root, "bos_token_id", c->bos_id);
	add_token(root, "eos_token_id", c->eos_id);
	if (!layers_uniform(c, n))
		add_layers(root, c, n);
	char *s = cJSON_Print(root);
	cJSON_Delete(root);
	return s;
}
