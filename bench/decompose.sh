#!/bin/bash
# decompose.sh - cost of the decomposition relative to plain encoding on a full-size
# random-weight ViT-B/16: heads, heads x tokens, and second-order neurons of one layer,
# cliplens (common/decompose) next to a PyTorch implementation written the papers' way
# (scripts/decompose_reference.py bench: P1's per-query head outputs, per source token for
# tokens, materialised; P2's per-token neuron outputs passed through the later layers).
#
# usage: bench/decompose.sh [THREADS [BATCH [ROUNDS [LAYER]]]]   (defaults 1 8 5 9)
#   The model is generated once by scripts/reference.py into $CL_BENCH_DIR (default
#   build/bench-models, shared with bench/encode.sh).  Both sides run THREADS threads and
#   report wall and process-CPU seconds per image and their ratios to their own encoding;
#   with one thread (the default) the CPU ratio is the cost ratio even on a busy, shared
#   machine.  cliplens: ROUNDS rounds of one batch per mode, encode and the modes
#   interleaved, best of each.  PyTorch: batch 1 (P1's materialisation for tokens is
#   [N, N, H, D] floats per image and layer, 1.4 GB for B/16); heads x tokens timed once,
#   the second order on 128 neurons scaled to all 3072 (its cost is linear in them).
#   Setup (the image-independent matrices, once per model) is reported apart.  The CLI
#   line adds decoding a pixels stream, f16 conversion and writing the (uncompressed)
#   stream for 8 images.
set -eu
cd "$(dirname "$0")/.."
T=${1:-1} B=${2:-8} R=${3:-5} LAYER=${4:-9}
CACHE=${CL_BENCH_DIR:-build/bench-models}
PY=/usr/bin/python3
PKGS="libzstd msgpack libcjson libutf8proc libpng libjpeg openblas"

make -s build/libcliplens.a bin/clip-decompose bin/clip-encode
mkdir -p build/bench
cc -O2 -std=c11 -Wall -Wextra -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Icommon -Iformats \
    $(pkg-config --cflags $PKGS) bench/bench_decompose.c build/libcliplens.a \
    $(pkg-config --libs $PKGS) -lm -lpthread -o build/bench/bench_decompose

dir=$CACHE/ViT-B-16
if [ ! -f "$dir/hf/model.safetensors" ] || [ ! -f "$dir/openclip/open_clip_model.safetensors" ]; then
    $PY scripts/reference.py make-model --arch B/16 --layout both "$dir" >/dev/null
fi
field() { sed -E "s|.* $1 ([^ ]+).*|\1|" <<<"$2"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "ViT-B/16, threads $T ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)); second order of layer $LAYER"
ours=$(build/bench/bench_decompose "$dir/hf" "$T" "$B" 1 "$LAYER" "$R")
torch=$(OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T $PY scripts/decompose_reference.py bench "$dir/openclip" \
    --threads "$T" --batch 1 --iters 2 --second-order "$LAYER" --neurons 128 --neuron-chunk 32)
line=$(grep 'cliplens encode' <<<"$ours")
enc=$(field s_per_image "$line"); enc_cpu=$(field cpu_s_per_image "$line")
tenc=$(field encode_s "$torch"); tenc_cpu=$(field encode_cpu "$torch")
printf '%-20s | %-30s | %-24s |\n' "" "cliplens (ratio: wall, CPU)" "pytorch, papers' way"
printf '%-20s | %9s %6s %6s %7s | %9s %6s %6s | %s\n' mode "s/img" wall cpu target "s/img" wall cpu \
    "cliplens decompose-only s/img, setup s"
printf '%-20s | %9.4f %6s %6s %7s | %9.4f %6s %6s |\n' encode "$enc" 1.00 1.00 - "$tenc" 1.00 1.00
for m in heads:1.2 tokens:1.5 second:2.0; do
    IFS=: read -r mode target <<<"$m"
    line=$(grep "cliplens $mode " <<<"$ours")
    s=$(field s_per_image "$line"); c=$(field cpu_s_per_image "$line")
    ts=$(field "${mode}_s" "$torch"); tc=$(field "${mode}_cpu" "$torch")
    name=$mode; [ "$mode" = tokens ] && name="heads x tokens"; [ "$mode" = second ] && name="second order l=$LAYER"
    printf '%-20s | %9.4f %6s %6s %7s | %9.4f %6s %6s | %.4f, %.2f\n' "$name" "$s" "$(div "$s" "$enc")" \
        "$(div "$c" "$enc_cpu")" "<=$target" "$ts" "$(div "$ts" "$tenc")" "$(div "$tc" "$tenc_cpu")" \
        "$(field decompose_s_per_image "$line")" "$(field setup_s "$line")"
done
grep peak_rss <<<"$ours"

# the CLI end to end on 8 images (a pixels stream): encode vs decompose, uncompressed output
px=build/bench/pixels224.cts
[ -f "$px" ] || $PY - "$px" <<'PYEOF'
import sys
sys.path.insert(0, "scripts")
import numpy as np
from cliplens_stream import write_stream
rng = np.random.default_rng(0)
write_stream(sys.argv[1], "pixels", (("img%d" % i, {}, {"pixels": rng.standard_normal((3, 224, 224)).astype("<f4")})
                                     for i in range(8)))
PYEOF
clock() { local t0; t0=$(date +%s.%N); "$@" >/dev/null; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
e=$(clock bin/clip-encode -q -t "$T" -m "$dir/hf" --from-pixels "$px" --level 0 -o build/bench/enc.cts)
printf 'CLI wall, 8 images, --level 0: encode %s s' "$e"
for opts in "" "--tokens --dtype f16" "--second-order $LAYER"; do
    d=$(clock bin/clip-decompose -q -t "$T" -m "$dir/hf" --from-pixels "$px" --level 0 $opts -o build/bench/dec.cts)
    printf ';  decompose %s %s s (%sx)' "${opts:-(heads)}" "$d" "$(div "$d" "$e")"
done
echo
rm -f build/bench/enc.cts build/bench/dec.cts
