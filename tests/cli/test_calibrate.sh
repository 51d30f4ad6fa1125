#!/bin/sh
# shrink-calibrate as a user runs it on stories260K: the calibration file's
# fields, the imatrix and Pareto side files, byte-identical output whatever
# the thread count and with --checkpoint, .gz input, --hessian proxy, every
# usage and bad-input exit code, scripts/plot-pareto, and --help against the
# man page. The numbers themselves are checked by tests/unit/test_sense.c and
# tests/ref/test_hessian_ref.py.
set -u
. "$(dirname "$0")/lib.sh"
need_prog cal shrink-calibrate
need_data m stories260K.gguf
need_data text tinystories.txt
tmp=$SHRINK_TMP
head -c 30000 "$text" >"$tmp/small.txt"
gzip -c "$tmp/small.txt" >"$tmp/small.txt.gz"
quick="-n 2 -c 32 --min-iter 3 --max-iter 8 --bits 2,4,8 -q"

# shellcheck disable=SC2086
expect_rc 0 "calibrate with KL, imatrix and Pareto" "$cal" "$m" -d "$tmp/small.txt" $quick --measure kl \
	--imatrix "$tmp/im.safetensors" --pareto "$tmp/front.tsv" -o "$tmp/a.json"
python3 - "$tmp/a.json" "$tmp/im.safetensors" "$tmp/front.tsv" <<'PY' && ok "file fields, imatrix, frontier" || bad "files"
import json, math, struct, sys
c = json.load(open(sys.argv[1]))
assert c["format"] == "shrink-calibration" and c["version"] == 1, "format/version"
assert c["hessian"]["method"] == "hutchinson" and 3 <= c["hessian"]["iterations"] <= 8
assert [s["bits"] for s in c["schemes"]] == [2, 4, 8]
assert len(c["tensors"]) == 48 and c["n_params"] == sum(t["n_params"] for t in c["tensors"])
assert 0 < c["loss"] < 10
for t in c["tensors"]:
    assert math.isfinite(t["trace"]) and t["trace_se"] >= 0 and 3 <= t["iterations"] <= 8, t["name"]
    assert len(t["schemes"]) == (3 if len(t["shape"]) == 2 else 0), t["name"]
    for s in t["schemes"]:
        assert s["size_bits"] > 0 and s["dw_sq"] > 0 and s["proxy"] > 0 and s["kl"] >= 0, t["name"]
        assert abs(s["omega"] - t["trace"] / t["n_params"] * s["dw_sq"]) <= 1e-9 * abs(s["omega"]) + 1e-300
raw = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
assert h["__metadata__"]["format"] == "shrink-imatrix"
q = h["model.layers.0.self_attn.q_proj.weight"]
assert q["dtype"] == "F32" and q["shape"] == [64]
vals = struct.unpack("<64f", raw[8 + n + q["data_offsets"][0]:8 + n + q["data_offsets"][1]])
assert all(v > 0 for v in vals)
rows = [l.split("\t") for l in open(sys.argv[3]) if not l.startswith("#")]
assert rows[0][:3] == ["size_bytes", "bits_per_weight", "omega"]
pts = [(int(r[0]), float(r[2])) for r in rows[1:]]
assert len(pts) > 10 and all(a[0] < b[0] and a[1] > b[1] for a, b in zip(pts, pts[1:]))
assert all(len(r[3].split(",")) == 37 for r in rows[1:])
PY

# shellcheck disable=SC2086
expect_rc 0 "one thread, .gz input, standard output" "$cal" "$m" -d "$tmp/small.txt.gz" $quick --measure kl -t 1
sed 's/small\.txt\.gz/small.txt/' "$tmp/out" | cmp -s - "$tmp/a.json" && ok "same bytes with 1 thread and from .gz" ||
	bad "output differs"
# shellcheck disable=SC2086
expect_rc 0 "--checkpoint" "$cal" "$m" -d "$tmp/small.txt" $quick --checkpoint -o "$tmp/ck.json"
# shellcheck disable=SC2086
expect_rc 0 "no --checkpoint" "$cal" "$m" -d "$tmp/small.txt" $quick -o "$tmp/nock.json"
python3 - "$tmp/ck.json" "$tmp/nock.json" <<'PY' && ok "--checkpoint changes no number" || bad "--checkpoint"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["hessian"]["checkpoint"] and not b["hessian"]["checkpoint"]
assert a["tensors"] == b["tensors"] and a["loss"] == b["loss"]
PY
# shellcheck disable=SC2086
expect_rc 0 "--hessian proxy" "$cal" "$m" -d "$tmp/small.txt" $quick --hessian proxy --pareto "$tmp/p.tsv"
python3 - "$tmp/out" <<'PY' && ok "proxy run: no traces, proxies" || bad "proxy run"
import json, sys
c = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
assert c["hessian"] == {"method": "proxy"}
t = [t for t in c["tensors"] if t["name"] == "model.layers.0.self_attn.q_proj.weight"][0]
assert t["trace"] is None and t["schemes"][0]["omega"] is None and t["schemes"][0]["proxy"] > 0
PY
grep -q "	proxy	" "$tmp/p.tsv" && ok "proxy frontier by default" || bad "proxy frontier header"

expect_rc 2 "no model" "$cal"
expect_rc 2 "no text" "$cal" "$m"
expect_rc 2 "bad --bits" "$cal" "$m" -d "$tmp/small.txt" --bits 2,7
expect_rc 2 "bad --device" "$cal" "$m" -d "$tmp/small.txt" --device tpu
expect_rc 2 "bad --hessian" "$cal" "$m" -d "$tmp/small.txt" --hessian exact
expect_rc 2 "--pareto-metric kl without --measure kl" "$cal" "$m" -d "$tmp/small.txt" --pareto x --pareto-metric kl
expect_rc 2 "--max-iter below --min-iter" "$cal" "$m" -d "$tmp/small.txt" --min-iter 5 --max-iter 4
expect_rc 2 "bad --group" "$cal" "$m" -d "$tmp/small.txt" -n 1 -c 8 --group 100 -q
: >"$tmp/empty.txt"
expect_rc 3 "empty text" "$cal" "$m" -d "$tmp/empty.txt"
grep -q "empty.txt" "$tmp/err" && ok "message names the text" || bad "message: $(cat "$tmp/err")"
expect_rc 3 "text shorter than one window" "$cal" "$m" -d "$tmp/small.txt" -c 100000
grep -q "small.txt" "$tmp/err" && ok "message names the text" || bad "message: $(cat "$tmp/err")"
printf 'not a model' >"$tmp/bad.gguf"
expect_rc 3 "corrupt model" "$cal" "$tmp/bad.gguf" -d "$tmp/small.txt"
expect_rc 4 "unwritable output" "$cal" "$m" -d "$tmp/small.txt" -n 1 -c 8 --hessian none -q -o "$tmp/no/such/dir/x.json"

if command -v gnuplot >/dev/null 2>&1; then
	expect_rc 0 "plot-pareto" "$SHRINK_SRC/scripts/plot-pareto" "$tmp/front.tsv" "$tmp/front.png"
	head -c 8 "$tmp/front.png" | od -c | grep -q "P   N   G" && ok "a PNG" || bad "not a PNG"
else
	echo "note: gnuplot not installed; plot-pareto not tested"
fi

"$cal" --help >"$tmp/help"
grep -o -- '--[a-z][a-z-]*' "$tmp/help" | sort -u >"$tmp/help.opts"
sed -e 's/\\f[BIRP]//g' -e 's/\\//g' "$SHRINK_SRC/man/shrink-calibrate.1" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/man.opts"
if cmp -s "$tmp/help.opts" "$tmp/man.opts"; then
	ok "--help and the man page name the same options ($(wc -l <"$tmp/help.opts"))"
else
	bad "--help and the man page differ: $(diff "$tmp/help.opts" "$tmp/man.opts" | grep '^[<>]' | tr '\n' ' ')"
fi
echo "$fails failed"
[ $fails -eq 0 ]
