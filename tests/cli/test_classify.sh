#!/bin/bash
# test_classify.sh - CLI tests for clip-classify: report format, groups, predictions
# consistent with the report, model mismatch and bad input refused.
source "$(dirname "$0")/lib.sh"
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
M2=$ROOT/tests/fixtures/models/vit-tiny-hw20-hf
IMG=$ROOT/tests/fixtures/images/src
printf 'path\tlabel\tgroup\n' > "$T/m.tsv"
i=0
for f in rgb8.png grey.jpg rgba8.png palette8.png photo_400x300.jpg photo_90x64.png tiny_7x5.png rgb_q90.jpg; do
    printf '%s\t%d\t%d\n' "$IMG/$f" $((i % 3)) $((i % 2)) >> "$T/m.tsv"; i=$((i + 1))
done
printf 'a cat\na dog\na star\n' > "$T/classes.txt"; printf 'a photo of {}.\n' > "$T/tpl.txt"
clip-encode -q -m "$M" --manifest "$T/m.tsv" -o "$T/img.cts"
clip-encode -q -m "$M" --classes "$T/classes.txt" --templates "$T/tpl.txt" -o "$T/cls.cts"
clip-encode -q -m "$M2" --classes "$T/classes.txt" --templates "$T/tpl.txt" -o "$T/cls2.cts"

case_ "report and predictions agree"
run clip-classify -c "$T/cls.cts" "$T/img.cts" --predictions "$T/pred.tsv"; expect_rc 0
expect_out "scope	items	correct	accuracy"; expect_out "all	8	"; expect_out "group 0	4	"; expect_out "group 1	4	"
expect_out "worst-group "
correct=$(awk -F'\t' 'NR > 1 && $2 == $3' "$T/pred.tsv" | wc -l)
expect_eq "$(awk -F'\t' '$1 == "all" { print $3 }' "$OUT")" "$correct"
expect_eq "$(($(wc -l < "$T/pred.tsv") - 1))" 8
worst=$(awk -F'\t' '$1 ~ /^group/ { print $4 }' "$OUT" | sort -n | head -1)
expect_eq "$(awk -F'\t' '$1 ~ /^worst-group/ { print $4 }' "$OUT")" "$worst"

case_ "stdin and json"
clip-classify -c "$T/cls.cts" --json < "$T/img.cts" > "$OUT" 2> "$ERR"; RC=$?; expect_rc 0
expect_out '"items": 8'; expect_out '"worst_group_accuracy"'

case_ "a classifier of another model is refused"
run clip-classify -c "$T/cls2.cts" "$T/img.cts" --predictions "$T/p2.tsv"; expect_rc 2
expect_err "cannot be compared"; expect_no_file "$T/p2.tsv"

case_ "wrong kinds, labels out of range, usage"
run clip-classify -c "$T/img.cts" "$T/img.cts"; expect_rc 2; expect_err 'expected "classifier"'
printf 'path\tlabel\n%s\t5\n' "$IMG/rgb8.png" > "$T/bad.tsv"
clip-encode -q -m "$M" --manifest "$T/bad.tsv" -o "$T/bad.cts"
run clip-classify -c "$T/cls.cts" "$T/bad.cts"; expect_rc 2; expect_err "label 5"
run clip-classify "$T/img.cts"; expect_rc 1; expect_err "missing -c"
run clip-classify --help; expect_rc 0; expect_out "Usage: clip-classify"
finish
