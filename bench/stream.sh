#!/bin/bash
# stream.sh - tensor stream throughput: write and read ~1 GB of f32 tensors
# with clip-tensor, next to zstd alone on the same bytes, in the same run.
#   BENCH_MB=1024 (size), BENCH_LEVEL=3 (zstd level), BENCH_DIR=/tmp
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MB=${BENCH_MB:-1024}; LEVEL=${BENCH_LEVEL:-3}
D=$(mktemp -d "${BENCH_DIR:-/tmp}/cliplens-bench.XXXXXX"); trap 'rm -rf "$D"' EXIT
CT=$ROOT/bin/clip-tensor
ROW=73728                         # one item = heads [12,12,512] f32 = 288 KiB
N=$(( MB * 1048576 / (ROW * 4) ))
/usr/bin/python3 - "$D/big.npy" "$N" <<'PY'
import sys, numpy as np
n = int(sys.argv[2]); rng = np.random.default_rng(0)
a = np.lib.format.open_memmap(sys.argv[1], mode="w+", dtype="<f4", shape=(n, 12, 12, 512))
for i in range(0, n, 256):
    a[i:i + 256] = rng.standard_normal((min(256, n - i), 12, 12, 512), dtype=np.float32) * 0.05
a.flush()
PY
bytes=$(( N * ROW * 4 ))
t() { local s=$(date +%s.%N); "$@"; local e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { print b - a }'; }
mbs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.1f", b / 1048576 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat "$D/big.npy" > /dev/null    # warm the page cache
# the same content uncompressed (for zstd alone to chew on)
"$CT" from-npy heads "$D/big.npy" --level 0 -o "$D/plain.cts"
cat "$D/plain.cts" > /dev/null
tw=$(t "$CT" from-npy heads "$D/big.npy" --level "$LEVEL" -o "$D/big.cts")
tzw=$(t sh -c "zstd -q -$LEVEL -T1 --check -c '$D/plain.cts' > '$D/plain.cts.zst'")
tr=$(t sh -c "'$CT' info '$D/big.cts' > /dev/null")
tzr=$(t sh -c "zstd -q -d -c '$D/big.cts' > /dev/null")
tp=$(t sh -c "'$CT' info '$D/plain.cts' > /dev/null")
printf 'stream bench: %d items of heads [12,12,512] f32, %s MB, zstd level %s\n' "$N" "$(mbs 1)" "$LEVEL"
printf '  write  clip-tensor %8s MB/s   zstd alone %8s MB/s   ratio (ours/zstd) %s\n' \
    "$(mbs "$tw")" "$(mbs "$tzw")" "$(ratio "$tzw" "$tw")"
printf '  read   clip-tensor %8s MB/s   zstd -d    %8s MB/s   ratio (ours/zstd) %s\n' \
    "$(mbs "$tr")" "$(mbs "$tzr")" "$(ratio "$tzr" "$tr")"
printf '  read uncompressed stream: %s MB/s\n' "$(mbs "$tp")"
printf '  sizes: stream %d bytes, zstd of plain %d bytes\n' "$(stat -c %s "$D/big.cts")" "$(stat -c %s "$D/plain.cts.zst")"
