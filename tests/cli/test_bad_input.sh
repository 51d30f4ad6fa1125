#!/bin/sh
# test_bad_input.sh: every malformed input from make_bad_inputs.py, run through
# shrink-eval, must end with exit status 3 within 5 seconds (1 second for the
# *_100gb_* cases, which declare ~100 GB in a few KB), with a message on
# stderr that names the offending file (and tensor, where the case says so),
# without a sanitizer report, and with a peak RSS under 256 MB (measured with
# /usr/bin/time when it is installed): a declared size is checked against the
# file before anything is allocated. Prints one line per case and a summary;
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
rss_limit_kb=262144
time_cmd=
[ -x /usr/bin/time ] && /usr/bin/time -f %M -o "$SHRINK_TMP/rss" true 2>/dev/null && time_cmd="/usr/bin/time -f %M -o $SHRINK_TMP/rss"
max_rss=0
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
	case $1 in *_100gb_*) lim=1000 ;; *) lim=$limit_ms ;; esac
	[ "$3" -lt "$lim" ] || why="${why:+$why; }took $3 ms (limit $lim)"
	rss=
	[ -z "$time_cmd" ] || rss=$(tail -n 1 "$SHRINK_TMP/rss" 2>/dev/null)
	case $rss in
	'' | *[!0-9]*) rss= ;;
	*)
		[ "$rss" -lt "$rss_limit_kb" ] || why="${why:+$why; }peak RSS $rss KB"
		[ "$rss" -le "$max_rss" ] || max_rss=$rss
		;;
	esac
	if [ -z "$why" ]; then
		echo "ok   $1 ($3 ms${rss:+, $((rss / 1024)) MB}): $(head -n 1 "$SHRINK_TMP/err" | cut -c 1-160)"
		return 0
	fi
	echo "FAIL $1: $why"
	sed 's/^/     | /' "$SHRINK_TMP/err" | head -n 8
	return 1
}

while IFS='|' read -r name model text tokenizer needles env_vars; do
	[ -n "$name" ] || continue
	n=$((n + 1))
	set -- "$model" -f "$text"
	[ -z "$tokenizer" ] || set -- "$@" --tokenizer "$tokenizer"
	rm -f "$SHRINK_TMP/rss"
	start=$(now_ms)
	# shellcheck disable=SC2086 # env_vars is a list of VAR=VALUE words
	env $env_vars $timeout_cmd $time_cmd "$eval_prog" "$@" >"$SHRINK_TMP/out" 2>"$SHRINK_TMP/err" </dev/null
	rc=$?
	ms=$(($(now_ms) - start))
	check_case "$name" "$rc" "$ms" "$needles" || failed=$((failed + 1))
done <"$corpus/cases.txt"

echo "bad inputs: $n cases, $((n - failed)) passed, $failed failed; largest peak RSS $((max_rss / 1024)) MB"
[ "$n" -ge 24 ] || {
	echo "FAIL: only $n cases in the corpus (24 or more expected)"
	exit 1
}
[ "$failed" -eq 0 ] || exit 1
exit 0
