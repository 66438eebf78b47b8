#!/usr/bin/python3
"""make_encode_goldens.py - end-to-end goldens for clip-encode, made independently of the C
code: PIL preprocessing (convert RGB, torchvision-style Resize with BICUBIC, CenterCrop,
ToTensor, Normalize), the PyTorch reference forward (reference.py) and the Python CLIP
tokenizer (clip_tokenizer.py).

  make_encode_goldens.py OUTDIR     (default tests/fixtures/encode)

Writes, per fixture model: <model>_images.cts, <model>_texts.cts, <model>_classifier.cts,
and the inputs images.txt (paths relative to the repo root), texts.txt, classes.txt,
templates.txt.  Run with Debian's /usr/bin/python3.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cliplens_stream as cs  # noqa: E402
import reference as ref  # noqa: E402
from clip_tokenizer import ClipTokenizer  # noqa: E402

MODELS = ["vit-tiny-gelu-hf", "vit-tiny-hw20-openclip"]
IMAGES = ["rgb_q90.jpg", "grey.jpg", "rgba8.png", "palette8.png", "wide_600x40.png", "tall_30x500.jpg",
          "photo_400x300.jpg", "tiny_7x5.png"]
TEXTS = ["a photo of a cat.", "The RED thing, isn't it?", "  tabs\tand   spaces  ",
         "émoji 🙂 and 中文", "a" * 200]
CLASSES = ["cat", "dog", "red star"]
TEMPLATES = ["a photo of a {}.", "a {} on a table", "{}"]


def preprocess(path, c):
    """torchvision Resize(S, BICUBIC) + CenterCrop(S) + ToTensor + Normalize, on PIL."""
    S = c["image_size"]
    im = Image.open(path).convert("RGB")
    w, h = im.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_long = int(S * long_ / short)
    size = (S, new_long) if w <= h else (new_long, S)
    im = im.resize(size, Image.BICUBIC)
    w, h = im.size
    left, top = int(round((w - S) / 2.0)), int(round((h - S) / 2.0))
    im = im.crop((left, top, left + S, top + S))
    a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(c["mean"]).view(3, 1, 1), torch.tensor(c["std"]).view(3, 1, 1)
    return (a - mean) / std


def ids_for(tok, text, context):
    row = tok(text, context)
    return row + [0] * (context - len(row))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "encode")
    os.makedirs(out, exist_ok=True)
    img_src = os.path.join(ROOT, "tests", "fixtures", "images", "src")
    paths = [os.path.join(img_src, f) for f in IMAGES if os.path.exists(os.path.join(img_src, f))]
    assert len(paths) >= 4, "image fixtures missing"
    for name, lines in (("images.txt", [os.path.relpath(p, ROOT) for p in paths]), ("texts.txt", TEXTS),
                        ("classes.txt", CLASSES), ("templates.txt", TEMPLATES)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    torch.set_grad_enabled(False)
    for mname in MODELS:
        d = os.path.join(ROOT, "tests", "fixtures", "models", mname)
        c, sd = ref.load_dir(d)
        tok = ClipTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
        px = torch.stack([preprocess(p, c) for p in paths])
        emb = ref.encode_image(sd, c, px).numpy()
        cs.write_stream(os.path.join(out, mname + "_images.cts"), "image",
                        [(os.path.relpath(p, ROOT), {}, {"embedding": emb[i]}) for i, p in enumerate(paths)])
        ids = torch.tensor([ids_for(tok, t, c["context"]) for t in TEXTS], dtype=torch.int64)
        temb = ref.encode_text(sd, c, ids).numpy()
        cs.write_stream(os.path.join(out, mname + "_texts.cts"), "text",
                        [(str(i), {"text": t}, {"embedding": temb[i], "ids": ids[i].numpy().astype("<i4")})
                         for i, t in enumerate(TEXTS)])
        items = []
        for k, cname in enumerate(CLASSES):
            tids = torch.tensor([ids_for(tok, t.replace("{}", cname), c["context"]) for t in TEMPLATES])
            e = ref.encode_text(sd, c, tids)
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(0)
            items.append((cname, {"label": k, "text": cname}, {"embedding": (m / m.norm()).numpy()}))
        cs.write_stream(os.path.join(out, mname + "_classifier.cts"), "classifier", items)
        print(f"{mname}: {len(paths)} images, {len(TEXTS)} texts, {len(CLASSES)} classes")


if __name__ == "__main__":
    main()
