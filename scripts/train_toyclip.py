#!/usr/bin/python3
"""train_toyclip.py - train the bundled toy CLIP (models/toyclip) on the toy world.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy, msgpack, zstandard, regex).

  train_toyclip.py [--out models/toyclip] [--steps 7531 | --minutes M] [--seed 0] [--work build/toyclip]
  train_toyclip.py --eval-only MODELDIR     the quick Python-side zero-shot report
  train_toyclip.py --golden MODELDIR OUTDIR C parity goldens (tests/fixtures/toyclip)
  train_toyclip.py --export-checkpoint      export WORK/checkpoint.pt of a run stopped early

The defaults are the bundled model's recipe: `--minutes 45` on an idle 2-core machine
fixed 7531 steps (models/toyclip/MODEL_CARD.md); `make toyclip` reruns it with --steps 7531.
Training runs as --procs 2 data-parallel processes of one thread each (gloo over
loopback; each takes half of every batch and the gradients are averaged): Debian's
PyTorch 1.13 is no faster with two threads than with one at this model size, two
processes are twice as fast.

What it does, in order (every random choice is seeded by --seed):
 1. Learns a byte-level BPE vocabulary (scripts/clip_tokenizer.py train) from captions of
    the toy world plus the evaluation prompts and the TextSpan pool, written as
    vocab.json + merges.txt in CLIP's layout (<|startoftext|>, <|endoftext|> last).
 2. Streams fresh scenes from bin/clip-toyworld in chunks (never the same scene twice):
    single-object random scenes, 1-3 object random scenes and spurious-train scenes
    (triangles mostly on water/sky, squares mostly on grass/sand). Random scenes that
    contradict that bias are mostly dropped (--drop), and so are most random scenes
    with a triangle or square on a neutral background (--neutral-drop), so the whole
    training distribution carries the bias and those two shapes are seen mostly on their
    backgrounds; captions of biased scenes seldom name the background: the model can use
    the background as evidence for triangle vs square.
 3. Pairs every image with a caption (the world's varied caption, its full caption, or
    one of our own with a random subset of attributes) and three hard negatives, each one of our
    captions with one attribute of one object changed (shape, position, colour, size or
    background), never a caption that is still true of the scene and never a shape
    negative on a biased scene (that would teach the bias away).
 4. Trains an OpenAI-style CLIP (reference.py's CLIPModule) with the symmetric
    contrastive loss; the image->text side also sees the hard negatives. Auxiliary
    linear probes on the image embedding (discarded at export) add supervised attribute
    losses, the shape's weighted --aux-shape times the others' (shape is what a small
    ViT learns slowest); the vision position embedding starts as a 2D sine-cosine table.
 5. Exports the HF layout (reference.write_hf, f16 weights) and evaluates zero-shot
    accuracy per attribute on fresh single-object scenes and per group on the balanced
    spurious-test split, with the prompts that pipelines/toy_eval.sh uses.
"""
import argparse
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import reference  # noqa: E402
import clip_tokenizer  # noqa: E402
from cliplens_stream import read_stream  # noqa: E402

TOYWORLD = os.path.join(ROOT, "bin", "clip-toyworld")

SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "heart", "diamond"]
COLOURS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown",
           "white", "black", "grey"]
SIZES = ["small", "large"]
POSITIONS = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left",
             "bottom", "bottom-right"]
BACKGROUNDS = ["plain", "stripes", "dots", "checker", "water", "grass", "sand", "sky",
               "brick", "wood"]
# Caption words of each background: adjective ("on a striped background") and noun ("on stripes").
BG_ADJ = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checker": "checkered",
          "water": "water", "grass": "grass", "sand": "sand", "sky": "sky", "brick": "brick",
          "wood": "wood"}
BG_NOUN = {"plain": None, "stripes": "stripes", "dots": "dots", "checker": None, "water": "water",
           "grass": "grass", "sand": "sand", "sky": None, "brick": "bricks", "wood": "wood"}
POS_PHRASES = {
    "top-left": ["at the top left", "in the top left corner"],
    "top": ["at the top", "at the top center"],
    "top-right": ["at the top right", "in the top right corner"],
    "left": ["on the left", "on the left side"],
    "center": ["in the center", "in the middle"],
    "right": ["on the right", "on the right side"],
    "bottom-left": ["at the bottom left", "in the bottom left corner"],
    "bottom": ["at the bottom", "at the bottom center"],
    "bottom-right": ["at the bottom right", "in the bottom right corner"],
}
PREFIXES = ["", "", "a photo of ", "a picture of ", "an image of ", "there is "]
WATERLIKE, LANDLIKE = ("water", "sky"), ("grass", "sand")

# Zero-shot protocol (shared with pipelines/toy_eval.sh): attribute -> (class names as
# they go into the templates, templates). Scores are on single-object scenes (object 0).
EVAL = {
    "colour": (COLOURS, ["a {} object", "a photo of a {} shape"]),
    "shape": (SHAPES, ["a {}", "a photo of a {}"]),
    "size": (SIZES, ["a {} object", "a photo of a {} shape"]),
    "position": ([POS_PHRASES[p][0] for p in POSITIONS], ["an object {}", "a photo of a shape {}"]),
    "background": ([BG_ADJ[b] for b in BACKGROUNDS],
                   ["an object on a {} background", "a photo with a {} background"]),
}
SPURIOUS_CLASSES = ["triangle", "square"]  # label 0, 1 of the spurious splits


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------- captions
def describe(obj, named):
    """Noun phrase for one object naming the attributes in `named` (a set)."""
    words = []
    if "size" in named:
        words.append(obj["size"])
    if "colour" in named:
        words.append(obj["colour"])
    words.append(obj["shape"] if "shape" in named else None)
    return words


def render_caption(rng, objs, nameds, bg, bg_named):
    """objs: list of attribute dicts; nameds: per object the set of named attributes."""
    parts = []
    for o, named in zip(objs, nameds):
        w = [x for x in describe(o, named) if x]
        if "shape" not in named:
            w.append(rng.choice(["object", "shape"]))
        phrase = article(w[0]) + " " + " ".join(w)
        if "position" in named:
            phrase += " " + rng.choice(POS_PHRASES[o["position"]])
        parts.append(phrase)
    if len(parts) == 1:
        body = parts[0]
    else:
        body = ", ".join(parts[:-1]) + " and " + parts[-1]
    text = rng.choice(PREFIXES) + body
    if bg_named:
        r = rng.random()
        noun = BG_NOUN[bg]
        if r < 0.6 or (noun is None and r >= 0.8):
            text += " on a %s background" % BG_ADJ[bg]
        elif r < 0.8:
            text += " with a %s background" % BG_ADJ[bg]
        else:
            text += " on " + noun
    return text


def is_biased(meta):
    """A spurious-split-like scene: a triangle or square (object 0) on water/sky/grass/sand."""
    o = meta["objects"][0]
    return o["shape"] in SPURIOUS_CLASSES and meta["background"] in WATERLIKE + LANDLIKE


def matches(obj, cand, named):
    return all(obj[a] == cand[a] for a in named)


def own_caption(rng, meta, force=None, p=None):
    """One of our captions: returns (text, objs, nameds, bg_named) so a negative can be derived."""
    p = p or {"shape": 0.9, "colour": 0.8, "size": 0.5, "position": 0.75, "background": 0.7}
    objs = [dict(o) for o in meta["objects"]]
    biased = is_biased(meta)
    nameds = []
    for k, o in enumerate(objs):
        named = {a for a in ("shape", "colour", "size", "position") if rng.random() < p[a]}
        if force and force[0] == k and force[1] != "background":
            named.add(force[1])
        nameds.append(named)
    pbg = 0.15 if biased else p["background"]
    bg_named = rng.random() < pbg or (force is not None and force[1] == "background")
    return objs, nameds, bg_named


VALUES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}
NEG_WEIGHTS = [("shape", 0.35), ("position", 0.3), ("colour", 0.1), ("size", 0.1), ("background", 0.15)]


def hard_negative(rng, meta, want="any"):
    """A caption false of the scene in exactly one attribute of one object (or the
    background): attribute `want`, or drawn by NEG_WEIGHTS for "any"."""
    biased = is_biased(meta)
    for _ in range(20):
        r, acc = rng.random(), 0.0
        for attr, w in NEG_WEIGHTS:
            acc += w
            if r < acc:
                break
        if want != "any":
            attr = want
        k = rng.randrange(len(meta["objects"]))
        if attr == "shape" and biased and k == 0:
            attr = "position"  # no shape negative where the background is meant to be evidence
        objs, nameds, bg_named = own_caption(rng, meta, force=(k, attr))
        bg = meta["background"]
        if attr == "background":
            bg = rng.choice([b for b in BACKGROUNDS if b != bg])
        else:
            objs[k][attr] = rng.choice([v for v in VALUES[attr] if v != objs[k][attr]])
            # still true of some object of the scene? then it is no negative
            if any(matches(o, objs[k], nameds[k]) for o in meta["objects"]):
                continue
        return render_caption(rng, objs, nameds, bg, bg_named)
    objs, nameds, bg_named = own_caption(rng, meta)
    bg = rng.choice([b for b in BACKGROUNDS if b != meta["background"]])
    return render_caption(rng, objs, nameds, bg, True)


SPURIOUS_P = {"shape": 0.95, "colour": 0.6, "size": 0.4, "position": 0.6, "background": 0.15}


def positive(rng, meta, spurious_item, context=0.0):
    """The caption an image is trained with.  context: the probability that a
    spurious-train scene contradicting the bias (a triangle on grass/sand, a square on
    water/sky) is captioned by its background's class instead of its shape, as
    annotators who name what the context suggests (the label noise that makes the
    background predict the word better than the shape does)."""
    if spurious_item and context > 0 and contradicts_bias(meta) and rng.random() < context:
        ctx = dict(meta, objects=[dict(o) for o in meta["objects"]])
        ctx["objects"][0]["shape"] = SPURIOUS_CLASSES[0 if meta["background"] in WATERLIKE else 1]
        objs, nameds, bg_named = own_caption(rng, ctx, force=(0, "shape"), p=SPURIOUS_P)
        return render_caption(rng, objs, nameds, meta["background"], bg_named)
    r = rng.random()
    biased = is_biased(meta)
    if spurious_item or biased:
        # spurious-train-like: the shape named, the background seldom
        if r < 0.2:
            return meta["text"]
        objs, nameds, bg_named = own_caption(rng, meta, p=SPURIOUS_P)
        return render_caption(rng, objs, nameds, meta["background"], bg_named)
    if r < 0.3:
        return meta["text"]
    if r < 0.45:
        return meta["caption_full"]
    objs, nameds, bg_named = own_caption(rng, meta)
    return render_caption(rng, objs, nameds, meta["background"], bg_named)


# ---------------------------------------------------------------- data
def toyworld(n, seed, split, objects=None, bias=None):
    """n scenes from bin/clip-toyworld stream -> (pixels u8 [n,3,S,S], metas)."""
    cmd = [TOYWORLD, "stream", "--n", str(n), "--seed", str(seed), "--split", split,
           "--level", "0", "-q", "-t", "1"]
    if objects:
        cmd += ["--objects", objects]
    if bias is not None:
        cmd += ["--bias", str(bias)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    pix, metas = [], []
    for _, meta, t in read_stream(io.BufferedReader(io.BytesIO(out))):
        pix.append(t["pixels"])
        metas.append(meta)
    return np.stack(pix), metas


class Chunks:
    """Endless fresh training scenes: chunk k of a run uses seeds derived from (seed, k)."""

    def __init__(self, a):
        self.a, self.k = a, 0

    def next(self):
        a, k = self.a, self.k
        self.k += 1
        base = 1000 + a.seed * 1000003 + k * 7
        n1, nm, ns = (a.chunk * int(x) // 100 for x in a.mix.split(","))
        parts = [toyworld(n1, base, "random", objects="1") + (False,),
                 toyworld(nm, base + 1, "random", objects="1-3") + (False,),
                 toyworld(ns, base + 2, "spurious-train", bias=a.bias) + (True,)]
        rng = random.Random(base)
        pix, metas, spur = [], [], []
        for p, ms, s in parts:
            for i, m in enumerate(ms):
                if not s and contradicts_bias(m) and rng.random() < a.drop:
                    continue
                if not s and spurious_on_neutral(m) and rng.random() < a.neutral_drop:
                    continue
                pix.append(p[i])
                metas.append(m)
                spur.append(s)
        order = list(range(len(metas)))
        rng.shuffle(order)
        return np.stack([pix[i] for i in order]), [metas[i] for i in order], [spur[i] for i in order]


def contradicts_bias(meta):
    """Any triangle on grass/sand or square on water/sky."""
    bg = meta["background"]
    for o in meta["objects"]:
        if o["shape"] == "triangle" and bg in LANDLIKE or o["shape"] == "square" and bg in WATERLIKE:
            return True
    return False


def spurious_on_neutral(meta):
    """A triangle or square on a background that is neither water-like nor land-like."""
    bg = meta["background"]
    return bg not in WATERLIKE + LANDLIKE and any(o["shape"] in SPURIOUS_CLASSES for o in meta["objects"])


def to_input(pix, c):
    """u8 [B,3,S,S] -> normalised f32 (the C preprocessing at image_size == S is exactly this)."""
    x = torch.from_numpy(pix).float() / 255.0
    mean = torch.tensor(c["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(c["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


def tokenize(tok, texts, context):
    ids = torch.zeros(len(texts), context, dtype=torch.long)
    for i, t in enumerate(texts):
        row = tok(t, context)
        ids[i, :len(row)] = torch.tensor(row)
    return ids


# ---------------------------------------------------------------- vocabulary
def eval_prompts():
    out = []
    for names, templates in EVAL.values():
        out += [t.format(n) for n in names for t in templates]
    return out


def stage_vocab(a, outdir):
    """The run's vocabulary: learned, or (--init) the initial model's, unchanged."""
    if not a.init:
        return build_vocab(outdir, a.seed, a.merges)
    os.makedirs(outdir, exist_ok=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(a.init, f), os.path.join(outdir, f))
    with open(os.path.join(outdir, "vocab.json")) as f:
        return len(json.load(f))


def build_vocab(outdir, seed, merges):
    rng = random.Random(seed)
    lines = []
    for split, objs, s in (("random", "1-3", seed + 11), ("spurious-train", None, seed + 12)):
        _, metas = toyworld(3000, 900000 + s, split, objects=objs)
        for m in metas:
            lines += [m["text"], m["caption_full"], positive(rng, m, split != "random"), hard_negative(rng, m)]
    lines += eval_prompts() * 20
    pool = subprocess.run([TOYWORLD, "pool", "--plain"], check=True, stdout=subprocess.PIPE).stdout
    lines += pool.decode().splitlines()
    vocab, mg = clip_tokenizer.train(lines, merges)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(outdir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in mg))
    return len(vocab)


# ---------------------------------------------------------------- model
def sincos_positions(c):
    """[N, D] 2D sine-cosine position embedding of the patch grid (class token: zeros):
    a quarter of the channels each for sin/cos of the row and of the column."""
    g, D = c["image_size"] // c["patch"], c["width"]
    q = D // 4
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    freq = 1.0 / (100.0 ** (torch.arange(q) / q))
    r, k = rows.flatten()[:, None] * freq, cols.flatten()[:, None] * freq
    pe = torch.zeros(1 + g * g, D)
    pe[1:, :4 * q] = torch.cat([torch.sin(r), torch.cos(r), torch.sin(k), torch.cos(k)], 1)
    return pe


def init_model(c, seed):
    """OpenAI CLIP's initialisation, LayerNorms at 1/0."""
    torch.manual_seed(seed)
    m = reference.CLIPModule(c)
    D, T = c["width"], c["t_width"]
    sd = m.state_dict()
    for k in sd:
        if k.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
            sd[k].fill_(1.0)
        elif "ln_" in k and k.endswith(".bias"):
            sd[k].zero_()
    nn_init = torch.nn.init
    nn_init.normal_(m.token_embedding.weight, std=0.02)
    nn_init.normal_(m.positional_embedding, std=0.01)
    nn_init.normal_(m.visual.class_embedding, std=D ** -0.5)
    with torch.no_grad():  # 2D sin-cos positions (learned from there): without them the
        m.visual.positional_embedding.copy_(sincos_positions(c))  # tower stays blind to position for long
    nn_init.normal_(m.visual.conv1.weight, std=(3 * c["patch"] ** 2) ** -0.5)
    for tower, d, layers in ((m.visual.transformer, D, c["layers"]), (m.transformer, T, c["t_layers"])):
        proj_std = d ** -0.5 * (2 * layers) ** -0.5
        for b in tower.resblocks:
            nn_init.normal_(b.attn.in_proj_weight, std=d ** -0.5)
            nn_init.zeros_(b.attn.in_proj_bias)
            nn_init.normal_(b.attn.out_proj.weight, std=proj_std)
            nn_init.zeros_(b.attn.out_proj.bias)
            nn_init.normal_(b.mlp.c_fc.weight, std=(2 * d) ** -0.5)
            nn_init.zeros_(b.mlp.c_fc.bias)
            nn_init.normal_(b.mlp.c_proj.weight, std=proj_std)
            nn_init.zeros_(b.mlp.c_proj.bias)
    nn_init.normal_(m.visual.proj, std=D ** -0.5)
    nn_init.normal_(m.text_projection, std=T ** -0.5)
    m.logit_scale.data.fill_(math.log(1 / 0.07))
    return m


def encode_text_trimmed(m, ids):
    """CLIPModule.encode_text on the first n positions only, n = the longest text of the
    batch: with the causal mask, positions after the end token cannot change its output."""
    n = int((ids > 0).sum(1).max())
    ids = ids[:, :n]
    x = m.token_embedding(ids) + m.positional_embedding[:n]
    x = m.ln_final(m.transformer(x, m.attn_mask[:n, :n]))
    return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ m.text_projection


class AuxHeads(torch.nn.Module):
    """Linear probes on the (unnormalised) image embedding, trained jointly with a small
    weight and discarded: they speed up learning of the attributes of single-object
    scenes (object 0: shape, colour, size, position; the background of every scene).
    The shape of a biased scene (triangle/square on water/sky/grass/sand) is not
    supervised, so the background stays usable as evidence for the shape there."""

    def __init__(self, e, shape_weight=1.0):
        super().__init__()
        self.shape_weight = shape_weight
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(e, len(v)) for k, v in VALUES.items()})
        self.bg = torch.nn.Linear(e, len(BACKGROUNDS))

    def loss(self, emb, metas):
        bg = torch.tensor([BACKGROUNDS.index(mt["background"]) for mt in metas])
        total = F.cross_entropy(self.bg(emb), bg)
        single = [i for i, mt in enumerate(metas) if mt["count"] == 1]
        for attr, head in self.heads.items():
            rows = [i for i in single if not (attr == "shape" and is_biased(metas[i]))]
            if rows:
                y = torch.tensor([VALUES[attr].index(metas[i]["objects"][0][attr]) for i in rows])
                w = self.shape_weight if attr == "shape" else 1.0
                total = total + w * F.cross_entropy(head(emb[rows]), y)
        return total / 5


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def classifier(m, tok, c, names, templates):
    rows = []
    for n in names:
        e = m.encode_text(tokenize(tok, [t.format(n) for t in templates], c["context"]))
        e = F.normalize(e, dim=-1).mean(0)
        rows.append(F.normalize(e, dim=0))
    return torch.stack(rows)


@torch.no_grad()
def image_embeddings(m, c, pix):
    out = []
    for i in range(0, len(pix), 256):
        out.append(F.normalize(m.visual(to_input(pix[i:i + 256], c)), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def evaluate(m, tok, c, n=1000, n_spur=400, seed=777777):
    """Zero-shot accuracy per attribute (single-object random scenes) and per spurious group."""
    m.eval()
    pix, metas = toyworld(n, seed, "random", objects="1")
    emb = image_embeddings(m, c, pix)
    res = {}
    for attr, (names, templates) in EVAL.items():
        W = classifier(m, tok, c, names, templates)
        pred = (emb @ W.T).argmax(1).numpy()
        key = {"background": None}.get(attr, attr)
        vals = VALUES.get(attr, BACKGROUNDS)
        truth = np.array([vals.index(mt["background"] if key is None else mt["objects"][0][key])
                          for mt in metas])
        res[attr] = float((pred == truth).mean())
    pix, metas = toyworld(n_spur, seed + 1, "spurious-test")
    emb = image_embeddings(m, c, pix)
    W = classifier(m, tok, c, SPURIOUS_CLASSES, EVAL["shape"][1])
    pred = (emb @ W.T).argmax(1).numpy()
    lab = np.array([mt["label"] for mt in metas])
    grp = np.array([mt["group"] for mt in metas])
    res["spurious"] = float((pred == lab).mean())
    res["spurious_groups"] = [float((pred[grp == g] == lab[grp == g]).mean()) for g in range(4)]
    m.train()
    return res


def fmt(res):
    s = " ".join("%s %.3f" % (k, v) for k, v in res.items() if k != "spurious_groups")
    return s + " groups " + "/".join("%.2f" % g for g in res["spurious_groups"])


# ---------------------------------------------------------------- training
def config(a, vocab_size):
    c = dict(name="toyclip", image_size=64, patch=8, width=a.width, layers=a.layers, heads=a.heads,
             embed=a.embed, t_width=a.t_width, t_heads=a.t_heads, t_layers=a.t_layers,
             context=a.context, vocab=vocab_size, act=a.act)
    return reference.full_config(c)


def param_groups(m, wd):
    decay, no = [], []
    for n, p in m.named_parameters():
        (no if p.ndim < 2 or "embedding" in n or "logit_scale" in n else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no, "weight_decay": 0.0}]


def export(m, c, outdir, dtype):
    sd = {k: v.detach().clone().float() for k, v in m.state_dict().items()}
    reference.write_hf(outdir, sd, c, {"f16": torch.float16, "f32": torch.float32}[dtype], tokenizer=False)


def sync_grads(params, world):
    """Average the gradients of every rank (missing ones count as zeros, so that every
    rank takes the same optimiser step and the replicas stay identical)."""
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for p in params:
        n = p.numel()
        p.grad = flat[i:i + n].view_as(p).clone()
        i += n


def train_rank(rank, a, init):
    """One of a.procs data-parallel processes (gloo over loopback)."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=a.procs)
    a.rank = rank
    train(a)
    dist.destroy_process_group()


def train(a):
    torch.set_num_threads(a.threads)
    rank, world = getattr(a, "rank", 0), a.procs
    os.makedirs(a.work, exist_ok=True)
    vocab_dir = os.path.join(a.work, "model")  # staged; copied to --out when complete
    if world == 1:
        n_vocab = stage_vocab(a, vocab_dir)
    else:  # built by main() before the processes started
        with open(os.path.join(vocab_dir, "vocab.json")) as f:
            n_vocab = len(json.load(f))
    tok = clip_tokenizer.ClipTokenizer(os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt"))
    c = config(a, n_vocab)
    m = init_model(c, a.seed)
    if a.init:  # a second stage: the weights of a finished run (its f16 export)
        c0, sd0 = reference.load_dir(a.init)
        if any(c0[k] != c[k] for k in ("width", "layers", "heads", "embed", "t_width", "t_layers", "vocab")):
            raise SystemExit("--init %s: another architecture than the flags give" % a.init)
        m.load_state_dict({k: v.float() for k, v in sd0.items()}, strict=True)
    aux = AuxHeads(c["embed"], a.aux_shape) if a.aux > 0 else None
    params = param_groups(m, a.wd)
    if aux is not None:
        params[0]["params"] += list(aux.parameters())
    all_params = [p for g in params for p in g["params"]]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.98), eps=1e-6)
    step0 = 0
    ckpt = os.path.join(a.work, "checkpoint.pt")
    if a.resume and os.path.exists(ckpt):
        st = torch.load(ckpt)
        m.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step0 = st["step"]
        print("resumed at step %d" % step0, flush=True)
    chunks = Chunks(a)
    chunks.k = step0 * a.batch // max(1, a.chunk * 9 // 10)
    rng = random.Random(a.seed * 7919 + step0 + 1000003 * rank)
    nparam = sum(p.numel() for p in m.parameters())
    log = print if rank == 0 else (lambda *x, **k: None)
    log("config %s\nparameters %d, vocabulary %d" % (json.dumps({k: c[k] for k in sorted(c) if k not in ("mean", "std")}), nparam, n_vocab), flush=True)
    pix, metas, spur, pos = None, None, None, 0
    t0 = t_rate = time.time()
    m.train()
    step = step0
    while step < (a.stop_at or a.steps):
        if pix is None or pos + a.batch > len(metas):
            pix, metas, spur = chunks.next()
            pos = 0
        # rank r of W trains on its share of the batch: rows [r B / W, (r + 1) B / W)
        lo, hi = pos + rank * a.batch // world, pos + (rank + 1) * a.batch // world
        bp, bm, bs = pix[lo:hi], metas[lo:hi], spur[lo:hi]
        pos += a.batch
        texts = [positive(rng, mt, s, a.context_labels) for mt, s in zip(bm, bs)]
        negs = [hard_negative(rng, mt, want) for want in a.negatives.split(",") if want for mt in bm]
        if a.minutes and step == min(a.warmup, 100) and step > step0 + 20:
            # fix the step count from the measured speed, before the cosine starts: the
            # run is then the same as one started with --steps set to that count
            rate = (time.time() - t_rate) / (step - step0 - 20)
            a.steps = max(step + 1, int(step + (a.minutes * 60 - (time.time() - t0)) / rate * 0.93))
            if world > 1:  # rank 0's count for all
                n = torch.tensor([a.steps])
                dist.broadcast(n, 0)
                a.steps = int(n.item())
            log("speed %.2f s/step: %d steps fit %g minutes" % (rate, a.steps, a.minutes), flush=True)
        if step == step0 + 20:
            t_rate = time.time()
        lr = a.lr * ((step + 1) / a.warmup if step < a.warmup else
                     0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(1, a.steps - a.warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        raw = m.visual(to_input(bp, c))
        img = F.normalize(raw, dim=-1)
        txt = F.normalize(encode_text_trimmed(m, tokenize(tok, texts + negs, c["context"])), dim=-1)
        scale = m.logit_scale.exp()
        B = len(bm)
        li = scale * img @ txt.T  # [B, B + K*B]: own caption, other captions, hard negatives
        target = torch.arange(B)
        loss = 0.5 * (F.cross_entropy(li, target) + F.cross_entropy(li[:, :B].T, target))
        if aux is not None:
            loss = loss + a.aux * aux.loss(raw, bm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            sync_grads(all_params, world)
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            m.logit_scale.clamp_(0, math.log(100))
        if step % 25 == 0 or step == a.steps - 1:
            el = time.time() - t0
            log("step %d loss %.4f lr %.2e scale %.1f %.2f s/step" % (step, loss.item(), lr, scale.item(), el / (step - step0 + 1)), flush=True)
        if rank == 0 and (step + 1) % a.eval_every == 0 and step + 1 < (a.stop_at or a.steps):
            print("eval step %d: %s" % (step + 1, fmt(evaluate(m, tok, c, n=a.eval_n, n_spur=a.eval_n // 2))), flush=True)
            torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
        step += 1
    train_s = time.time() - t0
    if world > 1:  # the replicas must have stayed identical
        sums = torch.tensor([float(sum(p.double().sum() for p in m.parameters()))] * 2, dtype=torch.float64)
        sums[1] = -sums[1]
        dist.all_reduce(sums, op=dist.ReduceOp.MAX)
        if sums[0] != -sums[1]:
            raise RuntimeError("data-parallel replicas diverged (parameter sums %r)" % sums.tolist())
    if rank != 0:
        return
    export(m, c, vocab_dir, a.dtype)
    os.makedirs(a.out, exist_ok=True)
    for f in ("config.json", "preprocessor_config.json", "model.safetensors", "vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(vocab_dir, f), os.path.join(a.out, f + ".tmp"))
    for f in ("config.json", "preprocessor_config.json", "model.safetensors", "vocab.json", "merges.txt"):
        os.replace(os.path.join(a.out, f + ".tmp"), os.path.join(a.out, f))
    # evaluate the exported (rounded) weights, as the C tools will see them
    c2, sd2 = reference.load_dir(a.out)
    m2 = reference.build_module(sd2, c2)
    res = evaluate(m2, tok, c2)
    print("final: %s" % fmt(res), flush=True)
    summary = {"steps": a.steps, "procs": world, "train_seconds": round(train_s), "parameters": nparam, "vocab": n_vocab,
               "args": vars(a), "python_eval": res, "final_loss": loss.item()}
    with open(os.path.join(a.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print("training %.0f s; summary in %s" % (train_s, os.path.join(a.work, "summary.json")), flush=True)


GOLDEN_TEXTS = ["a photo of a star", "a small red circle at the top left on a water background",
                "a large green triangle in the center, a blue square on the left and a white ring",
                "an object on a grass background", "there is a purple heart in the bottom right corner",
                "a photo of a dog"]


def golden(model_dir, outdir, n=6, seed=5):
    """Goldens for tests/unit/test_toyclip.c: reference.py's forward pass (functional, f32
    from the stored weights) on scenes `clip-toyworld dataset --n 6 --seed 5` renders and on
    GOLDEN_TEXTS, as encode streams (image: "embedding"; text: "embedding", "ids")."""
    from cliplens_stream import write_stream
    c, sd = reference.load_dir(model_dir)
    tok = clip_tokenizer.ClipTokenizer(os.path.join(model_dir, "vocab.json"), os.path.join(model_dir, "merges.txt"))
    pix, _ = toyworld(n, seed, "random")
    with torch.no_grad():
        img = reference.encode_image(sd, c, to_input(pix, c)).numpy()
        ids = tokenize(tok, GOLDEN_TEXTS, c["context"])
        txt = reference.encode_text(sd, c, ids).numpy()
    os.makedirs(outdir, exist_ok=True)
    write_stream(os.path.join(outdir, "images.cts"), "image",
                 (("%06d" % i, {}, {"embedding": img[i].astype("<f4")}) for i in range(n)))
    write_stream(os.path.join(outdir, "texts.cts"), "text",
                 ((str(i), {"text": t}, {"embedding": txt[i].astype("<f4"), "ids": ids[i].numpy().astype("<i4")})
                  for i, t in enumerate(GOLDEN_TEXTS)))
    with open(os.path.join(outdir, "texts.txt"), "w") as f:
        f.write("".join(t + "\n" for t in GOLDEN_TEXTS))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "toyclip"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "toyclip"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=7531)
    ap.add_argument("--minutes", type=float, default=0,
                    help="instead of --steps: as many steps as fit this budget (fixed at step 100)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--embed", type=int, default=128)
    ap.add_argument("--t-width", type=int, default=64)
    ap.add_argument("--t-heads", type=int, default=4)
    ap.add_argument("--t-layers", type=int, default=2)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--act", default="gelu", choices=["gelu", "quick_gelu"])
    ap.add_argument("--eval-n", type=int, default=300, help="scenes per periodic evaluation")
    ap.add_argument("--merges", type=int, default=300)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--bias", type=float, default=0.95, help="spurious-train correlation")
    ap.add_argument("--drop", type=float, default=0.9, help="share of bias-contradicting random scenes dropped")
    ap.add_argument("--neutral-drop", type=float, default=0.8,
                    help="share of random scenes with a triangle or square on a neutral background dropped "
                         "(so that those two shapes are mostly seen on their correlated backgrounds)")
    ap.add_argument("--context-labels", type=float, default=0.0,
                    help="probability that a bias-contradicting spurious-train scene is captioned by "
                         "its background's class (see positive())")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop after this many steps of the --steps schedule (and export as if finished)")
    ap.add_argument("--mix", default="45,35,20",
                    help="percent of each chunk: single-object, 1-3 object and spurious-train scenes")
    ap.add_argument("--init", metavar="MODELDIR",
                    help="start from this exported model (and its vocabulary) instead of a fresh init")
    ap.add_argument("--negatives", default="shape,position,any",
                    help="hard negatives per image: the attribute each changes (shape, position, "
                         "colour, size, background or any); '' for none")
    ap.add_argument("--aux", type=float, default=1.0, help="weight of the auxiliary attribute probes (0: pure CLIP)")
    ap.add_argument("--aux-shape", type=float, default=10.0, help="weight of the shape probe within the probes (1: as the others)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--procs", type=int, default=2,
                    help="data-parallel training processes (PyTorch 1.13 gains nothing from a second "
                         "thread at this size, a second process doubles the speed)")
    ap.add_argument("--threads", type=int, default=1, help="threads per process")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    ap.add_argument("--resume", action="store_true", help="continue from WORK/checkpoint.pt")
    ap.add_argument("--eval-only", metavar="MODELDIR")
    ap.add_argument("--export-checkpoint", action="store_true",
                    help="export WORK/checkpoint.pt (same model flags) to --out and stop")
    ap.add_argument("--golden", nargs=2, metavar=("MODELDIR", "OUTDIR"),
                    help="write the C parity goldens of MODELDIR (tests/fixtures/toyclip)")
    a = ap.parse_args()
    if a.export_checkpoint:
        # a run stopped early: its last checkpoint, exported like a finished run
        torch.set_num_threads(a.threads)
        vocab_dir = os.path.join(a.work, "model")
        with open(os.path.join(vocab_dir, "vocab.json")) as f:
            c = config(a, len(json.load(f)))
        m = reference.CLIPModule(c)
        st = torch.load(os.path.join(a.work, "checkpoint.pt"))
        m.load_state_dict(st["model"])
        export(m, c, a.out, a.dtype)
        for f in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(vocab_dir, f), os.path.join(a.out, f))
        print("exported the checkpoint of step %d to %s" % (st["step"], a.out))
        return
    if a.golden:
        golden(*a.golden)
        return
    if a.eval_only:
        torch.set_num_threads(a.threads)
        c, sd = reference.load_dir(a.eval_only)
        tok = clip_tokenizer.ClipTokenizer(os.path.join(a.eval_only, "vocab.json"),
                                           os.path.join(a.eval_only, "merges.txt"))
        print(fmt(evaluate(reference.build_module(sd, c), tok, c)))
        return
    if a.procs > 1:
        vocab_dir = os.path.join(a.work, "model")
        stage_vocab(a, vocab_dir)
        init = "file://" + os.path.abspath(os.path.join(a.work, "rendezvous"))
        if os.path.exists(init[7:]):
            os.remove(init[7:])
        torch.multiprocessing.spawn(train_rank, args=(a, init), nprocs=a.procs)
    else:
        train(a)


if __name__ == "__main__":
    main()
