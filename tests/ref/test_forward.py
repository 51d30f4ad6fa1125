#!/usr/bin/env python3
"""test_forward.py: shrink's forward pass against the float64 NumPy reference.

Generates small random models (modelgen.py) covering GQA and MHA, HF
directories and GGUF files (interleaved RoPE), llama3 RoPE scaling, Q/K/V
biases (qwen2), tied and untied embeddings, f32/f16/bf16 weights, a head
dimension other than dim/heads and per-layer dimensions, plus the trained
stories260K model when $SHRINK_DATA has it: stories260K.gguf, a llama2.c .bin
written from it here (modelgen.gguf_to_llama2c; both formats rotate adjacent
pairs, so no Q/K permutation), and the shared stories260K.bin.  Note: the
matrices of that shared .bin are scrambled (five more in-place transposes with
its source fork's transpose_weight.c restore the GGUF's weights bit for bit),
so its logits are meaningless; the case still checks the .bin reader
mechanically against the reference.  For each it runs

  $SHRINK_BUILD/tests/ref/logits MODEL [--tokenizer FILE] --tokens 1,5,9 -o OUT.f32

(float32 little-endian logits [n_tokens, vocab]) and compares with
reference.py's float64 logits: max|ours - ref| / max|ref| <= 1e-4.  Weights
are read back from the files themselves, so f16/bf16 rounding is the same on
both sides.

Before that it checks the reference against itself: the HF and GGUF files of
one model must give the same logits; a wrong RoPE pairing or dropped scaling
must move them far beyond the tolerance (so the test has power); a float32
NumPy run must stay well inside it (the models are well conditioned); and the
trained stories260K must predict its sentence well (low loss).

Exit status: 0 pass, 1 failure, 77 skip (no logits binary, or no numpy/gguf).
Options: --self-check (reference checks only, no binary), --keep (keep the
temporary models and print where they are).
It does not test incremental (KV-cache) decoding; other tests do.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import gguf  # noqa: F401  (modelgen and reference need it for GGUF)
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e} (scripts/setup installs numpy and gguf)")
    sys.exit(77)

import modelgen  # noqa: E402
import reference  # noqa: E402

TOLERANCE = 1e-4
SELF_TOLERANCE = 1e-6      # HF vs GGUF of the same weights, both in float64 (GGUF eps is float32)
MIN_SENSITIVITY = 1e-2     # a wrong RoPE pairing must move logits at least this much
MAX_STORIES_NLL = 2.5      # stories260K: about 0.17 on STORIES_TOKENS (1.3 on other text); broken: > 4
INIT_STD = 0.1             # sharp enough attention that RoPE mistakes show, still well conditioned

TINY = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, vocab=384, ctx=128, init_std=INIT_STD)
LLAMA3_SMALL = modelgen.parse_rope_scaling("llama3:8,1,4,64")  # small ORIG so that every band is touched

PER_LAYER = [dict(n_heads=4, n_kv_heads=2, ffn_dim=96),
             dict(n_heads=2, n_kv_heads=1, ffn_dim=40),
             dict(n_heads=4, n_kv_heads=4, ffn_dim=128)]

# name, spec overrides, number of tokens, formats (one model each, same weights)
CASES = [
    ("gqa-f32", dict(), 24, ("hf", "gguf")),
    ("mha-f32", dict(n_kv_heads=4, seed=2), 17, ("hf", "gguf")),
    ("llama3-rope", dict(rope_scaling=LLAMA3_SMALL, rope_theta=500000.0, seed=3), 40, ("hf", "gguf")),
    ("qwen2-bias", dict(model_type="qwen2", seed=4), 21, ("hf", "gguf")),
    ("mistral-tied-f16", dict(model_type="mistral", tied=True, dtype="f16", seed=5), 30, ("hf", "gguf")),
    ("headdim32-bf16", dict(head_dim=32, dtype="bf16", seed=6), 12, ("hf", "gguf")),
    ("mha-tied-bf16", dict(n_kv_heads=4, tied=True, dtype="bf16", seed=7), 16, ("hf",)),
    ("perlayer", dict(n_layers=3, layer_dims=PER_LAYER, seed=8), 19, ("hf", "gguf")),
]

# A tokenization of "Once upon a time, there was a little girl named Lily. She
# loved to play outside in the park" in stories260K's vocabulary, after BOS 1.
STORIES_TOKENS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                  338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433]


def mean_nll(logits, tokens):
    """Mean next-token negative log-likelihood of tokens[1:] (nats)."""
    z = logits[:-1] - logits[:-1].max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].mean())


def rel_err(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def tokens_for(spec_vocab, n, seed):
    rng = np.random.default_rng([1234, seed, n])
    return [int(t) for t in rng.integers(0, spec_vocab, n)]


def run_logits(binary, model, tokens, out, tokenizer=None):
    cmd = [binary, model]
    if tokenizer:
        cmd += ["--tokenizer", tokenizer]
    cmd += ["--tokens", ",".join(map(str, tokens)), "-o", out]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if p.returncode != 0:
        msg = p.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, f"exit {p.returncode}: {msg[-1] if msg else ''}"
    if not os.path.exists(out):
        return None, "no output file"
    return np.fromfile(out, dtype="<f4"), None


class Report:
    def __init__(self):
        self.failed = []

    def line(self, ok, name, text):
        status = "ok  " if ok else "FAIL"
        print(f"{status} {name:26s} {text}", flush=True)
        if not ok:
            self.failed.append(name)


def self_checks(models, report):
    """Reference-only checks: formats agree, mistakes are visible, float32 is enough, stories260K makes sense."""
    by_base = {}
    for name, base, path, _, tokens, ref in models:
        by_base.setdefault(base, []).append(ref)
    for base, refs in by_base.items():
        if len(refs) == 2:
            e = rel_err(refs[1], refs[0])
            report.line(e <= SELF_TOLERANCE, f"self {base}", f"reference, same weights in two formats: rel_err={e:.2e} (<= {SELF_TOLERANCE:g})")
    for name, base, path, _, tokens, ref in models:
        if name == "stories260K-gguf":
            nll = mean_nll(ref, tokens)
            report.line(nll <= MAX_STORIES_NLL, "sense stories260K-gguf",
                        f"trained model's loss on its sentence {nll:.3f} nats/token (<= {MAX_STORIES_NLL:g}; ln 512 = 6.24)")
        if name not in ("gqa-f32-hf", "llama3-rope-hf", "qwen2-bias-hf", "stories260K-gguf"):
            continue
        cfg, w = reference.load(path)
        cfg["rope_interleaved"] = not cfg["rope_interleaved"]
        e = rel_err(reference.forward(cfg, w, tokens), ref)
        report.line(e >= MIN_SENSITIVITY, f"power {name}", f"wrong RoPE pairing moves logits by {e:.2e} (>= {MIN_SENSITIVITY:g})")
        if cfg.get("rope_scaling"):
            cfg["rope_interleaved"] = not cfg["rope_interleaved"]
            cfg["rope_scaling"] = None
            e = rel_err(reference.forward(cfg, w, tokens), ref)
            report.line(e >= MIN_SENSITIVITY, f"power {name}", f"dropping llama3 scaling moves logits by {e:.2e}")
        e = rel_err(reference.forward(*reference.load(path), tokens, np.float32), ref)
        report.line(e <= TOLERANCE / 10, f"cond {name}", f"float32 NumPy forward rel_err={e:.2e} (<= {TOLERANCE / 10:g})")


def main(argv):
    self_only = "--self-check" in argv
    keep = "--keep" in argv
    build = os.environ.get("SHRINK_BUILD", ".")
    data = os.path.normpath(os.environ.get("SHRINK_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data")))
    binary = os.path.join(build, "tests", "ref", "logits")
    if not self_only and not os.access(binary, os.X_OK):
        print(f"SKIP: {binary} not built")
        return 77

    start = time.time()
    tmp = tempfile.mkdtemp(prefix="shrink-fwd-")
    try:
        return run_cases(binary, data, tmp, self_only, start)
    finally:
        if keep:
            print(f"models kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_cases(binary, data, tmp, self_only, start):
    report = Report()
    models = []  # (name, base name, path, tokenizer, tokens, reference logits)
    for base, overrides, n, formats in CASES:
        spec = modelgen.make_spec(None, **{**TINY, **overrides})
        tokens = tokens_for(spec.vocab, n, spec.seed)
        for fmt in formats:
            name = f"{base}-{fmt}"
            path = os.path.join(tmp, name + (".gguf" if fmt == "gguf" else ""))
            modelgen.write_model(spec, path, fmt)
            models.append((name, base, path, None, tokens, reference.logits(path, tokens)))
    gguf_path = os.path.join(data, "stories260K.gguf")
    bin_path = os.path.join(data, "stories260K.bin")
    if os.path.exists(gguf_path):
        regen = os.path.join(tmp, "stories260K-regen.bin")
        modelgen.gguf_to_llama2c(gguf_path, regen)
        models.append(("stories260K-gguf", "stories260K", gguf_path, None, STORIES_TOKENS,
                       reference.logits(gguf_path, STORIES_TOKENS)))
        models.append(("stories260K-regen-bin", "stories260K", regen, gguf_path, STORIES_TOKENS,
                       reference.logits(regen, STORIES_TOKENS)))
        if os.path.exists(bin_path):
            models.append(("stories260K-bin", "stories260K.bin", bin_path, gguf_path, STORIES_TOKENS,
                           reference.logits(bin_path, STORIES_TOKENS)))
    else:
        print(f"skip {'stories260K':26s} {gguf_path} not found")

    self_checks(models, report)

    if not self_only:
        for name, _, path, tokenizer, tokens, ref in models:
            out = os.path.join(tmp, name + ".logits.f32")
            ours, err = run_logits(binary, path, tokens, out, tokenizer)
            if err is None and ours.size != ref.size:
                err = f"{ours.size} floats, expected {ref.shape[0]} x {ref.shape[1]}"
            if err is not None:
                report.line(False, name, err)
                continue
            e = rel_err(ours.reshape(ref.shape).astype(np.float64), ref)
            report.line(e <= TOLERANCE, name, f"tokens={len(tokens)} vocab={ref.shape[1]} rel_err={e:.2e} (<= {TOLERANCE:g})")

    print(f"{len(report.failed)} failed, {time.time() - start:.1f} s")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
