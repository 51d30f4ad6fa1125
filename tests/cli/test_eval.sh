#!/bin/sh
# shrink-eval as a user runs it: perplexity, .gz input, JSON, a reference
# model, and every quality gate's exit code.
set -u
. "$(dirname "$0")/lib.sh"
need_prog ev shrink-eval
need_data m stories260K.gguf
need_data text tinystories.txt
bin=$SHRINK_BUILD/tools
tmp=$SHRINK_TMP
head -c 20000 "$text" >"$tmp/small.txt"
gzip -c "$tmp/small.txt" >"$tmp/small.txt.gz"

expect_rc 0 "perplexity" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --json
cp "$tmp/out" "$tmp/plain.json"; cat "$tmp/out"
ppl=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ppl"])' "$tmp/plain.json")
python3 -c "import sys; p=float('$ppl'); sys.exit(0 if 1 < p < 20 else 1)" && ok "ppl $ppl plausible for a model trained on this text" || bad "ppl $ppl"

expect_rc 0 "gzip input" "$bin/shrink-eval" "$m" -f "$tmp/small.txt.gz" --ctx 128 --json
python3 - "$tmp/plain.json" "$tmp/out" <<'PY' && ok ".gz gives the same numbers" || bad ".gz differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if a["ppl"] == b["ppl"] and a["scored"] == b["scored"] else 1)
PY

expect_rc 0 "reference = itself" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --ref "$m" --json
python3 - "$tmp/out" <<'PY' && ok "KL 0, top-1 100%" || bad "self reference: $(cat "$tmp/out")"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["kl_mean"] < 1e-9 and r["top1"] == 1 and abs(r["delta_ppl"]) < 1e-9 else 1)
PY

expect_rc 0 "f16 KV against f32 reference" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --ref "$m" --kv f16 --json
python3 - "$tmp/out" <<'PY' && ok "f16 KV: small KL" || bad "f16 KV: $(cat "$tmp/out")"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if 0 <= r["kl_mean"] < 1e-3 and r["top1"] > 0.97 else 1)
PY

expect_rc 1 "--max-ppl gate" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --max-ppl 1.01
grep -q "gate --max-ppl failed" "$tmp/err" && ok "gate named" || bad "gate message: $(cat "$tmp/err")"
expect_rc 0 "--max-ppl passes" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --max-ppl 1000
expect_rc 1 "--min-top1 gate" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --ref "$m" --kv kivi:bits=2,group=32,residual=32 --min-top1 0.999
expect_rc 0 "--max-kl passes" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --ref "$m" --max-kl 0.001
expect_rc 1 "--max-ppl-ratio gate" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --ref "$m" --kv f16 --max-ppl-ratio 0.5
expect_rc 2 "--max-kl without --ref" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --max-kl 1
expect_rc 2 "no text" "$bin/shrink-eval" "$m"
: >"$tmp/empty.txt"
expect_rc 3 "empty text" "$bin/shrink-eval" "$m" -f "$tmp/empty.txt"
grep -q "empty.txt" "$tmp/err" && ok "message names the text" || bad "message: $(cat "$tmp/err")"
expect_rc 3 "text shorter than one window" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 100000
expect_rc 0 "--bench" "$bin/shrink-eval" "$m" -f "$tmp/small.txt" --ctx 128 --chunks 1 --bench
grep -q "decode speed" "$tmp/out" && ok "decode speed reported" || bad "no decode speed"
echo "$fails failed"
[ $fails -eq 0 ]
