#!/bin/bash
# test_tensor.sh - CLI tests for clip-tensor: every subcommand, pipes, and
# expected failures (exit codes, messages, no partial output files).
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

# fixtures: a 5x4x3 f32 array as npy, a stream made from it
printf '\x93NUMPY\x01\x00' > /dev/null
make_npy() { # make_npy FILE ROWS: f32 rows x 4 x 3, value = index
    local f=$1 n=$2 hdr
    hdr="{'descr': '<f4', 'fortran_order': False, 'shape': ($n, 4, 3), }"
    while [ $(( (10 + ${#hdr} + 1) % 64 )) -ne 0 ]; do hdr="$hdr "; done
    { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#hdr} + 1) % 256 )))\\x$(printf %02x $(( (${#hdr} + 1) / 256 )))";
      printf '%s\n' "$hdr"; awk -v n=$((n * 12)) 'BEGIN { for (i = 0; i < n; i++) printf "%c%c%c%c", 0, 0, 0, 0 }'; } > "$f"
}
make_npy "$T/a.npy" 5

case_ "from-npy then info"
run clip-tensor from-npy x "$T/a.npy" -o "$T/a.cts"; expect_rc 0; expect_out_empty
run clip-tensor info "$T/a.cts"; expect_rc 0
expect_out "items: 5"; expect_out "tensor: x f32 [4,3] in 5 items"; expect_out "kind: tensor"

case_ "info from stdin and concatenated streams"
cat "$T/a.cts" "$T/a.cts" > "$T/aa.cts"
run clip-tensor info < "$T/aa.cts"; expect_rc 0; expect_out "items: 10"; expect_out "streams: 2"
cat "$T/a.cts" "$T/a.cts" | clip-tensor info >"$OUT" 2>"$ERR"; RC=$?
expect_rc 0; expect_out "items: 10"

case_ "cat joins with one header"
run clip-tensor cat "$T/a.cts" "$T/a.cts" "$T/a.cts" -o "$T/c.cts"; expect_rc 0
run clip-tensor info "$T/c.cts"; expect_out "items: 15"; expect_out "streams: 1"

case_ "head -n"
run clip-tensor head -n 2 "$T/c.cts" -o "$T/h.cts"; expect_rc 0
run clip-tensor info "$T/h.cts"; expect_out "items: 2"
clip-tensor head -n 3 < "$T/c.cts" | clip-tensor info >"$OUT" 2>"$ERR"; RC=$?; expect_rc 0; expect_out "items: 3"

case_ "select by id and meta"
run clip-tensor select --id 3 --id 4 "$T/a.cts" -o "$T/s.cts"; expect_rc 0
run clip-tensor info "$T/s.cts"; expect_out "items: 2"
run clip-tensor select --meta label=1 "$T/a.cts" -o "$T/s2.cts"; expect_rc 0
run clip-tensor info "$T/s2.cts"; expect_out "items: 0"

case_ "npy export round trip is byte-identical"
run clip-tensor npy x -o "$T/back.npy" "$T/a.cts"; expect_rc 0
if cmp -s <(tail -c 240 "$T/a.npy") <(tail -c 240 "$T/back.npy"); then ok; else bad "npy data differs"; fi
run clip-tensor npy x -o - "$T/a.cts"; expect_rc 0
if [ "$(head -c 6 "$OUT" | tail -c 5)" = "NUMPY" ]; then ok; else bad "stdout npy lacks magic"; fi

case_ "convert f16 and back"
run clip-tensor convert --dtype f16 "$T/a.cts" -o "$T/f16.cts"; expect_rc 0
run clip-tensor info "$T/f16.cts"; expect_out "tensor: x f16 [4,3]"
run clip-tensor npy x --dtype own -o "$T/f16.npy" "$T/f16.cts"; expect_rc 0
if grep -q "<f2" "$T/f16.npy"; then ok; else bad "own dtype npy is not <f2"; fi
run clip-tensor convert --dtype bf16 "$T/a.cts" -o "$T/bf.cts"; expect_rc 0
run clip-tensor npy x --dtype own -o "$T/bf.npy" "$T/bf.cts"; expect_rc 2; expect_err "bf16"; expect_no_file "$T/bf.npy"

case_ "from-npy with ids"
printf 'a\nb\nc\nd\ne\n' > "$T/ids.txt"
run clip-tensor from-npy x "$T/a.npy" --ids "$T/ids.txt" -o "$T/ids.cts"; expect_rc 0
run clip-tensor select --id c "$T/ids.cts" -o "$T/c1.cts"; run clip-tensor info "$T/c1.cts"; expect_out "items: 1"
printf 'a\nb\n' > "$T/ids2.txt"
run clip-tensor from-npy x "$T/a.npy" --ids "$T/ids2.txt" -o "$T/bad.cts"; expect_rc 2; expect_err "2 ids for 5 rows"
expect_no_file "$T/bad.cts"

case_ "uncompressed output (--level 0) reads back"
run clip-tensor cat --level 0 "$T/a.cts" -o "$T/raw.cts"; expect_rc 0
if [ "$(head -c 4 "$T/raw.cts" | od -An -tx1 | tr -d ' ')" != "28b52ffd" ]; then ok; else bad "level 0 is compressed"; fi
cat "$T/raw.cts" "$T/a.cts" | clip-tensor info >"$OUT" 2>"$ERR"; RC=$?; expect_rc 0; expect_out "items: 10"

case_ "truncated streams at every offset are errors (exit 2), never shorter valid data"
n=$(stat -c %s "$T/h.cts"); wrong=0
for ((i = 0; i < n; i++)); do
    head -c $i "$T/h.cts" > "$T/cut.cts"
    clip-tensor info "$T/cut.cts" >/dev/null 2>"$T/cut.err"; rc=$?
    [ $rc -eq 2 ] && grep -q "clip-tensor: " "$T/cut.err" || { wrong=$((wrong + 1)); echo "cut at $i: exit $rc" >&2; }
done
expect_eq "$wrong" 0
head -c $((n - 3)) "$T/h.cts" > "$T/cut.cts"
run clip-tensor info "$T/cut.cts"; expect_rc 2; expect_err "truncated"; expect_out_empty
run clip-tensor cat "$T/a.cts" "$T/cut.cts" -o "$T/partial.cts"; expect_rc 2; expect_no_file "$T/partial.cts"
run clip-tensor npy x "$T/cut.cts" -o "$T/partial.npy"; expect_rc 2; expect_no_file "$T/partial.npy"

case_ "corrupted stream"
cp "$T/a.cts" "$T/corrupt.cts"; printf '\xff\xff\xff\xff' | dd of="$T/corrupt.cts" bs=1 seek=40 conv=notrunc 2>/dev/null
run clip-tensor info "$T/corrupt.cts"; expect_rc 2; expect_err "corrupt"

case_ "not a stream, missing file, usage errors"
echo "hello" > "$T/text.txt"
run clip-tensor info "$T/text.txt"; expect_rc 2; expect_err "bad magic"
run clip-tensor info "$T/nonexistent.cts"; expect_rc 3; expect_err "cannot open"
run clip-tensor frobnicate; expect_rc 1; expect_err "unknown command"
run clip-tensor head "$T/a.cts" -o "$T/x.cts"; expect_rc 1; expect_err "needs -n"; expect_no_file "$T/x.cts"
run clip-tensor head -n abc "$T/a.cts"; expect_rc 1; expect_err "invalid value 'abc'"
run clip-tensor convert --dtype f64 "$T/a.cts" -o "$T/x.cts"; expect_rc 1; expect_no_file "$T/x.cts"
run clip-tensor npy missing -o "$T/m.npy" "$T/a.cts"; expect_rc 2; expect_err 'no tensor "missing"'; expect_no_file "$T/m.npy"
run clip-tensor --help; expect_rc 0; expect_out "Usage: clip-tensor"; expect_out "Example"
run clip-tensor --version; expect_rc 0; expect_out "clip-tensor"

case_ "different kinds do not concatenate"
printf 'x\n' > /dev/null
clip-tensor from-npy x "$T/a.npy" --kind other -o "$T/other.cts"
run clip-tensor cat "$T/a.cts" "$T/other.cts" -o "$T/mix.cts"; expect_rc 2; expect_err "differs"; expect_no_file "$T/mix.cts"
cat "$T/a.cts" "$T/other.cts" > "$T/mix2.cts"
run clip-tensor info "$T/mix2.cts"; expect_rc 2; expect_err "kind"

case_ "hostile npy"
head -c 100 "$T/a.npy" > "$T/short.npy"
run clip-tensor from-npy x "$T/short.npy" -o "$T/y.cts"; expect_rc 2; expect_no_file "$T/y.cts"
run clip-tensor from-npy x "$T/text.txt" -o "$T/y.cts"; expect_rc 2; expect_err "not a .npy"

case_ "Python interop: C writes, Python reads; Python writes, C reads"
if [ -x "$PY" ] && "$PY" -c "import msgpack, zstandard, numpy" 2>/dev/null; then
    run "$PY" - "$ROOT/scripts" "$T" <<'PYEOF'
import sys, numpy as np
sys.path.insert(0, sys.argv[1]); T = sys.argv[2]
import cliplens_stream as cs
items = list(cs.read_stream(T + "/c.cts"))
assert len(items) == 15 and items[0][2]["x"].shape == (4, 3), items[:1]
rng = np.random.RandomState(1)
a = rng.randn(6, 2, 5).astype("<f4")
cs.write_stream(T + "/py.cts", "image", [(f"p{i}", {"label": i % 2, "path": f"x{i}.png"},
                {"embedding": a[i], "ids": np.arange(4, dtype="<i4"), "m": np.ones((2, 2), "u1")}) for i in range(6)])
np.save(T + "/py_ref.npy", a)
print("python ok")
PYEOF
    expect_rc 0; expect_out "python ok"
    run clip-tensor info "$T/py.cts"; expect_rc 0; expect_out "items: 6"; expect_out "tensor: ids i32 [4]"; expect_out "label path"
    run clip-tensor npy embedding -o "$T/py_back.npy" "$T/py.cts"; expect_rc 0
    run "$PY" -c "import numpy as np, sys; a=np.load('$T/py_ref.npy'); b=np.load('$T/py_back.npy'); assert (a==b).all(); print('equal')"
    expect_out "equal"
    run clip-tensor select --meta label=1 "$T/py.cts" -o "$T/py1.cts"; run clip-tensor info "$T/py1.cts"; expect_out "items: 3"
else
    echo "SKIP python interop: /usr/bin/python3 with msgpack, zstandard, numpy not found"
fi
finish
