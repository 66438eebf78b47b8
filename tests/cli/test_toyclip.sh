#!/bin/bash
# test_toyclip.sh - the bundled toy CLIP reproduces its model card: zero-shot accuracy of
# the C tools (pipelines/toy_eval.sh) on fresh scenes (another seed than the card's)
# within a tolerance of models/toyclip/zeroshot.tsv, per attribute and per spurious group;
# the issue's targets (colour and shape >= 90%, position and background >= 80%, the worst
# spurious group >= 15 points below the best) hold on those scenes; and the model is what
# the programs load by default.
source "$(dirname "$0")/lib.sh"
M=$ROOT/models/toyclip
CARD=$M/zeroshot.tsv

case_ "the bundled model is complete"
for f in config.json model.safetensors preprocessor_config.json vocab.json merges.txt MODEL_CARD.md zeroshot.tsv; do
    expect_file "$M/$f"
done

case_ "the default model is the bundled one"
printf 'a red star\n' > "$T/t.txt"
run env -u CLIPLENS_MODEL clip-encode --texts "$T/t.txt" -o "$T/default.cts"; expect_rc 0
run clip-encode -m "$M" --texts "$T/t.txt" -o "$T/explicit.cts"; expect_rc 0
if cmp -s "$T/default.cts" "$T/explicit.cts"; then ok; else bad "default model output differs from -m $M"; fi

case_ "zero-shot accuracies reproduce the card on fresh scenes"
run bash "$ROOT/pipelines/toy_eval.sh" -n 300 --spurious-n 400 --seed 99 -o "$T/eval"; expect_rc 0
# attributes: 300 scenes, tolerance 0.08; spurious groups: 100 scenes each, tolerance 0.16
# (over 3 binomial standard deviations at p = 0.5)
while IFS=$'\t' read -r scope items correct acc; do
    case $scope in attribute|"spurious worst-group"*) continue ;; esac
    tol=0.08; case $scope in spurious*) tol=0.16 ;; esac
    got=$(awk -F'\t' -v s="$scope" '$1 == s { print $4 }' "$T/eval/report.tsv")
    if [ -z "$got" ]; then bad "no '$scope' in the report"; continue; fi
    if awk -v a="$got" -v b="$acc" -v t="$tol" 'BEGIN { d = a - b; exit !(d <= t && -d <= t) }'; then ok
    else bad "$scope: accuracy $got on fresh scenes, card says $acc (tolerance $tol)"; fi
done < "$CARD"
expect_eq "$(wc -l < "$T/eval/report.tsv")" "$(wc -l < "$CARD")"

case_ "the issue's targets hold on the fresh scenes"
acc() { awk -F'\t' -v s="$1" '$1 == s { print $4 }' "$T/eval/report.tsv"; }
for t in colour:0.90 shape:0.90 position:0.80 background:0.80; do
    got=$(acc "${t%%:*}")
    if awk -v a="$got" -v m="${t##*:}" 'BEGIN { exit !(a != "" && a >= m) }'; then ok
    else bad "${t%%:*}: zero-shot accuracy $got, target ${t##*:}"; fi
done
# the spurious bias is real: the worst group clearly below the best
best=$(for g in 0 1 2 3; do acc "spurious group $g"; done | sort -g | tail -1)
worst=$(for g in 0 1 2 3; do acc "spurious group $g"; done | sort -g | head -1)
if awk -v b="$best" -v w="$worst" 'BEGIN { exit !(b - w >= 0.15) }'; then ok
else bad "spurious groups: worst $worst, best $best: no clear bias"; fi
finish
