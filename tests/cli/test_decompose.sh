#!/bin/bash
# test_decompose.sh - CLI tests for clip-decompose on the committed tiny fixture models:
# inputs (arguments, stdin, manifest, pixels stream), every granularity and option, parts
# summing to the embedding in the stream itself, byte-identical reruns, and expected
# failures (exit codes, messages, no partial output).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
M=$ROOT/tests/fixtures/models/vit-tiny-gelu-hf
MO=$ROOT/tests/fixtures/models/vit-tiny-gelu-openclip
IMG=$ROOT/tests/fixtures/images/src
good=$(cd "$IMG" && ls | grep -v '^bad_' | grep -E '\.(png|jpg)$' | head -4)
mkdir -p "$T/imgs"; for f in $good; do cp "$IMG/$f" "$T/imgs/"; done
set -- $good

# sums FILE TOL: every item's parts (embed + heads + mlps [+ rest] [+ bias]) equal its
# "embedding" within relative error TOL; prints the worst error.
sums() {
    "$PY" - "$1" "$2" "$ROOT/scripts" <<'EOF'
import sys
sys.path.insert(0, sys.argv[3])
import numpy as np
from cliplens_stream import read_stream
worst, n = 0.0, 0
for id, meta, t in read_stream(sys.argv[1]):
    s = t["embed"].astype(np.float64) + t["heads"].astype(np.float64).reshape(-1, t["embed"].shape[0]).sum(0)
    s += t["mlps"].astype(np.float64).sum(0)
    for k in ("rest", "bias"):
        if k in t:
            s += t[k]
    e = t["embedding"].astype(np.float64)
    worst = max(worst, np.linalg.norm(s - e) / np.linalg.norm(e))
    n += 1
print(f"items {n} worst {worst:.3g}")
sys.exit(0 if n and worst <= float(sys.argv[2]) else 1)
EOF
}
expect_sums() { local r; r=$(sums "$1" "$2"); if [ $? -eq 0 ]; then ok; else bad "parts do not sum to the embedding: $r"; fi; }

case_ "images as arguments: heads and MLPs"
run clip-decompose -m "$M" -t 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/a.cts"; expect_rc 0; expect_out_empty
expect_err "decomposed 3 images with vit-tiny-gelu-hf"
run clip-tensor info "$T/a.cts"; expect_out "kind: decompose"; expect_out "items: 3"
expect_out "model: vit-tiny-gelu-hf (layout hf; layers 2, heads 4, width 64, embed_dim 32, patch 8, image_size 32)"
expect_out 'meta: {"ln":"uniform","tokens":0,"layer_lo":0,"layer_hi":1,"dtype":"f32"}'
expect_out "tensor: embedding f32 [32]"; expect_out "tensor: embed f32 [32]"
expect_out "tensor: heads f32 [2,4,32]"; expect_out "tensor: mlps f32 [2,32]"; expect_out "item meta keys: path"
expect_sums "$T/a.cts" 1e-4

case_ "paths on stdin, another batch size: the same bytes; reruns are byte-identical"
printf '%s\n' "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" > "$T/list.txt"
clip-decompose -m "$M" -t 1 -q < "$T/list.txt" > "$T/b.cts" 2>"$ERR"; RC=$?; expect_rc 0; expect_err_empty
if cmp -s "$T/a.cts" "$T/b.cts"; then ok; else bad "stdin paths differ from argument paths"; fi
run clip-decompose -m "$M" -t 1 --batch 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/b1.cts"; expect_rc 0
expect_sums "$T/b1.cts" 1e-4
run clip-decompose -m "$M" -t 1 --tokens --neurons 1 --second-order 0 "$T/imgs/$1" "$T/imgs/$2" -o "$T/r1.cts"
run clip-decompose -m "$M" -t 1 --tokens --neurons 1 --second-order 0 "$T/imgs/$1" "$T/imgs/$2" -o "$T/r2.cts"
if cmp -s "$T/r1.cts" "$T/r2.cts"; then ok; else bad "two runs differ"; fi

case_ "--tokens"
run clip-decompose -m "$M" --tokens "$T/imgs/$1" "$T/imgs/$2" -o "$T/t.cts"; expect_rc 0
run clip-tensor info "$T/t.cts"; expect_out "tensor: heads f32 [2,4,17,32]"; expect_out '"tokens":1'
expect_sums "$T/t.cts" 1e-4

case_ "--ln centered: the bias is its own part"
run clip-decompose -m "$M" --ln centered --tokens "$T/imgs/$1" "$T/imgs/$2" -o "$T/c.cts"; expect_rc 0
run clip-tensor info "$T/c.cts"; expect_out "tensor: bias f32 [32]"; expect_out '"ln":"centered"'
expect_sums "$T/c.cts" 1e-4

case_ "--layers keeps a subset, the rest summed"
run clip-decompose -m "$M" --layers 1-1 "$T/imgs/$1" "$T/imgs/$2" -o "$T/l.cts"; expect_rc 0
run clip-tensor info "$T/l.cts"; expect_out "tensor: heads f32 [1,4,32]"; expect_out "tensor: mlps f32 [1,32]"
expect_out "tensor: rest f32 [32]"; expect_out "tensor: layers i32 [1]"; expect_out '"layer_lo":1,"layer_hi":1'
expect_sums "$T/l.cts" 1e-4
run clip-decompose -m "$M" --layers 0 --tokens --ln centered "$T/imgs/$1" -o "$T/l0.cts"; expect_rc 0
run clip-tensor info "$T/l0.cts"; expect_out "tensor: heads f32 [1,4,17,32]"
expect_sums "$T/l0.cts" 1e-4

case_ "--dtype f16 halves the output; sums hold to f16 precision"
run clip-decompose -m "$M" --tokens --dtype f16 --level 0 "$T/imgs/$1" "$T/imgs/$2" -o "$T/h.cts"; expect_rc 0
run clip-decompose -m "$M" --tokens --level 0 "$T/imgs/$1" "$T/imgs/$2" -o "$T/f.cts"; expect_rc 0
run clip-tensor info "$T/h.cts"; expect_out "tensor: heads f16 [2,4,17,32]"; expect_out "tensor: embedding f16 [32]"
expect_out '"dtype":"f16"'
hs=$(stat -c %s "$T/h.cts"); fs=$(stat -c %s "$T/f.cts")
if [ $((hs * 100 / fs)) -le 52 ]; then ok; else bad "f16 output $hs bytes is not half of f32's $fs"; fi
expect_sums "$T/h.cts" 3e-3
run clip-decompose -m "$M" --layers 1 --dtype f16 "$T/imgs/$1" -o "$T/hl.cts"; expect_rc 0
run clip-tensor info "$T/hl.cts"; expect_out "tensor: layers i32 [1]"; expect_out "tensor: rest f16 [32]"

case_ "neurons and second-order neurons"
run clip-decompose -m "$M" --neurons 1 --second-order 0 "$T/imgs/$1" -o "$T/n.cts"; expect_rc 0
run clip-tensor info "$T/n.cts"; expect_out "tensor: neurons f32 [256,32]"; expect_out "tensor: neurons2 f32 [256,32]"
expect_out '"neurons_layer":1,"second_order_layer":0'

case_ "manifest: relative paths, labels and groups in meta"
printf 'path\tlabel\tgroup\tcaption\n%s\t1\t3\ta thing\n%s\t0\t2\tanother\n' "imgs/$1" "imgs/$2" > "$T/m.tsv"
run clip-decompose -m "$M" --manifest "$T/m.tsv" -o "$T/m.cts"; expect_rc 0
run clip-tensor info "$T/m.cts"; expect_out "items: 2"; expect_out "item meta keys: label group caption path"
run clip-tensor select --meta label=1 --meta group=3 "$T/m.cts" -o "$T/m1.cts"
run clip-tensor info "$T/m1.cts"; expect_out "items: 1"

case_ "pixels stream in: same parts as from the images; other layout: same parts"
run clip-encode -m "$M" --pixels "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/px.cts"; expect_rc 0
run clip-decompose -m "$M" -t 1 --from-pixels "$T/px.cts" -o "$T/fp.cts"; expect_rc 0
run clip-tensor npy heads -o "$T/a.npy" "$T/a.cts"; run clip-tensor npy heads -o "$T/fp.npy" "$T/fp.cts"
if cmp -s "$T/a.npy" "$T/fp.npy"; then ok; else bad "--from-pixels differs from the images"; fi
run clip-decompose -m "$MO" -t 1 "$T/imgs/$1" "$T/imgs/$2" "$T/imgs/$3" -o "$T/o.cts"; expect_rc 0
run clip-tensor npy heads -o "$T/o.npy" "$T/o.cts"
if cmp -s "$T/a.npy" "$T/o.npy"; then ok; else bad "OpenCLIP layout differs from HF layout"; fi
run clip-decompose -m "$M" --from-pixels "$T/a.cts" -o "$T/x.cts"; expect_rc 2; expect_err 'expected "pixels"'
expect_no_file "$T/x.cts"

case_ "bad images: exit 2 naming the image, no output; --skip-bad continues"
run clip-decompose -m "$M" "$T/imgs/$1" "$IMG/bad_trunc_half.png" -o "$T/bad.cts"; expect_rc 2
expect_err "image 2"; expect_err "bad_trunc_half.png"; expect_err "--skip-bad"; expect_no_file "$T/bad.cts"
run clip-decompose -m "$M" "$T/imgs/$1" "$IMG/bad_trunc_half.png" "$T/missing.png" --skip-bad -o "$T/skip.cts"
expect_rc 0; expect_err "skipped 2 unreadable images"; expect_err "missing.png"
run clip-tensor info "$T/skip.cts"; expect_out "items: 1"

case_ "1,000 images with --layers and --dtype f16 stay within the memory of one batch"
if [ -x /usr/bin/time ]; then
    for n in 100 1000; do
        yes "$T/imgs/$1" | head -$n > "$T/many$n.txt"
        /usr/bin/time -f %M -o "$T/rss$n" clip-decompose -m "$M" -t 1 -q --layers 1 --dtype f16 --tokens \
            --neurons 1 --second-order 0 < "$T/many$n.txt" > "$T/many$n.cts"
    done
    r100=$(cat "$T/rss100"); r1000=$(cat "$T/rss1000")
    if [ "$r1000" -le $((r100 + 1024)) ]; then ok; else bad "peak RSS $r1000 KB for 1,000 images vs $r100 KB for 100"; fi
    run clip-tensor info "$T/many1000.cts"; expect_out "items: 1000"
else
    echo "SKIP memory check: /usr/bin/time not installed"
fi

case_ "usage errors: exit 1, no output"
run clip-decompose -m "$M" --bogus "$T/imgs/$1"; expect_rc 1; expect_out_empty
run clip-decompose -m "$M" --ln median "$T/imgs/$1"; expect_rc 1; expect_err "expected uniform or centered"
run clip-decompose -m "$M" --dtype bf16 "$T/imgs/$1"; expect_rc 1; expect_err "expected f32 or f16"
run clip-decompose -m "$M" --layers 1-0 "$T/imgs/$1"; expect_rc 1; expect_err "--layers"
run clip-decompose -m "$M" --layers x "$T/imgs/$1"; expect_rc 1; expect_err "--layers"
run clip-decompose -m "$M" --batch 0 "$T/imgs/$1"; expect_rc 1; expect_err "--batch"
run clip-decompose -m "$M" --layers 0-2 "$T/imgs/$1" -o "$T/u.cts"; expect_rc 1; expect_err "layers 0-2 outside the 2 layers"
expect_no_file "$T/u.cts"
run clip-decompose -m "$M" --second-order 5 "$T/imgs/$1" -o "$T/u.cts"; expect_rc 1; expect_err "second-order layer 5"
expect_no_file "$T/u.cts"
run clip-decompose -m "$M" --manifest "$T/m.tsv" "$T/imgs/$1"; expect_rc 1; expect_err "cannot be combined"

case_ "model errors: named, no output"
run clip-decompose -m "$T/nonexistent" "$T/imgs/$1" -o "$T/nm.cts"
if [ "$RC" -ne 0 ]; then ok; else bad "missing model accepted"; fi
expect_err "$T/nonexistent"; expect_no_file "$T/nm.cts"
mkdir -p "$T/brokenmodel"; cp "$M"/* "$T/brokenmodel/"; echo '{"nonsense": 1}' > "$T/brokenmodel/config.json"
run clip-decompose -m "$T/brokenmodel" "$T/imgs/$1" -o "$T/bm.cts"; expect_rc 2; expect_no_file "$T/bm.cts"
run clip-decompose --help; expect_rc 0; expect_out "Usage: clip-decompose"; expect_out "Examples"
finish
