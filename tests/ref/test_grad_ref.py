#!/usr/bin/env python3
"""test_grad_ref.py: shrink's backward pass against float64 references.

Tiny random models (modelgen.py) cover every parameter kind and layout: GQA
and MHA, untied and tied embeddings, Q/K/V biases (qwen2), llama3 RoPE
scaling, per-layer dimensions, f16 and bf16 weights, Hugging Face directories
and GGUF files (interleaved RoPE, un-permuted on load); the trained
stories260K joins when $SHRINK_DATA has it.  For each, tests/ref/grad_tool
writes the float32 gradient of the mean next-token cross-entropy, and:

  1. its loss equals reference.py's float64 loss (relative 1e-5);
  2. per tensor, its derivative along a well-conditioned direction (the
     float64 gradient, perturbed and normalised) equals float64 central
     differences of reference.py's loss: relative error < 1e-4;
  3. per tensor, at the 3 coordinates of largest gradient, each component
     equals float64 central differences: relative error < 1e-4;
  4. per tensor, ||g - g_ref|| / ||g_ref|| < 1e-4 against grad_ref.py's
     float64 backward pass (itself checked against the differences in 2);
  5. --checkpoint and the thread count change no byte of the gradient.

Exit status: 0 pass, 1 failure, 77 skip (no grad_tool, or no numpy/gguf).
It does not test second derivatives (test_hessian_ref.py does).
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)

try:
    import numpy as np
    import gguf  # noqa: F401  (modelgen and reference need it for GGUF)
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e} (scripts/setup installs numpy and gguf)")
    sys.exit(77)

import grad_ref  # noqa: E402
import modelgen  # noqa: E402
import reference  # noqa: E402

TOLERANCE = 1e-4
REF_SELF_TOLERANCE = 1e-7   # grad_ref against differences, both float64
FD_STEP = 1e-5
N_TOKENS = 20

TINY = dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48, vocab=300, ctx=64, init_std=0.1)
PER_LAYER = [dict(n_heads=4, n_kv_heads=2, ffn_dim=48), dict(n_heads=2, n_kv_heads=1, ffn_dim=24)]

CASES = [
    ("gqa-untied", dict(seed=1), "hf"),
    ("mha-tied-gguf", dict(n_kv_heads=4, tied=True, seed=2), "gguf"),
    ("qwen2-bias-tied", dict(model_type="qwen2", tied=True, seed=3), "hf"),
    ("qwen2-bias-gguf", dict(model_type="qwen2", seed=4), "gguf"),
    ("llama3-rope-perlayer-bf16", dict(rope_scaling=modelgen.parse_rope_scaling("llama3:8,1,4,16"),
                                       layer_dims=PER_LAYER, dtype="bf16", seed=5), "hf"),
    ("mistral-f16-headdim", dict(model_type="mistral", head_dim=16, dtype="f16", seed=6), "hf"),
]

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def grad_tool(build, model, tokens, extra=()):
    out = os.path.join(tempfile.gettempdir(), f"grad_{os.getpid()}.f32")
    cmd = [os.path.join(build, "tests", "ref", "grad_tool"), "grad", model, "--tokens",
           ",".join(map(str, tokens)), "-o", out, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr}")
    info = json.loads(r.stdout)
    raw = open(out, "rb").read()
    os.unlink(out)
    return info, raw


def fd_along(cfg, w, name, u, tokens, h=FD_STEP):
    """float64 central difference of the loss along u (shaped like w[name])."""
    wp, wm = dict(w), dict(w)
    wp[name] = w[name] + h * u
    wm[name] = w[name] - h * u
    return (grad_ref.loss(cfg, wp, tokens) - grad_ref.loss(cfg, wm, tokens)) / (2 * h)


def check_tensor(label, cfg, w, name, g_c, g_ref, tokens, rng):
    shape = w[name].shape
    g_c = g_c.reshape(shape)
    u = g_ref + 0.5 * rng.standard_normal(shape) * np.abs(g_ref)
    u /= np.linalg.norm(u)
    fd = fd_along(cfg, w, name, u, tokens)
    dir_c, dir_ref = float(np.sum(g_c * u)), float(np.sum(g_ref * u))
    err = abs(dir_c - fd) / abs(fd)
    ref_err = abs(dir_ref - fd) / abs(fd)
    worst = 0.0
    for idx in np.argsort(-np.abs(g_ref).ravel())[:3]:
        e = np.zeros(g_ref.size)
        e[idx] = 1
        fd_j = fd_along(cfg, w, name, e.reshape(shape), tokens)
        worst = max(worst, abs(g_c.ravel()[idx] - fd_j) / abs(fd_j))
    rel = np.linalg.norm(g_c - g_ref) / np.linalg.norm(g_ref)
    ok = err < TOLERANCE and worst < TOLERANCE and rel < TOLERANCE and ref_err < REF_SELF_TOLERANCE
    check(ok, f"{label}: {name}: along u {err:.1e}, top-3 components {worst:.1e}, "
              f"whole {rel:.1e} (float64 backward vs differences {ref_err:.1e})")


def run_case(build, label, path, tokens, rng, full=True):
    cfg, w = reference.load(path)
    info, raw = grad_tool(build, path, tokens)
    g = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    loss_ref, grads = grad_ref.loss_and_grad(cfg, w, tokens)
    loss64 = grad_ref.loss(cfg, w, tokens)
    check(abs(info["loss"] - loss64) <= 1e-5 * loss64 and abs(loss_ref - loss64) < 1e-10 * loss64,
          f"{label}: loss {info['loss']:.8f}, float64 {loss64:.8f}")
    names = [p["name"] for p in info["params"]]
    check(sorted(names) == sorted(grads), f"{label}: one gradient per tensor ({len(names)})")
    for p in info["params"]:
        g_c = g[p["offset"]:p["offset"] + p["numel"]]
        if full:
            check_tensor(label, cfg, w, p["name"], g_c, np.asarray(grads[p["name"]]), tokens, rng)
        else:
            g_ref = np.asarray(grads[p["name"]]).ravel()
            rel = np.linalg.norm(g_c - g_ref) / np.linalg.norm(g_ref)
            check(rel < TOLERANCE, f"{label}: {p['name']}: whole gradient {rel:.1e}")
    _, raw_ckpt = grad_tool(build, path, tokens, ("--checkpoint", "--threads", "1"))
    _, raw_two = grad_tool(build, path, tokens, ("--threads", "2"))
    check(raw_ckpt == raw and raw_two == raw, f"{label}: --checkpoint, 1 and 2 threads: same bytes")


def main():
    build = os.environ.get("SHRINK_BUILD", ".")
    if not os.access(os.path.join(build, "tests", "ref", "grad_tool"), os.X_OK):
        print(f"SKIP: {build}/tests/ref/grad_tool is not built")
        return 77
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        for label, overrides, fmt in CASES:
            spec = modelgen.make_spec(**{**TINY, **overrides})
            path = os.path.join(tmp, label + (".gguf" if fmt == "gguf" else ""))
            modelgen.write_model(spec, path, fmt)
            tokens = [int(t) for t in rng.integers(0, spec.vocab, N_TOKENS)]
            run_case(build, label, path, tokens, rng)
    stories = os.path.join(os.environ.get("SHRINK_DATA", ""), "stories260K.gguf")
    if os.path.exists(stories):
        # the start of "Once upon a time, there was a little girl named Lily. ..." (test_forward.py)
        tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]
        run_case(build, "stories260K", stories, tokens, rng, full=False)
    else:
        print("note: stories260K.gguf not found in $SHRINK_DATA; trained-model case skipped")
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
