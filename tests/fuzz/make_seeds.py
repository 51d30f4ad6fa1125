#!/usr/bin/env python3
"""make_seeds.py CORPUS_DIR [TOOLS_DIR]: write the small valid seed files of
every fuzz target into CORPUS_DIR/TARGET/ (deterministic; each file a few KB).

Models come from tests/ref/modelgen.py with tiny dimensions; the odd formats
(every GGUF block type, a SentencePiece vocabulary, llama2.c checkpoints) are
laid out here by hand. The container and calibration seeds need the built
shrink-quantize and shrink-calibrate in TOOLS_DIR (e.g. build/tools); without
it they are skipped. Nothing is downloaded.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import modelgen  # noqa: E402

OUT = sys.argv[1]
TOOLS = sys.argv[2] if len(sys.argv) > 2 else None
TINY = dict(dim=8, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=16, vocab=300, ctx=16, dtype="f16")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def spec(**kw):
    return modelgen.make_spec(**{**TINY, **kw})


def st_file(tensors, metadata=None, pad=True):
    """safetensors bytes from [(name, dtype, shape, raw bytes)]."""
    header, off, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def rnd(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ---- hf_config and hf_index
put("hf_config", "llama.json", json.dumps(modelgen.hf_config(spec())))
put("hf_config", "qwen2.json", json.dumps(modelgen.hf_config(spec(model_type="qwen2"))))
put("hf_config", "mistral.json", json.dumps(modelgen.hf_config(spec(model_type="mistral", tied=True))))
put("hf_config", "llama3_rope.json", json.dumps(modelgen.hf_config(spec(rope_scaling=dict(
    type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8)))))
put("hf_config", "pruned.json", json.dumps(modelgen.hf_config(spec(n_layers=2, layer_dims=[
    dict(n_heads=2, n_kv_heads=1, ffn_dim=16), dict(n_heads=1, n_kv_heads=1, ffn_dim=8)]))))

shard1 = "model-00001-of-00002.safetensors"
shard2 = "model-00002-of-00002.safetensors"
put("hf_index", "two_shards.json", json.dumps({"metadata": {"total_size": 176}, "weight_map": {
    "model.embed_tokens.weight": shard1, "model.norm.weight": shard1,
    "model.layers.0.input_layernorm.weight": shard2}}))
put("hf_index", "one_shard.json", json.dumps({"weight_map": {"model.norm.weight": shard1}}))

# ---- safetensors: every dtype, metadata, unpadded header, empty tensor, a whole tiny model
dts = [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4), ("I16", 2), ("I8", 1),
       ("U8", 1), ("BOOL", 1), ("U16", 2), ("U32", 4), ("U64", 8)]
put("safetensors", "dtypes.safetensors", st_file([(f"t.{d}", d, [2, 3], rnd(6 * s, i)) for i, (d, s) in
                                                  enumerate(dts)], {"format": "pt"}))
put("safetensors", "unpadded.safetensors", st_file([("a", "F32", [3], rnd(12, 1)), ("b", "F16", [1, 1], rnd(2, 2)),
                                                    ("e", "F32", [0, 4], b"")], pad=False))
with tempfile.TemporaryDirectory() as tmp:
    modelgen.write_hf(spec(vocab=258, dtype="bf16"), tmp)
    with open(os.path.join(tmp, "model.safetensors"), "rb") as f:
        put("safetensors", "tiny_model.safetensors", f.read())

# ---- tokenizer_json: byte-level BPE (modelgen) and a SentencePiece-style one
put("tokenizer_json", "bpe.json", json.dumps(modelgen.tokenizer_json(spec(vocab=300))))
pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + \
    ["\u2581", "e", "l", "o", "H", "w", "r", "d", "\u2581H", "ll", "\u2581w", "or", "ld", "\u2581Hello"]
vocab = {p: i for i, p in enumerate(pieces)}
spm = {"version": "1.0", "added_tokens": [
    {"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
    {"id": 2, "content": "</s>", "special": True}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                      {"type": "Replace", "pattern": {"String": " "},
                                                       "content": "\u2581"}]},
    "pre_tokenizer": None,
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"},
                                                  "content": " "}, {"type": "ByteFallback"}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True, "vocab": vocab,
              "merges": ["\u2581 H", "l l", "\u2581 w", "o r", "l d"]}}
put("tokenizer_json", "spm.json", json.dumps(spm, ensure_ascii=False))

# ---- gguf: tiny llama / qwen2 models with BPE vocab, every block type, an SPM vocab
import gguf  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    for name, s in [("llama_f16", spec(vocab=300, tied=True)), ("qwen2_f32", spec(model_type="qwen2", vocab=300, dtype="f32", tied=True)),
                    ("llama3_bf16", spec(vocab=300, tied=True, dtype="bf16", rope_scaling=dict(
                        type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                        original_max_position_embeddings=8)))]:
        p = os.path.join(tmp, name + ".gguf")
        modelgen.write_gguf(s, p)
        with open(p, "rb") as f:
            put("gguf", name + ".gguf", f.read())

    Q = gguf.GGMLQuantizationType
    p = os.path.join(tmp, "blocks.gguf")
    w = gguf.GGUFWriter(p, "llama")
    for i, qt in enumerate([Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0,
                            Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]):
        be, bb = gguf.GGML_QUANT_SIZES[qt]
        n = 256 if be > 1 else 4
        raw = bytearray(rnd(n // be * bb, 100 + i))
        # keep the f16 scales finite and small so the values are ordinary numbers
        if qt not in (Q.F32, Q.F16, Q.BF16):
            for b in range(n // be):
                struct.pack_into("<e", raw, b * bb + (bb - 2 if qt == Q.Q6_K else 0), 0.01)
        w.add_tensor(f"t.{qt.name}", np.frombuffer(bytes(raw), dtype=np.uint8), raw_shape=(1, len(raw)), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(p, "rb") as f:
        put("gguf", "blocks.gguf", f.read())

    p = os.path.join(tmp, "spm.gguf")
    w = gguf.GGUFWriter(p, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(len(pieces) - 259)])
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (len(pieces) - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_tensor("t", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(p, "rb") as f:
        put("gguf", "spm_vocab.gguf", f.read())


# ---- llama2c: legacy 7-int header then float32 tensors (shared and separate classifier)
def llama2c(dim, hidden, layers, heads, kv, vocab, seq, shared, seed):
    hd, kvd = dim // heads, dim // heads * kv
    n = vocab * dim + layers * (dim + dim * dim + 2 * dim * kvd + dim * dim + dim + 3 * hidden * dim) + dim + \
        seq * hd + (0 if shared else vocab * dim)
    w = np.random.default_rng(seed).normal(0, 0.1, n).astype("<f4")
    return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq) + w.tobytes()


put("llama2c", "shared.bin", llama2c(8, 16, 1, 2, 1, 32, 4, True, 1))
put("llama2c", "separate.bin", llama2c(8, 16, 2, 2, 2, 16, 2, False, 2))

# ---- container: shrink-quantize output of a tiny model (asymmetric, symmetric, mixed bits)
if TOOLS:
    QUANTIZE = os.path.join(TOOLS, "shrink-quantize")
    with tempfile.TemporaryDirectory() as tmp:
        modelgen.write_hf(spec(dim=16, ffn_dim=32, vocab=258, tied=True), tmp)
        for name, args in [("q4_g16", ["-b", "4", "-g", "16"]), ("q3_sym", ["-b", "3", "-g", "16", "--sym"]),
                           ("q8_row", ["-b", "8", "-g", "0", "--keep", "embed_tokens|lm_head"])]:
            if name == "q3_sym":  # the others without a tokenizer: smaller
                os.unlink(os.path.join(tmp, "tokenizer.json"))
            out = os.path.join(tmp, name + ".shrink")
            subprocess.run([QUANTIZE, "-q", *args, tmp, "-o", out], check=True)
            with open(out, "rb") as f:
                put("container", name + ".safetensors", f.read())

# ---- calibration: shrink-calibrate output on a tiny model (Hutchinson traces, KL, no Hessian)
if TOOLS:
    CALIBRATE = os.path.join(TOOLS, "shrink-calibrate")
    with tempfile.TemporaryDirectory() as tmp:
        modelgen.write_hf(spec(dim=16, ffn_dim=32, vocab=258, tied=True, dtype="f32"), tmp)
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write("Once upon a time there was a little model that wanted to be small. " * 40)
        quick = ["-q", "-n", "1", "-c", "16", "--min-iter", "2", "--max-iter", "3", "--bits", "2,4,8"]
        for name, args in [("traces", []), ("kl", ["--measure", "kl"]), ("proxy_g16", ["--hessian", "proxy",
                                                                                   "--group", "16"])]:
            out = os.path.join(tmp, name + ".json")
            subprocess.run([CALIBRATE, tmp, "-d", text, *quick, *args, "-o", out], check=True)
            with open(out, "rb") as f:
                put("calibration", name + ".json", f.read())

