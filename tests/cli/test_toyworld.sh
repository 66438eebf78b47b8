#!/bin/bash
# test_toyworld.sh - clip-toyworld: render, dataset, stream and pool, their
# determinism (same seed, same bytes, any thread count) and their failures
# (exit code, message, no output file left behind).
. "$(dirname "$0")/lib.sh"
TW=$BIN/clip-toyworld
if [ ! -x "$TW" ]; then echo "SKIP clip-toyworld not built"; finish; fi
cd "$T"
png_width() { od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}'; }

# ---- general ----
case_ "help"; run "$TW" --help; expect_rc 0; expect_out "Usage: clip-toyworld"
case_ "version"; run "$TW" --version; expect_rc 0; expect_out "clip-toyworld"
case_ "no command"; run "$TW"; expect_rc 1; expect_err "missing command"
case_ "unknown command"; run "$TW" paint; expect_rc 1; expect_err "unknown command 'paint'"
case_ "unknown option"; run "$TW" render "a star" --colour red -o x.png; expect_rc 1; expect_err "unknown option '--colour'"; expect_no_file x.png

# ---- render ----
case_ "render"; run "$TW" render "a large red star at the top left on a water background" -o star.png
expect_rc 0; expect_file star.png; expect_err "star.png: a large red star at the top left on a water background (seed 0)"
expect_eq "$(head -c 8 star.png | od -An -tx1 | tr -d ' \n')" "89504e470d0a1a0a"
expect_eq "$(png_width star.png)" 64
case_ "render quiet"; run "$TW" render "a star" -q -o q.png; expect_rc 0; expect_err_empty
case_ "render same seed same bytes"
run "$TW" render "a circle" --seed 5 -o a.png; run "$TW" render "a circle" --seed 5 -o b.png
if cmp -s a.png b.png; then ok; else bad "same seed gave different files"; fi
run "$TW" render "a circle" --seed 6 -o c.png
if cmp -s a.png c.png; then bad "different seeds gave the same file"; else ok; fi
case_ "render words as separate operands"; run "$TW" render a circle --seed 5 -o d.png; expect_rc 0
if cmp -s a.png d.png; then ok; else bad "joined operands differ from one caption"; fi
case_ "render size"; run "$TW" render "a ring" --size 128 -o big.png; expect_rc 0; expect_eq "$(png_width big.png)" 128
case_ "render masks"; run "$TW" render "two red stars on grass" --mask-prefix m -o two.png
expect_rc 0; expect_file m_0.png; expect_file m_1.png; expect_no_file m_2.png
expect_err "red star in the center and a small red star at the top left on a grass background"  # the full caption names what was drawn
case_ "render to a pipe"; "$TW" render "a heart" -o - 2>/dev/null | head -c 4 | od -An -tx1 > sig.txt
expect_eq "$(tr -d ' \n' < sig.txt)" "89504e47"
case_ "render unknown word"; run "$TW" render "a large red foo" -o foo.png --mask-prefix fm
expect_rc 2; expect_err "clip-toyworld: unknown word 'foo' in caption"; expect_no_file foo.png; expect_no_file fm_0.png; expect_out_empty
case_ "render contradiction"; run "$TW" render "a red blue star" -o rb.png
expect_rc 2; expect_err "two colours ('red' and 'blue') for one object"; expect_no_file rb.png
case_ "render invisible"; run "$TW" render "a blue star on water" -o bw.png
expect_rc 2; expect_err "a blue object would not stand out on a water background"; expect_no_file bw.png
case_ "render same cell"; run "$TW" render "a star at the top and a circle at the top" -o tt.png
expect_rc 2; expect_err "two objects at the top"; expect_no_file tt.png
case_ "render empty caption"; run "$TW" render "" -o e.png; expect_rc 2; expect_err "empty caption"; expect_no_file e.png
case_ "render no caption"; run "$TW" render -o n.png; expect_rc 1; expect_err "render needs a CAPTION"; expect_no_file n.png
case_ "render bad size"; run "$TW" render "a star" --size 8 -o s8.png; expect_rc 1; expect_err "invalid value '8' for --size"; expect_no_file s8.png
case_ "render unwritable"; run "$TW" render "a star" -o nodir/x.png; expect_rc 3; expect_no_file nodir/x.png

# ---- dataset ----
case_ "dataset"; run "$TW" dataset --n 12 --seed 1 -o ds; expect_rc 0
expect_eq "$(ls ds/images | wc -l)" 12
expect_eq "$(wc -l < ds/manifest.tsv)" 13
expect_eq "$(head -1 ds/manifest.tsv | cut -f1-4)" "$(printf 'path\tlabel\tgroup\tclass')"
expect_eq "$(tail -n +2 ds/manifest.tsv | cut -f1 | head -1)" "ds/images/000000.png"
# one mask file per object; every path in the manifest exists
expect_eq "$(ls ds/masks | wc -l)" "$(tail -n +2 ds/manifest.tsv | cut -f8 | paste -sd+ | bc)"
missing=0; for p in $(tail -n +2 ds/manifest.tsv | tr '\t' '\n' | grep '^ds/'); do [ -f "$p" ] || missing=$((missing + 1)); done
expect_eq "$missing" 0
case_ "dataset deterministic, any thread count"
run "$TW" dataset --n 40 --seed 3 -t 1 -o d1; run "$TW" dataset --n 40 --seed 3 -t 2 -o d2
if diff -r d1/images d2/images >/dev/null && diff -r d1/masks d2/masks >/dev/null &&
   sed 's|d2/|d1/|g' d2/manifest.tsv | cmp -s - d1/manifest.tsv; then ok; else bad "-t 1 and -t 2 differ"; fi
case_ "dataset spurious-test is balanced"; run "$TW" dataset --n 40 --seed 2 --split spurious-test -o st; expect_rc 0
expect_eq "$(tail -n +2 st/manifest.tsv | cut -f3 | sort | uniq -c | awk '{print $1}' | paste -sd,)" "10,10,10,10"
expect_eq "$(tail -n +2 st/manifest.tsv | cut -f8 | sort -u)" 1
case_ "dataset spurious-train is biased"; run "$TW" dataset --n 400 --seed 2 --split spurious-train -o sp; expect_rc 0
maj=$(tail -n +2 sp/manifest.tsv | cut -f3 | awk '$1==0||$1==3{m++} END{print m}')
if [ "$maj" -ge 360 ] && [ "$maj" -le 396 ]; then ok; else bad "majority groups $maj of 400"; fi
expect_eq "$(tail -n +2 sp/manifest.tsv | cut -f4 | sort -u | paste -sd,)" "square,triangle"
case_ "dataset objects"; run "$TW" dataset --n 10 --objects 2 -o o2; expect_rc 0
expect_eq "$(tail -n +2 o2/manifest.tsv | cut -f8 | sort -u)" 2
case_ "dataset captions"; printf 'a red star\n\nthree hearts on sand\n' > caps.txt
run "$TW" dataset --captions caps.txt -o dc; expect_rc 0
expect_eq "$(wc -l < dc/manifest.tsv)" 3
expect_eq "$(sed -n 3p dc/manifest.tsv | cut -f6,8,9)" "$(printf 'three hearts on sand\t3\tsand')"
case_ "dataset bad caption"; printf 'a red star\na purple unicorn\n' > badcaps.txt
run "$TW" dataset --captions badcaps.txt -o dbad
expect_rc 2; expect_err "badcaps.txt:2: unknown word 'unicorn' in caption"; expect_no_file dbad
case_ "dataset needs -o"; run "$TW" dataset --n 3; expect_rc 1; expect_err "dataset needs -o DIR"
case_ "dataset needs --n"; run "$TW" dataset -o dn; expect_rc 1; expect_err "needs --n N"; expect_no_file dn
case_ "dataset bad split"; run "$TW" dataset --n 3 --split spurious -o bs; expect_rc 1; expect_err "unknown split 'spurious'"; expect_no_file bs
case_ "dataset bad objects"; run "$TW" dataset --n 3 --objects 3-1 -o bo; expect_rc 1; expect_err "invalid value '3-1' for --objects"; expect_no_file bo
case_ "dataset bias needs spurious-train"; run "$TW" dataset --n 3 --bias 0.9 -o bb; expect_rc 1; expect_err "--bias applies to --split spurious-train"; expect_no_file bb
case_ "dataset to stdout"; run "$TW" dataset --n 3 -o -; expect_rc 1; expect_err "dataset writes a directory"; expect_no_file ./-
case_ "dataset failing midway leaves nothing, not even an old manifest"
run "$TW" dataset --n 12 --seed 1 -o df; expect_rc 0; expect_file df/manifest.tsv
rm df/masks/000005_0.png; mkdir df/masks/000005_0.png   # item 5's mask cannot be written
run "$TW" dataset --n 12 --seed 2 -o df; expect_rc 3; expect_err "item 5: cannot create 'df/masks/000005_0.png'"
expect_no_file df/manifest.tsv; expect_eq "$(ls df/images | wc -l)" 0; expect_eq "$(ls df/masks)" 000005_0.png
case_ "dataset over an old one: replaced, no temporary files"
run "$TW" dataset --n 12 --seed 9 -o ds; expect_rc 0
expect_eq "$(ls ds/images ds/masks | grep -c tmp)" 0
expect_eq "$(tail -n +2 ds/manifest.tsv | cut -f6 | head -1)" "$("$TW" dataset --n 1 --seed 9 -q -o ds9 && tail -n +2 ds9/manifest.tsv | cut -f6)"
case_ "dataset onto a file"; touch afile; run "$TW" dataset --n 3 -o afile; expect_rc 3; expect_err "cannot create directory 'afile'"

# ---- stream ----
case_ "stream"; run "$TW" stream --n 6 --seed 4 --split spurious-test -o s.cts; expect_rc 0; expect_file s.cts
if [ -x "$BIN/clip-tensor" ]; then
    run "$BIN/clip-tensor" info s.cts; expect_rc 0
    expect_out "kind: toyworld"; expect_out "items: 6"; expect_out "pixels u8 [3,64,64]"; expect_out "masks u8 [1,64,64]"
    expect_out '"classes":["triangle","square"]'
else
    echo "SKIP clip-tensor not built: stream contents unchecked"
fi
case_ "stream deterministic"; "$TW" stream --n 30 --seed 4 -t 1 > s1.cts 2>/dev/null; "$TW" stream --n 30 --seed 4 -t 2 > s2.cts 2>/dev/null
if cmp -s s1.cts s2.cts; then ok; else bad "-t 1 and -t 2 streams differ"; fi
case_ "stream captions from stdin"; run sh -c "printf 'a star\nan orange ring at the bottom\n' | '$TW' stream --captions - -o sc.cts"
expect_rc 0; expect_file sc.cts
case_ "stream bad caption leaves no file"; run "$TW" stream --captions badcaps.txt -o sb.cts
expect_rc 2; expect_err "unknown word 'unicorn'"; expect_no_file sb.cts
case_ "stream --captions and --n"; run "$TW" stream --captions caps.txt --n 3 -o x.cts; expect_rc 1; expect_no_file x.cts
case_ "stream --mask-prefix"; run "$TW" stream --n 2 --mask-prefix m -o y.cts; expect_rc 1; expect_no_file y.cts

# ---- pool ----
case_ "pool"; run "$TW" pool; expect_rc 0
expect_eq "$(head -1 "$OUT")" "$(printf 'family\ttext')"
expect_eq "$(tail -n +2 "$OUT" | cut -f1 | sort -u | paste -sd,)" "background,colour,count,distractor,position,shape,size"
expect_out "$(printf 'background\tan image with a water background')"
expect_out "$(printf 'distractor\ta photo of a dog')"
total=$(($(wc -l < "$OUT") - 1))
case_ "pool plain"; run "$TW" pool --plain; expect_rc 0; expect_eq "$(wc -l < "$OUT")" "$total"
if grep -q "$(printf '\t')" "$OUT"; then bad "tab in --plain output"; else ok; fi
case_ "pool kinds"; run "$TW" pool --kind distractors; expect_rc 0
expect_eq "$(tail -n +2 "$OUT" | cut -f1 | sort -u)" distractor
run "$TW" pool --kind attributes; expect_rc 0
if grep -q '^distractor' "$OUT"; then bad "distractor in attributes"; else ok; fi
case_ "pool bad kind"; run "$TW" pool --kind colours; expect_rc 1; expect_err "unknown --kind 'colours'"; expect_out_empty
finish
