#!/bin/bash
# toy_eval.sh - zero-shot evaluation of a CLIP model on fresh toy-world scenes, with the
# C tools only: clip-toyworld renders, clip-encode embeds images and builds classifiers,
# clip-classify scores.  Prints a TSV report (and writes it to OUT/report.tsv).
#
#   pipelines/toy_eval.sh [-m MODEL] [-n N] [--spurious-n M] [--seed S] [-o OUT] [-t T]
#
# Protocol (the model card quotes it): N single-object scenes of the random split
# (--objects 1) are classified for colour, shape, size, position and background of
# their one object; M scenes of the balanced spurious-test split are classified as
# triangle vs square, reported per (shape, background type) group and worst group.
# The prompts (class names x templates, averaged) are those of scripts/train_toyclip.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
MODEL=$ROOT/models/toyclip
N=1000
NSPUR=1000
SEED=20261204
OUT=$ROOT/build/toy_eval
THREADS=2
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        -m|--model) MODEL=$2; shift 2 ;;
        -n) N=$2; shift 2 ;;
        --spurious-n) NSPUR=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        -t|--threads) THREADS=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "toy_eval.sh: unknown argument '$1'" >&2; usage >&2; exit 1 ;;
    esac
done
for p in clip-toyworld clip-encode clip-classify; do
    [ -x "$BIN/$p" ] || { echo "toy_eval.sh: $BIN/$p is not built (run make)" >&2; exit 3; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
P=$OUT/prompts
mkdir -p "$P"

# Class names in label order and templates, per attribute.
printf '%s\n' red orange yellow green cyan blue purple pink brown white black grey > "$P/colour.classes"
printf '%s\n' 'a {} object' 'a photo of a {} shape' > "$P/colour.templates"
printf '%s\n' circle square triangle star cross ring heart diamond > "$P/shape.classes"
printf '%s\n' 'a {}' 'a photo of a {}' > "$P/shape.templates"
printf '%s\n' small large > "$P/size.classes"
printf '%s\n' 'a {} object' 'a photo of a {} shape' > "$P/size.templates"
printf '%s\n' 'at the top left' 'at the top' 'at the top right' 'on the left' 'in the center' \
    'on the right' 'at the bottom left' 'at the bottom' 'at the bottom right' > "$P/position.classes"
printf '%s\n' 'an object {}' 'a photo of a shape {}' > "$P/position.templates"
printf '%s\n' plain striped dotted checkered water grass sand sky brick wood > "$P/background.classes"
printf '%s\n' 'an object on a {} background' 'a photo with a {} background' > "$P/background.templates"
printf '%s\n' triangle square > "$P/spurious.classes"
cp "$P/shape.templates" "$P/spurious.templates"

# The manifest's value of each attribute, in the same label order as the classes above.
declare -A VALUES=(
    [colour]="red orange yellow green cyan blue purple pink brown white black grey"
    [shape]="circle square triangle star cross ring heart diamond"
    [size]="small large"
    [position]="top-left top top-right left center right bottom-left bottom bottom-right"
    [background]="plain stripes dots checker water grass sand sky brick wood"
)
declare -A COLUMN=([colour]=colour_0 [shape]=shape_0 [size]=size_0 [position]=position_0 [background]=background)

echo "toy_eval: $N single-object scenes (seed $SEED), $NSPUR spurious-test scenes (seed $((SEED + 1))), model $MODEL" >&2
"$BIN/clip-toyworld" dataset -q --n "$N" --seed "$SEED" --objects 1 -t "$THREADS" -o "$OUT/scenes"
"$BIN/clip-toyworld" dataset -q --n "$NSPUR" --seed $((SEED + 1)) --split spurious-test -t "$THREADS" -o "$OUT/spurious"

REPORT=$OUT/report.tsv
printf 'attribute\titems\tcorrect\taccuracy\n' > "$REPORT.tmp"
for attr in colour shape size position background; do
    # manifest: path, label (index of the attribute's value), group (the background)
    awk -F'\t' -v col="${COLUMN[$attr]}" -v values="${VALUES[$attr]}" '
        BEGIN { n = split(values, v, " "); for (i = 1; i <= n; i++) idx[v[i]] = i - 1; OFS = "\t" }
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; if (!c) { print "no column " col > "/dev/stderr"; exit 2 }
                  print "path", "label", "group"; next }
        { if (!($c in idx)) { print "unknown value " $c " in line " NR > "/dev/stderr"; exit 2 }
          print $1, idx[$c], $3 }' "$OUT/scenes/manifest.tsv" > "$OUT/$attr.tsv"
    "$BIN/clip-encode" -q -m "$MODEL" -t "$THREADS" --classes "$P/$attr.classes" --templates "$P/$attr.templates" -o "$OUT/$attr.classifier.cts"
    "$BIN/clip-encode" -q -m "$MODEL" -t "$THREADS" --batch 64 --manifest "$OUT/$attr.tsv" -o "$OUT/$attr.images.cts"
    "$BIN/clip-classify" -q -c "$OUT/$attr.classifier.cts" "$OUT/$attr.images.cts" > "$OUT/$attr.report.tsv"
    awk -F'\t' -v a="$attr" '$1 == "all" { OFS = "\t"; print a, $2, $3, $4 }' "$OUT/$attr.report.tsv" >> "$REPORT.tmp"
done

"$BIN/clip-encode" -q -m "$MODEL" -t "$THREADS" --classes "$P/spurious.classes" --templates "$P/spurious.templates" -o "$OUT/spurious.classifier.cts"
"$BIN/clip-encode" -q -m "$MODEL" -t "$THREADS" --batch 64 --manifest "$OUT/spurious/manifest.tsv" -o "$OUT/spurious.images.cts"
"$BIN/clip-classify" -q -c "$OUT/spurious.classifier.cts" "$OUT/spurious.images.cts" > "$OUT/spurious.report.tsv"
# groups: 0 triangle/water-like, 1 triangle/land-like, 2 square/water-like, 3 square/land-like
awk -F'\t' 'NR > 1 { OFS = "\t"; s = $1; sub(/^group /, "spurious group ", s); sub(/^worst-group /, "spurious worst-group ", s)
                     if (s == "all") s = "spurious all"; print s, $2, $3, $4 }' "$OUT/spurious.report.tsv" >> "$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
cat "$REPORT"
