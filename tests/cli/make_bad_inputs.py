#!/usr/bin/env python3
"""make_bad_inputs.py DIR [--data DATADIR]: write a corpus of malformed model
and text inputs into DIR, plus DIR/cases.txt, one case a line:

    name|model|text|tokenizer|needles|env

tokenizer may be empty; needles is a comma-separated list of strings that the
error message must contain (the file, and the tensor where the error is about
one); env (may be empty) is a space-separated list of VAR=VALUE settings for
the run (the input limits of lib/shrink/base.h). test_bad_input.sh runs each
case through shrink-eval and expects exit 3. Cases named *_100gb_* declare
about 100 GB (or more) of tensors in a file of a few KB: they must be refused
quickly and without allocating anything like that.

Every file is built here from its format's layout (safetensors, GGUF v3,
llama2.c); nothing is downloaded. Cases that need the shared test data
(stories260K) are left out when DATADIR lacks it. This script does not run
anything and does not judge results.
"""
import json
import os
import struct
import sys

CASES = []


def case(name, model, needles, text=None, tokenizer="", env=""):
    CASES.append((name, model, text, tokenizer, needles, env))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


# ---- safetensors ----

def st_bytes(header, data=b"", length=None):
    """A safetensors file: u64 header length, header (dict or raw str), data."""
    h = header if isinstance(header, str) else json.dumps(header)
    h = h.encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def f32(n, value=0.5):
    return struct.pack("<%df" % n, *([value] * n))


def st_cases(d):
    t = "model.layers.0.mlp.up_proj.weight"
    ent = lambda dtype, shape, b, e: {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
    good = st_bytes({t: ent("F32", [2, 2], 0, 16)}, f32(4))
    case("st_truncated", write(f"{d}/st_truncated.safetensors", good[:5]), "st_truncated.safetensors")
    case("st_header_past_end", write(f"{d}/st_header_past_end.safetensors", st_bytes({}, b"", 4096)),
         "st_header_past_end.safetensors")
    case("st_header_huge", write(f"{d}/st_header_huge.safetensors", st_bytes({}, b"", 10**15)),
         "st_header_huge.safetensors")
    case("st_bad_json", write(f"{d}/st_bad_json.safetensors", st_bytes('{"a": [1, 2', f32(4))),
         "st_bad_json.safetensors")
    case("st_not_object", write(f"{d}/st_not_object.safetensors", st_bytes("[1, 2, 3]", f32(4))),
         "st_not_object.safetensors")
    bad = {
        "st_offsets_out_of_range": ({t: ent("F32", [2, 2], 0, 16)}, f32(2)),
        "st_overlap": ({t: ent("F32", [2, 2], 0, 16), "model.norm.weight": ent("F32", [4], 8, 24)}, f32(6)),
        "st_size_mismatch": ({t: ent("F32", [3, 2], 0, 16)}, f32(4)),
        "st_unknown_dtype": ({t: ent("F7", [2, 2], 0, 16)}, f32(4)),
        "st_negative_dim": ({t: ent("F32", [-2, -2], 0, 16)}, f32(4)),
        "st_five_dims": ({t: ent("F32", [1, 1, 1, 2, 2], 0, 16)}, f32(4)),
        "st_100gb": ({t: ent("F32", [100000, 250000], 0, 100 * 10**9)}, f32(250)),
    }
    for name, (header, data) in bad.items():
        case(name, write(f"{d}/{name}.safetensors", st_bytes(header, data)), f"{name}.safetensors,{t}")
    one = '{"dtype": "F32", "shape": [2], "data_offsets": [%d, %d]}'
    dup = '{"%s": %s, "%s": %s}' % (t, one % (0, 8), t, one % (8, 16))
    case("st_duplicate", write(f"{d}/st_duplicate.safetensors", st_bytes(dup, f32(4))),
         f"st_duplicate.safetensors,{t}")
    meta = {"__metadata__": {"format": 3}, t: ent("F32", [2, 2], 0, 16)}
    case("st_bad_metadata", write(f"{d}/st_bad_metadata.safetensors", st_bytes(meta, f32(4))),
         "st_bad_metadata.safetensors")


# ---- Hugging Face directories ----

TINY = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 12, "vocab_size": 16, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2}


def tiny_tensors(skip=(), resize=None):
    """HF name -> shape for the tiny config (one layer, tied)."""
    shapes = {"model.embed_tokens.weight": [16, 8], "model.norm.weight": [8]}
    layer = {"input_layernorm.weight": [8], "post_attention_layernorm.weight": [8],
             "self_attn.q_proj.weight": [8, 8], "self_attn.k_proj.weight": [4, 8],
             "self_attn.v_proj.weight": [4, 8], "self_attn.o_proj.weight": [8, 8],
             "mlp.gate_proj.weight": [12, 8], "mlp.up_proj.weight": [12, 8], "mlp.down_proj.weight": [8, 12]}
    shapes.update({"model.layers.0." + k: v for k, v in layer.items()})
    shapes.update(resize or {})
    return {k: v for k, v in shapes.items() if k not in skip}


def st_from_shapes(shapes):
    header, data = {}, b""
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
        data += f32(n, 0.01)
    return st_bytes(header, data)


def hf_dir(d, name, config=TINY, weights=None, files=None):
    path = f"{d}/{name}"
    os.makedirs(path, exist_ok=True)
    if config is not None:
        write(f"{path}/config.json", config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        write(f"{path}/model.safetensors", weights)
    for fname, content in (files or {}).items():
        write(f"{path}/{fname}", content)
    return path


def hf_cases(d):
    w = st_from_shapes(tiny_tensors())
    case("hf_invalid_config", hf_dir(d, "hf_invalid_config", '{"model_type": "llama",', w),
         "hf_invalid_config/config.json")
    no_hidden = {k: v for k, v in TINY.items() if k != "hidden_size"}
    case("hf_no_hidden_size", hf_dir(d, "hf_no_hidden_size", no_hidden, w),
         "hf_no_hidden_size/config.json,hidden_size")
    case("hf_zero_layers", hf_dir(d, "hf_zero_layers", dict(TINY, num_hidden_layers=0), w),
         "hf_zero_layers/config.json,num_hidden_layers")
    case("hf_no_config", hf_dir(d, "hf_no_config", None, w), "hf_no_config")
    case("hf_no_weights", hf_dir(d, "hf_no_weights"), "hf_no_weights")
    missing = "model.layers.0.mlp.down_proj.weight"
    case("hf_missing_tensor", hf_dir(d, "hf_missing_tensor", TINY, st_from_shapes(tiny_tensors(skip=[missing]))),
         f"hf_missing_tensor,{missing}")
    wrong = "model.layers.0.self_attn.k_proj.weight"
    case("hf_wrong_shape", hf_dir(d, "hf_wrong_shape", TINY, st_from_shapes(tiny_tensors(resize={wrong: [8, 8]}))),
         f"hf_wrong_shape,{wrong}")
    huge = {"model.embed_tokens.weight": {"dtype": "F32", "shape": [100000, 250000],
                                          "data_offsets": [0, 100 * 10**9]}}
    case("hf_100gb_tensor", hf_dir(d, "hf_100gb_tensor", TINY, st_bytes(huge, bytes(1000))),
         "hf_100gb_tensor/model.safetensors,model.embed_tokens.weight")
    shard1 = st_from_shapes(tiny_tensors())
    index = {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "model.norm.weight": "model-00002-of-00002.safetensors"}}
    files = {"model-00001-of-00002.safetensors": shard1, "model.safetensors.index.json": json.dumps(index)}
    case("hf_missing_shard", hf_dir(d, "hf_missing_shard", TINY, None, files), "model-00002-of-00002.safetensors")
    index = {"weight_map": {"model.embed_tokens.weight": "../outside.safetensors"}}
    write(f"{d}/outside.safetensors", shard1)
    files = {"model.safetensors.index.json": json.dumps(index)}
    case("hf_escaping_shard", hf_dir(d, "hf_escaping_shard", TINY, None, files),
         "hf_escaping_shard/model.safetensors.index.json,../outside.safetensors")
    case("safetensors_without_config", write(f"{d}/lonely/model.safetensors", w), "lonely/model.safetensors")


# ---- GGUF ----

GGUF_STRING, GGUF_ARRAY, GGUF_U32, GGUF_F32, GGUF_I32 = 8, 9, 4, 6, 5


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gkv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == GGUF_STRING:
        return out + gstr(value)
    if vtype == GGUF_U32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_F32:
        return out + struct.pack("<f", value)
    etype, items = value
    out += struct.pack("<IQ", etype, len(items))
    if etype == GGUF_STRING:
        return out + b"".join(gstr(x) for x in items)
    fmt = {GGUF_F32: "<f", GGUF_I32: "<i"}[etype]
    return out + b"".join(struct.pack(fmt, x) for x in items)


def tiny_gguf_kv():
    n_vocab = 16
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(3, 9)] + ["\u2581a", "b", "c", "d", "e", "f",
                                                                                   "g"]
    types = [2, 3, 3] + [6] * 6 + [1] * 7
    return [
        gkv("general.architecture", GGUF_STRING, "llama"),
        gkv("llama.block_count", GGUF_U32, 1),
        gkv("llama.context_length", GGUF_U32, 64),
        gkv("llama.embedding_length", GGUF_U32, 8),
        gkv("llama.feed_forward_length", GGUF_U32, 12),
        gkv("llama.attention.head_count", GGUF_U32, 2),
        gkv("llama.attention.head_count_kv", GGUF_U32, 1),
        gkv("llama.rope.dimension_count", GGUF_U32, 4),
        gkv("llama.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
        gkv("tokenizer.ggml.model", GGUF_STRING, "llama"),
        gkv("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, tokens[:n_vocab])),
        gkv("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, [float(-i) for i in range(n_vocab)])),
        gkv("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, types[:n_vocab])),
        gkv("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
        gkv("tokenizer.ggml.eos_token_id", GGUF_U32, 2),
    ]


def tiny_gguf_tensors():
    """GGUF name -> dims (fastest first)."""
    t = {"token_embd.weight": [8, 16], "output_norm.weight": [8]}
    layer = {"attn_norm": [8], "ffn_norm": [8], "attn_q": [8, 8], "attn_k": [8, 4], "attn_v": [8, 4],
             "attn_output": [8, 8], "ffn_gate": [8, 12], "ffn_up": [8, 12], "ffn_down": [12, 8]}
    t.update({f"blk.0.{k}.weight": v for k, v in layer.items()})
    return t


def gguf_bytes(version=3, kvs=None, tensors=None, n_tensors=None, n_kv=None, ggml_type=0, offset_bump=0,
               magic=b"GGUF", declared=None):
    """declared: GGUF name -> dims written in the tensor info instead of the real ones (data stays real)."""
    kvs = tiny_gguf_kv() if kvs is None else kvs
    tensors = tiny_gguf_tensors() if tensors is None else tensors
    declared = declared or {}
    infos, data = b"", b""
    for name, dims in tensors.items():
        n = 1
        for x in dims:
            n *= x
        said = declared.get(name, dims)
        infos += gstr(name) + struct.pack("<I", len(said)) + b"".join(struct.pack("<Q", x) for x in said)
        infos += struct.pack("<IQ", ggml_type, len(data) + offset_bump)
        data += f32(n, 0.01) + bytes(-4 * n % 32)
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    out = head + b"".join(kvs) + infos
    return out + bytes(-len(out) % 32) + data


def gguf_cases(d):
    g = lambda name, data: case(name, write(f"{d}/{name}.gguf", data), f"{name}.gguf")
    g("gguf_bad_magic", gguf_bytes(magic=b"GGUX"))
    g("gguf_version_99", gguf_bytes(version=99))
    g("gguf_tensor_count_huge", gguf_bytes(n_tensors=2**60))
    g("gguf_kv_count_huge", gguf_bytes(n_kv=2**60))
    long_key = struct.pack("<Q", 2**40) + b"general.architecture"
    g("gguf_string_past_end", gguf_bytes(kvs=[long_key] + tiny_gguf_kv()[1:]))
    g("gguf_unknown_value_type", gguf_bytes(kvs=tiny_gguf_kv() + [gstr("x.odd") + struct.pack("<I", 99)]))
    g("gguf_unknown_tensor_type", gguf_bytes(ggml_type=99))
    g("gguf_data_past_end", gguf_bytes(offset_bump=1 << 20))
    g("gguf_truncated", gguf_bytes()[:100])
    tensors = tiny_gguf_tensors()
    del tensors["blk.0.ffn_down.weight"]
    g("gguf_missing_tensor", gguf_bytes(tensors=tensors))
    # 250000 x 100000 float32 = 100 GB declared in a file of about 2 KB
    case("gguf_100gb_tensor", write(f"{d}/gguf_100gb_tensor.gguf",
                                    gguf_bytes(declared={"token_embd.weight": [250000, 100000]})),
         "gguf_100gb_tensor.gguf,token_embd.weight")
    # a token list that claims 2^33 strings
    kvs = tiny_gguf_kv()
    kvs[10] = gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, 2**33) + kvs[10][-200:]
    g("gguf_huge_token_array", gguf_bytes(kvs=kvs))
    # configurable ceilings: fewer tensors allowed than the file has
    case("gguf_over_tensor_limit", write(f"{d}/gguf_over_tensor_limit.gguf", gguf_bytes()),
         "gguf_over_tensor_limit.gguf,SHRINK_MAX_TENSORS", env="SHRINK_MAX_TENSORS=3")


# ---- llama2.c ----

def l2c_bytes(dim=8, hidden=12, layers=1, heads=2, kv_heads=1, vocab=16, seq=4, extra=0):
    head = dim // heads if heads > 0 else 0
    kv = head * kv_heads
    n = abs(vocab) * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) + dim + seq * head
    n = max(0, n + extra)
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq) + f32(n, 0.01)


def l2c_cases(d, data):
    case("l2c_wrong_size", write(f"{d}/l2c_wrong_size.bin", l2c_bytes(extra=-3)), "l2c_wrong_size.bin")
    case("l2c_zero_dims", write(f"{d}/l2c_zero_dims.bin", l2c_bytes(dim=0, hidden=0)), "l2c_zero_dims.bin")
    case("l2c_negative_dims", write(f"{d}/l2c_negative_dims.bin", l2c_bytes(layers=-5)), "l2c_negative_dims.bin")
    case("l2c_header_only", write(f"{d}/l2c_header_only.bin", l2c_bytes()[:20]), "l2c_header_only.bin")
    # a 70B-sized header (about 280 GB of floats) on 1 KB of data
    case("l2c_100gb_header", write(f"{d}/l2c_100gb_header.bin",
                                   struct.pack("<7i", 8192, 28672, 80, 64, 8, 32000, 4096) + bytes(1000)),
         "l2c_100gb_header.bin")
    stories = os.path.join(data, "stories260K.bin")
    if os.path.exists(stories):
        case("l2c_without_tokenizer", stories, "stories260K.bin")
        bad_tok = write(f"{d}/bad_tokenizer.json", '{"model": {"type": "BPE", "vocab": ')
        case("l2c_bad_tokenizer", stories, "bad_tokenizer.json", tokenizer=bad_tok)


# ---- other inputs ----

def other_cases(d, data):
    case("empty_model", write(f"{d}/empty.bin", b""), "empty.bin")
    case("unrecognised_model", write(f"{d}/garbage.dat", bytes(range(256)) * 4), "garbage.dat")
    case("missing_model", f"{d}/no-such-model.gguf", "no-such-model.gguf")
    gguf = os.path.join(data, "stories260K.gguf")
    if os.path.exists(gguf):
        case("empty_text", gguf, "empty.txt", text=write(f"{d}/empty.txt", b""))
        case("missing_text", gguf, "no-such-text.txt", text=f"{d}/no-such-text.txt")
        # 90 bytes naming token id 16777000: the holes must not become 16M allocated tokens
        sparse = write(f"{d}/sparse_ids.json", '{"model":{"type":"BPE","byte_fallback":true,'
                                                '"vocab":{"<unk>":0,"a":16777000},"merges":[]}}')
        case("tokenizer_sparse_ids", gguf, "sparse_ids.json", tokenizer=sparse)
        # a gzip bomb: 2 KB that inflate to 4 MB, over a 1 MB text limit
        import gzip
        bomb = write(f"{d}/bomb.txt.gz", gzip.compress(b" " * (4 << 20), 9))
        case("gzip_bomb_text", gguf, "bomb.txt.gz,SHRINK_MAX_TEXT_BYTES", text=bomb,
             env="SHRINK_MAX_TEXT_BYTES=1000000")


def main():
    args = sys.argv[1:]
    data = os.environ.get("SHRINK_DATA", "")
    if "--data" in args:
        i = args.index("--data")
        data = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit("usage: make_bad_inputs.py DIR [--data DATADIR]")
    d = os.path.abspath(args[0])
    os.makedirs(d, exist_ok=True)
    text = os.path.join(data, "tinystories.txt")
    if not os.path.exists(text):
        text = write(f"{d}/story.txt", "Once upon a time there was a little model.\n")
    st_cases(d)
    hf_cases(d)
    gguf_cases(d)
    l2c_cases(d, data)
    other_cases(d, data)
    with open(os.path.join(d, "cases.txt"), "w") as f:
        for name, model, t, tok, needles, env in CASES:
            assert "|" not in model + (t or text) + tok + needles + env
            f.write(f"{name}|{model}|{t or text}|{tok}|{needles}|{env}\n")
    print(f"{len(CASES)} cases in {d}/cases.txt")


if __name__ == "__main__":
    main()
