#!/bin/bash
# test_textspan.sh - CLI tests for clip-textspan: the picks of the committed P1-style
# goldens (synthetic and real components), real decompose streams of a tiny fixture
# model, and expected failures (exit codes, messages, no output file).
source "$(dirname "$0")/lib.sh"
FX=$ROOT/tests/fixtures/textspan
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
MO=$ROOT/tests/fixtures/models/vit-tiny-hw20-hf

# "L.H<TAB>text<TAB>text..." from a report
picks() { awk '/^== head/ { if (id != "") print line; id = $3; line = id; next }
               /^ +[0-9]+ +[^ ]+ +[^ ]+% +[^ ]+% / { t = $0; sub(/^ +[0-9]+ +[^ ]+ +[^ ]+% +[^ ]+%  /, "", t); line = line "\t" t }
               END { if (id != "") print line }' "$1"; }

case_ "synthetic components: the reference's picks, in order"
run clip-textspan --pool "$FX/pool.cts" --per-head 5 --report "$T/r.txt" -o "$T/b.cts" "$FX/parts.cts"
expect_rc 0; expect_out_empty
picks "$T/r.txt" > "$T/picks.tsv"
if cmp -s "$T/picks.tsv" "$FX/picks.tsv"; then ok; else bad "picks differ: $(diff "$T/picks.tsv" "$FX/picks.tsv" | head -5)"; fi
run clip-tensor info "$T/b.cts"; expect_out "kind: textspan"; expect_out "items: 6"
expect_out "tensor: basis f32 [5,24] in 6 items"; expect_out "tensor: mean f32 [24] in 6 items"
expect_out "item meta keys: layer head texts variance share indices rank total_variance"

case_ "real components (tiny model, toy scenes): the reference's picks"
run clip-textspan --pool "$FX/real/pool.cts" --per-head 6 --report "$T/r2.txt" -o "$T/b2.cts" "$FX/real/parts.cts"
expect_rc 0
picks "$T/r2.txt" > "$T/picks2.tsv"
if cmp -s "$T/picks2.tsv" "$FX/real/picks.tsv"; then ok; else bad "picks differ: $(diff "$T/picks2.tsv" "$FX/real/picks.tsv" | head -5)"; fi
grep -q '^== head 1.3  (120 images, rank 19, total variance' "$T/r2.txt" && ok || bad "report header of head 1.3"

case_ "report: shares add up, cumulative share is the running sum"
awk '/^ +[0-9]+ +[^ ]+ +[^ ]+% +[^ ]+% / { s = $3; c = $4; sub(/%/, "", s); sub(/%/, "", c); s += 0; c += 0; run += s;
     if (run - c > 0.3 || c - run > 0.3 || c > 100.05) bad = 1 } /^== head/ { run = 0 } END { exit bad }' "$T/r2.txt" \
    && ok || bad "cumulative shares inconsistent"

case_ "stdin, --layers, report on stdout, byte-identical reruns"
clip-textspan -q --pool "$FX/pool.cts" --per-head 5 --layers 1 < "$FX/parts.cts" > "$T/s.cts"; RC=$?; expect_rc 0
run clip-tensor info "$T/s.cts"; expect_out "items: 3"
run clip-textspan -q --pool "$FX/pool.cts" --per-head 5 --layers 1 --report - -o "$T/s2.cts" "$FX/parts.cts"
expect_rc 0; expect_out "== head 1.2"; expect_err_empty
if cmp -s "$T/s.cts" "$T/s2.cts"; then ok; else bad "stdin and file runs differ"; fi

case_ "fresh decompose stream of a fixture model"
"$BIN/clip-toyworld" dataset --n 24 --seed 5 -o "$T/ds" -q
(cd "$T" && clip-decompose -q -m "$M" --manifest - -o "$T/parts.cts" < "$T/ds/manifest.tsv"); RC=$?; expect_rc 0
printf 'a red object\na blue object\na circle\na square\nstripes\nwater\nat the top left\nin the center\n' > "$T/pool.txt"
run clip-encode -m "$M" --texts "$T/pool.txt" -o "$T/pool.cts"; expect_rc 0
run clip-textspan --pool "$T/pool.cts" --per-head 3 -o "$T/ts.cts" "$T/parts.cts"; expect_rc 0
expect_err "TextSpan: 24 images, 8 heads, pool of 8 texts"; expect_err "== head 0.0"
run clip-tensor info "$T/ts.cts"; expect_out "items: 8"; expect_out "tensor: basis f32 [3,32]"
expect_out "model: vit-tiny-gelu-hf"
(cd "$T" && clip-decompose -q -m "$M" --manifest - --layers 1 -o "$T/parts1.cts" < "$T/ds/manifest.tsv")
run clip-textspan -q --pool "$T/pool.cts" --per-head 3 -o "$T/ts1.cts" "$T/parts1.cts"; expect_rc 0
run clip-tensor info "$T/ts1.cts"; expect_out "items: 4"
run clip-textspan -q --pool "$T/pool.cts" --layers 0 -o "$T/x.cts" "$T/parts1.cts"
expect_rc 1; expect_err "--layers 0"; expect_err "available 1"; expect_no_file "$T/x.cts"

case_ "heads per token are summed; f16 parts work"
(cd "$T" && clip-decompose -q -m "$M" --manifest - --tokens -o "$T/tok.cts" < "$T/ds/manifest.tsv")
(cd "$T" && clip-decompose -q -m "$M" --manifest - --dtype f16 -o "$T/half.cts" < "$T/ds/manifest.tsv")
clip-textspan -q --pool "$T/pool.cts" --per-head 3 --report "$T/rp.txt" -o "$T/p.cts" "$T/parts.cts"
run clip-textspan -q --pool "$T/pool.cts" --per-head 3 --report "$T/rt.txt" -o "$T/t.cts" "$T/tok.cts"; expect_rc 0
if [ "$(picks "$T/rt.txt")" = "$(picks "$T/rp.txt")" ]; then ok; else bad "token sums pick other texts"; fi
run clip-textspan -q --pool "$T/pool.cts" --per-head 3 --report "$T/rh.txt" -o "$T/h.cts" "$T/half.cts"; expect_rc 0
run clip-tensor info "$T/h.cts"; expect_out "tensor: basis f32 [3,32] in 8 items"

case_ "a pool of another model is refused"
run clip-encode -m "$MO" --texts "$T/pool.txt" -o "$T/pool_other.cts"; expect_rc 0
run clip-textspan --pool "$T/pool_other.cts" -o "$T/x.cts" "$T/parts.cts"
expect_rc 2; expect_err "model mismatch"; expect_err "vit-tiny-hw20-hf"; expect_no_file "$T/x.cts"

case_ "wrong kinds, missing pool, bad flags"
run clip-textspan --pool "$T/parts.cts" -o "$T/x.cts" "$T/parts.cts"
expect_rc 2; expect_err 'expected "text"'; expect_no_file "$T/x.cts"
run clip-textspan --pool "$T/pool.cts" -o "$T/x.cts" "$T/pool.cts"
expect_rc 2; expect_err 'expected "decompose"'; expect_no_file "$T/x.cts"
run clip-textspan -o "$T/x.cts" "$T/parts.cts"; expect_rc 1; expect_err "--pool"; expect_no_file "$T/x.cts"
run clip-textspan --pool "$T/pool.cts" --per-head 0 -o "$T/x.cts" "$T/parts.cts"; expect_rc 1; expect_no_file "$T/x.cts"
run clip-textspan --pool "$T/pool.cts" --report - "$T/parts.cts"; expect_rc 1; expect_err "-o FILE"
run clip-textspan --pool "$T/pool.cts" -o "$T/x.cts" "$T/missing.cts"; expect_rc 3; expect_no_file "$T/x.cts"

case_ "truncated and too small inputs"
head -c 3000 "$T/parts.cts" > "$T/trunc.cts"
run clip-textspan --pool "$T/pool.cts" -o "$T/x.cts" "$T/trunc.cts"; expect_rc 2; expect_no_file "$T/x.cts"
run clip-tensor head -n 1 "$T/parts.cts" -o "$T/one.cts"
run clip-textspan --pool "$T/pool.cts" -o "$T/x.cts" "$T/one.cts"; expect_rc 2; expect_err "at least 2"; expect_no_file "$T/x.cts"

case_ "help"
run clip-textspan --help; expect_rc 0; expect_out "Usage: clip-textspan"; expect_out "Examples:"
finish
