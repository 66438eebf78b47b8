"""cliplens_stream - read and write cliplens tensor streams (formats/STREAM.md) from Python.

    from cliplens_stream import read_stream
    for id, meta, tensors in read_stream("heads.cts"):
        print(id, meta.get("label"), tensors["heads"].shape)

Needs msgpack, zstandard and numpy (Debian: python3-msgpack python3-zstandard python3-numpy).
"""
import sys
import msgpack, numpy as np, zstandard

DTYPES = {"f32": "<f4", "f16": "<f2", "i32": "<i4", "u8": "u1", "bf16": "<u2"}


def _array(t):
    a = np.frombuffer(t["data"], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    if t["dtype"] == "bf16":  # numpy has no bfloat16: widen to f32 exactly
        a = (a.astype("<u4") << 16).view("<f4")
    return a


def read_stream(path_or_file):
    """Yield (id, meta, {name: ndarray}) for every item; raise ValueError on a truncated stream."""
    f = sys.stdin.buffer if path_or_file == "-" else (
        open(path_or_file, "rb") if isinstance(path_or_file, str) else path_or_file)
    magic = f.peek(4)[:4] if hasattr(f, "peek") else b""
    if magic == b"\x28\xb5\x2f\xfd":
        f = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    header, count, ended = None, 0, True
    for rec in msgpack.Unpacker(f, raw=False, max_buffer_size=2**32):
        if "cliplens" in rec:
            if not ended or (header and rec["kind"] != header["kind"]):
                raise ValueError("unexpected or mismatched header")
            header, count, ended = header or rec, 0, False
        elif "end" in rec and "t" not in rec:
            if rec["end"] != count:
                raise ValueError("count mismatch: trailer %d, items %d" % (rec["end"], count))
            ended = True
        else:
            count += 1
            yield rec["id"], rec.get("meta") or {}, {k: _array(t) for k, t in rec["t"].items()}
    if header is None or not ended:
        raise ValueError("truncated stream: no trailer")


def write_stream(path, kind, items, model=None, meta=None, level=3):
    """Write items, an iterable of (id, meta, {name: ndarray}), as one zstd-compressed stream."""
    names = {np.dtype("<f4"): "f32", np.dtype("<f2"): "f16", np.dtype("<i4"): "i32", np.dtype("u1"): "u8"}
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with open(path, "wb") as raw, cctx.stream_writer(raw) as out:
        pack = msgpack.Packer(use_bin_type=True).pack
        out.write(pack({"cliplens": 1, "kind": kind, "model": model, "meta": meta or {}}))
        n = 0
        for id, m, tensors in items:
            t = {}
            for k, a in tensors.items():
                a = np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<"))
                t[k] = {"dtype": names[a.dtype], "shape": list(a.shape), "data": a.tobytes()}
            out.write(pack({"id": id, "meta": m, "t": t}))
            n += 1
        out.write(pack({"end": n}))
