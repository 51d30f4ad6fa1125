#!/bin/sh
# Every long option a program's --help lists is documented in its man page,
# and every option its man page documents is in --help.
set -u
. "$(dirname "$0")/lib.sh"
fails=0
for prog in shrink-run shrink-eval shrink-quantize shrink-calibrate; do
	bin=$SHRINK_BUILD/tools/$prog
	page=$SHRINK_SRC/man/$prog.1
	[ -x "$bin" ] && [ -f "$page" ] || continue
	help_opts=$("$bin" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
	man_opts=$(sed 's/\\-/-/g' "$page" | grep -E '^\.(B|BI|BR|TP)' | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
	for o in $help_opts; do
		echo "$man_opts" | grep -qx -- "$o" || { echo "FAIL: $prog: $o is in --help but not in $prog.1"; fails=$((fails + 1)); }
	done
	for o in $man_opts; do
		echo "$help_opts" | grep -qx -- "$o" || { echo "FAIL: $prog: $o is in $prog.1 but not in --help"; fails=$((fails + 1)); }
	done
	echo "checked $prog: $(echo "$help_opts" | wc -l) options"
done
echo "$fails failed"
[ $fails -eq 0 ]
