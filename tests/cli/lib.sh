# lib.sh: helpers shared by the CLI tests; source it with
#   . "$(dirname "$0")/lib.sh"
# It finds the build ($SHRINK_BUILD, set by make check) and the shared test
# data ($SHRINK_DATA, else $SHRINK_SRC/../shared/data), makes a temporary
# folder $SHRINK_TMP that is removed on exit, and offers skip (exit 77, which
# automake reports as SKIP) and a millisecond clock. POSIX sh; it runs no
# test itself and never touches files outside $SHRINK_TMP.

: "${SHRINK_BUILD:=.}"
: "${SHRINK_SRC:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${SHRINK_DATA:=$SHRINK_SRC/../shared/data}"
export SHRINK_BUILD SHRINK_SRC SHRINK_DATA

# skip MESSAGE...: report why and stop the test as skipped.
skip() {
	echo "SKIP: $*"
	exit 77
}

# need_prog VAR NAME: set VAR to the built program tools/NAME, or skip.
need_prog() {
	_p=$SHRINK_BUILD/tools/$2
	[ -x "$_p" ] || skip "$2 is not built ($_p)"
	eval "$1=\$_p"
}

# need_data VAR NAME: set VAR to the shared data file NAME, or skip.
need_data() {
	_f=$SHRINK_DATA/$2
	[ -e "$_f" ] || skip "test data $2 not found in $SHRINK_DATA"
	eval "$1=\$_f"
}

# have_data NAME: true when the shared data file NAME exists.
have_data() {
	[ -e "$SHRINK_DATA/$1" ]
}

# now_ms: a clock in milliseconds (for limits on how long one command may take).
now_ms() {
	_ns=$(date +%s%N 2>/dev/null)
	case $_ns in
	*N | '') python3 -c 'import time; print(int(time.monotonic() * 1000))' ;;
	*) echo $((_ns / 1000000)) ;;
	esac
}

# The tally: ok and bad print one line each, bad also counts into $fails.
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

# expect_rc WANT LABEL COMMAND...: run COMMAND, its output in $tmp/out and
# $tmp/err ($tmp: the test's scratch folder), and check its exit status.
expect_rc() {
	want=$1; label=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
	if [ $rc -eq "$want" ]; then ok "$label (exit $rc)"; else bad "$label: exit $rc, wanted $want: $(head -c 300 "$tmp/err")"; fi
}

SHRINK_TMP=$(mktemp -d "${TMPDIR:-/tmp}/shrink-cli.XXXXXX") || exit 99
trap 'rm -rf "$SHRINK_TMP"' EXIT
trap 'exit 130' INT TERM
