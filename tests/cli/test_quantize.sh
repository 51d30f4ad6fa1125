#!/bin/sh
# shrink-quantize as a user runs it: the container loads and runs, output is
# byte-identical across thread counts and runs, 8-bit keeps perplexity within
# 0.5%, GPTQ beats RTN, a peer safetensors reader opens the file, damaged
# files are refused, and interrupted or failed runs never leave a partial file.
set -u
. "$(dirname "$0")/lib.sh"
need_prog q shrink-quantize
need_prog ev shrink-eval
need_prog run shrink-run
need_data model stories260K.gguf
need_data text tinystories.txt
tmp=$SHRINK_TMP
ppl_kl() { "$ev" "$1" -f "$text" --ctx 256 --chunks 40 --ref "$model" --json -q | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ppl"], r["ref_ppl"], r["kl_mean"])'; }

expect_rc 0 "quantize 4-bit" "$q" "$model" -o "$tmp/q4.safetensors" -q
expect_rc 0 "quantize 4-bit, 1 thread" "$q" "$model" -o "$tmp/q4t1.safetensors" -q --threads 1
expect_rc 0 "quantize 4-bit, 2 threads" "$q" "$model" -o "$tmp/q4t2.safetensors" -q --threads 2
cmp -s "$tmp/q4.safetensors" "$tmp/q4t1.safetensors" && cmp -s "$tmp/q4t1.safetensors" "$tmp/q4t2.safetensors" &&
	ok "byte-identical across runs and thread counts" || bad "output depends on the run or thread count"
expect_rc 0 "gptq, 1 thread" "$q" "$model" -o "$tmp/g1.safetensors" -q --method gptq --data "$text" --samples 8 --ctx 128 --threads 1
expect_rc 0 "gptq, 2 threads" "$q" "$model" -o "$tmp/g2.safetensors" -q --method gptq --data "$text" --samples 8 --ctx 128 --threads 2
cmp -s "$tmp/g1.safetensors" "$tmp/g2.safetensors" && ok "gptq byte-identical across thread counts" || bad "gptq depends on threads"

expect_rc 0 "--verify" "$ev" --verify "$tmp/q4.safetensors"
"$run" "$tmp/q4.safetensors" -p "Once upon a time" -n 24 --temp 0 >"$tmp/story" 2>&1
grep -qiE 'little|girl|boy|named' "$tmp/story" && ok "4-bit model tells a story: $(cat "$tmp/story")" || bad "4-bit story: $(cat "$tmp/story")"

"$q" "$model" -o "$tmp/q8.safetensors" -q -b 8
set -- $(ppl_kl "$tmp/q8.safetensors")
python3 -c "import sys; sys.exit(0 if abs($1/$2-1) < 0.005 else 1)" && ok "8-bit ppl $1 within 0.5% of float $2" || bad "8-bit ppl $1 vs $2"
set -- $(ppl_kl "$tmp/q4.safetensors"); rtn_kl=$3
set -- $(ppl_kl "$tmp/g1.safetensors"); gptq_kl=$3
python3 -c "import sys; sys.exit(0 if $gptq_kl < $rtn_kl else 1)" && ok "gptq KL $gptq_kl < rtn KL $rtn_kl" || bad "gptq KL $gptq_kl vs rtn $rtn_kl"

python3 - "$tmp/q4.safetensors" <<'PY' && ok "a peer safetensors reader opens the container" || bad "peer reader"
import json, struct, sys
try:
    from safetensors import safe_open
except ImportError:
    safe_open = None
path = sys.argv[1]
if safe_open:
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        names = list(f.keys())
        q = f.get_tensor("model.layers.0.self_attn.q_proj.qweight")
    assert q.dtype.name == "uint8" and q.shape[0] == 64
else:  # fall back to parsing the header by hand
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n]); meta = hdr["__metadata__"]; names = [k for k in hdr if k != "__metadata__"]
assert meta["shrink.version"] == "1" and "shrink.crc32" in meta
quant = json.loads(meta["shrink.quant"])
assert quant["model.layers.0.self_attn.q_proj.weight"]["bits"] == 4
assert "model.norm.weight" in names
PY

expect_rc 0 "--dry-run --json" "$q" "$model" --dry-run --json -b 3 --tensor-bits 'mlp\.down_proj=6' --keep 'layers\.0\.'
python3 - "$tmp/out" <<'PY' && ok "plan honours --tensor-bits and --keep" || bad "plan: $(head -c 400 "$tmp/out")"
import json, sys
r = json.load(open(sys.argv[1]))
t = {e["name"]: e for e in r["tensors"]}
assert t["model.layers.1.mlp.down_proj.weight"]["bits"] == 6
assert t["model.layers.1.mlp.up_proj.weight"]["bits"] == 3
assert not t["model.layers.0.mlp.up_proj.weight"]["quantized"]
assert t["model.embed_tokens.weight"]["bits"] == 8
assert 3 < r["bpw"] < 16
PY
[ ! -e "$tmp/nothing" ] && ok "dry run writes nothing"
expect_rc 0 "--embed-bits 0" "$q" "$model" --dry-run --json --embed-bits 0
python3 - "$tmp/out" <<'PY' && ok "--embed-bits 0 keeps the embeddings in float" || bad "--embed-bits 0: $(head -c 400 "$tmp/out")"
import json, sys
t = {e["name"]: e for e in json.load(open(sys.argv[1]))["tensors"]}
assert not t["model.embed_tokens.weight"]["quantized"]
assert t["model.layers.0.mlp.up_proj.weight"]["bits"] == 4
PY

# damaged container: a flipped bit is caught by the CRC, naming the tensor
python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[-100]^=1; open(sys.argv[2],'wb').write(d)" "$tmp/q4.safetensors" "$tmp/bad.safetensors"
expect_rc 3 "damaged container" "$ev" --verify "$tmp/bad.safetensors"
grep -q "CRC-32 mismatch" "$tmp/err" && grep -q "tensor '" "$tmp/err" && ok "message names the tensor" || bad "message: $(cat "$tmp/err")"

expect_rc 2 "gptq without --data" "$q" "$model" -o "$tmp/x.safetensors" --method gptq
expect_rc 2 "bad bits" "$q" "$model" -o "$tmp/x.safetensors" -b 7
expect_rc 2 "bad group" "$q" "$model" -o "$tmp/x.safetensors" -g 100
expect_rc 2 "bad regex" "$q" "$model" --dry-run --tensor-bits '(=4'

# a file system that fills up (file size limit): exit 4, the old target intact, no temporary left
echo "previous" >"$tmp/full.safetensors"
( ulimit -f 64; exec "$q" "$model" -o "$tmp/full.safetensors" -q ) >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 4 ] && ok "size limit: exit 4 ($(cat "$tmp/err"))" || bad "size limit: exit $rc: $(cat "$tmp/err")"
[ "$(cat "$tmp/full.safetensors")" = previous ] && ok "previous target intact" || bad "target damaged"
ls -a "$tmp" | grep -q '\.tmp-' && bad "temporary file left: $(ls -a "$tmp")" || ok "no temporary file left"

# kill -9 at several points of a slower run: the target is the old one or absent, never partial
python3 "$SHRINK_SRC/scripts/make-test-model" -q --dim 256 --layers 6 --heads 4 --kv-heads 2 --ffn 768 --vocab 4000 -o "$tmp/big"
for delay in 0.05 0.2 0.5 1.0; do
	rm -f "$tmp/k.safetensors"
	"$q" "$tmp/big" -o "$tmp/k.safetensors" -q --clip-search --threads 1 >/dev/null 2>&1 &
	pid=$!
	sleep $delay
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if [ -e "$tmp/k.safetensors" ]; then
		"$ev" --verify "$tmp/k.safetensors" >/dev/null 2>&1 && ok "killed after ${delay}s: complete file" || bad "killed after ${delay}s: partial target"
	else
		ok "killed after ${delay}s: no target"
	fi
done
"$q" "$tmp/big" -o "$tmp/k.safetensors" -q
ls -a "$tmp" | grep -q '\.k\.safetensors\.tmp-' && bad "stray temporary after the next run" || ok "next run removed stray temporaries"
echo "$fails failed"
[ $fails -eq 0 ]
