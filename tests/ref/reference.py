#!/usr/bin/env python3
"""reference.py: an independent float64 forward pass for Llama-family models.

Written from the published math (RMSNorm, RoPE, grouped-query attention,
SwiGLU), not from shrink's C code, so that tests can check the C forward pass
against it.  It reads three formats with its own code:

  - a Hugging Face directory: config.json plus *.safetensors (parsed here with
    numpy: u64 header length, JSON header, raw little-endian data; F32, F16,
    BF16), shards through model.safetensors.index.json;
  - GGUF, through the `gguf` package's GGUFReader, dequantized with
    gguf.quants.dequantize;
  - a llama2.c checkpoint (.bin): seven int32 (dim, hidden_dim, n_layers,
    n_heads, n_kv_heads, vocab_size, seq_len; vocab_size < 0 means an
    unshared classifier), then float32 arrays.

RoPE layouts: Hugging Face rotates the two halves of each head
(rotate_half); GGUF "llama" and llama2.c rotate adjacent pairs (interleaved).
By default the loaders convert interleaved Q/K weights to the half-split
layout (the inverse of llama.cpp's convert_hf_to_gguf.py permute) and the
forward pass then uses half-split RoPE.  With unpermute=False the weights stay
as stored and the forward pass rotates adjacent pairs instead: the two paths
must agree, which tests the permutation itself.

Everything is float64 and materialised in memory: this is for tiny models in
tests, not for real checkpoints.  No torch, no safetensors package.

Command line (handy when debugging the C side):
  reference.py MODEL --tokens 1,5,9 [-o OUT.f32] [--no-unpermute] [--float32]
writes float32 logits [n_tokens, vocab] row-major, like tests/ref/logits
(without -o it prints the top 5 logits per position).
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _bf16_to_f64(raw_u16):
    return (raw_u16.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def read_safetensors(path):
    """Return ({name: float64 array}, metadata dict) from one .safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n_header,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n_header].decode("utf-8"))
    base = 8 + n_header
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        raw = blob[base + start:base + end]
        shape = tuple(info["shape"])
        dtype = info["dtype"]
        if dtype == "BF16":
            arr = _bf16_to_f64(np.frombuffer(raw, dtype="<u2"))
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<")).astype(np.float64)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name}: {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape)
    return out, meta


# ---------------------------------------------------------------- config

def _layers_uniform(n_layers, n_heads, n_kv_heads, ffn_dim):
    return [{"n_heads": n_heads, "n_kv_heads": n_kv_heads, "ffn_dim": ffn_dim} for _ in range(n_layers)]


def _rope_scaling_from_hf(rs):
    if not rs:
        return None
    kind = rs.get("rope_type", rs.get("type"))
    if kind in (None, "default"):
        return None
    if kind == "llama3":
        return {"type": "llama3", "factor": float(rs["factor"]),
                "low_freq_factor": float(rs.get("low_freq_factor", 1.0)),
                "high_freq_factor": float(rs.get("high_freq_factor", 4.0)),
                "original_max_position_embeddings": int(rs.get("original_max_position_embeddings", 8192))}
    if kind == "linear":
        return {"type": "linear", "factor": float(rs["factor"])}
    raise ValueError(f"unsupported rope_scaling type {kind!r}")


def config_from_hf(hf):
    dim = hf["hidden_size"]
    n_heads = hf["num_attention_heads"]
    n_layers = hf["num_hidden_layers"]
    head_dim = hf.get("head_dim") or dim // n_heads
    if hf.get("shrink_layers"):
        layers = [{"n_heads": int(l["n_heads"]), "n_kv_heads": int(l["n_kv_heads"]), "ffn_dim": int(l["ffn_dim"])}
                  for l in hf["shrink_layers"]]
        if len(layers) != n_layers:
            raise ValueError("shrink_layers has %d entries for %d layers" % (len(layers), n_layers))
    else:
        layers = _layers_uniform(n_layers, n_heads, hf.get("num_key_value_heads") or n_heads,
                                 hf["intermediate_size"])
    model_type = hf.get("model_type", "llama")
    qkv_bias = model_type == "qwen2" or bool(hf.get("attention_bias", False))
    rope_params = hf.get("rope_parameters") or {}
    theta = hf.get("rope_theta", rope_params.get("rope_theta", 10000.0))
    return {
        "arch": model_type,
        "dim": dim,
        "n_layers": n_layers,
        "head_dim": head_dim,
        "vocab_size": hf["vocab_size"],
        "layers": layers,
        "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "rope_theta": float(theta),
        "rope_scaling": _rope_scaling_from_hf(hf.get("rope_scaling") or rope_params),
        "rope_freq_factors": None,
        "tied": bool(hf.get("tie_word_embeddings", False)),
        "qkv_bias": qkv_bias,
        "o_bias": model_type == "llama" and bool(hf.get("attention_bias", False)),
        "rope_interleaved": False,
    }


def load_hf(path):
    with open(os.path.join(path, "config.json")) as f:
        cfg = config_from_hf(json.load(f))
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if not files:
        raise ValueError(f"{path}: no .safetensors files")
    w = {}
    for name in files:
        tensors, _ = read_safetensors(os.path.join(path, name))
        w.update(tensors)
    if "lm_head.weight" not in w:
        cfg["tied"] = True
    return cfg, w


# ---------------------------------------------------------------- RoPE layouts

def interleaved_to_half(w, n_heads):
    """Rows of a Q/K projection stored for interleaved RoPE -> half-split rows.

    Inverse of convert_hf_to_gguf.py's permute():
      w.reshape(n_head, 2, hd // 2, cols).swapaxes(1, 2).reshape(w.shape)."""
    rows = w.shape[0]
    hd = rows // n_heads
    rest = w.shape[1:]
    return w.reshape(n_heads, hd // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def half_to_interleaved(w, n_heads):
    """Half-split rows -> interleaved rows (llama.cpp's permute)."""
    rows = w.shape[0]
    hd = rows // n_heads
    rest = w.shape[1:]
    return w.reshape(n_heads, 2, hd // 2, *rest).swapaxes(1, 2).reshape(w.shape)


def _unpermute_qk(cfg, w):
    for i, layer in enumerate(cfg["layers"]):
        for proj, heads in (("q_proj", layer["n_heads"]), ("k_proj", layer["n_kv_heads"])):
            for kind in ("weight", "bias"):
                name = f"model.layers.{i}.self_attn.{proj}.{kind}"
                if name in w:
                    w[name] = interleaved_to_half(w[name], heads)
    cfg["rope_interleaved"] = False


# ---------------------------------------------------------------- GGUF

_GGUF_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _gguf_name_to_hf(name):
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight", "rope_freqs.weight": "rope_freqs"}
    if name in top:
        return top[name]
    parts = name.split(".")
    if parts[0] == "blk" and len(parts) == 4 and parts[2] in _GGUF_NAMES:
        return f"model.layers.{parts[1]}.{_GGUF_NAMES[parts[2]]}.{parts[3]}"
    raise ValueError(f"unknown GGUF tensor {name}")


def _gguf_field(reader, key, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    import gguf
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        return [field.parts[i].tolist()[0] for i in field.data]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def load_gguf(path, unpermute=True):
    import gguf
    r = gguf.GGUFReader(path)
    arch = _gguf_field(r, "general.architecture")
    if arch not in ("llama", "qwen2", "mistral"):
        raise ValueError(f"{path}: unsupported architecture {arch}")

    def key(k, default=None):
        return _gguf_field(r, f"{arch}.{k}", default)

    w = {}
    for t in r.tensors:
        data = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        shape = tuple(reversed([int(d) for d in t.shape]))
        w[_gguf_name_to_hf(t.name)] = np.asarray(data, dtype=np.float64).reshape(shape)
    dim = key("embedding_length")
    n_layers = key("block_count")

    def per_layer(v):
        return list(v) if isinstance(v, list) else [v] * n_layers

    heads = per_layer(key("attention.head_count"))
    kv = per_layer(key("attention.head_count_kv", heads))
    ffn = per_layer(key("feed_forward_length"))
    head_dim = key("attention.key_length") or key("rope.dimension_count") or dim // heads[0]
    scaling = None
    if key("rope.scaling.type") == "linear":
        scaling = {"type": "linear", "factor": float(key("rope.scaling.factor"))}
    cfg = {
        "arch": arch,
        "dim": dim,
        "n_layers": n_layers,
        "head_dim": head_dim,
        "vocab_size": w["model.embed_tokens.weight"].shape[0],
        "layers": [{"n_heads": heads[i], "n_kv_heads": kv[i], "ffn_dim": ffn[i]} for i in range(n_layers)],
        "norm_eps": float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(key("rope.freq_base", 10000.0)),
        "rope_scaling": scaling,
        "rope_freq_factors": w.pop("rope_freqs", None),
        "tied": "lm_head.weight" not in w,
        "qkv_bias": "model.layers.0.self_attn.q_proj.bias" in w,
        "o_bias": False,
        # llama.cpp: llama/mistral use LLAMA_ROPE_TYPE_NORM (adjacent pairs),
        # qwen2 uses NEOX (halves), with weights stored as in HF.
        "rope_interleaved": arch in ("llama", "mistral"),
    }
    if unpermute and cfg["rope_interleaved"]:
        _unpermute_qk(cfg, w)
    return cfg, w


# ---------------------------------------------------------------- llama2.c

def load_llama2c(path, unpermute=True):
    raw = np.fromfile(path, dtype="<f4", offset=28)
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = np.fromfile(path, dtype="<i4", count=7).tolist()
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    kv_dim = n_kv * hd
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        if pos[0] + n > raw.size:
            raise ValueError(f"{path}: file too short")
        a = raw[pos[0]:pos[0] + n].astype(np.float64).reshape(shape)
        pos[0] += n
        return a

    emb = take(vocab, dim)
    att_norm = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    ffn_norm = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    final_norm = take(dim)
    take(seq_len * hd // 2)  # legacy freq_cis_real
    take(seq_len * hd // 2)  # legacy freq_cis_imag
    w = {"model.embed_tokens.weight": emb, "model.norm.weight": final_norm}
    if not shared:
        w["lm_head.weight"] = take(vocab, dim)
    for i in range(n_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = att_norm[i]
        w[p + "self_attn.q_proj.weight"] = wq[i]
        w[p + "self_attn.k_proj.weight"] = wk[i]
        w[p + "self_attn.v_proj.weight"] = wv[i]
        w[p + "self_attn.o_proj.weight"] = wo[i]
        w[p + "post_attention_layernorm.weight"] = ffn_norm[i]
        w[p + "mlp.gate_proj.weight"] = w1[i]
        w[p + "mlp.down_proj.weight"] = w2[i]
        w[p + "mlp.up_proj.weight"] = w3[i]
    cfg = {
        "arch": "llama", "dim": dim, "n_layers": n_layers, "head_dim": hd, "vocab_size": vocab,
        "layers": _layers_uniform(n_layers, n_heads, n_kv, hidden),
        "norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None, "rope_freq_factors": None,
        "tied": shared, "qkv_bias": False, "o_bias": False,
        "rope_interleaved": True,  # llama2.c run.c rotates (x[i], x[i+1]) pairs
    }
    if unpermute:
        _unpermute_qk(cfg, w)
    return cfg, w


def load(path, unpermute=True):
    """Load a model from an HF directory, a .gguf or a llama2.c .bin."""
    if os.path.isdir(path):
        return load_hf(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return load_gguf(path, unpermute)
    return load_llama2c(path, unpermute)


# ---------------------------------------------------------------- forward

def inv_freq(cfg):
    """Per-frequency inverse wavelengths theta^(-2i/d), i < d/2, with scaling."""
    d = cfg["head_dim"]
    f = cfg["rope_theta"] ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    rs = cfg.get("rope_scaling")
    if rs and rs["type"] == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        orig = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        out = f.copy()
        for i in range(len(f)):
            if wavelen[i] > orig / low:
                out[i] = f[i] / factor
            elif wavelen[i] < orig / high:
                out[i] = f[i]
            else:
                smooth = (orig / wavelen[i] - low) / (high - low)
                out[i] = (1 - smooth) * f[i] / factor + smooth * f[i]
        f = out
    elif rs and rs["type"] == "linear":
        f = f / rs["factor"]
    if cfg.get("rope_freq_factors") is not None:
        # GGUF rope_freqs.weight: llama.cpp divides each frequency by its factor.
        f = f / np.asarray(cfg["rope_freq_factors"], dtype=np.float64)
    return f


def rope(x, positions, freqs, interleaved):
    """x: (T, n_heads, hd). Rotate each head by angle pos * freq."""
    ang = positions[:, None] * freqs[None, :]          # (T, hd/2)
    ang = ang.astype(x.dtype)
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def rmsnorm(x, weight, eps):
    return x * weight / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + x.dtype.type(eps))


def silu(x):
    return x / (x.dtype.type(1) + np.exp(-x))


def attention(q, k, v):
    """q: (T, H, hd); k, v: (T, KV, hd). Causal, grouped-query."""
    T, H, hd = q.shape
    group = H // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("thd,shd->hts", q, k) / q.dtype.type(math.sqrt(hd))
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    scores[:, mask] = -np.inf
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hts,shd->thd", p, v)


def forward(cfg, w, tokens, dtype=np.float64):
    """Logits ([len(tokens), vocab]) for every position.

    dtype=np.float32 runs the same math in single precision: tests use it to
    check that a model is well conditioned enough for their tolerance."""
    if dtype != np.float64:
        w = {k: v.astype(dtype) for k, v in w.items()}
    tokens = np.asarray(tokens, dtype=np.int64)
    T = len(tokens)
    hd = cfg["head_dim"]
    eps = cfg["norm_eps"]
    freqs = inv_freq(cfg)
    positions = np.arange(T, dtype=np.float64)
    if dtype != np.float64:
        freqs = freqs.astype(dtype)
        positions = positions.astype(dtype)
    x = w["model.embed_tokens.weight"][tokens].copy()
    for i, layer in enumerate(cfg["layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, inp):
            y = inp @ w[p + name + ".weight"].T
            b = w.get(p + name + ".bias")
            return y + b if b is not None else y

        q = proj("self_attn.q_proj", h).reshape(T, layer["n_heads"], hd)
        k = proj("self_attn.k_proj", h).reshape(T, layer["n_kv_heads"], hd)
        v = proj("self_attn.v_proj", h).reshape(T, layer["n_kv_heads"], hd)
        q = rope(q, positions, freqs, cfg["rope_interleaved"])
        k = rope(k, positions, freqs, cfg["rope_interleaved"])
        a = attention(q, k, v).reshape(T, layer["n_heads"] * hd)
        x = x + proj("self_attn.o_proj", a)
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tied"] or "lm_head.weight" not in w else w["lm_head.weight"]
    return x @ head.T


def logits(path, tokens, unpermute=True):
    cfg, w = load(path, unpermute)
    return forward(cfg, w, tokens)


def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 reference logits for a Llama-family model")
    ap.add_argument("model", help="HF directory, .gguf or llama2.c .bin")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("-o", "--output", help="write float32 logits [n_tokens, vocab] here")
    ap.add_argument("--no-unpermute", action="store_true",
                    help="keep interleaved Q/K as stored and rotate adjacent pairs")
    ap.add_argument("--float32", action="store_true", help="compute in float32 instead of float64")
    ap.add_argument("--tokenizer", help="ignored (accepted for the same command line as tests/ref/logits)")
    args = ap.parse_args(argv)
    tokens = [int(t) for t in args.tokens.split(",") if t]
    cfg, w = load(args.model, unpermute=not args.no_unpermute)
    out = forward(cfg, w, tokens, np.float32 if args.float32 else np.float64)
    if args.output:
        out.astype("<f4").tofile(args.output)
    else:
        for t, row in zip(tokens, out):
            top = np.argsort(-row)[:5]
            print(t, " ".join(f"{j}:{row[j]:.4f}" for j in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
