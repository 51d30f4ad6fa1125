"""modelgen.py: random-initialised Llama-family models for tests and benchmarks.

Library behind scripts/make-test-model and tests/ref/test_forward.py.  It
writes either

  - a Hugging Face directory: config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json, generation_config.json; or
  - one GGUF file in llama.cpp's layout (written with the `gguf` package's
    GGUFWriter): arch "llama" (also for --model-type mistral) with Q/K rows
    permuted for interleaved RoPE exactly as convert_hf_to_gguf.py does, or
    arch "qwen2" (NEOX RoPE, no permutation, Q/K/V biases); llama3 RoPE
    scaling becomes a rope_freqs.weight tensor, as llama.cpp's converter does.

safetensors is written here by hand (u64 header length, JSON header with
dtype/shape/data_offsets, the data section starting 8-byte aligned, tensors
back to back with no holes) because the test environment has numpy and gguf
only, and because large presets must be streamed tensor by tensor in chunks:
a 1B f16 model is 2.2 GB and is never held in memory.

Values: every tensor has its own random stream, numpy default_rng([seed, i])
for the i-th tensor of the plan, so the HF and GGUF outputs of one seed hold
the same numbers, and output is byte-identical for a given seed and options.
Matrices ~ N(0, init_std), norm weights 1 + N(0, 0.05), biases N(0, init_std);
values are rounded to the file's dtype (round to nearest even).  GGUF keeps 1-D
tensors (norms, biases) in F32, as llama.cpp does, holding the rounded values.

The tokenizer is byte-level BPE: the 256 GPT-2 byte symbols, then merges
learned deterministically from the built-in English text below (most frequent
pair first, ties broken by the pair's text) until the vocabulary is full;
when the text runs out of pairs (large vocabularies), synthetic merges
(token + letter) fill the rest.  "<s>" and "</s>" take the last two ids.

It does not quantize, shard, or write SentencePiece tokenizers.
"""

import json
import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------- the model spec

PRESETS = {
    "tiny": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, vocab=512, ctx=256),
    "smollm-135m": dict(dim=576, n_layers=30, n_heads=9, n_kv_heads=3, ffn_dim=1536, vocab=49152,
                        ctx=2048, tied=True, rope_theta=10000.0),
    "llama3-8b": dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, ffn_dim=14336, vocab=128256,
                      ctx=131072, rope_theta=500000.0,
                      rope_scaling={"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "llama-1b": dict(dim=2048, n_layers=22, n_heads=32, n_kv_heads=4, ffn_dim=5632, vocab=32000,
                     ctx=2048, dtype="f16"),
}

MODEL_TYPES = ("llama", "qwen2", "mistral")
DTYPES = ("f32", "f16", "bf16")


@dataclass
class Spec:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_dim: int = 128
    vocab: int = 512
    head_dim: int = 0            # 0: dim // n_heads
    ctx: int = 256
    qkv_bias: bool = False
    tied: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict = None    # {"type": "llama3", factor, low_freq_factor, high_freq_factor, original_...}
    model_type: str = "llama"
    dtype: str = "f32"
    norm_eps: float = 1e-5
    init_std: float = 0.02
    seed: int = 0
    layer_dims: list = None      # [{"n_heads", "n_kv_heads", "ffn_dim"}] per layer, or None
    name: str = "shrink-test-model"

    def layers(self):
        if self.layer_dims:
            return [dict(n_heads=int(d["n_heads"]), n_kv_heads=int(d["n_kv_heads"]), ffn_dim=int(d["ffn_dim"]))
                    for d in self.layer_dims]
        return [dict(n_heads=self.n_heads, n_kv_heads=self.n_kv_heads, ffn_dim=self.ffn_dim)
                for _ in range(self.n_layers)]

    def hd(self):
        return self.head_dim or self.dim // self.n_heads

    def bos_id(self):
        return self.vocab - 2

    def eos_id(self):
        return self.vocab - 1


def make_spec(preset=None, **overrides):
    """A Spec from a preset (or the tiny defaults) with non-None overrides applied."""
    base = dict(PRESETS[preset]) if preset else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if base.get("model_type") == "qwen2":
        base["qkv_bias"] = True
    spec = Spec(**base)
    validate(spec)
    return spec


def validate(spec):
    """Raise ValueError with a message naming the bad option."""
    if spec.model_type not in MODEL_TYPES:
        raise ValueError(f"--model-type must be one of {', '.join(MODEL_TYPES)}")
    if spec.dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}")
    if spec.qkv_bias and spec.model_type != "qwen2":
        raise ValueError("--qkv-bias needs --model-type qwen2 (Llama's attention_bias also adds an o_proj bias)")
    for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "ctx"):
        if getattr(spec, k) <= 0:
            raise ValueError(f"{k} must be positive")
    if not spec.head_dim and spec.dim % spec.n_heads:
        raise ValueError("--dim must be a multiple of --heads (or give --head-dim)")
    if spec.hd() % 2:
        raise ValueError("head dimension must be even (RoPE rotates pairs)")
    if spec.vocab < 258:
        raise ValueError("--vocab must be at least 258 (256 byte tokens + <s> + </s>)")
    if spec.layer_dims is not None:
        if len(spec.layer_dims) != spec.n_layers:
            raise ValueError(f"--layer-dims has {len(spec.layer_dims)} entries for {spec.n_layers} layers")
    for i, l in enumerate(spec.layers()):
        if l["n_heads"] <= 0 or l["n_kv_heads"] <= 0 or l["ffn_dim"] <= 0:
            raise ValueError(f"layer {i}: dimensions must be positive")
        if l["n_heads"] % l["n_kv_heads"]:
            raise ValueError(f"layer {i}: n_heads {l['n_heads']} is not a multiple of n_kv_heads {l['n_kv_heads']}")
    rs = spec.rope_scaling
    if rs is not None and rs.get("type") != "llama3":
        raise ValueError("only llama3 RoPE scaling is supported")


def parse_rope_scaling(text):
    """'llama3' or 'llama3:FACTOR,LOW,HIGH,ORIG' -> dict (or None for 'none')."""
    if text is None or text == "none":
        return None
    kind, _, values = text.partition(":")
    if kind != "llama3":
        raise ValueError("--rope-scaling must be 'llama3' or 'llama3:FACTOR,LOW,HIGH,ORIG'")
    v = [8.0, 1.0, 4.0, 8192]
    if values:
        parts = values.split(",")
        if len(parts) != 4:
            raise ValueError("--rope-scaling llama3:FACTOR,LOW,HIGH,ORIG takes four numbers")
        v = [float(parts[0]), float(parts[1]), float(parts[2]), int(parts[3])]
    if v[2] <= v[1]:
        raise ValueError("--rope-scaling: HIGH must exceed LOW")
    return {"type": "llama3", "factor": float(v[0]), "low_freq_factor": float(v[1]),
            "high_freq_factor": float(v[2]), "original_max_position_embeddings": int(v[3])}


# ---------------------------------------------------------------- tensor plan

def tensor_plan(spec):
    """[(hf_name, shape, kind)] in file order; kind is 'matrix', 'norm' or 'bias'."""
    hd = spec.hd()
    plan = [("model.embed_tokens.weight", (spec.vocab, spec.dim), "matrix")]
    for i, l in enumerate(spec.layers()):
        p = f"model.layers.{i}."
        q_rows, kv_rows = l["n_heads"] * hd, l["n_kv_heads"] * hd
        plan.append((p + "input_layernorm.weight", (spec.dim,), "norm"))
        plan.append((p + "self_attn.q_proj.weight", (q_rows, spec.dim), "matrix"))
        if spec.qkv_bias:
            plan.append((p + "self_attn.q_proj.bias", (q_rows,), "bias"))
        plan.append((p + "self_attn.k_proj.weight", (kv_rows, spec.dim), "matrix"))
        if spec.qkv_bias:
            plan.append((p + "self_attn.k_proj.bias", (kv_rows,), "bias"))
        plan.append((p + "self_attn.v_proj.weight", (kv_rows, spec.dim), "matrix"))
        if spec.qkv_bias:
            plan.append((p + "self_attn.v_proj.bias", (kv_rows,), "bias"))
        plan.append((p + "self_attn.o_proj.weight", (spec.dim, q_rows), "matrix"))
        plan.append((p + "post_attention_layernorm.weight", (spec.dim,), "norm"))
        plan.append((p + "mlp.gate_proj.weight", (l["ffn_dim"], spec.dim), "matrix"))
        plan.append((p + "mlp.up_proj.weight", (l["ffn_dim"], spec.dim), "matrix"))
        plan.append((p + "mlp.down_proj.weight", (spec.dim, l["ffn_dim"]), "matrix"))
    plan.append(("model.norm.weight", (spec.dim,), "norm"))
    if not spec.tied:
        plan.append(("lm_head.weight", (spec.vocab, spec.dim), "matrix"))
    return plan


def param_count(spec):
    return sum(int(np.prod(s)) for _, s, _ in tensor_plan(spec))


CHUNK_ELEMS = 1 << 22


def _rows_per_chunk(spec, shape):
    """Chunk size in rows: a whole number of heads, so Q/K chunks can be permuted alone."""
    if len(shape) == 1:
        return shape[0]
    hd = spec.hd()
    rows = max(1, CHUNK_ELEMS // shape[1])
    return max(hd, rows // hd * hd)


def _to_bf16_bits(x32):
    """float32 -> bfloat16 bit patterns, round to nearest even (no NaNs here)."""
    u = x32.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _round_to_dtype(x32, dtype):
    """(values rounded to dtype as float32, storage array in dtype)."""
    if dtype == "f32":
        return x32, x32
    if dtype == "f16":
        s = x32.astype(np.float16)
        return s.astype(np.float32), s
    bits = _to_bf16_bits(x32)
    return (bits.astype(np.uint32) << 16).view(np.float32), bits


def tensor_chunks(spec, index, shape, kind):
    """Yield float32 row chunks of tensor `index` of the plan (values before dtype rounding)."""
    rng = np.random.default_rng([spec.seed, index])
    rows_per = _rows_per_chunk(spec, shape)
    for start in range(0, shape[0], rows_per):
        n = min(rows_per, shape[0] - start)
        sub = (n,) + tuple(shape[1:])
        x = rng.standard_normal(sub, dtype=np.float32)
        if kind == "norm":
            x = np.float32(1.0) + np.float32(0.05) * x
        else:
            x = np.float32(spec.init_std) * x
        yield x


def generate_tensor(spec, index, shape, kind):
    """The whole tensor as float32 values already rounded to spec.dtype (small models only)."""
    parts = [_round_to_dtype(c, spec.dtype)[0] for c in tensor_chunks(spec, index, shape, kind)]
    return np.concatenate(parts).reshape(shape)


# ---------------------------------------------------------------- tokenizer

TRAINING_TEXT = """\
The morning train left the valley station a little after six. Most of the
people on board were going to work in the city, and many of them had made the
same journey every day for years. They read the news, looked out of the window
at the river, or closed their eyes and waited for the long tunnel under the
hill. A young woman near the door was reading a book about the history of
maps. She turned the pages slowly, because the old drawings were beautiful and
strange: islands that did not exist, rivers that ran the wrong way, and
mountains placed wherever the map maker had room for them.

When the train stopped at the second station, an old man with a small dog got
on and sat across from her. The dog looked at the book, then at the woman, and
then went to sleep on the warm floor. "He likes trains," the man said. "He has
been riding with me since he was very small. I think he knows every stop on
this line better than I do." The woman laughed and showed him a map of the
same valley drawn three hundred years ago. The river was there, and the hill,
but the town was only a few houses and a bridge.

They talked about how places change and how they stay the same. The man had
been a teacher, and he told her about the school that used to stand beside
the bridge, where children learned to read, to count and to write letters to
their families in other countries. In the winter the room was cold, so the
teacher kept a fire burning all day, and the children brought wood from home.
In the summer the windows were open and the sound of the water came in.

Later that day, after work, the woman walked along the river to find the
place where the old bridge had been. Nothing of it was left, but the road
still turned at the same point, and a stone wall followed the water for a
hundred meters. She stood there for a while, thinking about the map, the
teacher and the dog, and about all the people who had crossed the river at
that point before her. Then she went home, made some tea, and started to draw
a new map of the valley, with the train, the station, the school and the
bridge, so that someone might find it in another three hundred years.
Numbers help too: 12 stations, 3 tunnels, 45 minutes, 2024 trips in a year!
"""

GPT2_SPLIT_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# The same pattern for Python's re (no \p{..}): letters = [^\W\d_], digits = \d.
_PY_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode symbol map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def pretokenize(text):
    enc = bytes_to_unicode()
    return ["".join(enc[b] for b in piece.encode("utf-8")) for piece in _PY_SPLIT.findall(text)]


def learn_bpe(n_tokens, text=TRAINING_TEXT):
    """(tokens in id order, merges as (a, b) pairs) with len(tokens) == n_tokens (>= 256)."""
    enc = bytes_to_unicode()
    tokens = [enc[b] for b in range(256)]
    known = set(tokens)
    merges = []
    words = Counter(pretokenize(text))
    seqs = {w: list(w) for w in words}
    while len(tokens) < n_tokens:
        counts = Counter()
        for w, freq in words.items():
            s = seqs[w]
            for pair in zip(s, s[1:]):
                counts[pair] += freq
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merged = best[0] + best[1]
        merges.append(best)
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
        for w, s in seqs.items():
            i, out = 0, []
            while i < len(s):
                if i + 1 < len(s) and s[i] == best[0] and s[i + 1] == best[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    # The text is exhausted: fill with synthetic merges token + letter.
    letters = [enc[b] for b in b"etaoinsrhldcumfpgwybvkxjqz"]
    base = 256
    while len(tokens) < n_tokens:
        a = tokens[base] if base < len(tokens) else tokens[base - len(tokens)]
        base += 1
        for c in letters:
            if len(tokens) >= n_tokens:
                break
            if a + c not in known:
                known.add(a + c)
                tokens.append(a + c)
                merges.append((a, c))
    return tokens, merges


def bpe_encode(text, tokens, merges):
    """Token ids of `text` (no special tokens) with byte-level BPE: in each
    pre-tokenized piece, repeatedly merge the leftmost pair of lowest rank.
    A plain reference for tokenizer tests; slow, for short texts."""
    ranks = {}
    for i, pair in enumerate(merges):
        ranks.setdefault(tuple(pair), i)
    ids = {t: i for i, t in enumerate(tokens)}
    out = []
    for piece in pretokenize(text):
        syms = list(piece)
        while len(syms) > 1:
            rank, i = min((ranks.get(p, math.inf), i) for i, p in enumerate(zip(syms, syms[1:])))
            if rank == math.inf:
                break
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        out.extend(ids[s] for s in syms)
    return out


_BPE_CACHE = {}


def tokenizer_data(spec):
    """(tokens by id incl. specials, token types (1 normal, 3 control), merges)."""
    n = spec.vocab - 2
    if n not in _BPE_CACHE:
        _BPE_CACHE[n] = learn_bpe(n)
    tokens, merges = _BPE_CACHE[n]
    tokens = tokens + ["<s>", "</s>"]
    types = [1] * (len(tokens) - 2) + [3, 3]
    return tokens, types, merges


def tokenizer_json(spec):
    tokens, _, merges = tokenizer_data(spec)
    n = len(tokens) - 2
    added = [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i in (n, n + 1)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": GPT2_SPLIT_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens[:n])},
                  "merges": [f"{a} {b}" for a, b in merges]},
    }


# ---------------------------------------------------------------- HF directory

_TORCH_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
_ST_DTYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16"}
_ARCH_CLASS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}


def hf_config(spec):
    layers = spec.layers()
    cfg = {
        "architectures": [_ARCH_CLASS[spec.model_type]],
        "model_type": spec.model_type,
        "hidden_size": spec.dim,
        "intermediate_size": max(l["ffn_dim"] for l in layers),
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": max(l["n_heads"] for l in layers),
        "num_key_value_heads": max(l["n_kv_heads"] for l in layers),
        "head_dim": spec.hd(),
        "vocab_size": spec.vocab,
        "max_position_embeddings": spec.ctx,
        "rms_norm_eps": spec.norm_eps,
        "rope_theta": spec.rope_theta,
        "rope_scaling": None,
        "hidden_act": "silu",
        "initializer_range": spec.init_std,
        "tie_word_embeddings": spec.tied,
        "bos_token_id": spec.bos_id(),
        "eos_token_id": spec.eos_id(),
        "torch_dtype": _TORCH_DTYPE[spec.dtype],
        "use_cache": True,
    }
    if spec.rope_scaling:
        rs = dict(spec.rope_scaling)
        cfg["rope_scaling"] = {"rope_type": rs.pop("type"), **rs}
    if spec.model_type == "llama":
        cfg["attention_bias"] = False
        cfg["mlp_bias"] = False
    else:
        cfg["sliding_window"] = None
    if spec.model_type == "qwen2":
        cfg["use_sliding_window"] = False
        cfg["max_window_layers"] = spec.n_layers
    if spec.layer_dims:
        cfg["shrink_layers"] = layers
    return cfg


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_safetensors(spec, path, progress=None):
    """Stream all tensors of the plan into one .safetensors file (via path + '.tmp')."""
    plan = tensor_plan(spec)
    itemsize = 4 if spec.dtype == "f32" else 2
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in plan:
        nbytes = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": _ST_DTYPE[spec.dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - (8 + len(hbytes)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for i, (name, shape, kind) in enumerate(plan):
            for chunk in tensor_chunks(spec, i, shape, kind):
                _, stored = _round_to_dtype(chunk, spec.dtype)
                stored.astype(stored.dtype.newbyteorder("<"), copy=False).tofile(f)
            if progress:
                progress(name)
    os.replace(tmp, path)


def write_hf(spec, out_dir, progress=None):
    os.makedirs(out_dir, exist_ok=True)
    _write_json(os.path.join(out_dir, "config.json"), hf_config(spec))
    _write_json(os.path.join(out_dir, "generation_config.json"),
                {"bos_token_id": spec.bos_id(), "eos_token_id": spec.eos_id(), "do_sample": False})
    _write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer_json(spec))
    _write_json(os.path.join(out_dir, "tokenizer_config.json"),
                {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                 "add_bos_token": False, "model_max_length": spec.ctx})
    write_safetensors(spec, os.path.join(out_dir, "model.safetensors"), progress)


# ---------------------------------------------------------------- GGUF

_GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf_name):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf_name in top:
        return top[hf_name]
    parts = hf_name.split(".", 3)  # model, layers, N, rest
    return f"blk.{parts[2]}.{_GGUF_NAMES[parts[3]]}"


def permute_for_gguf(w, n_heads):
    """convert_hf_to_gguf.py's LlamaModel.permute: half-split rows -> interleaved rows."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(spec):
    """llama.cpp's rope_freqs.weight for llama3 scaling: inv_freq is divided by these."""
    rs = spec.rope_scaling
    d = spec.hd()
    freqs = spec.rope_theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(spec, path, progress=None):
    import gguf

    arch = "qwen2" if spec.model_type == "qwen2" else "llama"
    permute = arch == "llama"
    layers = spec.layers()
    tmp = path + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(spec.name)
    w.add_context_length(spec.ctx)
    w.add_embedding_length(spec.dim)
    w.add_block_count(spec.n_layers)

    def per_layer(key):
        vals = [l[key] for l in layers]
        return vals[0] if len(set(vals)) == 1 else vals

    w.add_feed_forward_length(per_layer("ffn_dim"))
    w.add_head_count(per_layer("n_heads"))
    w.add_head_count_kv(per_layer("n_kv_heads"))
    w.add_layer_norm_rms_eps(spec.norm_eps)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_rope_dimension_count(spec.hd())
    if spec.head_dim and spec.head_dim != spec.dim // spec.n_heads:
        w.add_key_length(spec.hd())
        w.add_value_length(spec.hd())
    w.add_vocab_size(spec.vocab)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16}[spec.dtype]
    w.add_file_type(int(ftype))
    tokens, types, merges = tokenizer_data(spec)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(spec.bos_id())
    w.add_eos_token_id(spec.eos_id())
    w.add_add_bos_token(False)

    plan = tensor_plan(spec)
    # GGUF order as llama.cpp's converter writes it: rope_freqs first, then the plan.
    entries = []
    for i, (name, shape, kind) in enumerate(plan):
        entries.append((gguf_name(name), i, name, shape, kind))
    rope_factors = llama3_rope_factors(spec) if spec.rope_scaling else None

    def info(shape, kind):
        if kind != "matrix" or spec.dtype == "f32":
            return np.float32, 4, None
        if spec.dtype == "f16":
            return np.float16, 2, None
        return np.uint16, 2, gguf.GGMLQuantizationType.BF16

    ordered = ([("rope_freqs.weight", None, None, None, None)] if rope_factors is not None else []) + entries
    for gname, i, name, shape, kind in ordered:
        if i is None:
            w.add_tensor_info(gname, rope_factors.shape, np.float32, rope_factors.nbytes)
            continue
        dt, size, raw = info(shape, kind)
        w.add_tensor_info(gname, shape, np.dtype(dt), int(np.prod(shape)) * size, raw_dtype=raw)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    for gname, i, name, shape, kind in ordered:
        w.write_padding(fout, fout.tell())
        if i is None:
            rope_factors.astype("<f4").tofile(fout)
            w.write_padding(fout, rope_factors.nbytes)
            continue
        permute_rows = permute and (".q_proj." in name or ".k_proj." in name)
        nbytes = 0
        for chunk in tensor_chunks(spec, i, shape, kind):
            rounded, stored = _round_to_dtype(chunk, spec.dtype)
            if kind != "matrix":
                stored = rounded.astype(np.float32)
            if permute_rows:  # chunks hold whole heads
                stored = permute_for_gguf(stored, stored.shape[0] // spec.hd())
            stored = np.ascontiguousarray(stored)
            stored.astype(stored.dtype.newbyteorder("<"), copy=False).tofile(fout)
            nbytes += stored.nbytes
        w.write_padding(fout, nbytes)
        if progress:
            progress(name)
    w.close()
    os.replace(tmp, path)


# ---------------------------------------------------------------- llama2.c

def gguf_to_llama2c(src, dst):
    """Write a llama2.c checkpoint (legacy 7-int header) holding the weights of
    an F32 llama GGUF such as stories260K.gguf.  Q/K rows are copied as they
    are: llama2.c and GGUF "llama" both rotate adjacent pairs, so no
    permutation is needed (checked on stories260K: the trained model gives the
    same logits either way).  The classifier is shared (vocab > 0) when
    output.weight is absent or equal to token_embd.weight; the legacy
    freq_cis tables are written as llama2.c's old export did."""
    import gguf

    r = gguf.GGUFReader(src)
    t = {x.name: np.asarray(gguf.quants.dequantize(np.asarray(x.data), x.tensor_type), dtype=np.float32)
         .reshape(tuple(reversed([int(d) for d in x.shape]))) for x in r.tensors}

    def kv(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0]

    dim = kv("llama.embedding_length")
    n_layers = kv("llama.block_count")
    n_heads = kv("llama.attention.head_count")
    n_kv = kv("llama.attention.head_count_kv")
    hidden = kv("llama.feed_forward_length")
    seq_len = kv("llama.context_length")
    theta = kv("llama.rope.freq_base") if "llama.rope.freq_base" in r.fields else 10000.0
    emb = t["token_embd.weight"]
    vocab = emb.shape[0]
    out = t.get("output.weight")
    shared = out is None or np.array_equal(out, emb)
    hd = dim // n_heads
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv, vocab if shared else -vocab, seq_len))

        def put(a):
            np.ascontiguousarray(a, dtype="<f4").tofile(f)

        put(emb)
        for kind in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                     "ffn_gate", "ffn_down", "ffn_up"):
            for i in range(n_layers):
                put(t[f"blk.{i}.{kind}.weight"])
        put(t["output_norm.weight"])
        ang = np.arange(seq_len)[:, None] * theta ** (-np.arange(0, hd, 2) / hd)[None, :]
        put(np.cos(ang))
        put(np.sin(ang))
        if not shared:
            put(out)
    os.replace(tmp, dst)


def write_model(spec, out, fmt="hf", progress=None):
    """Write `spec` to `out`: a directory (fmt 'hf') or a .gguf file (fmt 'gguf')."""
    if fmt == "hf":
        write_hf(spec, out, progress)
    elif fmt == "gguf":
        write_gguf(spec, out, progress)
    else:
        raise ValueError("format must be hf or gguf")
