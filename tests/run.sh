#!/bin/bash
# run.sh - run every unit test binary given as arguments, then every CLI test
# script in tests/cli/, sum their "N passed, N failed" lines, end with the total.
set -u
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0; broken=()
run_one() {
    local name=$1; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    "$@" >"$log" 2>&1; local rc=$?
    local line; line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    local p f
    p=$(sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/' <<<"$line")
    f=$(sed -E 's/^([A-Za-z]+: )?[0-9]+ passed, ([0-9]+) failed.*/\2/' <<<"$line")
    if [ -z "$line" ]; then p=0; f=1; fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    grep -E '^SKIP' "$log" | sed "s|^|$name: |"
    if [ "$f" -ne 0 ]; then
        broken+=("$name"); echo "---- $name (exit $rc) ----"; tail -40 "$log"
    fi
    printf '%-40s %4d passed, %d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
    rm -f "$log"
}
for t in "$@"; do run_one "$(basename "$t")" "$t"; done
for s in tests/cli/test_*.sh; do [ -e "$s" ] && run_one "$(basename "$s")" bash "$s"; done
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}"
echo "TOTAL: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
