#!/bin/bash
# encode.sh - image-tower throughput of cliplens vs the PyTorch reference on full-size
# random-weight ViT-B/16 and ViT-B/32 with the same thread count; the share of our
# time spent in sgemm and the peak RSS of both.
#
# usage: bench/encode.sh [THREADS [BATCH [ITERS [ROUNDS]]]]   (defaults 2 8 3 2)
#   Models are generated once by scripts/reference.py into $CL_BENCH_DIR
#   (default build/bench-models, ~2.3 GB). Each round times ours then PyTorch's;
#   the best round of each is reported. PyTorch gets OPENBLAS_NUM_THREADS and
#   OMP_NUM_THREADS = THREADS too, so both sides use the same cores.
set -eu
cd "$(dirname "$0")/.."
T=${1:-2} B=${2:-8} I=${3:-3} R=${4:-2}
CACHE=${CL_BENCH_DIR:-build/bench-models}
PY=/usr/bin/python3
PKGS="libzstd msgpack libcjson libutf8proc libpng libjpeg openblas"

make -s build/libcliplens.a
mkdir -p build/bench
cc -O2 -std=c11 -Wall -Wextra -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Icommon -Iformats \
    $(pkg-config --cflags $PKGS) bench/bench_encode.c build/libcliplens.a \
    $(pkg-config --libs $PKGS) -lm -lpthread -o build/bench/bench_encode

field() { sed -E "s|.* $1 ([^ ]+).*|\1|" <<<"$2"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }

echo "threads $T, batch $B, $I batches per timing, best of $R rounds ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
for arch in B/16 B/32; do
    dir=$CACHE/ViT-${arch/\//-}
    if [ ! -f "$dir/hf/model.safetensors" ] || [ ! -f "$dir/openclip/open_clip_model.safetensors" ]; then
        $PY scripts/reference.py make-model --arch "$arch" --layout both "$dir" >/dev/null
    fi
    ours_best="" torch_best="" ours_line="" torch_line=""
    for ((r = 0; r < R; r++)); do
        o=$(build/bench/bench_encode "$dir/hf" "$T" "$B" "$I")
        p=$(OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T $PY scripts/reference.py bench "$dir/openclip" \
            --threads "$T" --batch "$B" --iters "$I")
        v=$(field img/s "$o"); [ "$(best "$v" "$ours_best")" = "$v" ] && { ours_best=$v; ours_line=$o; }
        v=$(field img/s "$p"); [ "$(best "$v" "$torch_best")" = "$v" ] && { torch_best=$v; torch_line=$p; }
    done
    # images per CPU second (all threads, spinning included) is less sensitive to other load
    ocpu=$(awk -v n="$(field images "$ours_line")" -v c="$(field cpu_seconds "$ours_line")" 'BEGIN { print n / c }')
    tcpu=$(awk -v n="$(field images "$torch_line")" -v c="$(field cpu_seconds "$torch_line")" 'BEGIN { print n / c }')
    printf 'ViT-%s  cliplens %6.2f img/s  pytorch %6.2f img/s  ratio %.2fx  |  per CPU-s %.2f vs %.2f (%.2fx)  ' \
        "$arch" "$ours_best" "$torch_best" "$(awk -v a="$ours_best" -v b="$torch_best" 'BEGIN { print a / b }')" \
        "$ocpu" "$tcpu" "$(awk -v a="$ocpu" -v b="$tcpu" 'BEGIN { print a / b }')"
    printf '|  sgemm %.0f%% of our time  |  peak RSS %s MB vs %s MB\n' \
        "$(awk -v s="$(field sgemm_share "$ours_line")" 'BEGIN { print 100 * s }')" \
        "$(field peak_rss_mb "$ours_line")" "$(field peak_rss_mb "$torch_line")"
done
