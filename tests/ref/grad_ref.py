#!/usr/bin/env python3
"""grad_ref.py: an independent float64 backward pass for Llama-family models.

Reverse-mode differentiation of reference.py's forward pass, written by hand
from the math (RMSNorm, half-split RoPE, causal grouped-query attention,
SwiGLU, mean next-token cross-entropy), for checking shrink's C backward pass
(lib/model/backward.c) and Hessian-vector products:

  loss_and_grad(cfg, w, tokens) -> (loss, {name: dloss/dw})   w, cfg from reference.load
  loss(cfg, w, tokens)                                          via reference.forward
  flatten / unflatten                                          parameter vectors in shrink's order
  hessian(cfg, w, tokens, names)                               the full Hessian, column by column:
                                                               H[:, j] = (g(t + h e_j) - g(t - h e_j)) / 2h
                                                               (64 columns per batched pass)
  hvp(cfg, w, tokens, names, v)                                H v the same way

The loss of tokens[0..T) is the mean over t < T-1 of -log softmax(logits[t])[tokens[t+1]].
Everything is float64 and small: tiny models in tests only.  It does not
handle interleaved RoPE (load models with reference.load's default unpermute)
or attention output biases.
"""

import math

import numpy as np

import reference


# Every array carries a leading batch axis B: weights (B, *shape), activations
# (B, T, ...), so that many parameter vectors (Hessian columns) go through at once.

def _rmsnorm_fwd(x, w, eps):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x * r * w[:, None, :], r


def _rmsnorm_bwd(dy, x, r, w):
    """dx, dw for y = x * r * w."""
    dim = x.shape[-1]
    w = w[:, None, :]
    dot = np.sum(dy * w * x, axis=-1, keepdims=True)
    dx = r * w * dy - (r ** 3) * x * dot / dim
    return dx, np.sum(dy * x * r, axis=1)


def _rope_tables(cfg, T):
    freqs = reference.inv_freq(cfg)
    ang = np.arange(T, dtype=np.float64)[:, None] * freqs[None, :]
    return np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]


def _rope_fwd(x, cos, sin):
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def _rope_bwd(dy, cos, sin):
    half = dy.shape[-1] // 2
    da, db = dy[..., :half], dy[..., half:]
    return np.concatenate([da * cos + db * sin, db * cos - da * sin], axis=-1)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _mm_t(x, w):
    """x (B, T, c) times w (B, r, c) transposed -> (B, T, r)."""
    return np.matmul(x, np.swapaxes(w, -1, -2))


def _outer(dy, x):
    """sum over tokens of dy (B, T, r) x (B, T, c) -> (B, r, c)."""
    return np.matmul(np.swapaxes(dy, -1, -2), x)


def _heads(x, group=1):
    """(B, T, H, hd) -> (B, H * group, T, hd), each head repeated group times."""
    return np.repeat(np.swapaxes(x, 1, 2), group, axis=1)


def _attention_fwd(q, k, v):
    """q (B, T, H, hd); k, v (B, T, KV, hd) -> out (B, T, H, hd), P (B, H, T, T)."""
    T, H, hd = q.shape[1:]
    group = H // k.shape[2]
    s = np.matmul(_heads(q), np.swapaxes(_heads(k, group), -1, -2)) / math.sqrt(hd)
    s[:, :, np.triu(np.ones((T, T), dtype=bool), 1)] = -np.inf
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.swapaxes(np.matmul(p, _heads(v, group)), 1, 2), p


def _attention_bwd(dout, q, k, v, p):
    B, T, H, hd = q.shape
    KV = k.shape[2]
    group = H // KV
    qh, kr, vr, dh = _heads(q), _heads(k, group), _heads(v, group), _heads(dout)
    dp = np.matmul(dh, np.swapaxes(vr, -1, -2))
    ds = p * (dp - np.sum(p * dp, axis=-1, keepdims=True))
    dq = np.matmul(ds, kr) / math.sqrt(hd)
    dkr = np.matmul(np.swapaxes(ds, -1, -2), qh) / math.sqrt(hd)
    dvr = np.matmul(np.swapaxes(p, -1, -2), dh)

    def fold(d):  # (B, H, T, hd) -> (B, T, KV, hd), summing each KV head's group
        return np.swapaxes(d.reshape(B, KV, group, T, hd).sum(axis=2), 1, 2)

    return np.swapaxes(dq, 1, 2), fold(dkr), fold(dvr)


def _head_weight(cfg, w):
    return "model.embed_tokens.weight" if cfg["tied"] or "lm_head.weight" not in w else "lm_head.weight"


def _layer_fwd(cfg, w, i, x, rope):
    layer, hd, eps = cfg["layers"][i], cfg["head_dim"], cfg["norm_eps"]
    p = f"model.layers.{i}."
    B, T = x.shape[:2]
    c = {"x": x}
    c["h"], c["r1"] = _rmsnorm_fwd(x, w[p + "input_layernorm.weight"], eps)

    def proj(name):
        y = _mm_t(c["h"], w[p + name + ".weight"])
        b = w.get(p + name + ".bias")
        return y + b[:, None, :] if b is not None else y

    q = proj("self_attn.q_proj").reshape(B, T, layer["n_heads"], hd)
    k = proj("self_attn.k_proj").reshape(B, T, layer["n_kv_heads"], hd)
    c["v"] = proj("self_attn.v_proj").reshape(B, T, layer["n_kv_heads"], hd)
    c["q"], c["k"] = _rope_fwd(q, *rope), _rope_fwd(k, *rope)
    a, c["P"] = _attention_fwd(c["q"], c["k"], c["v"])
    c["a"] = a.reshape(B, T, -1)
    c["x2"] = x + _mm_t(c["a"], w[p + "self_attn.o_proj.weight"])
    c["h2"], c["r2"] = _rmsnorm_fwd(c["x2"], w[p + "post_attention_layernorm.weight"], eps)
    c["g"] = _mm_t(c["h2"], w[p + "mlp.gate_proj.weight"])
    c["u"] = _mm_t(c["h2"], w[p + "mlp.up_proj.weight"])
    c["m"] = _silu(c["g"]) * c["u"]
    return c["x2"] + _mm_t(c["m"], w[p + "mlp.down_proj.weight"]), c


def _layer_bwd(cfg, w, i, c, dx, rope, grads):
    p = f"model.layers.{i}."
    B, T = dx.shape[:2]

    def acc(name, g):
        grads[name] = grads.get(name, 0) + g

    acc(p + "mlp.down_proj.weight", _outer(dx, c["m"]))
    dm = dx @ w[p + "mlp.down_proj.weight"]
    sg = 1.0 / (1.0 + np.exp(-c["g"]))
    dg = dm * c["u"] * sg * (1.0 + c["g"] * (1.0 - sg))
    du = dm * _silu(c["g"])
    acc(p + "mlp.gate_proj.weight", _outer(dg, c["h2"]))
    acc(p + "mlp.up_proj.weight", _outer(du, c["h2"]))
    dh2 = dg @ w[p + "mlp.gate_proj.weight"] + du @ w[p + "mlp.up_proj.weight"]
    ddx, dwn = _rmsnorm_bwd(dh2, c["x2"], c["r2"], w[p + "post_attention_layernorm.weight"])
    acc(p + "post_attention_layernorm.weight", dwn)
    dx = dx + ddx
    acc(p + "self_attn.o_proj.weight", _outer(dx, c["a"]))
    da = (dx @ w[p + "self_attn.o_proj.weight"]).reshape(c["q"].shape)
    dq, dk, dv = _attention_bwd(da, c["q"], c["k"], c["v"], c["P"])
    dq, dk = _rope_bwd(dq, *rope).reshape(B, T, -1), _rope_bwd(dk, *rope).reshape(B, T, -1)
    dv = dv.reshape(B, T, -1)
    dh = 0
    for proj, d in (("q_proj", dq), ("k_proj", dk), ("v_proj", dv)):
        name = p + "self_attn." + proj
        acc(name + ".weight", _outer(d, c["h"]))
        if name + ".bias" in w:
            acc(name + ".bias", d.sum(axis=1))
        dh = dh + d @ w[name + ".weight"]
    ddx, dwa = _rmsnorm_bwd(dh, c["x"], c["r1"], w[p + "input_layernorm.weight"])
    acc(p + "input_layernorm.weight", dwa)
    return dx + ddx


def _loss_and_grad_batch(cfg, w, tokens):
    """w: {name: (B, *shape)} -> losses (B,), {name: (B, *shape)}."""
    if cfg.get("rope_interleaved"):
        raise ValueError("grad_ref handles half-split RoPE only (load with unpermute)")
    tokens = np.asarray(tokens, dtype=np.int64)
    T, m = len(tokens), len(tokens) - 1
    emb = w["model.embed_tokens.weight"]
    B = emb.shape[0]
    rope = _rope_tables(cfg, T)
    x = emb[:, tokens, :]
    caches = []
    for i in range(len(cfg["layers"])):
        x, c = _layer_fwd(cfg, w, i, x, rope)
        caches.append(c)
    hf, rf = _rmsnorm_fwd(x, w["model.norm.weight"], cfg["norm_eps"])
    head = _head_weight(cfg, w)
    z = _mm_t(hf[:, :m], w[head])
    z = z - z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1))
    losses = np.mean(lse - z[:, np.arange(m), tokens[1:]], axis=1)
    dz = np.exp(z - lse[..., None])
    dz[:, np.arange(m), tokens[1:]] -= 1
    dz /= m
    grads = {head: _outer(dz, hf[:, :m])}
    dhf = np.zeros_like(hf)
    dhf[:, :m] = dz @ w[head]
    dx, grads["model.norm.weight"] = _rmsnorm_bwd(dhf, x, rf, w["model.norm.weight"])
    for i in reversed(range(len(cfg["layers"]))):
        dx = _layer_bwd(cfg, w, i, caches[i], dx, rope, grads)
    de = np.zeros_like(emb)
    np.add.at(de, (np.arange(B)[:, None], tokens[None, :]), dx)
    grads["model.embed_tokens.weight"] = grads.get("model.embed_tokens.weight", 0) + de
    return losses, grads


def loss_and_grad(cfg, w, tokens):
    """Mean next-token cross-entropy and its gradient with respect to every tensor of w."""
    losses, g = _loss_and_grad_batch(cfg, {k: np.asarray(v)[None] for k, v in w.items()}, tokens)
    return float(losses[0]), {k: v[0] for k, v in g.items()}


def loss(cfg, w, tokens):
    """The same loss through reference.forward (independent of this file's forward)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    z = reference.forward(cfg, w, tokens)[:-1]
    mx = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - mx).sum(axis=-1)) + mx[:, 0]
    return float(np.mean(lse - z[np.arange(len(tokens) - 1), tokens[1:]]))


def flatten(w, names):
    return np.concatenate([np.asarray(w[n], dtype=np.float64).ravel() for n in names])


def unflatten(theta, w, names):
    out = dict(w)
    pos = 0
    for n in names:
        size = w[n].size
        out[n] = theta[pos:pos + size].reshape(w[n].shape)
        pos += size
    return out


def flat_grads(cfg, w, names, tokens, thetas):
    """Gradients at each row of thetas (B, n) -> (B, n)."""
    B = thetas.shape[0]
    wb = {k: np.broadcast_to(np.asarray(v), (B,) + np.shape(v)) for k, v in w.items()}
    pos = 0
    for n in names:
        size = int(np.prod(np.shape(w[n])))
        wb[n] = thetas[:, pos:pos + size].reshape((B,) + np.shape(w[n]))
        pos += size
    _, g = _loss_and_grad_batch(cfg, wb, tokens)
    return np.concatenate([np.asarray(g[n]).reshape(B, -1) for n in names], axis=1)


def hessian(cfg, w, tokens, names, h=1e-5, batch=64):
    """Full Hessian of the loss over the parameters `names` (shrink's order), float64."""
    theta = flatten(w, names)
    n = theta.size
    H = np.empty((n, n))
    for j0 in range(0, n, batch):
        cols = np.arange(j0, min(n, j0 + batch))
        t = np.repeat(theta[None], len(cols), axis=0)
        t[np.arange(len(cols)), cols] += h
        gp = flat_grads(cfg, w, names, tokens, t)
        t[np.arange(len(cols)), cols] -= 2 * h
        gm = flat_grads(cfg, w, names, tokens, t)
        H[:, cols] = ((gp - gm) / (2 * h)).T
    return 0.5 * (H + H.T)


def hvp(cfg, w, tokens, names, v, h=1e-5):
    """H v by central differences of the float64 gradient."""
    theta = flatten(w, names)
    t = np.stack([theta + h * v, theta - h * v])
    g = flat_grads(cfg, w, names, tokens, t)
    return (g[0] - g[1]) / (2 * h)
