#!/bin/sh
# test_device.sh: the GPU backend (--device cuda) against the CPU path, end to
# end through the programs: greedy generation gives the same tokens, and
# perplexity agrees within 0.1%, for stories260K as float, as a 4-bit container
# and as a mixed-precision container (different bits per tensor), and with the
# compressed KV caches (kivi, gear: compressed on the host, decoded on the GPU;
# equal KV bytes, perplexity bounds in same_ppl); the same for the default
# model when it is present ($SHRINK_DEFAULT_MODEL, else
# ~/.cache/shrink/default-model.gguf). Without a CUDA device (or a build
# without CUDA) it checks that --device cuda fails with status 4, then skips.
. "$(dirname "$0")/../cli/lib.sh"

need_prog run shrink-run
need_prog eval shrink-eval
need_prog quant shrink-quantize
need_prog cal shrink-calibrate
need_data small stories260K.gguf
need_data text tinystories.txt

fail=0
check() { # check WHAT CONDITION-EXIT-STATUS
	if [ "$2" -eq 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

"$run" "$small" -p "Once" -n 1 --temp 0 -q --device cuda >"$SHRINK_TMP/probe.out" 2>"$SHRINK_TMP/probe.err"
rc=$?
if [ $rc -ne 0 ]; then
	cat "$SHRINK_TMP/probe.err"
	[ $rc -eq 4 ] || { echo "FAIL: --device cuda without a device: exit $rc, expected 4"; exit 1; }
	skip "no CUDA device (or no CUDA backend in this build)"
fi

# 'same_tokens NAME MODEL': greedy continuations of two prompts match byte for byte ($KV: a --kv spec).
same_tokens() {
	for p in "Once upon a time" "The little dog"; do
		"$run" "$2" -p "$p" -n "${N_PREDICT:-48}" --temp 0 -q --kv "${KV:-f32}" --device cpu >"$SHRINK_TMP/cpu.txt" 2>&1
		"$run" "$2" -p "$p" -n "${N_PREDICT:-48}" --temp 0 -q --kv "${KV:-f32}" --device cuda >"$SHRINK_TMP/gpu.txt" 2>&1
		cmp -s "$SHRINK_TMP/cpu.txt" "$SHRINK_TMP/gpu.txt"
		r=$?
		check "$1: greedy tokens on the GPU equal the CPU's ('$p')" $r
		[ $r -eq 0 ] || { echo "cpu:"; cat "$SHRINK_TMP/cpu.txt"; echo "gpu:"; cat "$SHRINK_TMP/gpu.txt"; }
	done
}

# 'same_ppl NAME MODEL': perplexity within 0.1% (relative) between the devices. With a compressed
# cache ($KV kivi/gear) the GPU must hold exactly as many KV bytes, and the perplexities agree within
# 1% at 8 bits, 2% at 4 to 7 and 10% at 2 and 3: the GPU computes the keys and values in f16, the CPU
# in f32, and coarse codes turn those small differences into flipped codes. Measured on the H100
# with the default model (4 x 256 tokens): f16 cache 9e-5 apart, kivi 8-bit 5e-4, 4-bit 2.7e-3,
# 2-bit 3.4% (GPU lower), 2-bit group 32 4.5% (GPU higher), gear 2-bit without low rank 3.3%
# (lower); rounding the weights to 8 bits moves the CPU's own 2-bit numbers by 0.4% (default model)
# to 14% (stories260K). A cache decoded wrongly is far outside this: kivi takes the default
# model from 7.96 to 13.7, so reading the f16 rows instead would be 42% off. On the H200
# (2026-11-28): f16 cache 9.7e-5, kivi 2-bit 1.0e-2, kivi 4-bit 9.9e-3 (GPU higher, at its bound's
# edge), gear 4.4e-3. kivi 4-bit amplifies even the CPU's differences between machines: 0.19%
# between the H200's host and a development Xeon whose f32-cache perplexities agree to 2.5e-7. So
# 4-7 bits get 2% (2026-11-29): 1% was crossed by chance differences, while a wrong decode is 42% off.
same_ppl() {
	for d in cpu cuda; do
		"$eval" "$2" -f "$text" -c "${PPL_CTX:-128}" --chunks "${PPL_CHUNKS:-8}" --json -q --kv "${KV:-f32}" \
			--device $d >"$SHRINK_TMP/ppl_$d.json" || { check "$1: shrink-eval --device $d" 1; return; }
	done
	python3 - "$SHRINK_TMP/ppl_cpu.json" "$SHRINK_TMP/ppl_cuda.json" "$1" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rel = abs(b["ppl"] - a["ppl"]) / a["ppl"]
kind, _, params = a["kv"].partition(":")
compressed = kind in ("kivi", "gear")
bits = int(dict(kv.split("=") for kv in params.split(",") if kv).get("bits", 2))
bound = 1e-3 if not compressed else 1e-2 if bits >= 8 else 2e-2 if bits >= 4 else 0.1
print("%s: perplexity cpu %.6f cuda %.6f (relative difference %.2e, bound %.0e); KV bytes/token cpu %.1f cuda %.1f"
      % (sys.argv[3], a["ppl"], b["ppl"], rel, bound, a["kv_bytes_per_token"], b["kv_bytes_per_token"]))
sys.exit(0 if rel <= bound and (not compressed or a["kv_bytes_per_token"] == b["kv_bytes_per_token"]) else 1)
EOF
	check "$1: perplexity within the bound" $?
}

same_tokens "stories260K f32" "$small"
same_ppl "stories260K f32" "$small"

# compressed KV caches: 48 greedy tokens cross the first 64-token chunk of a short prompt during
# decode; the 128-token perplexity windows compress chunks during the prefill. Chunks of 16 (gear)
# make decode compress several times, with rank 2 after a prefill at rank 4.
for kv in kivi kivi:bits=4,group=32,residual=32 gear gear:bits=3,buffer=16,group=16,rank=2,rank_prefill=4; do
	N_PREDICT=72 KV=$kv same_tokens "stories260K --kv $kv" "$small"
	KV=$kv same_ppl "stories260K --kv $kv" "$small"
done

"$quant" "$small" -o "$SHRINK_TMP/q4.shrink" -b 4 -g 32 -q && [ -s "$SHRINK_TMP/q4.shrink" ]
check "stories260K quantized to 4 bits" $?
# The CPU's 4/8-bit linear layers quantize the activations to int8 per block (kernels/cpu/qdot_i8.c)
# while the GPU keeps them in f16, so on this 260K-parameter model a long greedy run can part at a
# near-tie (seen after ~35 tokens); the first 24 tokens must agree, and perplexity is the tight check.
N_PREDICT=24 same_tokens "stories260K 4-bit" "$SHRINK_TMP/q4.shrink"
same_ppl "stories260K 4-bit" "$SHRINK_TMP/q4.shrink"

# mixed precision: 3-bit attention, 5-bit MLP, 8-bit down projection, 6-bit output head, asymmetric
"$quant" "$small" -o "$SHRINK_TMP/mixed.shrink" -b 4 -g 16 --embed-bits 6 --tensor-bits 'self_attn=3' \
	--tensor-bits 'mlp=5' --tensor-bits 'down_proj=8' -q && [ -s "$SHRINK_TMP/mixed.shrink" ]
check "stories260K quantized with mixed bits" $?
# Seen on the H100 with the fused split-key decode attention (another summation order than the
# CPU's): one prompt parted at a near-tie after ~30 tokens ("ball" / "block"); compare 24.
N_PREDICT=24 same_tokens "stories260K mixed" "$SHRINK_TMP/mixed.shrink"
same_ppl "stories260K mixed" "$SHRINK_TMP/mixed.shrink"

# shrink-calibrate --measure kl on the GPU: the per-tensor KLs agree with the CPU's (f16 against f32
# activations: within 10% where the KL is above 1e-3), and the file records where they were measured
for d in cpu cuda; do
	"$cal" "$small" -d "$text" -n 2 -c 64 --hessian none --bits 2,4,8 --measure kl --device $d -q \
		-o "$SHRINK_TMP/kl_$d.json"
	check "shrink-calibrate --measure kl --device $d" $?
done
python3 - "$SHRINK_TMP/kl_cpu.json" "$SHRINK_TMP/kl_cuda.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["data"]["kl_device"] == "cpu" and b["data"]["kl_device"] == "cuda"
worst, n = 0.0, 0
for ta, tb in zip(a["tensors"], b["tensors"]):
    for sa, sb in zip(ta["schemes"], tb["schemes"]):
        if sa["kl"] > 1e-3:
            n += 1
            worst = max(worst, abs(sb["kl"] - sa["kl"]) / sa["kl"])
print("KL per tensor and scheme, cpu against cuda: %d compared, worst relative difference %.3f" % (n, worst))
sys.exit(0 if n > 0 and worst <= 0.1 else 1)
EOF
check "per-tensor KL on the GPU within 10% of the CPU's" $?

big=${SHRINK_DEFAULT_MODEL:-$HOME/.cache/shrink/default-model.gguf}
if [ -e "$big" ]; then
	N_PREDICT=32 same_tokens "default model" "$big"
	PPL_CTX=256 PPL_CHUNKS=4 same_ppl "default model" "$big"
	"$quant" "$big" -o "$SHRINK_TMP/big4.shrink" -b 4 -g 128 -q
	check "default model quantized to 4 bits" $?
	# int8 activations on the CPU against f16 on the GPU (see above): one of the two prompts was seen
	# to part after about 10 tokens on the H100, so only the first 8 are compared; perplexity is tight.
	N_PREDICT=8 same_tokens "default model 4-bit" "$SHRINK_TMP/big4.shrink"
	PPL_CTX=256 PPL_CHUNKS=4 same_ppl "default model 4-bit" "$SHRINK_TMP/big4.shrink"
	for kv in kivi kivi:bits=4 gear; do
		N_PREDICT=24 KV=$kv same_tokens "default model --kv $kv" "$big"
		KV=$kv PPL_CTX=256 PPL_CHUNKS=4 same_ppl "default model --kv $kv" "$big"
	done
else
	echo "note: default model not found ($big): only stories260K checked"
fi
exit $fail
