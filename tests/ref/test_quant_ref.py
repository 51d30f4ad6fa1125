"""test_quant_ref.py: lib/quant against the independent NumPy reference (quant_ref.py).

Runs tests/ref/quant_tool from $SHRINK_BUILD on seeded random matrices and checks:
- RTN, every bit width x group size x sym/asym x clip, 203 columns (a short last group),
  an all-zero group: scales (f16 bits), zero points and codes equal the reference exactly,
  and so does the dequantized matrix (exact: a f16 scale times a small integer is exact in
  float32, so no tolerance is needed); the packed bytes decode independently (bit stream,
  zero padding) to the same matrix; every error is <= scale / 2.
- GPTQ, several schemes with and without act_order and with blocks that do and do not
  align with the groups: the dequantized matrix equals the column-at-a-time reference
  within 1e-6 * max|W| (in practice every code is the same); on the 12 x 100 layer its
  output error ||(W - Q) X||^2 is below RTN's. A 6 x 7 layer covers blocks of width 1
  and a matrix narrower than one 8-column strip of the lazy update.
- The Hessian accumulator equals 2/N X^T X within 1e-12 relative.
- Errors: NaN weight -> exit 3 naming the row; 7 bits -> exit 2; H not positive definite -> 3.
Exit 0 pass, 1 fail, 77 skip (no quant_tool built).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_ref as ref  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


class Tool:
    def __init__(self, path, tmp):
        self.path, self.tmp, self.n = path, tmp, 0

    def file(self, arr, suffix):
        self.n += 1
        name = os.path.join(self.tmp, f"a{self.n}.{suffix}")
        arr.tofile(name)
        return name

    def run(self, *args):
        p = subprocess.run([self.path, *map(str, args)], capture_output=True, text=True)
        return p.returncode, p.stderr

    def quantize(self, mode, W, bits, g, sym, clip, extra=()):
        rows, cols = W.shape
        out = os.path.join(self.tmp, f"out{self.n}")
        wfile = self.file(W.astype(np.float32), "f32")
        rc, err = self.run(mode, bits, g, "sym" if sym else "asym", int(clip), rows, cols, wfile, out, *extra)
        if rc:
            return rc, err, None
        res = {k: np.fromfile(out + "." + k, dtype=t) for k, t in
               [("deq", np.float32), ("qweight", np.uint8), ("scales", np.uint16)]}
        res["zeros"] = None if sym else np.fromfile(out + ".zeros", dtype=np.uint8)
        res["deq"] = res["deq"].reshape(rows, cols)
        return 0, err, res


def test_matrix(rng):
    W = rng.standard_normal((5, 203)).astype(np.float32) * 0.05
    W[0, 32:64] = 0.0                      # an all-zero group (g = 32)
    W[1] = np.abs(W[1]) + 0.01             # all positive: asym range must include 0
    W[2, 17] = 1.5                         # an outlier
    W[3] *= 1e-6                           # tiny scales (f16 subnormal range)
    return W


def check_rtn_case(tool, W, bits, g, sym, clip):
    tag = f"rtn b{bits} g{g} {'sym' if sym else 'asym'} clip{int(clip)}"
    rc, err, res = tool.quantize("rtn", W, bits, g, sym, clip)
    if rc:
        check(False, f"{tag}: exit {rc}: {err.strip()}")
        return
    rows, cols = W.shape
    want, scales, zeros, Q = ref.rtn(W, bits, g, sym, clip)
    check(np.array_equal(res["scales"], scales.astype(np.float16).view(np.uint16).ravel()), f"{tag}: scales")
    if not sym:
        check(np.array_equal(res["zeros"], zeros.ravel()), f"{tag}: zeros")
    deq, q, pad = ref.dequant_packed(res["qweight"], res["scales"], res["zeros"], rows, cols, bits, g, sym)
    check(np.array_equal(q, Q), f"{tag}: codes")
    check(not pad.any(), f"{tag}: padding bits not zero")
    check(np.array_equal(res["deq"], want.astype(np.float32)), f"{tag}: dequantized != reference")
    check(np.array_equal(res["deq"], deq.astype(np.float32)), f"{tag}: qmatrix_row != packed decode")
    k = np.arange(cols) // g if g else np.zeros(cols, dtype=np.int64)
    bound = scales[:, k] / 2 * (1 + 1e-12)
    if not clip:
        check(np.all(np.abs(W - want) <= bound), f"{tag}: error above scale/2")


def correlated_inputs(rng, n, cols):
    mix = rng.standard_normal((cols, cols)) * 0.3 + np.eye(cols)
    X = rng.standard_normal((n, cols)) @ mix
    X[:, 7] = 0.0                          # a dead input column
    return X.astype(np.float32)


def check_hessian(tool, X):
    n, cols = X.shape
    out = os.path.join(tool.tmp, "H.f64")
    rc, err = tool.run("hessian", n, cols, tool.file(X, "f32"), 37, out)
    want = 2.0 / n * X.astype(np.float64).T @ X.astype(np.float64)
    H = np.fromfile(out, dtype=np.float64).reshape(cols, cols) if rc == 0 else None
    check(rc == 0 and np.allclose(H, want, rtol=1e-12, atol=1e-12 * np.abs(want).max()), f"hessian: exit {rc} {err}")
    return want


def out_error(W, Q, X):
    D = (W.astype(np.float64) - Q) @ X.astype(np.float64).T
    return float((D * D).sum())


def check_gptq_case(tool, W, X, H, hfile, case, expect_better=True):
    bits, g, sym, clip, block, act = case
    tag = f"gptq b{bits} g{g} {'sym' if sym else 'asym'} clip{int(clip)} block{block} act{int(act)}"
    rc, err, res = tool.quantize("gptq", W, bits, g, sym, clip, (hfile, 0.01, block, int(act)))
    if rc:
        check(False, f"{tag}: exit {rc}: {err.strip()}")
        return
    want = ref.gptq(W, H, bits, g, sym, clip, 0.01, act)
    diff = np.abs(res["deq"] - want).max()
    same = np.mean(res["deq"] == want.astype(np.float32))
    check(diff <= 1e-6 * np.abs(W).max(), f"{tag}: max |C - reference| = {diff:.3g}")
    e_gptq = out_error(W, res["deq"], X)
    e_rtn = out_error(W, ref.rtn(W, bits, g, sym, clip)[0], X)
    print(f"{tag}: ||(W-Q)X||^2 gptq {e_gptq:.4g} rtn {e_rtn:.4g}; {same:.2%} elements identical to reference")
    check(e_gptq < e_rtn or not expect_better, f"{tag}: GPTQ error {e_gptq:.4g} not below RTN {e_rtn:.4g}")


def check_errors(tool, W, hfile):
    bad = W.copy()
    bad[3, 10] = np.nan
    rc, err, _ = tool.quantize("rtn", bad, 4, 32, True, False)
    check(rc == 3 and "row 3" in err, f"NaN weight: exit {rc}, {err.strip()}")
    rc, err, _ = tool.quantize("rtn", W, 7, 32, True, False)
    check(rc == 2, f"7 bits: exit {rc}, {err.strip()}")
    cols = W.shape[1]
    neg = tool.file(-np.eye(cols), "f64")
    rc, err, _ = tool.quantize("gptq", W, 4, 32, True, False, (neg, 0.0, 128, 0))
    check(rc == 3 and "positive definite" in err, f"non-PD Hessian: exit {rc}, {err.strip()}")


GPTQ_CASES = [  # bits, group, symmetric, clip, block, act_order
    (4, 32, True, False, 128, False),
    (4, 32, True, False, 24, False),
    (4, 32, True, False, 128, True),
    (3, 64, False, False, 40, False),
    (3, 64, False, False, 128, True),
    (2, 0, True, False, 16, False),
    (2, 16, False, False, 128, True),
    (8, 128, False, False, 32, False),
    (5, 32, True, True, 128, False),
    (6, 16, False, True, 24, True),
]


def main():
    build = os.environ.get("SHRINK_BUILD", ".")
    path = os.path.join(build, "tests", "ref", "quant_tool")
    if not os.access(path, os.X_OK):
        print(f"skip: {path} not built")
        return 77
    rng = np.random.default_rng(20240611)
    with tempfile.TemporaryDirectory() as tmp:
        tool = Tool(path, tmp)
        W = test_matrix(rng)
        for bits in (2, 3, 4, 5, 6, 8):
            for g in (0, 32, 64, 128):
                for sym in (True, False):
                    for clip in (False, True):
                        check_rtn_case(tool, W, bits, g, sym, clip)
        X = correlated_inputs(rng, 300, 100)
        H = check_hessian(tool, X)
        hfile = tool.file(H, "f64")
        Wg = (rng.standard_normal((12, 100)) * 0.05).astype(np.float32)
        for case in GPTQ_CASES:
            check_gptq_case(tool, Wg, X, H, hfile, case)
        Xs = correlated_inputs(rng, 50, 11)[:, :7]          # 7 columns: no full 8-column strip
        Hs = 2.0 / 50 * Xs.astype(np.float64).T @ Xs.astype(np.float64)
        hsfile = tool.file(Hs, "f64")
        Ws = (rng.standard_normal((6, 7)) * 0.05).astype(np.float32)
        for case in [(3, 0, False, False, 1, False), (4, 16, True, True, 128, True), (5, 16, False, False, 3, False)]:
            check_gptq_case(tool, Ws, Xs, Hs, hsfile, case, expect_better=False)  # greedy: no promise on 6 x 7
        check_errors(tool, Wg, hfile)
    print(f"{len(FAILURES)} failures" if FAILURES else "all quant reference checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
