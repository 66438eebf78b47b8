#!/usr/bin/python3
"""decompose_reference.py - an independent PyTorch implementation of the decomposition of
common/decompose.h (SPEC §5, §9), written the papers' way: every head's output at every
source token is materialised in the residual width, then LN_post is linearised and the
projection applied; second-order neuron effects pass each neuron's per-token output
through every later layer's linearised ln_1, W_V, attention and W_O explicitly.
Imports the model, loader and forward pass of scripts/reference.py.

  decompose_reference.py golden [OUTDIR]     goldens for the committed fixture models
                                             (default tests/fixtures/decompose)
  decompose_reference.py bench MODELDIR [--threads 2] [--batch 1] [--iters 3]
                         [--second-order L-3] [--neurons 128] [--neuron-chunk 32]
                                             the PyTorch side of bench/decompose.sh

Dimension legend: B batch, L layers, H heads, Dh head width, N tokens, D width,
M MLP width, E embedding dim.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = ["vit-tiny-gelu", "vit-tiny-hw20"]


def blk(l):
    return f"visual.transformer.resblocks.{l}."


def ln_post_linear(sd, c, cap, parts, share, conv):
    """Map summands parts [B, ..., D] of the final CLS residual through the linearised
    LN_post and the projection: P (g (c - m) / std + beta); uniform: m = mu * share,
    beta = b * share; centered: m = mean(c), beta = 0.  -> [B, ..., E]"""
    g, b, P = sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], sd["visual.proj"]
    extra = parts.dim() - 2
    mu = cap["post_mean"].reshape(-1, *([1] * (extra + 1)))
    std = cap["post_std"].reshape(-1, *([1] * (extra + 1)))
    if conv == "uniform":
        y = g * (parts - mu * share) / std + b * share
    else:
        y = g * (parts - parts.mean(-1, keepdim=True)) / std
    return y @ P


def head_token_outputs(sd, c, cap, l):
    """What head h of layer l writes into the CLS token from source token i, with b_O split
    evenly over heads and tokens: [B, N, H, D]."""
    H, D, N = c["heads"], c["width"], c["tokens"]
    Dh = D // H
    A = cap["attn"][l][:, :, 0, :]                                   # [B, H, N] CLS query row
    v = cap["values"][l].reshape(-1, N, H, Dh)                       # [B, N, H, Dh] incl. b_V
    Wo = sd[blk(l) + "attn.out_proj.weight"].reshape(D, H, Dh)       # [D, H, Dh]
    out = torch.einsum("bhi,bihc,dhc->bihd", A, v, Wo)               # [B, N, H, D]
    return out + sd[blk(l) + "attn.out_proj.bias"] / (H * N)


def decompose(sd, c, cap, emb, conv, neuron_layer):
    """Every part of the decomposition of a batch, as in common/decompose.h."""
    L, H, N, M = c["layers"], c["heads"], c["tokens"], c["mlp"]
    K = 2 * L + 1
    norm = emb.norm(dim=-1)                                          # [B]
    out = {"embedding": emb / norm[:, None]}
    x0 = cap["resid"][0][:, 0]                                       # [B, D] CLS entering block 0
    out["embed"] = ln_post_linear(sd, c, cap, x0, 1 / K, conv) / norm[:, None]
    heads = torch.stack([head_token_outputs(sd, c, cap, l) for l in range(L)], 1)  # [B, L, N, H, D]
    heads = ln_post_linear(sd, c, cap, heads, 1 / (K * H * N), conv)  # [B, L, N, H, E]
    out["heads"] = heads.permute(0, 1, 3, 2, 4) / norm[:, None, None, None, None]  # [B, L, H, N, E]
    mlps = torch.stack([cap["mlp_out_cls"][l] for l in range(L)], 1)  # [B, L, D]
    out["mlps"] = ln_post_linear(sd, c, cap, mlps, 1 / K, conv) / norm[:, None, None]
    if conv == "centered":
        out["bias"] = (sd["visual.ln_post.bias"] @ sd["visual.proj"]).expand_as(emb) / norm[:, None]
    act = cap["mlp_act"][neuron_layer][:, 0]                         # [B, M] at CLS
    W = sd[blk(neuron_layer) + "mlp.c_proj.weight"]                  # [D, M]
    per_neuron = act[:, :, None] * W.t()[None]                       # [B, M, D]
    out["neurons"] = ln_post_linear(sd, c, cap, per_neuron, 1 / (K * M), conv) / norm[:, None, None]
    return out


def second_order_direct(sd, c, cap, emb, l2):
    """P2's second-order effect of every neuron of MLP layer l2, the slow way: its output
    act[i, n] w_n at every token i through each later layer's ln_1 linearised at that token
    (centred, scaled by g / std_i), W_V, the CLS attention weight, W_O; then LN_post
    linearised (centred) and P.  [B, M, E]"""
    L, H, D, N = c["layers"], c["heads"], c["width"], c["tokens"]
    Dh = D // H
    act = cap["mlp_act"][l2]                                         # [B, N, M]
    W = sd[blk(l2) + "mlp.c_proj.weight"]                            # [D, M]
    y = act[..., None] * W.t()[None, None]                           # [B, N, M, D] per token and neuron
    total = torch.zeros(act.shape[0], act.shape[2], D, dtype=act.dtype)
    for lp in range(l2 + 1, L):
        p = blk(lp)
        std = cap["ln1_std"][lp]                                     # [B, N]
        ln = sd[p + "ln_1.weight"] * (y - y.mean(-1, keepdim=True)) / std[:, :, None, None]
        Wv = sd[p + "attn.in_proj_weight"][2 * D:3 * D]              # [D, D]
        v = (ln @ Wv.t()).reshape(*ln.shape[:3], H, Dh)              # [B, N, M, H, Dh], no b_V
        A = cap["attn"][lp][:, :, 0, :]                              # [B, H, N]
        ctx = torch.einsum("bhi,bimhc->bmhc", A, v)                  # [B, M, H, Dh]
        Wo = sd[p + "attn.out_proj.weight"].reshape(D, H, Dh)
        total = total + torch.einsum("bmhc,dhc->bmd", ctx, Wo)       # [B, M, D]
    out = ln_post_linear(sd, c, cap, total, None, "centered")
    return out / emb.norm(dim=-1)[:, None, None]


def forward64(sd, c, pixels):
    sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    cap = {}
    with torch.no_grad():
        emb = R.encode_image(sd64, c, pixels.double(), cap)
    return sd64, cap, emb


def check_sums(name, out, L):
    """Every granularity sums to the normalised embedding (a self-check of the reference)."""
    total = out["embed"] + out["heads"].sum((1, 2, 3)) + out["mlps"].sum(1)
    if "bias" in out:
        total = total + out["bias"]
    rel = ((total - out["embedding"]).norm() / out["embedding"].norm()).item()
    if rel > 1e-10:
        raise SystemExit(f"decompose_reference.py: {name}: parts sum off by {rel:.3g}")


def check_bench_path(sd, c, pixels, t, l2):
    """The bench's papers'-way functions give the goldens (so what is timed is right)."""
    emb, rec = papers_forward(sd, c, pixels, "spatial")
    got = {"uniform.heads": papers_heads(sd, c, rec, emb, True).permute(0, 1, 3, 2, 4)}
    emb, rec = papers_forward(sd, c, pixels, "heads")
    heads = papers_heads(sd, c, rec, emb, False)
    rel = ((heads - t["uniform.heads"].sum(3)).norm() / heads.norm()).item()
    if rel > 1e-10:
        raise SystemExit(f"decompose_reference.py: bench path heads differ from the golden by {rel:.3g}")
    emb, rec = papers_forward(sd, c, pixels, None, second=l2)
    got["neurons2"] = papers_second_order(sd, c, rec, emb, l2, c["mlp"], 7)
    for k, v in got.items():
        rel = ((v - t[k]).norm() / t[k].norm()).item()
        if rel > 1e-10:
            raise SystemExit(f"decompose_reference.py: bench path {k} differs from the golden by {rel:.3g}")


def cmd_golden(a):
    os.makedirs(a.outdir, exist_ok=True)
    for fx in FIXTURES:
        c, sd = R.load_dir(os.path.join(ROOT, "tests/fixtures/models", fx + "-hf"))
        pixels = R.read_safetensors(os.path.join(ROOT, "tests/fixtures/golden", fx + ".safetensors"))["pixels"]
        sd64, cap, emb = forward64(sd, c, pixels)
        L = c["layers"]
        n1, n2 = L - 1, 0
        t = {}
        with torch.no_grad():
            for conv in ("uniform", "centered"):
                out = decompose(sd64, c, cap, emb, conv, n1)
                check_sums(f"{fx} {conv}", out, L)
                for k, v in out.items():
                    if k != "embedding":
                        t[f"{conv}.{k}"] = v
            t["embedding"] = out["embedding"]
            t["neurons2"] = second_order_direct(sd64, c, cap, emb, n2)
            check_bench_path(sd64, c, pixels.double(), t, n2)
        path = os.path.join(a.outdir, fx + ".safetensors")
        R.write_safetensors(path, t, torch.float32,
                            {"neurons_layer": str(n1), "second_order_layer": str(n2), "images": "golden/" + fx})
        print(f"{path}: {len(t)} tensors, {os.path.getsize(path)} bytes")


# ---------------------------------------------------------------- bench (papers' way)

def attention_layer(sd, c, x, l, method, heads_out):
    """One attention layer -> (output [B, N, D], attention [B, H, N, N]).  As P1's hooked
    attention computes it, per query token: method "spatial" materialises W_O,h A v per query,
    source token and head ([B, N, N, H, D]); "heads" per query and head ([B, N, H, D]); the
    CLS query's slice, with b_O split evenly, goes to heads_out.  None: plain attention."""
    B, N, D = x.shape
    H = c["heads"]
    Dh = D // H
    p = blk(l)
    h, _, _ = R.layer_norm(x, sd, p + "ln_1", c["eps"])
    qkv = torch.nn.functional.linear(h, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"])
    q, k, v = (t.reshape(B, N, H, Dh).transpose(1, 2) for t in qkv.split(D, dim=-1))
    attn = ((q * Dh ** -0.5) @ k.transpose(-1, -2)).softmax(-1)      # [B, H, N, N]
    Wo, bo = sd[p + "attn.out_proj.weight"].reshape(D, H, Dh), sd[p + "attn.out_proj.bias"]
    if method == "spatial":
        per = torch.einsum("bhnm,bhmc->bnmhc", attn, v)              # [B, N, N, H, Dh]
        per = torch.einsum("bnmhc,dhc->bnmhd", per, Wo)              # [B, N, N, H, D]
        heads_out.append(per[:, 0] + bo / (H * N))                   # [B, N, H, D]
        return per.sum((2, 3)) + bo, attn
    if method == "heads":
        per = torch.einsum("bhnm,bhmc->bnhc", attn, v)               # [B, N, H, Dh]
        per = torch.einsum("bnhc,dhc->bnhd", per, Wo)                # [B, N, H, D]
        heads_out.append(per[:, 0] + bo / H)                         # [B, H, D]
        return per.sum(2) + bo, attn
    ctx = (attn @ v).transpose(1, 2).reshape(B, N, D)
    return torch.nn.functional.linear(ctx, sd[p + "attn.out_proj.weight"], bo), attn


def papers_forward(sd, c, pixels, method=None, second=None):
    """Forward pass recording per-head outputs of the CLS query (see attention_layer), MLP
    outputs at CLS and LN_post statistics; second = l2 records the activations of MLP l2 and
    the later layers' ln_1 stds and CLS attention the direct second-order formula needs."""
    P = c["patch"]
    B = pixels.shape[0]
    f = R.act_fn(c["act"])
    x = torch.nn.functional.conv2d(pixels, sd["visual.conv1.weight"], stride=P).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(B, 1, -1), x], 1) + sd["visual.positional_embedding"]
    x, _, _ = R.layer_norm(x, sd, "visual.ln_pre", c["eps"])
    rec = {"heads": [], "mlps": [], "x0": x[:, 0], "attn": {}, "ln1_std": {}}
    for l in range(c["layers"]):
        p = blk(l)
        ao, attn = attention_layer(sd, c, x, l, method, rec["heads"])
        if second is not None and l > second:
            _, _, rec["ln1_std"][l] = R.layer_norm(x, sd, p + "ln_1", c["eps"])
            rec["attn"][l] = attn[:, :, 0]
        x = x + ao
        h2, _, _ = R.layer_norm(x, sd, p + "ln_2", c["eps"])
        hid = f(torch.nn.functional.linear(h2, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]))
        if l == second:
            rec["act"] = hid
        mo = torch.nn.functional.linear(hid, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        rec["mlps"].append(mo[:, 0])
        x = x + mo
    pooled, rec["post_mean"], rec["post_std"] = R.layer_norm(x[:, 0], sd, "visual.ln_post", c["eps"])
    return pooled @ sd["visual.proj"], rec


def papers_heads(sd, c, rec, emb, tokens):
    """P1's uniform convention on the materialised head outputs: [B, L, N, H, E] from
    method "spatial" (tokens), [B, L, H, E] from method "heads"."""
    L, H, N = c["layers"], c["heads"], c["tokens"]
    cap = {"post_mean": rec["post_mean"], "post_std": rec["post_std"]}
    heads = torch.stack(rec["heads"], 1)
    out = ln_post_linear(sd, c, cap, heads, 1 / ((2 * L + 1) * H * (N if tokens else 1)), "uniform")
    return out / emb.norm(dim=-1).reshape(-1, *([1] * (out.dim() - 1)))


def papers_second_order(sd, c, rec, emb, l2, neurons, chunk):
    """The direct second-order formula for the first `neurons` neurons, `chunk` at a time."""
    L, H, D = c["layers"], c["heads"], c["width"]
    Dh = D // H
    W = sd[blk(l2) + "mlp.c_proj.weight"]
    cap = {"post_mean": rec["post_mean"], "post_std": rec["post_std"]}
    outs = []
    for n0 in range(0, neurons, chunk):
        act = rec["act"][:, :, n0:n0 + chunk]                        # [B, N, m]
        y = act[..., None] * W[:, n0:n0 + chunk].t()[None, None]     # [B, N, m, D]
        total = 0
        for lp in range(l2 + 1, L):
            p = blk(lp)
            ln = sd[p + "ln_1.weight"] * (y - y.mean(-1, keepdim=True)) / rec["ln1_std"][lp][:, :, None, None]
            v = (ln @ sd[p + "attn.in_proj_weight"][2 * D:3 * D].t()).reshape(*ln.shape[:3], H, Dh)
            ctx = torch.einsum("bhi,bimhc->bmhc", rec["attn"][lp], v)
            total = total + torch.einsum("bmhc,dhc->bmd", ctx, sd[p + "attn.out_proj.weight"].reshape(D, H, Dh))
        outs.append(ln_post_linear(sd, c, cap, total, None, "centered"))
    return torch.cat(outs, 1) / emb.norm(dim=-1)[:, None, None]


def cmd_bench(a):
    """Wall and CPU seconds per image: encode (the module model), the papers' heads and heads x tokens
    (P1's per-query head outputs, per source token for tokens, materialised), and P2's direct second-order
    formula for one layer (timed on a subset of neurons and scaled to all M: its cost is
    linear in the neurons).  The decompositions are slow: timed once, without warm-up."""
    torch.set_num_threads(a.threads)
    c, sd = R.load_dir(a.modeldir)
    model = R.build_module(sd, c).visual
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, c["image_size"], c["image_size"], generator=g)
    l2 = a.second_order if a.second_order >= 0 else c["layers"] - 3
    k = min(a.neurons, c["mlp"])

    def timed(fn, iters, warm):
        """(wall, CPU) seconds per image"""
        if warm:
            fn()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            fn()
        n = iters * a.batch
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

    def heads(tokens):
        emb, rec = papers_forward(sd, c, x, "spatial" if tokens else "heads")
        return papers_heads(sd, c, rec, emb, tokens)

    with torch.inference_mode():
        enc = timed(lambda: model(x), a.iters, True)
        hd = timed(lambda: heads(False), a.iters, True)
        tok = timed(lambda: heads(True), 1, False)
        # second order: the forward, then the direct formula on k neurons scaled to all M
        t0, c0 = time.perf_counter(), time.process_time()
        emb, rec = papers_forward(sd, c, x, None, second=l2)
        t1, c1 = time.perf_counter(), time.process_time()
        papers_second_order(sd, c, rec, emb, l2, k, a.neuron_chunk)
        t2, c2 = time.perf_counter(), time.process_time()
        scale = c["mlp"] / k
        sec = ((t1 - t0 + (t2 - t1) * scale) / a.batch, (c1 - c0 + (c2 - c1) * scale) / a.batch)
    print(f"torch encode_s {enc[0]:.4f} heads_s {hd[0]:.4f} tokens_s {tok[0]:.4f} second_s {sec[0]:.4f} "
          f"encode_cpu {enc[1]:.4f} heads_cpu {hd[1]:.4f} tokens_cpu {tok[1]:.4f} second_cpu {sec[1]:.4f} "
          f"second_layer {l2} second_neurons_timed {k} batch {a.batch} threads {torch.get_num_threads()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("golden")
    p.add_argument("outdir", nargs="?", default=os.path.join(ROOT, "tests/fixtures/decompose"))
    p.set_defaults(fn=cmd_golden)
    p = sub.add_parser("bench")
    p.add_argument("modeldir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--second-order", type=int, default=-1)
    p.add_argument("--neurons", type=int, default=128)
    p.add_argument("--neuron-chunk", type=int, default=32)
    p.set_defaults(fn=cmd_bench)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
