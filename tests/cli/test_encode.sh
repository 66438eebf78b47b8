#!/bin/bash
# test_encode.sh - CLI tests for clip-encode on the committed tiny fixture models:
# images (arguments, stdin, manifest), pixels round trip, texts, classifier, and
# expected failures (exit codes, messages, no partial output).
source "$(dirname "$0")/lib.sh"
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
MO=$ROOT/tests/fixtures/models/vit-tiny-gelu-openclip
IMG=$ROOT/tests/fixtures/images/src
good=$(cd "$IMG" && ls | grep -v '^bad_' | grep -E '\.(png|jpg)$' | head -5)
mkdir -p "$T/imgs"; for f in $good; do cp "$IMG/$f" "$T/imgs/"; done
set -- $good

case_ "images as arguments"
run clip-encode -m "$M" -t 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/a.cts"; expect_rc 0; expect_out_empty
run clip-tensor info "$T/a.cts"; expect_out "kind: image"; expect_out "items: 3"; expect_out "tensor: embedding f32 [32]"
expect_out "model: vit-tiny-gelu-hf (layout hf; layers 2, heads 4, width 64, embed_dim 32, patch 8, image_size 32)"

case_ "paths on stdin; same flags give the same bytes"
printf '%s\n' "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" > "$T/list.txt"
clip-encode -m "$M" -t 1 -q < "$T/list.txt" > "$T/b.cts"; RC=$?; expect_rc 0
run clip-tensor npy embedding -o "$T/a.npy" "$T/a.cts"; run clip-tensor npy embedding -o "$T/b.npy" "$T/b.cts"
if cmp -s "$T/a.npy" "$T/b.npy"; then ok; else bad "stdin paths differ from argument paths"; fi
clip-encode -m "$M" -t 1 --batch 2 -q < "$T/list.txt" > "$T/b2.cts"; RC=$?; expect_rc 0
run clip-tensor info "$T/b2.cts"; expect_out "items: 3"
run clip-encode -m "$M" -t 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/a2.cts"
if cmp -s "$T/a.cts" "$T/a2.cts"; then ok; else bad "two runs differ"; fi

case_ "manifest: relative paths, labels, groups, extra columns in meta"
printf 'path\tlabel\tgroup\tcaption\n%s\t1\t3\ta thing\n%s\t0\t2\tanother\n' "imgs/$1" "imgs/$2" > "$T/m.tsv"
run clip-encode -m "$M" --manifest "$T/m.tsv" -o "$T/m.cts"; expect_rc 0
run clip-tensor info "$T/m.cts"; expect_out "items: 2"; expect_out "item meta keys: label group caption path"
run clip-tensor select --meta label=1 --meta group=3 "$T/m.cts" -o "$T/m1.cts"
run clip-tensor info "$T/m1.cts"; expect_out "items: 1"

case_ "pixels round trip equals direct encoding"
run clip-encode -m "$M" --pixels "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/px.cts"; expect_rc 0
run clip-tensor info "$T/px.cts"; expect_out "kind: pixels"; expect_out "tensor: pixels f32 [3,32,32]"
run clip-encode -m "$M" -t 1 --from-pixels "$T/px.cts" -o "$T/fp.cts"; expect_rc 0
run clip-tensor npy embedding -o "$T/fp.npy" "$T/fp.cts"
if cmp -s "$T/a.npy" "$T/fp.npy"; then ok; else bad "--from-pixels differs from direct encoding"; fi
run clip-encode -m "$M" --from-pixels "$T/a.cts" -o "$T/x.cts"; expect_rc 2; expect_err 'expected "pixels"'; expect_no_file "$T/x.cts"

case_ "both layouts give the same embeddings"
run clip-encode -m "$MO" -t 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/o.cts"; expect_rc 0
run clip-tensor npy embedding -o "$T/o.npy" "$T/o.cts"
if cmp -s "$T/a.npy" "$T/o.npy"; then ok; else bad "OpenCLIP layout differs from HF layout"; fi

case_ "texts"
printf 'a photo of a cat.\nthe red thing\n\nDon'"'"'t panic!\n' > "$T/texts.txt"
run clip-encode -m "$M" --texts "$T/texts.txt" -o "$T/t.cts"; expect_rc 0
run clip-tensor info "$T/t.cts"; expect_out "kind: text"; expect_out "items: 3"; expect_out "tensor: ids i32 [16]"
expect_out "item meta keys: text"
printf 'ok\n\xff\xfe bad\n' > "$T/badtext.txt"
run clip-encode -m "$M" --texts "$T/badtext.txt" -o "$T/bt.cts"; expect_rc 2; expect_err "line 2"; expect_err "invalid UTF-8"
expect_no_file "$T/bt.cts"

case_ "classifier"
printf 'cat\ndog\nred star\n' > "$T/classes.txt"; printf 'a photo of a {}.\na {} on a table\n' > "$T/tpl.txt"
run clip-encode -m "$M" --classes "$T/classes.txt" --templates "$T/tpl.txt" -o "$T/c.cts"; expect_rc 0
run clip-tensor info "$T/c.cts"; expect_out "kind: classifier"; expect_out "items: 3"; expect_out 'meta: {"templates":2}'
printf 'no placeholder\n' > "$T/tpl2.txt"
run clip-encode -m "$M" --classes "$T/classes.txt" --templates "$T/tpl2.txt" -o "$T/c2.cts"; expect_rc 2
expect_err "line 1: template has no '{}'"; expect_no_file "$T/c2.cts"

case_ "bad images: exit 2 naming the image, no output; --skip-bad continues"
run clip-encode -m "$M" "$T/imgs/$1" "$IMG/bad_trunc_half.png" -o "$T/bad.cts"; expect_rc 2
expect_err "image 2"; expect_err "bad_trunc_half.png"; expect_err "--skip-bad"; expect_no_file "$T/bad.cts"
run clip-encode -m "$M" "$T/imgs/$1" "$IMG/bad_trunc_half.png" "$T/missing.png" --skip-bad -o "$T/skip.cts"; expect_rc 0
expect_err "skipped 2 unreadable images"; expect_err "missing.png"
run clip-tensor info "$T/skip.cts"; expect_out "items: 1"

case_ "usage and model errors"
run clip-encode -m "$M" --batch 0 x.png; expect_rc 1; expect_err "invalid value '0' for --batch"
run clip-encode -m "$M" --classes "$T/classes.txt" x.png; expect_rc 1; expect_err "go together"
run clip-encode -m "$T/nonexistent" "$T/imgs/$1" -o "$T/nm.cts"; expect_ne=$RC; [ "$RC" -ne 0 ] && ok || bad "missing model accepted"
expect_no_file "$T/nm.cts"
mkdir -p "$T/brokenmodel"; cp "$M"/* "$T/brokenmodel/"; echo '{"nonsense": 1}' > "$T/brokenmodel/config.json"
run clip-encode -m "$T/brokenmodel" "$T/imgs/$1" -o "$T/bm.cts"; expect_rc 2; expect_no_file "$T/bm.cts"
run clip-encode --help; expect_rc 0; expect_out "Usage: clip-encode"; expect_out "Examples"
finish
