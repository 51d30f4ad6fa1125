"""quant_ref.py: an independent float64 NumPy reference for lib/quant.

RTN follows the conventions documented in lib/shrink/quant.h (symmetric scale
2*max|w|/maxq with zero 2^(b-1); asymmetric range widened to contain 0; scales
rounded up to the next f16; round half to even; clipping search over ratios
1.0, 0.95, ..., 0.5 by sequential sum of squared errors, ties to the larger ratio).
GPTQ is the paper's algorithm (Frantar et al. 2022) written from the math, one column
at a time with no lazy batching: H^-1 by np.linalg.inv, its upper Cholesky factor U
(H^-1 = U^T U), error e = (w_j - q_j) / U_jj pushed onto the later columns with row j
of U. It also unpacks the container's bit stream on its own. Not a fast
implementation and not a copy of the C code: it exists to check it.
"""
import numpy as np

CLIP_RATIOS = [1.0 - 0.05 * i for i in range(11)]


class ScaleOverflow(ValueError):
    pass


def f16_ceil(x):
    """Smallest float16 value >= x > 0 (inf when none is finite)."""
    h = np.float16(x)
    if float(h) < x:
        h = np.nextafter(h, np.float16(np.inf))
    return float(h)


def fit_range(lo, hi, bits, sym):
    maxq = 2**bits - 1
    amax = max(-lo, hi)
    scale = 2.0 * amax / maxq if sym else (hi - lo) / maxq
    zero = 2 ** (bits - 1) if sym else 0
    if scale == 0:
        return 0.0, zero
    s = f16_ceil(scale)
    if not np.isfinite(s):
        raise ScaleOverflow(scale)
    if not sym:
        zero = int(min(max(np.rint(-lo / s), 0.0), maxq))
    return s, zero


def codes(w, s, z, bits):
    if s == 0:
        return np.full(w.shape, z, dtype=np.int64)
    return np.clip(np.rint(w / s) + z, 0, 2**bits - 1).astype(np.int64)


def sq_error(w, s, z, bits):
    d = w - s * (codes(w, s, z, bits) - z)
    return float(np.cumsum(d * d)[-1])  # sequential sum, as the C code does


def fit(w, bits, sym, clip):
    """(scale, zero) for one group of float64 values."""
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    s, z = fit_range(lo, hi, bits, sym)
    if clip:
        best = sq_error(w, s, z, bits)
        for r in CLIP_RATIOS[1:]:
            s2, z2 = fit_range(lo * r, hi * r, bits, sym)
            e = sq_error(w, s2, z2, bits)
            if e < best:
                best, s, z = e, s2, z2
    return s, z


def group_bounds(cols, g):
    if g == 0:
        return [(0, cols)]
    return [(c, min(c + g, cols)) for c in range(0, cols, g)]


def rtn(W, bits, g, sym, clip):
    """Dequantized float64 matrix, scales [rows, groups], zeros, codes."""
    W = np.asarray(W, dtype=np.float64)
    rows, cols = W.shape
    bounds = group_bounds(cols, g)
    out = np.empty_like(W)
    Q = np.empty(W.shape, dtype=np.int64)
    scales = np.empty((rows, len(bounds)))
    zeros = np.empty((rows, len(bounds)), dtype=np.int64)
    for r in range(rows):
        for k, (c0, c1) in enumerate(bounds):
            s, z = fit(W[r, c0:c1], bits, sym, clip)
            q = codes(W[r, c0:c1], s, z, bits)
            Q[r, c0:c1], scales[r, k], zeros[r, k] = q, s, z
            out[r, c0:c1] = s * (q - z)
    return out, scales, zeros, Q


def upper_chol_of_inverse(H):
    Hinv = np.linalg.inv(H)
    Hinv = (Hinv + Hinv.T) / 2
    return np.linalg.cholesky(Hinv).T


def gptq(W, H, bits, g, sym, clip, damp, act_order):
    """Dequantized float64 matrix by column-at-a-time GPTQ."""
    W = np.array(W, dtype=np.float64)
    H = np.triu(np.asarray(H, dtype=np.float64))
    H = H + np.triu(H, 1).T
    rows, cols = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    bounds = group_bounds(cols, g)
    static = act_order or g == 0
    params = np.zeros((rows, len(bounds), 2))
    if static:
        for r in range(rows):
            for k, (c0, c1) in enumerate(bounds):
                params[r, k] = fit(W[r, c0:c1], bits, sym, clip)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(cols)
    Hp = H[np.ix_(perm, perm)]
    Hp[np.diag_indices(cols)] += damp * np.mean(np.diag(Hp))
    U = upper_chol_of_inverse(Hp)
    Wp = W[:, perm]
    out = np.empty_like(W)
    for j in range(cols):
        c = perm[j]
        k = c // g if g else 0
        if not static and c % g == 0:
            n = bounds[k][1] - bounds[k][0]
            for r in range(rows):
                params[r, k] = fit(Wp[r, j : j + n], bits, sym, clip)
        dq = np.empty(rows)
        for r in range(rows):
            s, z = params[r, k]
            dq[r] = s * (codes(Wp[r, j : j + 1], s, z, bits)[0] - z)
        out[:, c] = dq
        err = (Wp[:, j] - dq) / U[j, j]
        Wp[:, j + 1 :] -= np.outer(err, U[j, j + 1 :])
    return out


def unpack_rows(packed, rows, cols, bits):
    """Codes [rows, cols] from the row-wise little-endian bit stream of shrink/quant.h."""
    row_bytes = (cols * bits + 7) // 8
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8).reshape(rows, row_bytes), axis=1, bitorder="little")
    weights = 1 << np.arange(bits)
    q = stream[:, : cols * bits].reshape(rows, cols, bits).astype(np.int64) @ weights
    return q, stream[:, cols * bits :]


def dequant_packed(packed, scales_f16, zeros, rows, cols, bits, g, sym):
    q, pad = unpack_rows(packed, rows, cols, bits)
    scales = np.asarray(scales_f16, dtype=np.uint16).view(np.float16).astype(np.float64).reshape(rows, -1)
    k = np.arange(cols) // g if g else np.zeros(cols, dtype=np.int64)
    z = np.full(scales.shape, 2 ** (bits - 1)) if sym else np.asarray(zeros, dtype=np.int64).reshape(rows, -1)
    return scales[:, k] * (q - z[:, k]), q, pad
