# lib.sh - helpers for CLI tests: run a command capturing exit code, stdout
# and stderr; check them; count passes and failures; end with the summary.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/bin
export PATH="$BIN:$PATH"
T=$(mktemp -d "${TMPDIR:-/tmp}/cliplens-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
PASS=0; FAIL=0; CASE=""
OUT=$T/.out; ERR=$T/.err; RC=0

# run CMD...: runs with stdin from /dev/null unless redirected by the caller
run() { "$@" >"$OUT" 2>"$ERR"; RC=$?; }
case_() { CASE=$1; }
ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL [$CASE] $*" >&2; echo "  stderr: $(head -c 400 "$ERR")" >&2; }
expect_rc() { if [ "$RC" -eq "$1" ]; then ok; else bad "exit code $RC, expected $1"; fi; }
expect_err() { if grep -qF -- "$1" "$ERR"; then ok; else bad "stderr lacks '$1'"; fi; }
expect_out() { if grep -qF -- "$1" "$OUT"; then ok; else bad "stdout lacks '$1': $(head -c 300 "$OUT")"; fi; }
expect_out_empty() { if [ ! -s "$OUT" ]; then ok; else bad "stdout not empty"; fi; }
expect_err_empty() { if [ ! -s "$ERR" ]; then ok; else bad "stderr not empty"; fi; }
expect_no_file() { if [ ! -e "$1" ] && ! ls "$1".tmp.* >/dev/null 2>&1; then ok; else bad "file $1 (or its temp) exists"; fi; }
expect_file() { if [ -s "$1" ]; then ok; else bad "file $1 missing or empty"; fi; }
expect_eq() { if [ "$1" = "$2" ]; then ok; else bad "got '$1', expected '$2'"; fi; }
finish() { echo "$PASS passed, $FAIL failed"; [ "$FAIL" -eq 0 ]; exit $?; }
