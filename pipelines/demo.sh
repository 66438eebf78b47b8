#!/bin/bash
# demo.sh - the toy-world pipeline, run with what exists today.  Each step
# checks that its program is built; a missing step is said to be missing,
# never faked.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
OUT=${DEMO_DIR:-$ROOT/build/demo}
mkdir -p "$OUT"
have() { [ -x "$BIN/$1" ]; }
missing=()
step() { echo; echo "== $*"; }

step "1. tensor streams: a .npy array in, a stream out, inspected, exported back"
/usr/bin/python3 -c "import numpy as np; np.save('$OUT/demo.npy', np.random.default_rng(0).standard_normal((4, 8)).astype('<f4'))"
"$BIN/clip-tensor" from-npy embedding "$OUT/demo.npy" -o "$OUT/demo.cts"
"$BIN/clip-tensor" info "$OUT/demo.cts"
"$BIN/clip-tensor" npy embedding -o "$OUT/demo_back.npy" "$OUT/demo.cts"

if have clip-toyworld; then
    step "2. the toy world: render a scene from a caption, and a small labelled data set"
    "$BIN/clip-toyworld" render "a large red star at the top left on a water background" -o "$OUT/star.png"
    echo "wrote $OUT/star.png"
    "$BIN/clip-toyworld" dataset --n 16 --seed 1 -o "$OUT/toy"
    head -3 "$OUT/toy/manifest.tsv"
else
    missing+=("clip-toyworld (toy world renderer)")
fi

if have clip-encode && [ -d "$ROOT/models/toyclip" ]; then
    step "3. encode the toy images with the bundled toy CLIP"
    cut -f1 "$OUT/toy/manifest.tsv" | tail -n +2 | "$BIN/clip-encode" -o "$OUT/toy_images.cts"
    "$BIN/clip-tensor" info "$OUT/toy_images.cts"
else
    missing+=("clip-encode with the bundled toy CLIP in models/toyclip")
fi
for p in clip-decompose clip-textspan clip-ablate clip-segment clip-advgen; do
    have "$p" || missing+=("$p")
done

echo
if [ ${#missing[@]} -gt 0 ]; then
    echo "== not yet built, so not part of this demo:"
    printf '   - %s\n' "${missing[@]}"
fi
echo "== demo outputs are in $OUT"
