#!/usr/bin/python3
"""textspan_reference.py - TextSpan the way P1's code runs it (numpy SVD, float32 torch
loops over N x M products), for parity goldens of common/textspan.c and the speed
comparison in bench/textspan.sh.

P1's procedure, per head, on C [N,E] and texts T [M,E] (normalised):
  1. SVD of C as it is (not centred); the top-r right singular vectors V [r,E];
     T <- T V'(V V')^-1 V (projection onto their span; the texts are not renormalised).
  2. C <- C - mean(C).
  3. m times: s = std over images of C T' (unbiased, T unnormalised); pick k = argmax s;
     t = T[k]; the reconstruction gains (C t / |t|^2) t'; C <- C - (C t / |t|^2) t';
     T <- T - (T t / |t|^2) t'.
The one change, also made by the C code: r is capped at the numerical rank of C
(singular values above s_max * max(N, E) * eps(float32), numpy's matrix_rank rule),
because directions beyond it are arbitrary null-space vectors of the SVD routine.

Subcommands:
  run --parts P.cts --pool POOL.cts [--layers 0,1] [--per-head m] [--rank r] -o OUT.cts
      TextSpan for every head of the chosen layers; OUT is a kind "textspan" stream as
      clip-textspan writes it, plus per item "recon" [N,E] (P1's reconstruction),
      meta "std" (P1's criterion at each pick), "margin" ((best - second) / best std at
      each pick: near-ties are where float32 and double may part) and "indices";
      --picks FILE also writes the texts as TSV (L.H, then the texts in order).
  synth --seed S -o DIR      synthetic fixtures with planted text directions
  bench [--n 10000 --dim 768 --texts 3498 --per-head 20]
      random data; time P1-style TextSpan of one head (CPU, torch threads as set).
"""
import argparse, json, os, sys, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliplens_stream import read_stream, write_stream  # noqa: E402


def numerical_rank(s, shape):
    """numpy's matrix_rank rule for float32 data, on singular values s (descending)."""
    if len(s) == 0:
        return 0
    tol = s[0] * max(shape) * np.finfo(np.float32).eps
    return int((s > tol).sum())


@torch.no_grad()
def p1_textspan(data, texts, iters, rank):
    """P1's loop. data [N,E] float32 ndarray, texts [M,E] float32 ndarray.
    Returns (indices, stds, reconstruction [N,E] float32, directions [m,E] unit, the
    rank used, margins: (best - second best) / best std at each pick)."""
    _, s, vh = np.linalg.svd(data, full_matrices=False)
    rank = min(rank, numerical_rank(s, data.shape))
    vh = vh[:rank]
    proj = vh.T.dot(np.linalg.inv(vh.dot(vh.T))).dot(vh)  # [E,E] onto span(vh)
    t = torch.from_numpy(proj.dot(texts.T).T.astype(np.float32))
    c = torch.from_numpy(data).float()
    mu = c.mean(dim=0, keepdim=True)
    c = c - mu
    recon = mu.repeat(c.shape[0], 1)
    picked, stds, dirs, margins = [], [], [], []
    for _ in range(min(iters, rank, texts.shape[0])):
        sd = (c @ t.T).std(dim=0)
        k = int(np.argmax(sd.numpy()))
        top2 = torch.topk(sd, min(2, sd.shape[0])).values
        margins.append(float((top2[0] - top2[-1]) / top2[0]) if len(top2) > 1 and top2[0] > 0 else 1.0)
        tk = t[k].clone()
        nrm2 = tk @ tk
        if not float(nrm2) > 0:
            break
        picked.append(k)
        stds.append(float(sd[k]))
        dirs.append((tk / torch.sqrt(nrm2)).numpy())
        coef = (c @ tk) / nrm2
        recon = recon + coef[:, None] * tk[None, :]
        c = c - coef[:, None] * tk[None, :]
        t = t - ((t @ tk) / nrm2)[:, None] * tk[None, :]
    dirs = np.array(dirs, dtype=np.float32).reshape(len(picked), data.shape[1])
    return picked, stds, recon.numpy(), dirs, rank, margins[:len(picked)]


def load_pool(path):
    texts, embs = [], []
    for _, meta, t in read_stream(path):
        texts.append(meta.get("text", ""))
        embs.append(t["embedding"].astype(np.float32))
    T = np.array(embs, dtype=np.float32)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    return texts, T


def load_heads(path):
    """{layer: [N,H,E]} from a decompose stream (tokens summed), and the header's model."""
    rows, layers = [], None
    for _, meta, t in read_stream(path):
        h = t["heads"].astype(np.float32)
        if h.ndim == 4:
            h = h.sum(axis=2)
        rows.append(h)
        if layers is None:
            layers = list(t["layers"]) if "layers" in t else list(range(h.shape[0]))
    heads = np.stack(rows)  # [N,L',H,E]
    return {int(l): heads[:, i] for i, l in enumerate(layers)}


def cmd_run(a):
    texts, T = load_pool(a.pool)
    by_layer = load_heads(a.parts)
    layers = sorted(by_layer)[-4:] if a.layers is None else [int(x) for x in a.layers.split(",")]
    items = []
    for l in layers:
        H = by_layer[l].shape[1]
        for h in range(H):
            C = np.ascontiguousarray(by_layer[l][:, h])
            idx, stds, recon, dirs, rank, margins = p1_textspan(C, T, a.per_head, a.rank)
            Cc = C.astype(np.float64) - C.astype(np.float64).mean(0)
            total = float((Cc ** 2).sum() / (C.shape[0] - 1))
            var = [float(((Cc @ d.astype(np.float64)) ** 2).sum() / (C.shape[0] - 1)) for d in dirs]
            meta = {"layer": l, "head": h, "texts": [texts[i] for i in idx], "variance": var,
                    "indices": idx, "std": stds, "margin": margins, "rank": rank, "total_variance": total}
            items.append(("%d.%d" % (l, h), meta, {"basis": dirs, "mean": C.mean(0).astype(np.float32),
                                                    "recon": recon.astype(np.float32)}))
    write_stream(a.output, "textspan", items, meta={"rank": a.rank, "per_head": a.per_head})
    if a.picks:
        with open(a.picks, "w") as f:
            for id, meta, _ in items:
                f.write("\t".join([id] + meta["texts"]) + "\n")


def unit(v):
    return v / np.linalg.norm(v)


def cmd_synth(a):
    """Fixtures: a text pool and a decompose stream whose heads are built from known
    text directions with decreasing variances, plus mean offsets and noise."""
    rng = np.random.default_rng(a.seed)
    E, M, N, L, H = a.dim, a.texts, a.n, 2, 3
    T = np.array([unit(rng.standard_normal(E)) for _ in range(M)], dtype=np.float32)
    os.makedirs(a.output, exist_ok=True)
    write_stream(os.path.join(a.output, "pool.cts"), "text",
                 [(str(j), {"text": "text %02d" % j}, {"embedding": T[j]}) for j in range(M)])
    heads = np.zeros((N, L, H, E), dtype=np.float32)
    planted = {}
    for l in range(L):
        for h in range(H):
            js = rng.choice(M, size=4, replace=False)
            sig = np.array([3.0, 2.0, 1.3, 0.8]) * (0.5 + l)
            z = rng.standard_normal((N, 4)) * sig
            mu = rng.standard_normal(E) * 2.0
            c = mu + z @ T[js].astype(np.float64)
            if h == 1:   # low-rank noise: the head spans 10 dims (rank cap below 80)
                B = np.linalg.qr(rng.standard_normal((E, 6)))[0].T
                c += (rng.standard_normal((N, 6)) * 0.1) @ B
            else:        # full-rank isotropic noise
                c += rng.standard_normal((N, E)) * 0.05
            heads[:, l, h] = c
            planted["%d.%d" % (l, h)] = [int(j) for j in js]
    mlps = rng.standard_normal((N, L, E)).astype(np.float32) * 0.1
    embed = rng.standard_normal((N, E)).astype(np.float32) * 0.1
    items = []
    for i in range(N):
        emb = embed[i] + heads[i].sum(axis=(0, 1)) + mlps[i].sum(axis=0)
        items.append(("img%03d" % i, {"label": int(i % 2), "group": int(i % 4)},
                      {"embedding": emb, "heads": heads[i], "mlps": mlps[i], "embed": embed[i]}))
    write_stream(os.path.join(a.output, "parts.cts"), "decompose", items)
    with open(os.path.join(a.output, "planted.json"), "w") as f:
        json.dump(planted, f, indent=1, sort_keys=True)


def cmd_bench(a):
    rng = np.random.default_rng(0)
    # random components with a decaying spectrum, like a head's
    scales = (1.0 / np.arange(1, a.dim + 1) ** 0.7).astype(np.float32)
    C = (rng.standard_normal((a.n, a.dim), dtype=np.float32) * scales) @ \
        np.linalg.qr(rng.standard_normal((a.dim, a.dim)))[0].astype(np.float32)
    C = C.astype(np.float32)
    T = rng.standard_normal((a.texts, a.dim), dtype=np.float32)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    if a.save:
        np.save(a.save + "_data.npy", C)
        np.save(a.save + "_texts.npy", T)
    torch.set_num_threads(a.threads)
    t0, c0 = time.time(), time.process_time()
    idx, _, _, _, rank, _ = p1_textspan(C, T, a.per_head, a.rank)
    dt, dc = time.time() - t0, time.process_time() - c0
    print("p1-style textspan: N=%d E=%d M=%d m=%d r=%d: %.2f s per head, cpu %.2f s (torch threads %d)"
          % (a.n, a.dim, a.texts, a.per_head, rank, dt, dc, torch.get_num_threads()))
    print("picks: " + " ".join(str(i) for i in idx))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--parts", required=True)
    r.add_argument("--pool", required=True)
    r.add_argument("--layers")
    r.add_argument("--per-head", type=int, default=10)
    r.add_argument("--rank", type=int, default=80)
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--picks", help="also write the picked texts as TSV: L.H, then the texts in order")
    s = sub.add_parser("synth")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--dim", type=int, default=24)
    s.add_argument("--texts", type=int, default=48)
    s.add_argument("--n", type=int, default=240)
    s.add_argument("-o", "--output", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--n", type=int, default=10000)
    b.add_argument("--dim", type=int, default=768)
    b.add_argument("--texts", type=int, default=3498)
    b.add_argument("--per-head", type=int, default=20)
    b.add_argument("--rank", type=int, default=80)
    b.add_argument("--threads", type=int, default=os.cpu_count())
    b.add_argument("--save", help="also save the data and texts as PREFIX_data.npy, PREFIX_texts.npy")
    a = ap.parse_args()
    {"run": cmd_run, "synth": cmd_synth, "bench": cmd_bench}[a.cmd](a)


if __name__ == "__main__":
    main()
