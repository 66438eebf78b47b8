#!/bin/bash
# test_toy_study.sh - the mechanics of pipelines/toy_study.mk on a tiny fixture model
# (random weights: the numbers mean nothing, the steps and the report must all run).
# The study's real numbers come from the bundled toy model: make -f pipelines/toy_study.mk
source "$(dirname "$0")/lib.sh"
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
if ! /usr/bin/python3 -c "import msgpack, zstandard, numpy" 2>/dev/null; then
    echo "SKIP toy study mechanics: /usr/bin/python3 lacks msgpack, zstandard or numpy"; finish
fi
case_ "the pipeline runs end to end and reports every part"
run make -s -f "$ROOT/pipelines/toy_study.mk" MODEL="$M" OUT="$T/study" N=200 NSPUR=120 PER_HEAD=5
expect_rc 0
R=$T/study/report.md
for s in "## Criteria" "## (a) What each head writes" "## (b) Mean-ablation over layers" "## (c) The spurious split" \
         "| 1.3 |" "| mean layers:0-1 |" "| mean mlps:0-1 |" "| baseline |" "| mean layers:0 + replace basis_late.cts |"; do
    grep -qF -- "$s" "$R" && ok || bad "report lacks '$s'"
done
expect_file "$T/study/results.json"; expect_file "$T/study/textspan.txt"
run clip-tensor info "$T/study/basis.cts"; expect_out "items: 8"
case_ "a missing model is named"
run make -s -f "$ROOT/pipelines/toy_study.mk" MODEL="$T/nomodel" OUT="$T/study2"
expect_rc 2; expect_err "no model at $T/nomodel"
finish
