#!/usr/bin/python3
"""reference.py - a self-contained PyTorch CLIP: random-weight models in HF and OpenCLIP
layouts, golden outputs for the C tests, and the PyTorch side of bench/encode.sh.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy); no open_clip or transformers.

  reference.py make-fixtures OUTDIR            tiny models (both layouts) + goldens
  reference.py make-model --arch B/16 [--layout hf|openclip|both] [--dtype f32|f16|bf16] OUTDIR
  reference.py golden MODELDIR OUT.safetensors [--images 2] [--texts 3] [--no-intermediates]
  reference.py bench MODELDIR --threads T --batch B --iters K
  reference.py selfcheck MODELDIR              functional forward vs torch.nn modules

Dimension legend: B batch, L layers, H heads, N tokens (1 + patches), D width,
M MLP width, E joint embedding dim, S image size, P patch, C context length.

The functional forward (encode_image/encode_text) is written step by step so it can
capture intermediates; `selfcheck` compares it with a module-based model built from
torch.nn.MultiheadAttention/LayerNorm/GELU the way OpenCLIP builds its towers.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

# Real architectures (OpenAI / OpenCLIP shapes).
ARCHS = {
    "B/32": dict(image_size=224, patch=32, width=768, layers=12, heads=12, embed=512,
                 t_width=512, t_heads=8, t_layers=12, context=77, vocab=49408, act="quick_gelu"),
    "B/16": dict(image_size=224, patch=16, width=768, layers=12, heads=12, embed=512,
                 t_width=512, t_heads=8, t_layers=12, context=77, vocab=49408, act="quick_gelu"),
    "L/14": dict(image_size=224, patch=14, width=1024, layers=24, heads=16, embed=768,
                 t_width=768, t_heads=12, t_layers=12, context=77, vocab=49408, act="quick_gelu"),
    # H/14's head width (80) and GELU at a size that generates in a second (for tests)
    "H/14-mini": dict(image_size=56, patch=14, width=160, layers=2, heads=2, embed=64,
                      t_width=160, t_heads=2, t_layers=2, context=77, vocab=49408, act="gelu"),
    "H/14": dict(image_size=224, patch=14, width=1280, layers=32, heads=16, embed=1024,
                 t_width=1024, t_heads=16, t_layers=24, context=77, vocab=49408, act="gelu"),
}


def full_config(c):
    """Fill defaults of a compact config dict."""
    c = dict(c)
    c.setdefault("mlp_ratio", 4.0)
    c.setdefault("t_mlp_ratio", 4.0)
    c.setdefault("eps", 1e-5)
    c.setdefault("mean", OPENAI_MEAN)
    c.setdefault("std", OPENAI_STD)
    c.setdefault("name", "clip")
    assert c["width"] % c["heads"] == 0 and c["t_width"] % c["t_heads"] == 0
    assert c["image_size"] % c["patch"] == 0
    c["mlp"] = int(c["width"] * c["mlp_ratio"])
    c["t_mlp"] = int(c["t_width"] * c["t_mlp_ratio"])
    c["tokens"] = 1 + (c["image_size"] // c["patch"]) ** 2
    return c


# ---------------------------------------------------------------- weights
def init_weights(c, seed):
    """Random weights in OpenCLIP state-dict naming (float32). LayerNorm weights and biases
    are random around 1 and 0 so that a forgotten or misplaced LN shows in the goldens."""
    g = torch.Generator().manual_seed(seed)

    def rn(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    sd = {}

    def ln(name, d):
        sd[name + ".weight"] = rn(d, std=0.2, mean=1.0)
        sd[name + ".bias"] = rn(d, std=0.2)

    def blocks(prefix, layers, d, m):
        attn_std, proj_std, fc_std = d ** -0.5, d ** -0.5 * (2 * layers) ** -0.5, (2 * d) ** -0.5
        for i in range(layers):
            p = f"{prefix}transformer.resblocks.{i}."
            ln(p + "ln_1", d)
            sd[p + "attn.in_proj_weight"] = rn(3 * d, d, std=attn_std * 1.5)
            sd[p + "attn.in_proj_bias"] = rn(3 * d, std=0.1)
            sd[p + "attn.out_proj.weight"] = rn(d, d, std=proj_std)
            sd[p + "attn.out_proj.bias"] = rn(d, std=0.05)
            ln(p + "ln_2", d)
            sd[p + "mlp.c_fc.weight"] = rn(m, d, std=fc_std)
            sd[p + "mlp.c_fc.bias"] = rn(m, std=0.1)
            sd[p + "mlp.c_proj.weight"] = rn(d, m, std=proj_std)
            sd[p + "mlp.c_proj.bias"] = rn(d, std=0.05)

    D, P, S = c["width"], c["patch"], c["image_size"]
    sd["visual.conv1.weight"] = rn(D, 3, P, P, std=(3 * P * P) ** -0.5)
    sd["visual.class_embedding"] = rn(D, std=D ** -0.5)
    sd["visual.positional_embedding"] = rn(c["tokens"], D, std=D ** -0.5)
    ln("visual.ln_pre", D)
    blocks("visual.", c["layers"], D, c["mlp"])
    ln("visual.ln_post", D)
    sd["visual.proj"] = rn(D, c["embed"], std=D ** -0.5)
    T = c["t_width"]
    sd["token_embedding.weight"] = rn(c["vocab"], T, std=0.02 * 10)
    sd["positional_embedding"] = rn(c["context"], T, std=0.01 * 10)
    blocks("", c["t_layers"], T, c["t_mlp"])
    ln("ln_final", T)
    sd["text_projection"] = rn(T, c["embed"], std=T ** -0.5)
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return sd


def round_weights(sd):
    """Round every weight to a value exact in both bf16 and f16 (8-bit mantissa, no f16
    subnormals), so every on-disk dtype holds the same model."""
    out = {}
    for k, v in sd.items():
        v = v.to(torch.bfloat16).float()
        v[v.abs() < 2.0 ** -14] = 0.0
        assert torch.equal(v.half().float(), v), k
        out[k] = v
    return out


def to_hf(sd, c):
    """OpenCLIP state dict -> HF transformers CLIPModel names."""
    hf = {}

    def blocks(src, dst, layers, d):
        for i in range(layers):
            s, t = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
            for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                hf[t + b + ".weight"] = sd[s + a + ".weight"]
                hf[t + b + ".bias"] = sd[s + a + ".bias"]
            w, bb = sd[s + "attn.in_proj_weight"], sd[s + "attn.in_proj_bias"]
            for j, n in enumerate("qkv"):
                hf[t + f"self_attn.{n}_proj.weight"] = w[j * d:(j + 1) * d].clone()
                hf[t + f"self_attn.{n}_proj.bias"] = bb[j * d:(j + 1) * d].clone()

    v = "vision_model."
    hf[v + "embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    hf[v + "embeddings.class_embedding"] = sd["visual.class_embedding"]
    hf[v + "embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    hf[v + "pre_layrnorm.weight"] = sd["visual.ln_pre.weight"]
    hf[v + "pre_layrnorm.bias"] = sd["visual.ln_pre.bias"]
    blocks("visual.", v, c["layers"], c["width"])
    hf[v + "post_layernorm.weight"] = sd["visual.ln_post.weight"]
    hf[v + "post_layernorm.bias"] = sd["visual.ln_post.bias"]
    hf["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    t = "text_model."
    hf[t + "embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    hf[t + "embeddings.position_embedding.weight"] = sd["positional_embedding"]
    blocks("", t, c["t_layers"], c["t_width"])
    hf[t + "final_layer_norm.weight"] = sd["ln_final.weight"]
    hf[t + "final_layer_norm.bias"] = sd["ln_final.bias"]
    hf["text_projection.weight"] = sd["text_projection"].t().contiguous()
    hf["logit_scale"] = sd["logit_scale"]
    # int64 bookkeeping buffers that older HF checkpoints carry (the loader must skip them)
    hf[t + "embeddings.position_ids"] = torch.arange(c["context"], dtype=torch.int64)[None]
    hf[v + "embeddings.position_ids"] = torch.arange(c["tokens"], dtype=torch.int64)[None]
    return hf


def from_hf(hf, c):
    """HF names -> OpenCLIP names (inverse of to_hf)."""
    sd = {}

    def blocks(src, dst, layers):
        for i in range(layers):
            s, t = f"{src}encoder.layers.{i}.", f"{dst}transformer.resblocks.{i}."
            for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                sd[t + a + ".weight"] = hf[s + b + ".weight"]
                sd[t + a + ".bias"] = hf[s + b + ".bias"]
            sd[t + "attn.in_proj_weight"] = torch.cat([hf[s + f"self_attn.{n}_proj.weight"] for n in "qkv"])
            sd[t + "attn.in_proj_bias"] = torch.cat([hf[s + f"self_attn.{n}_proj.bias"] for n in "qkv"])

    v = "vision_model."
    sd["visual.conv1.weight"] = hf[v + "embeddings.patch_embedding.weight"]
    sd["visual.class_embedding"] = hf[v + "embeddings.class_embedding"]
    sd["visual.positional_embedding"] = hf[v + "embeddings.position_embedding.weight"]
    sd["visual.ln_pre.weight"] = hf[v + "pre_layrnorm.weight"]
    sd["visual.ln_pre.bias"] = hf[v + "pre_layrnorm.bias"]
    blocks(v, "visual.", c["layers"])
    sd["visual.ln_post.weight"] = hf[v + "post_layernorm.weight"]
    sd["visual.ln_post.bias"] = hf[v + "post_layernorm.bias"]
    sd["visual.proj"] = hf["visual_projection.weight"].t().contiguous()
    t = "text_model."
    sd["token_embedding.weight"] = hf[t + "embeddings.token_embedding.weight"]
    sd["positional_embedding"] = hf[t + "embeddings.position_embedding.weight"]
    blocks(t, "", c["t_layers"])
    sd["ln_final.weight"] = hf[t + "final_layer_norm.weight"]
    sd["ln_final.bias"] = hf[t + "final_layer_norm.bias"]
    sd["text_projection"] = hf["text_projection.weight"].t().contiguous()
    if "logit_scale" in hf:
        sd["logit_scale"] = hf["logit_scale"]
    return sd


# ---------------------------------------------------------------- safetensors I/O
ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
             torch.int32: "I32"}
ST_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}


def write_safetensors(path, tensors, dtype=None, metadata=None):
    """Write tensors (name -> torch tensor) as 8-byte LE header length + JSON + data.
    dtype (torch float dtype) converts floating tensors; integers stay as they are."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # keep the data region 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """name -> float32 (or int64) torch tensor."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    out, base = {}, 8 + n
    for name, h in header.items():
        if name == "__metadata__":
            continue
        b, e = h["data_offsets"]
        raw = buf[base + b:base + e]
        dt = h["dtype"]
        if dt == "F32":
            a = torch.from_numpy(np.frombuffer(raw, np.float32).copy())
        elif dt == "F16":
            a = torch.from_numpy(np.frombuffer(raw, np.float16).copy()).float()
        elif dt == "BF16":
            a = torch.from_numpy(np.frombuffer(raw, np.int16).copy()).view(torch.bfloat16).float()
        elif dt == "I64":
            a = torch.from_numpy(np.frombuffer(raw, np.int64).copy())
        elif dt == "I32":
            a = torch.from_numpy(np.frombuffer(raw, np.int32).copy())
        else:
            raise ValueError(f"{path}: {name}: dtype {dt}")
        out[name] = a.reshape(h["shape"])
    return out


# ---------------------------------------------------------------- tokenizer files
def bytes_to_unicode():
    """CLIP's byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(x) for x in cs]))


SYNTH_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("i", "n"), ("o", "n</w>"),
                ("e", "r"), ("a", "t</w>"), ("c", "a"), ("ca", "t</w>")]


def synthetic_vocab():
    """A small CLIP-style BPE vocabulary: the 256 byte symbols, their </w> forms, a few merges,
    then <|startoftext|> and <|endoftext|> (the highest id)."""
    syms = list(bytes_to_unicode().values())
    vocab = syms + [s + "</w>" for s in syms] + ["".join(m) for m in SYNTH_MERGES]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}, SYNTH_MERGES


def write_tokenizer(outdir):
    vocab, merges = synthetic_vocab()
    with open(os.path.join(outdir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(outdir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return len(vocab)


# ---------------------------------------------------------------- model directories
def write_hf(outdir, sd, c, dtype, tokenizer=True):
    os.makedirs(outdir, exist_ok=True)
    act = c["act"]
    cfg = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c["embed"],
        "logit_scale_init_value": 2.6592,
        "text_config": {"model_type": "clip_text_model", "hidden_size": c["t_width"],
                        "intermediate_size": c["t_mlp"], "num_attention_heads": c["t_heads"],
                        "num_hidden_layers": c["t_layers"], "max_position_embeddings": c["context"],
                        "vocab_size": c["vocab"], "hidden_act": act, "layer_norm_eps": c["eps"],
                        "projection_dim": c["embed"], "bos_token_id": c["vocab"] - 2,
                        "eos_token_id": c["vocab"] - 1, "pad_token_id": 1},
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": c["width"],
                          "intermediate_size": c["mlp"], "num_attention_heads": c["heads"],
                          "num_hidden_layers": c["layers"], "image_size": c["image_size"],
                          "patch_size": c["patch"], "hidden_act": act, "layer_norm_eps": c["eps"],
                          "num_channels": 3, "projection_dim": c["embed"]},
    }
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    pre = {"crop_size": {"height": c["image_size"], "width": c["image_size"]}, "do_center_crop": True,
           "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
           "image_mean": c["mean"], "image_std": c["std"], "image_processor_type": "CLIPImageProcessor",
           "resample": 3, "rescale_factor": 1 / 255, "size": {"shortest_edge": c["image_size"]}}
    with open(os.path.join(outdir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    write_safetensors(os.path.join(outdir, "model.safetensors"), to_hf(sd, c), dtype, {"format": "pt"})
    if tokenizer:
        write_tokenizer(outdir)


def write_openclip(outdir, sd, c, dtype, tokenizer=True):
    os.makedirs(outdir, exist_ok=True)
    vision = {"image_size": c["image_size"], "layers": c["layers"], "width": c["width"],
              "head_width": c["width"] // c["heads"], "patch_size": c["patch"], "mlp_ratio": c["mlp_ratio"]}
    text = {"context_length": c["context"], "vocab_size": c["vocab"], "width": c["t_width"],
            "heads": c["t_heads"], "layers": c["t_layers"], "mlp_ratio": c["t_mlp_ratio"]}
    if c["eps"] != 1e-5:
        vision["norm_kwargs"] = {"eps": c["eps"]}
        text["norm_kwargs"] = {"eps": c["eps"]}
    cfg = {"model_cfg": {"embed_dim": c["embed"], "quick_gelu": c["act"] == "quick_gelu",
                         "vision_cfg": vision, "text_cfg": text},
           "preprocess_cfg": {"mean": c["mean"], "std": c["std"], "interpolation": "bicubic",
                              "resize_mode": "shortest"}}
    with open(os.path.join(outdir, "open_clip_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(outdir, "open_clip_model.safetensors"), sd, dtype)
    if tokenizer:
        write_tokenizer(outdir)


def load_dir(d):
    """Read a model directory in either layout -> (compact config, OpenCLIP state dict)."""
    if os.path.exists(os.path.join(d, "open_clip_config.json")):
        with open(os.path.join(d, "open_clip_config.json")) as f:
            j = json.load(f)
        m, pre = j["model_cfg"], j.get("preprocess_cfg", {})
        v, t = m["vision_cfg"], m["text_cfg"]
        c = dict(image_size=v["image_size"], patch=v["patch_size"], width=v["width"], layers=v["layers"],
                 heads=v["width"] // v.get("head_width", 64), embed=m["embed_dim"], t_width=t["width"],
                 t_heads=t["heads"], t_layers=t["layers"], context=t["context_length"],
                 vocab=t["vocab_size"], act="quick_gelu" if m.get("quick_gelu") else "gelu",
                 mlp_ratio=v.get("mlp_ratio", 4.0), t_mlp_ratio=t.get("mlp_ratio", 4.0),
                 eps=v.get("norm_kwargs", {}).get("eps", 1e-5),
                 mean=pre.get("mean", OPENAI_MEAN), std=pre.get("std", OPENAI_STD))
        c = full_config(c)
        sd = read_safetensors(os.path.join(d, "open_clip_model.safetensors"))
        return c, sd
    with open(os.path.join(d, "config.json")) as f:
        j = json.load(f)
    with open(os.path.join(d, "preprocessor_config.json")) as f:
        pre = json.load(f)
    v, t = j["vision_config"], j["text_config"]
    c = dict(image_size=v["image_size"], patch=v["patch_size"], width=v["hidden_size"],
             layers=v["num_hidden_layers"], heads=v["num_attention_heads"], embed=j["projection_dim"],
             t_width=t["hidden_size"], t_heads=t["num_attention_heads"], t_layers=t["num_hidden_layers"],
             context=t["max_position_embeddings"], vocab=t["vocab_size"], act=v["hidden_act"],
             mlp_ratio=v["intermediate_size"] / v["hidden_size"],
             t_mlp_ratio=t["intermediate_size"] / t["hidden_size"], eps=v["layer_norm_eps"],
             mean=pre["image_mean"], std=pre["image_std"])
    c = full_config(c)
    hf = read_safetensors(os.path.join(d, "model.safetensors"))
    return c, from_hf(hf, c)


# ---------------------------------------------------------------- functional forward
def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    raise ValueError(name)


def layer_norm(x, sd, name, eps):
    """LayerNorm and its statistics: mean and std = sqrt(var + eps), the divisor used."""
    mean = x.mean(-1)
    std = torch.sqrt(x.var(-1, unbiased=False) + eps)
    y = F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps)
    return y, mean, std


def blocks_forward(x, sd, prefix, layers, heads, act, eps, causal, cap):
    """Pre-LN residual blocks; x [B, N, D]. cap (dict or None) collects per-layer lists."""
    B, N, D = x.shape
    hd = D // heads
    f = act_fn(act)
    mask = None
    if causal:
        mask = torch.full((N, N), float("-inf")).triu(1)
    for i in range(layers):
        p = f"{prefix}transformer.resblocks.{i}."
        if cap is not None:
            cap["resid"].append(x.clone())
        h, m1, s1 = layer_norm(x, sd, p + "ln_1", eps)
        qkv = F.linear(h, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"])
        q, k, v = qkv.split(D, dim=-1)
        vals = v
        q = q.reshape(B, N, heads, hd).transpose(1, 2) * hd ** -0.5
        k = k.reshape(B, N, heads, hd).transpose(1, 2)
        v = v.reshape(B, N, heads, hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        a = s.softmax(-1)  # [B, H, N, N]
        ctx = (a @ v).transpose(1, 2).reshape(B, N, D)
        ao = F.linear(ctx, sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"])
        x = x + ao
        h2, m2, s2 = layer_norm(x, sd, p + "ln_2", eps)
        hid = f(F.linear(h2, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]))
        mo = F.linear(hid, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        x = x + mo
        if cap is not None:
            for k_, t_ in (("ln1_mean", m1), ("ln1_std", s1), ("ln2_mean", m2), ("ln2_std", s2), ("attn", a),
                           ("values", vals), ("mlp_act", hid), ("attn_out_cls", ao[:, 0]),
                           ("mlp_out_cls", mo[:, 0])):
                cap[k_].append(t_.clone())
    if cap is not None:
        cap["resid"].append(x.clone())
    return x


CAP_KEYS = ["resid", "ln1_mean", "ln1_std", "ln2_mean", "ln2_std", "attn", "values", "mlp_act",
            "attn_out_cls", "mlp_out_cls"]


def encode_image(sd, c, pixels, cap=None):
    """pixels [B, 3, S, S] -> embeddings [B, E]; cap (dict) receives stacked intermediates
    in [L, B, ...] order (resid [L+1, B, N, D])."""
    B, P = pixels.shape[0], c["patch"]
    lists = {k: [] for k in CAP_KEYS} if cap is not None else None
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=P)  # [B, D, g, g]
    x = x.flatten(2).transpose(1, 2)  # [B, g*g, D]
    cls = sd["visual.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x, _, _ = layer_norm(x, sd, "visual.ln_pre", c["eps"])
    x = blocks_forward(x, sd, "visual.", c["layers"], c["heads"], c["act"], c["eps"], False, lists)
    pooled, pm, ps = layer_norm(x[:, 0], sd, "visual.ln_post", c["eps"])
    emb = pooled @ sd["visual.proj"]
    if cap is not None:
        for k in CAP_KEYS:
            cap[k] = torch.stack(lists[k])
        cap["post_mean"], cap["post_std"] = pm, ps
    return emb


def encode_text(sd, c, ids):
    """ids int64 [B, C] -> embeddings [B, E]; pooled at the argmax id (end of text)."""
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
    x = blocks_forward(x, sd, "", c["t_layers"], c["t_heads"], c["act"], c["eps"], True, None)
    x, _, _ = layer_norm(x, sd, "ln_final", c["eps"])
    pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
    return pooled @ sd["text_projection"]


# ---------------------------------------------------------------- module-based model (OpenCLIP style)
class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResBlock(nn.Module):
    def __init__(self, d, heads, m, act, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, m))
        self.mlp.add_module("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(m, d))

    def forward(self, x, mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d, layers, heads, m, act, eps):
        super().__init__()
        self.resblocks = nn.ModuleList([ResBlock(d, heads, m, act, eps) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class Visual(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, P = c["width"], c["patch"]
        self.conv1 = nn.Conv2d(3, D, P, P, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(D))
        self.positional_embedding = nn.Parameter(torch.zeros(c["tokens"], D))
        self.ln_pre = nn.LayerNorm(D, eps=c["eps"])
        self.transformer = Transformer(D, c["layers"], c["heads"], c["mlp"], c["act"], c["eps"])
        self.ln_post = nn.LayerNorm(D, eps=c["eps"])
        self.proj = nn.Parameter(torch.zeros(D, c["embed"]))

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype), x], 1)
        x = self.ln_pre(x + self.positional_embedding)
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


class CLIPModule(nn.Module):
    def __init__(self, c):
        super().__init__()
        T = c["t_width"]
        self.visual = Visual(c)
        self.token_embedding = nn.Embedding(c["vocab"], T)
        self.positional_embedding = nn.Parameter(torch.zeros(c["context"], T))
        self.transformer = Transformer(T, c["t_layers"], c["t_heads"], c["t_mlp"], c["act"], c["eps"])
        self.ln_final = nn.LayerNorm(T, eps=c["eps"])
        self.text_projection = nn.Parameter(torch.zeros(T, c["embed"]))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("attn_mask", torch.full((c["context"], c["context"]), float("-inf")).triu(1),
                             persistent=False)

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.attn_mask))
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def build_module(sd, c):
    m = CLIPModule(c)
    m.load_state_dict(sd, strict=True)
    return m.eval()


# ---------------------------------------------------------------- inputs and goldens
def make_inputs(c, n_img, n_txt, seed):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(n_img, 3, c["image_size"], c["image_size"], generator=g)
    C, V = c["context"], c["vocab"]
    ids = torch.zeros(n_txt, C, dtype=torch.int64)
    for i in range(n_txt):
        n = C - 2 if i == 0 else int(torch.randint(1, C - 2, (1,), generator=g))  # row 0 fills the context
        ids[i, 0] = V - 2
        ids[i, 1:1 + n] = torch.randint(0, V - 2, (n,), generator=g)
        ids[i, 1 + n] = V - 1
    return pixels, ids


def write_golden(path, sd, c, n_img, n_txt, seed, intermediates=True):
    pixels, ids = make_inputs(c, n_img, n_txt, seed)
    with torch.no_grad():
        cap = {} if intermediates else None
        img = encode_image(sd, c, pixels, cap)
        txt = encode_text(sd, c, ids)
        # the same in float64: the float32 reference must agree with it far inside the C tolerance
        sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
        img64 = encode_image(sd64, c, pixels.double())
        txt64 = encode_text(sd64, c, ids)
    for a, b, what in ((img, img64, "image"), (txt, txt64, "text")):
        rel = ((a.double() - b).norm() / b.norm()).item()
        if rel > 2e-5:
            raise SystemExit(f"reference.py: float32 vs float64 {what} relative error {rel:.3g}")
    out = {"pixels": pixels, "ids": ids.float(), "image_embedding": img, "text_embedding": txt}
    if intermediates:
        out.update(cap)
    write_safetensors(path, out, torch.float32, {"seed": str(seed)})
    return img, txt


def selfcheck(sd, c, n=2, seed=5):
    """Functional forward vs the torch.nn module model; returns the largest relative error."""
    pixels, ids = make_inputs(c, n, n, seed)
    m = build_module(sd, c)
    worst = 0.0
    with torch.no_grad():
        for a, b in ((encode_image(sd, c, pixels), m.visual(pixels)), (encode_text(sd, c, ids), m.encode_text(ids))):
            worst = max(worst, ((a - b).norm() / b.norm()).item())
    return worst


# ---------------------------------------------------------------- fixtures
FIXTURES = [
    # GELU, eps 1e-5, OpenAI mean/std, head width 16; HF weights f16, OpenCLIP weights bf16
    dict(name="vit-tiny-gelu", image_size=32, patch=8, width=64, layers=2, heads=4, embed=32,
         t_width=32, t_heads=2, t_layers=2, context=16, act="gelu", seed=1, hf_dtype=torch.float16,
         oc_dtype=torch.bfloat16),
    # QuickGELU, eps 1e-6, mean = std = 0.5, head width 20 (like H/14's 80), patch 7;
    # HF weights f32, OpenCLIP weights f16
    dict(name="vit-tiny-hw20", image_size=28, patch=7, width=40, layers=2, heads=2, embed=24,
         t_width=20, t_heads=1, t_layers=1, context=8, act="quick_gelu", eps=1e-6,
         mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], seed=2, hf_dtype=torch.float32,
         oc_dtype=torch.float16),
]


def cmd_make_fixtures(a):
    models = os.path.join(a.outdir, "models")
    golden = os.path.join(a.outdir, "golden")
    os.makedirs(models, exist_ok=True)
    os.makedirs(golden, exist_ok=True)
    for fx in FIXTURES:
        fx = dict(fx)
        seed, hf_dt, oc_dt = fx.pop("seed"), fx.pop("hf_dtype"), fx.pop("oc_dtype")
        fx["vocab"] = len(synthetic_vocab()[0])
        c = full_config(fx)
        sd = round_weights(init_weights(c, seed))
        write_hf(os.path.join(models, c["name"] + "-hf"), sd, c, hf_dt)
        write_openclip(os.path.join(models, c["name"] + "-openclip"), sd, c, oc_dt)
        for layout in ("hf", "openclip"):  # what was written reads back as the same model
            c2, sd2 = load_dir(os.path.join(models, f"{c['name']}-{layout}"))
            assert all(torch.equal(sd2[k], sd[k]) for k in sd), layout
        err = selfcheck(sd, c)
        if err > 1e-5:
            raise SystemExit(f"reference.py: {c['name']}: functional vs module forward differ by {err:.3g}")
        write_golden(os.path.join(golden, c["name"] + ".safetensors"), sd, c, 2, 3, seed + 100)
        print(f"{c['name']}: written (selfcheck rel err {err:.2g})")


def cmd_make_model(a):
    c = dict(ARCHS[a.arch])
    if a.act:
        c["act"] = a.act
    c["name"] = "ViT-" + a.arch.replace("/", "-")
    c = full_config(c)
    sd = init_weights(c, a.seed)
    dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    if dt != torch.float32:
        sd = {k: v.to(dt).float() for k, v in sd.items()}
    layouts = ["hf", "openclip"] if a.layout == "both" else [a.layout]
    for lay in layouts:
        out = a.outdir if len(layouts) == 1 else os.path.join(a.outdir, lay)
        # the synthetic vocabulary is far smaller than vocab_size: no tokenizer files here
        (write_hf if lay == "hf" else write_openclip)(out, sd, c, dt, tokenizer=False)
        print(f"{out}: {a.arch} ({lay}, {a.dtype})")


def cmd_golden(a):
    c, sd = load_dir(a.modeldir)
    t0 = time.time()
    write_golden(a.out, sd, c, a.images, a.texts, a.seed, not a.no_intermediates)
    print(f"{a.out}: golden written in {time.time() - t0:.1f} s")


def cmd_selfcheck(a):
    c, sd = load_dir(a.modeldir)
    err = selfcheck(sd, c)
    print(f"functional vs module relative error {err:.3g}")
    sys.exit(0 if err < 1e-5 else 1)


def cmd_bench(a):
    """Time the image tower of the module model (the way OpenCLIP runs it)."""
    torch.set_num_threads(a.threads)
    c, sd = load_dir(a.modeldir)
    m = build_module(sd, c).visual
    del sd
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, c["image_size"], c["image_size"], generator=g)
    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with torch.inference_mode():
        m(x)  # warm-up
        c0, t0 = cpu(), time.perf_counter()
        for _ in range(a.iters):
            m(x)
        dt, dc = time.perf_counter() - t0, cpu() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch images {a.batch * a.iters} seconds {dt:.3f} img/s {a.batch * a.iters / dt:.2f} "
          f"threads {torch.get_num_threads()} peak_rss_mb {rss:.0f} cpu_seconds {dc:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-fixtures")
    p.add_argument("outdir")
    p.set_defaults(fn=cmd_make_fixtures)
    p = sub.add_parser("make-model")
    p.add_argument("--arch", choices=sorted(ARCHS), required=True)
    p.add_argument("--layout", choices=["hf", "openclip", "both"], default="both")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--act", choices=["gelu", "quick_gelu"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("outdir")
    p.set_defaults(fn=cmd_make_model)
    p = sub.add_parser("golden")
    p.add_argument("modeldir")
    p.add_argument("out")
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--texts", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-intermediates", action="store_true")
    p.set_defaults(fn=cmd_golden)
    p = sub.add_parser("selfcheck")
    p.add_argument("modeldir")
    p.set_defaults(fn=cmd_selfcheck)
    p = sub.add_parser("bench")
    p.add_argument("modeldir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3)
    p.set_defaults(fn=cmd_bench)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
