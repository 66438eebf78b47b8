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
    "$BIN/clip-toyworld" dataset --n 32 --seed 1 --objects 1 -o "$OUT/toy"
    head -3 "$OUT/toy/manifest.tsv"
else
    missing+=("clip-toyworld (toy world renderer)")
fi

if have clip-encode && have clip-classify && [ -d "$ROOT/models/toyclip" ]; then
    step "3. zero-shot with the bundled toy CLIP: colour of the 32 one-object scenes"
    printf 'red\norange\nyellow\ngreen\ncyan\nblue\npurple\npink\nbrown\nwhite\nblack\ngrey\n' > "$OUT/colours.txt"
    printf 'a photo of a {} object.\n' > "$OUT/colour_templates.txt"
    "$BIN/clip-encode" -q --classes "$OUT/colours.txt" --templates "$OUT/colour_templates.txt" -o "$OUT/colours.cts"
    # label = index of object 0's colour in colours.txt
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "colour_0") c = i; next }
                 { n = split("red orange yellow green cyan blue purple pink brown white black grey", v, " ");
                   for (k = 1; k <= n; k++) if (v[k] == $c) printf "%s\t%d\n", $1, k - 1 }' \
        "$OUT/toy/manifest.tsv" > "$OUT/colour_manifest.tsv"
    "$BIN/clip-encode" -q --manifest "$OUT/colour_manifest.tsv" -o "$OUT/toy_images.cts"
    "$BIN/clip-classify" -c "$OUT/colours.cts" "$OUT/toy_images.cts"
else
    missing+=("clip-encode/clip-classify with the bundled toy CLIP in models/toyclip")
fi

if have clip-decompose && have clip-textspan && have clip-ablate && have clip-retrieve && [ -d "$ROOT/models/toyclip" ]; then
    step "4. the study: decompose, TextSpan head roles, ablations, the spurious background removed"
    make -s -f "$ROOT/pipelines/toy_study.mk" OUT="$OUT/study" N="${DEMO_N:-1000}" NSPUR="${DEMO_NSPUR:-1000}" >/dev/null
    sed -n '/^## Criteria/,/^## (a)/p' "$OUT/study/report.md" | sed '$d'
    grep -E '^Heads per family|^Worst-group change' "$OUT/study/report.md"
    echo "full report: $OUT/study/report.md"
fi
for p in clip-decompose clip-textspan clip-ablate clip-retrieve clip-segment clip-advgen; do
    have "$p" || missing+=("$p")
done

echo
if [ ${#missing[@]} -gt 0 ]; then
    echo "== not yet built, so not part of this demo:"
    printf '   - %s\n' "${missing[@]}"
fi
echo "== demo outputs are in $OUT"
