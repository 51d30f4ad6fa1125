#!/bin/sh
# Mixed precision as a user runs it on stories260K: shrink-calibrate with two
# group sizes, then shrink-quantize --budget-bpw / --budget-size: the
# container fits the budget (its tensors, and the file with its header), the
# allocation and the solver's verdict are in the recipe, the dry-run table
# agrees with the written file, minimum bits hold, the result loads and
# evaluates, and the exit codes: infeasible budget 3 with the smallest
# feasible budget (which then works), malformed calibration 3, usage errors 2.
# The optimality itself is checked by tests/unit/test_alloc.c.
set -u
. "$(dirname "$0")/lib.sh"
need_prog cal shrink-calibrate
need_prog q shrink-quantize
need_prog ev shrink-eval
need_data m stories260K.gguf
need_data text tinystories.txt
tmp=$SHRINK_TMP
head -c 30000 "$text" >"$tmp/small.txt"

expect_rc 0 "calibrate, bits 2,3,4,8 x groups 16,64, with KL" "$cal" "$m" -d "$tmp/small.txt" -n 2 -c 32 \
	--min-iter 3 --max-iter 8 --bits 2,3,4,8 --group 16,64 --measure kl -q -o "$tmp/c.json"
python3 - "$tmp/c.json" <<'PY' && ok "8 candidate schemes, bit-major, group_size per entry" || bad "schemes"
import json, sys
c = json.load(open(sys.argv[1]))
assert [(s["bits"], s["group_size"]) for s in c["schemes"]] == [(b, g) for b in (2, 3, 4, 8) for g in (16, 64)]
for t in c["tensors"]:
    for s, want in zip(t["schemes"], c["schemes"]):
        assert (s["bits"], s["group_size"]) == (want["bits"], want["group_size"]), t["name"]
PY

for obj in hawq kl proxy decoupled; do
	expect_rc 0 "quantize --budget-bpw 3.5 --objective $obj" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 3.5 \
		--objective "$obj" -o "$tmp/$obj.safetensors" --json -q
	cp "$tmp/out" "$tmp/$obj.json"
	python3 - "$tmp/$obj.json" "$tmp/$obj.safetensors" "$obj" <<'PY' && ok "$obj: within budget, recipe has the allocation" || bad "$obj: size or recipe"
import json, os, struct, sys
plan, path, obj = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
budget = int(3.5 * plan["n_params"] / 8)
a = plan["allocation"]
assert a["objective"] == obj and a["status"] == "optimal" and a["gap"] == 0, a
assert a["budget_bytes"] == budget and plan["total_bytes"] <= budget, (plan["total_bytes"], budget)
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__")
# the budget is on the model's tensors; the container adds its header and the tokenizer
assert os.path.getsize(path) == 8 + n + max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
recipe = json.loads(header["__metadata__"]["shrink.recipe"])["allocation"]
assert recipe["status"] == "optimal" and recipe["objective"] == obj and "seconds" not in recipe, recipe
assert recipe["tensors"] == a["tensors"], "the recipe holds the allocation"
assert data <= budget, (data, budget)
quant = json.loads(header["__metadata__"]["shrink.quant"])
bits = {t["name"]: (t["bits"], t["group"]) for t in a["tensors"]}
assert all((quant[k]["bits"], quant[k]["group"]) == v for k, v in bits.items()), "the container's schemes"
got = {t["name"]: (t["bits"], t["group"]) for t in plan["tensors"] if t["quantized"]}
assert all(got[k] == v for k, v in bits.items()), "plan and allocation agree"
assert len(set(bits.values())) > 1, "mixed precision: more than one scheme"
PY
done

expect_rc 0 "evaluate the hawq result" "$ev" "$tmp/hawq.safetensors" -f "$tmp/small.txt" -c 64 --chunks 2 \
	--ref "$m" -q --json
python3 -c "import json,math,sys; e=json.load(open(sys.argv[1])); assert math.isfinite(e['kl_mean']), e" "$tmp/out" &&
	ok "hawq result evaluates" || bad "evaluate"

expect_rc 0 "dry run table" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 3.5 --dry-run
grep -q "^objective hawq: .*solver glpk optimal, gap 0" "$tmp/out" && ok "dry run names objective, status, gap" ||
	bad "dry run: $(tail -3 "$tmp/out")"
rows=$(grep -c "^model\.\|^lm_head" "$tmp/out")
[ "$rows" -ge 30 ] && ok "dry run lists $rows tensors" || bad "dry run rows $rows"

expect_rc 0 "budget-size with a minimum of 8 bits for v_proj" "$q" "$m" --calib "$tmp/c.json" --budget-size 150K \
	--tensor-bits 'v_proj=8' --json -q --dry-run
python3 - "$tmp/out" <<'PY' && ok "minimum bits hold, size within 150 KiB" || bad "minimum bits"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["total_bytes"] <= 150 * 1024
v = [t for t in p["tensors"] if "v_proj" in t["name"]]
assert v and all(t["bits"] == 8 for t in v), v
PY

expect_rc 3 "infeasible budget" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 1 --dry-run
need=$(sed -n 's/.*smallest feasible budget is \([0-9]*\) bytes.*/\1/p' "$tmp/err")
[ -n "$need" ] && ok "message gives the smallest feasible budget ($need bytes)" || bad "message: $(cat "$tmp/err")"
expect_rc 0 "exactly the smallest feasible budget" "$q" "$m" --calib "$tmp/c.json" --budget-size "$need" --dry-run
expect_rc 3 "one byte less" "$q" "$m" --calib "$tmp/c.json" --budget-size "$((need - 1))" --dry-run

printf '{"format": "shrink-calibration", "version": 1' >"$tmp/cut.json"
expect_rc 3 "truncated calibration file" "$q" "$m" --calib "$tmp/cut.json" --budget-bpw 4 --dry-run
grep -q "cut.json" "$tmp/err" && ok "message names the file" || bad "message: $(cat "$tmp/err")"
python3 - "$tmp/c.json" "$tmp/other.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
t = next(t for t in c["tensors"][1:] if len(t["shape"]) == 2)
t["shape"] = [t["shape"][0], t["shape"][1] + 1]
json.dump(c, open(sys.argv[2], "w"))
PY
expect_rc 3 "inconsistent calibration file" "$q" "$m" --calib "$tmp/other.json" --budget-bpw 4 --dry-run
expect_rc 0 "calibration without KL" "$cal" "$m" -d "$tmp/small.txt" -n 2 -c 32 --min-iter 3 --max-iter 5 \
	--bits 2,4 -q -o "$tmp/nokl.json"
expect_rc 3 "kl objective without measured KL" "$q" "$m" --calib "$tmp/nokl.json" --budget-bpw 4 --objective kl --dry-run
grep -q "measure kl" "$tmp/err" && ok "message says how to measure it" || bad "message: $(cat "$tmp/err")"

expect_rc 2 "budget without calibration" "$q" "$m" --budget-bpw 4 --dry-run
expect_rc 2 "calibration without budget" "$q" "$m" --calib "$tmp/c.json" --dry-run
expect_rc 2 "two budgets" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 4 --budget-size 1M --dry-run
expect_rc 2 "unknown objective" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 4 --objective best --dry-run
expect_rc 2 "bad weights" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 4 --objective decoupled --weights 1 --dry-run
expect_rc 2 "bad size" "$q" "$m" --calib "$tmp/c.json" --budget-size 2X --dry-run

printf '# bits group cost\n2 * 1\n3 * 1.5\n4 * 2\n8 * 4\n' >"$tmp/cost.tsv"
expect_rc 0 "cost table budget" "$q" "$m" --calib "$tmp/c.json" --budget-bpw 6 --cost-table "$tmp/cost.tsv" \
	--budget-cost 400000 --json -q --dry-run
python3 - "$tmp/out" <<'PY' && ok "cost budget holds" || bad "cost budget"
import json, sys
p = json.load(open(sys.argv[1]))
names = {t["name"] for t in p["allocation"]["tensors"]}
cost = {2: 1, 3: 1.5, 4: 2, 8: 4}
total = sum(t["params"] * cost[t["bits"]] for t in p["tensors"] if t["name"] in names)
assert total <= 400000 * (1 + 1e-9), total
PY

echo "$fails failed"
[ $fails -eq 0 ]
