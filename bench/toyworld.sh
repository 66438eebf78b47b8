#!/bin/bash
# toyworld.sh - clip-toyworld throughput in scenes per second: `stream` (tensor stream,
# zstd level 3) and `dataset` (PNG image + one mask PNG per object + manifest), with
# 1 and 2 threads, onto BENCH_DIR (a disk) and onto /dev/shm (memory: our own cost
# without the file system's).  Anchor, in the same run: Pillow writing the same scenes'
# image and mask PNGs (compress_level 1, as ours) from an uncompressed stream, i.e.
# the file writing alone, before any rendering.
#   BENCH_N=20000 (scenes), BENCH_DIR=/tmp
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_N:-20000}
TW=$ROOT/bin/clip-toyworld
D=$(mktemp -d "${BENCH_DIR:-/tmp}/cliplens-bench.XXXXXX")
M=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then M=$(mktemp -d /dev/shm/cliplens-bench.XXXXXX); fi
trap 'rm -rf "$D" ${M:+"$M"}' EXIT
t() { local s=$(date +%s.%N); "$@" > /dev/null; local e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { print b - a }'; }
rate() { awk -v n="$N" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

printf 'toyworld bench: %d scenes of 64x64, random split (1-3 objects), %s cores\n' "$N" "$(nproc)"
for th in 1 2; do
    ts=$(t "$TW" stream --n "$N" --seed 1 -q -t "$th" -o "$D/s.cts")
    printf '  stream  -t %d            %7s scenes/s\n' "$th" "$(rate "$ts")"
done
"$TW" stream --n "$N" --seed 1 -q --level 0 -o "$D/plain.cts"
for where in "$D" $M; do
    label=disk; [ "$where" = "$M" ] && label=memory
    for th in 1 2; do
        rm -rf "$where/ds"
        td=$(t "$TW" dataset --n "$N" --seed 1 -q -t "$th" -o "$where/ds")
        printf '  dataset -t %d  %-7s   %7s scenes/s\n' "$th" "$label" "$(rate "$td")"
        [ "$th" = 1 ] && td1=$td
    done
    rm -rf "$where/pil"
    tp=$(t env ROOT="$ROOT" /usr/bin/python3 - "$D/plain.cts" "$where/pil" <<'PY'
import io, os, sys
sys.path.insert(0, os.path.join(os.environ.get("ROOT", "."), "scripts"))
from cliplens_stream import read_stream
from PIL import Image
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out + "/images"); os.makedirs(out + "/masks")
with open(src, "rb") as f:
    for i, (_, meta, t) in enumerate(read_stream(f)):
        Image.fromarray(t["pixels"].transpose(1, 2, 0)).save("%s/images/%06d.png" % (out, i), compress_level=1)
        for k, m in enumerate(t["masks"]):
            Image.fromarray(m).save("%s/masks/%06d_%d.png" % (out, i, k), compress_level=1)
PY
)
    printf '  Pillow writing the PNGs %-7s %7s scenes/s   ratio (ours -t 1 / Pillow) %s\n' \
        "$label" "$(rate "$tp")" "$(ratio "$td1" "$tp")"
    rm -rf "$where/ds" "$where/pil"
done
printf '  sizes: stream %d bytes\n' "$(stat -c %s "$D/s.cts")"
