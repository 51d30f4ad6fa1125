#!/usr/bin/env python3
"""GGUF dequantization against the Python gguf package (gguf-py), bit for bit.

Writes one GGUF file holding a tensor of every type shrink_dequant_row reads
(F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
Q6_K), with odd row counts, several blocks per row and one 3-D tensor, then
runs $SHRINK_BUILD/tests/ref/dump_tensor on each and requires the float32
output to equal gguf.quants.dequantize() bit for bit (NaNs compared by bits).
Types with a numpy quantizer in gguf-py are quantized from random data; the
K-quants get random block bytes with finite f16 scales, some subnormal.
Also checks dump_tensor's exit code 3 on bad input.
Exit status: 0 pass, 1 fail, 77 skip (no numpy/gguf).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as Q
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

RNG = np.random.default_rng(20240611)

# (gguf scale field byte offsets) per K-quant block; see ggml-common.h
K_SCALE_OFFSETS = {Q.Q2_K: (80, 82), Q.Q3_K: (108,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,)}
QUANTIZED = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]
SHAPES_32 = [(7, 96), (1, 32), (3, 2, 64)]
SHAPES_256 = [(5, 768), (1, 256), (3, 512)]


def f16_specials():
    bits = [0x0000, 0x8000, 0x0001, 0x03FF, 0x8200, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x3C00]
    return np.array(bits, dtype=np.uint16).view(np.float16)


def f32_data(shape, specials=False):
    x = (RNG.standard_normal(shape) * RNG.uniform(0.01, 3.0)).astype(np.float32)
    if specials:
        x.reshape(-1)[:4] = [0.0, -0.0, 1e-40, np.float32(3.4e38)]
    return x


def f16_tensor(shape):
    x = RNG.standard_normal(shape).astype(np.float16)
    flat = x.reshape(-1)
    sp = f16_specials()
    flat[: len(sp)] = sp
    return x


def k_quant_bytes(qtype, rows, cols):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block
    raw = RNG.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in K_SCALE_OFFSETS[qtype]:
        scale = RNG.uniform(-0.05, 0.05, n_blocks).astype(np.float16)
        scale[::7] = np.array([0x0003], dtype=np.uint16).view(np.float16)  # subnormal
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block * size)


def cases():
    """Yield (name, array to write, raw_dtype or None, expected float32)."""
    for i, shape in enumerate([(5, 33), (3, 4, 7)]):
        x = f32_data(shape, specials=True)
        yield f"f32.{i}", x, None, x.reshape(-1)
        h = f16_tensor(shape)
        yield f"f16.{i}", h, None, gguf.quants.dequantize(h.view(np.uint8), Q.F16).reshape(-1)
        d = RNG.standard_normal(shape) * 1e3
        yield f"f64.{i}", d, None, d.astype(np.float32).reshape(-1)
        b = gguf.quants.quantize(f32_data(shape), Q.BF16)
        b.reshape(-1)[:4] = [0xC0, 0x7F, 0x80, 0xFF]  # a NaN and -inf (little-endian halves)
        yield f"bf16.{i}", b, Q.BF16, gguf.quants.dequantize(b, Q.BF16).reshape(-1)
    for qtype in QUANTIZED:
        for i, shape in enumerate(SHAPES_32):
            raw = gguf.quants.quantize(f32_data(shape), qtype)
            yield f"{qtype.name.lower()}.{i}", raw, qtype, gguf.quants.dequantize(raw, qtype).reshape(-1)
    for qtype in K_SCALE_OFFSETS:
        for i, (rows, cols) in enumerate(SHAPES_256):
            raw = k_quant_bytes(qtype, rows, cols)
            yield f"{qtype.name.lower()}.{i}", raw, qtype, gguf.quants.dequantize(raw, qtype).reshape(-1)


def write_gguf(path, items):
    w = gguf.GGUFWriter(path, "llama")
    for name, arr, raw_dtype, _ in items:
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def compare(name, got, want):
    if got.size != want.size:
        return f"{name}: {got.size} floats, expected {want.size}"
    gb, wb = got.view(np.uint32), want.astype(np.float32).view(np.uint32)
    bad = np.flatnonzero(gb != wb)
    if bad.size:
        i = bad[0]
        return f"{name}: {bad.size} of {got.size} differ; first at {i}: {got[i]!r} vs {want[i]!r}"
    return None


def run_bad_inputs(dump, path, tmp):
    failures = []
    r = subprocess.run([dump, path, "no.such.tensor"], capture_output=True)
    if r.returncode != 3 or b"no.such.tensor" not in r.stderr:
        failures.append(f"missing tensor: exit {r.returncode}, stderr {r.stderr!r}")
    junk = os.path.join(tmp, "junk.gguf")
    with open(junk, "wb") as f:
        f.write(b"NOPE" + bytes(60))
    r = subprocess.run([dump, junk, "x"], capture_output=True)
    if r.returncode != 3:
        failures.append(f"non-GGUF file: exit {r.returncode}, stderr {r.stderr!r}")
    return failures


def main():
    build = os.environ.get("SHRINK_BUILD", ".")
    dump = os.path.join(build, "tests", "ref", "dump_tensor")
    if not os.access(dump, os.X_OK):
        print(f"FAIL: {dump} not built")
        return 1
    items = list(cases())
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "all_types.gguf")
        write_gguf(path, items)
        for name, _, _, want in items:
            r = subprocess.run([dump, path, name], capture_output=True)
            if r.returncode != 0:
                failures.append(f"{name}: dump_tensor exit {r.returncode}: {r.stderr.decode(errors='replace')}")
                continue
            msg = compare(name, np.frombuffer(r.stdout, dtype=np.float32), want)
            if msg:
                failures.append(msg)
        failures += run_bad_inputs(dump, path, tmp)
    for f in failures:
        print("FAIL:", f)
    print(f"{len(items)} tensors compared bit-exactly; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
