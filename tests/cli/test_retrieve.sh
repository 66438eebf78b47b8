#!/bin/bash
# test_retrieve.sh - CLI tests for clip-retrieve: neighbour lists, named queries,
# queries from another stream, precision against chance, and expected failures.
source "$(dirname "$0")/lib.sh"
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
"$BIN/clip-toyworld" dataset --n 60 --seed 9 -o "$T/a" -q
"$BIN/clip-toyworld" dataset --n 10 --seed 11 -o "$T/b" -q
(cd "$T" && clip-decompose -q -m "$M" --manifest - -o "$T/parts.cts" < "$T/a/manifest.tsv")
(cd "$T" && clip-decompose -q -m "$M" --manifest - -o "$T/q.cts" < "$T/b/manifest.tsv")
q3=$T/a/images/000003.png

case_ "neighbour lists: every item against the others, best first"
run clip-retrieve --parts heads:1.0 -k 3 "$T/parts.cts"; expect_rc 0
expect_out "query	rank	neighbour	similarity"; expect_eq "$(grep -c . "$OUT")" 181
awk -F'\t' 'NR > 1 && $1 == $3 { exit 1 }' "$OUT" && ok || bad "an image is its own neighbour"
awk -F'\t' 'NR > 1 { if ($2 > 1 && $4 > prev + 1e-6) exit 1; prev = $4 }' "$OUT" && ok || bad "not sorted"

case_ "named queries; queries from another stream"
run clip-retrieve --parts heads:1.0 --parts mlps:all --query "$q3" -k 2 "$T/parts.cts"; expect_rc 0
expect_eq "$(grep -c . "$OUT")" 3; expect_out "$q3	1	"
run clip-retrieve --queries "$T/q.cts" -k 4 "$T/parts.cts"; expect_rc 0; expect_eq "$(grep -c . "$OUT")" 41
expect_out "$T/b/images/000000.png	1	$T/a/images/"

case_ "precision against chance: the whole embedding sees the background"
run clip-retrieve --match background -k 5 "$T/parts.cts"; expect_rc 0
expect_out "parts	key	k	queries	precision	chance"
awk -F'\t' 'NR == 2 { exit !($1 == "all" && $4 == 60 && $5 > 2 * $6) }' "$OUT" && ok || bad "precision not above chance: $(cat "$OUT")"

case_ "failures"
run clip-retrieve --query nosuch "$T/parts.cts"; expect_rc 2; expect_err 'no item with id "nosuch"'; expect_out_empty
run clip-retrieve --parts heads:9.0 "$T/parts.cts"; expect_rc 1; expect_err "head 9.0"
run clip-retrieve --match nokey "$T/parts.cts"; expect_rc 2; expect_err 'no query has a meta "nokey"'
run clip-retrieve "$T/a/manifest.tsv"; expect_rc 2
run clip-retrieve; expect_rc 1
run clip-retrieve --query x --queries "$T/q.cts" "$T/parts.cts"; expect_rc 1
finish
