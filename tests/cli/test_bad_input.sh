#!/bin/sh
# test_bad_input.sh: every malformed input from make_bad_inputs.py, run through
# shrink-eval, must end with exit status 3 within 5 seconds, with a message on
# stderr that names the offending file (and tensor, where the case says so),
# and without a sanitizer report. Prints one line per case and a summary;
# exit 1 when any case fails, 77 when shrink-eval is not built.
# It does not check the wording of messages beyond the names they must contain.
here=$(dirname "$0")
. "$here/lib.sh"

eval_prog=
need_prog eval_prog shrink-eval
corpus=$SHRINK_TMP/corpus
python3 "$here/make_bad_inputs.py" "$corpus" --data "$SHRINK_DATA" >/dev/null || {
	echo "FAIL: make_bad_inputs.py could not write the corpus"
	exit 1
}
limit_ms=5000
timeout_cmd=
command -v timeout >/dev/null 2>&1 && timeout_cmd="timeout 20"

n=0
failed=0
# check_case NAME RC MS NEEDLES: print the verdict; return 1 on failure.
check_case() {
	why=
	[ "$2" -eq 3 ] || why="exit $2, wanted 3"
	old_ifs=$IFS
	IFS=,
	for needle in $4; do
		grep -qF -- "$needle" "$SHRINK_TMP/err" || why="${why:+$why; }stderr does not name '$needle'"
	done
	IFS=$old_ifs
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$SHRINK_TMP/err"; then
		why="${why:+$why; }sanitizer report"
	fi
	[ "$3" -lt "$limit_ms" ] || why="${why:+$why; }took $3 ms"
	if [ -z "$why" ]; then
		echo "ok   $1 ($3 ms): $(head -n 1 "$SHRINK_TMP/err" | cut -c 1-160)"
		return 0
	fi
	echo "FAIL $1: $why"
	sed 's/^/     | /' "$SHRINK_TMP/err" | head -n 8
	return 1
}

while IFS='|' read -r name model text tokenizer needles; do
	[ -n "$name" ] || continue
	n=$((n + 1))
	set -- "$model" -f "$text"
	[ -z "$tokenizer" ] || set -- "$@" --tokenizer "$tokenizer"
	start=$(now_ms)
	$timeout_cmd "$eval_prog" "$@" >"$SHRINK_TMP/out" 2>"$SHRINK_TMP/err" </dev/null
	rc=$?
	ms=$(($(now_ms) - start))
	check_case "$name" "$rc" "$ms" "$needles" || failed=$((failed + 1))
done <"$corpus/cases.txt"

echo "bad inputs: $n cases, $((n - failed)) passed, $failed failed"
[ "$n" -ge 24 ] || {
	echo "FAIL: only $n cases in the corpus (24 or more expected)"
	exit 1
}
[ "$failed" -eq 0 ] || exit 1
exit 0
