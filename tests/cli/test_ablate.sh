#!/bin/bash
# test_ablate.sh - CLI tests for clip-ablate on decompose streams of a tiny fixture
# model over toy-world scenes: rows, sweeps, JSON, held-out means, TextSpan
# replacement, ablated embeddings, stdin, and expected failures.
source "$(dirname "$0")/lib.sh"
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
MO=$ROOT/tests/fixtures/models/vit-tiny-hw20-hf

"$BIN/clip-toyworld" dataset --n 40 --seed 9 -o "$T/a" -q
"$BIN/clip-toyworld" dataset --n 20 --seed 10 -o "$T/b" -q
(cd "$T" && clip-decompose -q -m "$M" --manifest - -o "$T/parts.cts" < "$T/a/manifest.tsv")
(cd "$T" && clip-decompose -q -m "$M" --manifest - -o "$T/held.cts" < "$T/b/manifest.tsv")
(cd "$T" && clip-decompose -q -m "$M" --manifest - --layers 1 -o "$T/parts1.cts" < "$T/a/manifest.tsv")
printf 'circle\nsquare\ntriangle\nstar\ncross\nring\nheart\ndiamond\n' > "$T/classes.txt"
printf 'a {}\na photo of a {}.\n' > "$T/tpl.txt"
clip-encode -q -m "$M" --classes "$T/classes.txt" --templates "$T/tpl.txt" -o "$T/cls.cts"
clip-encode -q -m "$MO" --classes "$T/classes.txt" --templates "$T/tpl.txt" -o "$T/cls_other.cts"
nrows() { grep -c . "$OUT"; }

case_ "baseline and one intervention as TSV"
run clip-ablate -c "$T/cls.cts" --mean mlps:all "$T/parts.cts"; expect_rc 0
expect_out "intervention	images	accuracy	worst_group	worst_group_accuracy	group_"
expect_out "baseline	40	"; expect_out "mean mlps:all	40	"; expect_eq "$(nrows)" 3
expect_err "40 images, 8 classes, means over 40 images"

case_ "keeping everything is the baseline"
run clip-ablate -c "$T/cls.cts" --keep all "$T/parts.cts"; expect_rc 0
base=$(awk -F'\t' '$1 == "baseline" { $1 = ""; print }' "$OUT"); kept=$(awk -F'\t' '$1 == "keep all" { $1 = ""; print }' "$OUT")
expect_eq "$kept" "$base"

case_ "sweeps: one row per layer"
run clip-ablate -c "$T/cls.cts" --sweep attn "$T/parts.cts"; expect_rc 0; expect_eq "$(nrows)" 4
expect_out "mean layers:0-0	40"; expect_out "mean layers:0-1	40"
run clip-ablate -c "$T/cls.cts" --mean embed --sweep mlps "$T/parts.cts"; expect_rc 0; expect_eq "$(nrows)" 5
expect_out "mean embed + mean mlps:0-1	40"

case_ "JSON"
run clip-ablate -c "$T/cls.cts" --mean heads:1.0,1.3 --json "$T/parts.cts"; expect_rc 0
expect_out '"intervention":	"mean heads:1.0,1.3"'; expect_out '"worst_group_accuracy"'; expect_out '"classes":	8'

case_ "held-out means; standard input gives the same table"
run clip-ablate -c "$T/cls.cts" --mean layers:0 --means-from "$T/held.cts" "$T/parts.cts"; expect_rc 0
expect_err "means over 20 images of $T/held.cts"
cp "$OUT" "$T/t1.tsv"
clip-ablate -q -c "$T/cls.cts" --mean layers:0 --means-from "$T/held.cts" < "$T/parts.cts" > "$T/t2.tsv"
if cmp -s "$T/t1.tsv" "$T/t2.tsv"; then ok; else bad "stdin differs from the file"; fi
run clip-ablate -c "$T/cls.cts" --means-from "$T/parts1.cts" "$T/parts.cts"
expect_rc 2; expect_err "differ in shape"

case_ "replacement by TextSpan bases"
printf 'a red object\na circle\na square\nwater\ngrass\nat the top\n' > "$T/pool.txt"
clip-encode -q -m "$M" --texts "$T/pool.txt" -o "$T/pool.cts"
clip-textspan -q --pool "$T/pool.cts" --per-head 3 -o "$T/basis.cts" "$T/parts.cts"
run clip-ablate -c "$T/cls.cts" --replace "$T/basis.cts" --mean layers:0 "$T/parts.cts"; expect_rc 0
expect_out "mean layers:0 + replace $T/basis.cts	40"

case_ "CLS-to-CLS ablation on heads per token; f16 parts"
(cd "$T" && clip-decompose -q -m "$M" --manifest - --tokens -o "$T/tok.cts" < "$T/a/manifest.tsv")
(cd "$T" && clip-decompose -q -m "$M" --manifest - --dtype f16 -o "$T/half.cts" < "$T/a/manifest.tsv")
run clip-ablate -c "$T/cls.cts" --mean cls:all "$T/tok.cts"; expect_rc 0; expect_out "mean cls:all	40	"
run clip-ablate -c "$T/cls.cts" --mean mlps:all "$T/half.cts"; expect_rc 0; expect_out "mean mlps:all	40	"

case_ "ablated embeddings"
run clip-ablate -c "$T/cls.cts" --mean mlps:all -o "$T/emb.cts" "$T/parts.cts"; expect_rc 0; expect_out "baseline"
run clip-tensor info "$T/emb.cts"; expect_out "kind: image"; expect_out "items: 40"; expect_out "tensor: embedding f32 [32]"
expect_out '"ablation":"mean mlps:all"'; expect_out "item meta keys: label group"
clip-ablate -q -c "$T/cls.cts" --mean mlps:all -o - "$T/parts.cts" > "$T/emb2.cts" 2> "$T/table.tsv"; RC=$?
expect_rc 0
if cmp -s "$T/emb.cts" "$T/emb2.cts"; then ok; else bad "-o - differs from -o FILE"; fi
grep -q "^mean mlps:all	40" "$T/table.tsv" && ok || bad "with -o - the table goes to stderr"

case_ "model mismatch and wrong kinds are refused"
run clip-ablate -c "$T/cls_other.cts" --mean mlps:all -o "$T/x.cts" "$T/parts.cts"
expect_rc 2; expect_err "model mismatch"; expect_err "vit-tiny-hw20-hf"; expect_out_empty; expect_no_file "$T/x.cts"
run clip-ablate -c "$T/parts.cts" "$T/parts.cts"; expect_rc 2; expect_err 'expected "classifier"'
run clip-ablate -c "$T/cls.cts" "$T/pool.cts"; expect_rc 2; expect_err 'expected "decompose"'
run clip-ablate -c "$T/cls.cts" --replace "$T/parts.cts" "$T/parts.cts"; expect_rc 2; expect_err 'expected "textspan"'

case_ "labels: missing or out of range"
clip-decompose -q -m "$M" "$T/a/images/000000.png" "$T/a/images/000001.png" -o "$T/nolabel.cts"
run clip-ablate -c "$T/cls.cts" -o "$T/x.cts" "$T/nolabel.cts"
expect_rc 2; expect_err 'no integer meta "label"'; expect_no_file "$T/x.cts"
printf 'circle\nsquare\n' > "$T/two.txt"
clip-encode -q -m "$M" --classes "$T/two.txt" --templates "$T/tpl.txt" -o "$T/cls2.cts"
run clip-ablate -c "$T/cls2.cts" "$T/parts.cts"; expect_rc 2; expect_err "the classifier has 2 classes"

case_ "bad flags and specs"
run clip-ablate "$T/parts.cts"; expect_rc 1; expect_err "classifier is required"
run clip-ablate -c "$T/cls.cts" --mean heads:7.0 "$T/parts.cts"; expect_rc 1; expect_err "head 7.0 is not in the stream"
run clip-ablate -c "$T/cls.cts" --mean cls:all "$T/parts.cts"; expect_rc 1; expect_err "--tokens"
run clip-ablate -c "$T/cls.cts" --mean neurons:3 "$T/parts.cts"; expect_rc 1; expect_err "bad part"
run clip-ablate -c "$T/cls.cts" --sweep heads "$T/parts.cts"; expect_rc 1; expect_err "--sweep takes attn or mlps"
run clip-ablate -c "$T/cls.cts" --mean layers:0 "$T/parts1.cts"; expect_rc 1; expect_err "available 1"

case_ "truncated input"
head -c 5000 "$T/parts.cts" > "$T/trunc.cts"
run clip-ablate -c "$T/cls.cts" -o "$T/x.cts" "$T/trunc.cts"; expect_rc 2; expect_out_empty; expect_no_file "$T/x.cts"

case_ "help"
run clip-ablate --help; expect_rc 0; expect_out "Usage: clip-ablate"; expect_out "--means-from"
finish
