#!/bin/sh
# test_crash.sh: outputs survive crashes. Complements test_quantize.sh (which
# covers an absent target under kill -9 and a file size limit for the
# container) with the cases it leaves out:
#  - kill -9 at several points while a previous, valid target exists: the
#    target stays byte-identical to the previous one; the next run removes
#    the stray temporary;
#  - SIGINT and SIGTERM: the temporary is removed at once (no next run
#    needed), the previous target is intact, the exit is by that signal;
#  - shrink-calibrate's three outputs (-o JSON, --imatrix, --pareto) under a
#    file size limit: exit 4, previous files intact, no partial or temporary
#    file.
set -u
. "$(dirname "$0")/lib.sh"
need_prog q shrink-quantize
need_prog cal shrink-calibrate
need_data model stories260K.gguf
need_data text tinystories.txt
tmp=$SHRINK_TMP
temps() { ls -a "$tmp" | grep '\.tmp-' | tr '\n' ' '; }

# a model slow enough to be caught mid-run (a few seconds at --clip-search, 1 thread)
python3 "$SHRINK_SRC/scripts/make-test-model" -q --dim 256 --layers 6 --heads 4 --kv-heads 2 --ffn 768 --vocab 4000 -o "$tmp/big" ||
	{ echo "FAIL: make-test-model"; exit 1; }
"$q" "$model" -o "$tmp/prev.safetensors" -q || { echo "FAIL: first quantize"; exit 1; }
cp "$tmp/prev.safetensors" "$tmp/golden"
# what a run that is not killed writes (the output is deterministic)
"$q" "$tmp/big" -o "$tmp/complete.safetensors" -q --clip-search --threads 1 || { echo "FAIL: complete quantize"; exit 1; }

# kill -9 at several points: the target is the previous one byte for byte, or (the run ended
# before the kill landed; kill also succeeds on a finished child not yet waited for) the
# complete new one, never anything else
for delay in 0.02 0.1 0.3 0.6 1.0 2.0; do
	"$q" "$tmp/big" -o "$tmp/prev.safetensors" -q --clip-search --threads 1 >/dev/null 2>&1 &
	pid=$!
	sleep $delay
	kill -9 $pid 2>/dev/null && killed=killed || killed="had finished"
	wait $pid 2>/dev/null
	if cmp -s "$tmp/prev.safetensors" "$tmp/golden"; then
		ok "kill -9 after ${delay}s ($killed): previous target intact"
	elif cmp -s "$tmp/prev.safetensors" "$tmp/complete.safetensors"; then
		ok "run finished within ${delay}s: new complete target"
		cp "$tmp/prev.safetensors" "$tmp/golden"
	else
		bad "kill -9 after ${delay}s: target changed or damaged"
	fi
done
[ -n "$(temps)" ] && ok "kill -9 leaves a temporary ($(temps)) for the next run to remove" ||
	echo "note: no temporary left by the kills (all runs finished or died before creating one)"
"$q" "$model" -o "$tmp/prev.safetensors" -q && ok "next run succeeds" || bad "next run failed"
[ -z "$(temps)" ] && ok "next run removed the stray temporaries" || bad "stray temporaries: $(temps)"
cp "$tmp/prev.safetensors" "$tmp/golden"

# SIGINT / SIGTERM: temporary removed by the handler, previous target intact
for sig in INT TERM; do
	"$q" "$tmp/big" -o "$tmp/prev.safetensors" -q --clip-search --threads 1 >/dev/null 2>&1 &
	pid=$!
	# wait until the temporary exists (the output is opened after the model is read)
	i=0
	while [ $i -lt 100 ] && [ -z "$(temps)" ]; do sleep 0.05; i=$((i + 1)); done
	seen=$(temps)
	kill -s $sig $pid 2>/dev/null
	wait $pid
	rc=$?
	[ -n "$seen" ] || echo "note: SIG$sig sent before the temporary appeared"
	[ $rc -gt 128 ] && ok "SIG$sig: ended by the signal (exit $rc)" || bad "SIG$sig: exit $rc"
	[ -z "$(temps)" ] && ok "SIG$sig: temporary removed at once" || bad "SIG$sig: temporary left: $(temps)"
	cmp -s "$tmp/prev.safetensors" "$tmp/golden" && ok "SIG$sig: previous target intact" || bad "SIG$sig: target changed"
done

# shrink-calibrate outputs under a file size limit (ulimit -f counts 512-byte blocks in sh)
head -c 20000 "$text" >"$tmp/small.txt"
quick="-n 1 -c 32 --min-iter 2 --max-iter 3 --bits 4,8 -q"
for out in json imatrix pareto; do
	echo previous >"$tmp/c.json"
	echo previous >"$tmp/c.imatrix"
	echo previous >"$tmp/c.tsv"
	case $out in
	json) set -- -o "$tmp/c.json" ;;
	imatrix) set -- --imatrix "$tmp/c.imatrix" ;;
	pareto) set -- --pareto "$tmp/c.tsv" ;;
	esac
	# shellcheck disable=SC2086
	( ulimit -f 1; exec "$cal" "$model" -d "$tmp/small.txt" $quick "$@" ) >/dev/null 2>"$tmp/err"
	rc=$?
	[ $rc -eq 4 ] && ok "calibrate --$out over the size limit: exit 4 ($(head -c 120 "$tmp/err"))" ||
		bad "calibrate --$out over the size limit: exit $rc: $(head -c 300 "$tmp/err")"
	for f in c.json c.imatrix c.tsv; do
		[ "$(cat "$tmp/$f")" = previous ] || bad "calibrate --$out: $f changed"
	done
	[ -z "$(temps)" ] && ok "calibrate --$out: no temporary left" || bad "calibrate --$out: temporaries $(temps)"
done

echo "$fails failed"
[ $fails -eq 0 ]
