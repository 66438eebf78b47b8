#!/usr/bin/python3
"""make_image_goldens.py - write the image decode/preprocess fixtures and Pillow goldens.

Run with Debian's /usr/bin/python3 (Pillow 9.4, numpy, torch):
    /usr/bin/python3 scripts/make_image_goldens.py [OUTDIR]   (default tests/fixtures/images)

Writes OUTDIR/src/* (test inputs: synthetic photo-like images in every PNG colour type
and bit depth and several JPEG flavours, plus hostile/corrupt files), OUTDIR/gold/*
(Pillow's results, as 8-bit RGB PNG or float32 .npy) and OUTDIR/MANIFEST.tsv, the list
of cases tests/unit/test_image.c and test_preprocess.c run:

    decode  SRC GOLD                  cl_image_load(SRC) == Image.open(SRC).convert("RGB")
    crop    SRC SIZE GOLD             resize shorter side + center crop (torchvision, Pillow)
    full    SRC W H GOLD              Image.resize((W, H), BICUBIC) of the RGB image
    prep    SRC SIZE GOLD.npy         ToTensor + Normalize (OpenAI mean/std), float32 [3,S,S]
    error   SRC STATUS SUBSTRING      decoding fails with that status and message text
    photo   NAME BYTES SRCHASH W H RGBHASH SIZE GOLD
                                      a real photograph shipped by Debian's python3-skimage
                                      (not committed): decoded RGB hash and crop golden

Hashes are FNV-1a 64 in hex. The preprocessing reference is torchvision's eval transform
written out here (torchvision is not packaged for this python): Resize(size, BICUBIC)
-> CenterCrop(size) -> ToTensor -> Normalize, applied after convert("RGB") (SPEC §4).
"""
import io
import warnings
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PHOTO_DIR = os.environ.get("CL_PHOTO_DIR", "/usr/lib/python3/dist-packages/skimage/data")


# ----------------------------------------------------------------- reference pipeline

def tv_resize_dims(w, h, size):
    """torchvision _compute_resized_output_size for an int size: (new_w, new_h)."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    return (size, new_long) if w <= h else (new_long, size)


def tv_resize_crop(im, size):
    """Resize(size, BICUBIC) then CenterCrop(size) on an RGB PIL image."""
    w, h = tv_resize_dims(im.width, im.height, size)
    r = im.resize((w, h), Image.BICUBIC)
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return r.crop((left, top, left + size, top + size))


def tv_normalize(u8, mean, std):
    """ToTensor + Normalize in float32 as torchvision does (torch ops)."""
    import torch
    t = torch.from_numpy(np.array(u8, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return t.sub(m).div(s).numpy()


def fnv64(b):
    h = 0xcbf29ce484222325
    for byte in b:  # small inputs only; photos use the numpy version below
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def fnv64_np(b):
    a = np.frombuffer(bytes(b), dtype=np.uint8).astype(np.uint64)
    h = np.uint64(0xcbf29ce484222325)
    p = np.uint64(0x100000001b3)
    with np.errstate(over="ignore"):
        for v in a:
            h = (h ^ v) * p
    return int(h)


# ----------------------------------------------------------------- synthetic photos

def photo(w, h, seed):
    """A photo-like RGB image [h, w, 3] uint8: smooth gradients, soft low-frequency
    texture, objects with sharp and blurred edges, thin lines, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    s = max(w, h)
    u, v = xx / s, yy / s
    img = np.empty((h, w, 3))
    sky, ground = rng.uniform(60, 220, 3), rng.uniform(30, 160, 3)
    horizon = rng.uniform(0.3, 0.7) * h / s
    t = 1 / (1 + np.exp(-(v - horizon) * 40))
    for c in range(3):
        img[..., c] = sky[c] * (1 - t) + ground[c] * t + 40 * (u - 0.5) * rng.uniform(-1, 1)
    for _ in range(6):  # low-frequency texture
        f = rng.uniform(2, 12, 2)
        ph = rng.uniform(0, 2 * np.pi, 2)
        amp = rng.uniform(4, 14, 3)
        wave = np.sin(2 * np.pi * f[0] * u + ph[0]) * np.cos(2 * np.pi * f[1] * v + ph[1])
        img += wave[..., None] * amp
    for _ in range(7):  # objects: discs and boxes, some with soft edges
        col = rng.uniform(0, 255, 3)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * min(w, h) + 1
        soft = rng.choice([0.01, 0.5, 3.0])
        if rng.random() < 0.5:
            d = np.hypot(xx - cx, yy - cy) - r
        else:
            d = np.maximum(np.abs(xx - cx), np.abs(yy - cy) * rng.uniform(0.5, 2)) - r
        a = 1 / (1 + np.exp(np.clip(d / soft, -50, 50)))
        shade = 1 + 0.3 * (yy - cy) / (r + h)
        img = img * (1 - a[..., None]) + (col * shade[..., None]) * a[..., None]
    for _ in range(4):  # thin high-contrast lines
        x0 = int(rng.integers(0, w))
        img[:, x0:x0 + 1, :] = rng.uniform(0, 255, 3)
        y0 = int(rng.integers(0, h))
        img[y0:y0 + 1, :, :] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 3.0, img.shape)  # sensor noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------- raw PNG writer
# Pillow cannot write 16-bit colour, sub-byte grey, interlaced or inconsistent PNGs,
# so these are encoded here directly (filter type 0, zlib).

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def pack_rows(samples, depth):
    """samples [h, w*channels] ints -> list of row bytes at the given bit depth."""
    rows = []
    for r in samples:
        if depth == 16:
            rows.append(np.asarray(r, dtype=">u2").tobytes())
        elif depth == 8:
            rows.append(np.asarray(r, dtype=np.uint8).tobytes())
        else:
            per = 8 // depth
            r = list(r) + [0] * (-len(r) % per)
            out = bytearray()
            for i in range(0, len(r), per):
                b = 0
                for j in range(per):
                    b = (b << depth) | int(r[i + j])
                out.append(b)
            rows.append(bytes(out))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_raw(w, h, depth, ctype, samples, plte=None, trns=None, interlace=False, extra=b""):
    """samples: array [h, w, channels] of ints within the bit depth."""
    samples = np.asarray(samples).reshape(h, w, -1)
    data = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            for row in pack_rows(sub.reshape(sub.shape[0], -1), depth):
                data += b"\0" + row
    else:
        for row in pack_rows(samples.reshape(h, -1), depth):
            data += b"\0" + row
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += extra
    out += png_chunk(b"IDAT", zlib.compress(data, 9))
    out += png_chunk(b"IEND", b"")
    return out


# A YCCK JPEG (Adobe transform 2): Pillow cannot write one, libjpeg can; built with the C
# compiler when there is one (the case is simply left out otherwise).
YCCK_C = r"""
#include <stdio.h>
#include <jpeglib.h>
int main(int argc, char **argv)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char row[97 * 4];
    FILE *f = argc > 1 ? fopen(argv[1], "wb") : NULL;
    if (!f) return 1;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = 97, c.image_height = 61, c.input_components = 4, c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < 61; y++) {
        for (int x = 0; x < 97; x++) {
            row[4 * x] = x * 2, row[4 * x + 1] = y * 4, row[4 * x + 2] = (x * y) & 255;
            row[4 * x + 3] = (x + y) * 2 + (x * 7 + y * 13) % 17;
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    return fclose(f) != 0;
}
"""


def make_ycck(path):
    import shutil
    import subprocess
    import tempfile
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        print("note: no C compiler: no YCCK case", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "ycck.c"), os.path.join(d, "ycck")
        with open(src, "w") as f:
            f.write(YCCK_C)
        if subprocess.run([cc, "-o", exe, src, "-ljpeg"]).returncode != 0:
            print("note: cannot build the YCCK writer: no YCCK case", file=sys.stderr)
            return False
        return subprocess.run([exe, path]).returncode == 0


# ----------------------------------------------------------------- case builders

class Fixtures:
    def __init__(self, root):
        self.root = root
        self.lines = []
        os.makedirs(os.path.join(root, "src"), exist_ok=True)
        os.makedirs(os.path.join(root, "gold"), exist_ok=True)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, data):
        with open(self.path(rel), "wb") as f:
            f.write(data)

    def save_pil(self, rel, im, **kw):
        buf = io.BytesIO()
        im.save(buf, **kw)
        self.write(rel, buf.getvalue())

    def gold_png(self, rel, arr):
        self.save_pil(rel, Image.fromarray(np.asarray(arr, dtype=np.uint8), "RGB"), format="PNG",
                      optimize=True)

    def decode(self, src):
        rgb = Image.open(self.path(src)).convert("RGB")
        g = "gold/" + os.path.basename(src).replace(".", "_") + ".rgb.png"
        self.gold_png(g, np.asarray(rgb))
        self.lines.append(f"decode\t{src}\t{g}")
        return rgb

    def crop(self, src, size):
        rgb = Image.open(self.path(src)).convert("RGB")
        g = "gold/" + os.path.basename(src).replace(".", "_") + f".c{size}.png"
        self.gold_png(g, np.asarray(tv_resize_crop(rgb, size)))
        self.lines.append(f"crop\t{src}\t{size}\t{g}")

    def full(self, src, w, h):
        rgb = Image.open(self.path(src)).convert("RGB")
        g = "gold/" + os.path.basename(src).replace(".", "_") + f".r{w}x{h}.png"
        self.gold_png(g, np.asarray(rgb.resize((w, h), Image.BICUBIC)))
        self.lines.append(f"full\t{src}\t{w}\t{h}\t{g}")

    def prep(self, src, size):
        rgb = Image.open(self.path(src)).convert("RGB")
        x = tv_normalize(np.asarray(tv_resize_crop(rgb, size)), OPENAI_MEAN, OPENAI_STD)
        g = "gold/" + os.path.basename(src).replace(".", "_") + f".p{size}.npy"
        np.save(self.path(g), x.astype("<f4"))
        self.lines.append(f"prep\t{src}\t{size}\t{g}")

    def error(self, src, data, status, substring):
        self.write(src, data)
        try:  # record what Pillow does with the same file (divergences are documented)
            Image.open(self.path(src)).convert("RGB")
            pil = "Pillow decodes it"
        except Exception as ex:  # noqa: BLE001 - any Pillow failure is a refusal
            pil = f"Pillow: {type(ex).__name__}"
        self.lines.append(f"error\t{src}\t{status}\t{substring}\t# {pil}")

    def photo(self, name, size):
        p = os.path.join(PHOTO_DIR, name)
        raw = open(p, "rb").read()
        rgb = Image.open(p).convert("RGB")
        g = "gold/photo_" + name.replace(".", "_") + f".c{size}.png"
        self.gold_png(g, np.asarray(tv_resize_crop(rgb, size)))
        self.lines.append(f"photo\t{name}\t{len(raw)}\t{fnv64_np(raw):016x}\t{rgb.width}\t"
                          f"{rgb.height}\t{fnv64_np(rgb.tobytes()):016x}\t{size}\t{g}")


def main():
    warnings.simplefilter("ignore")
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/images"
    fx = Fixtures(root)
    rng = np.random.default_rng(7)

    # --- PNG in every colour type Pillow reads (small: decode parity) ---
    base = photo(67, 45, 1)
    rgb = Image.fromarray(base, "RGB")
    alpha = (np.linspace(0, 255, 67)[None, :] * np.ones((45, 1))).astype(np.uint8)
    grey = rgb.convert("L")
    fx.save_pil("src/rgb8.png", rgb, format="PNG")
    fx.save_pil("src/rgba8.png", Image.fromarray(np.dstack([base, alpha]), "RGBA"), format="PNG")
    fx.save_pil("src/grey8.png", grey, format="PNG")
    fx.save_pil("src/greyalpha8.png", Image.merge("LA", [grey, Image.fromarray(alpha)]), format="PNG")
    pal = rgb.quantize(colors=200, method=Image.Quantize.MEDIANCUT)
    fx.save_pil("src/palette8.png", pal, format="PNG")
    palt = pal.copy()
    palt.info["transparency"] = bytes(rng.integers(0, 256, 200, dtype=np.uint8))
    fx.save_pil("src/palette8_trns.png", palt, format="PNG", transparency=palt.info["transparency"])
    pal4 = rgb.quantize(colors=16)
    fx.save_pil("src/palette4.png", pal4, format="PNG", bits=4)
    fx.save_pil("src/grey1.png", grey.convert("1"), format="PNG")
    g16 = (np.asarray(grey).astype(np.uint32) * 3 + rng.integers(0, 2, (45, 67))).astype(np.uint16)
    g16[:5] *= 200  # most values > 255 (Pillow clips mode I to 255), some not
    fx.write("src/grey16.png", png_raw(67, 45, 16, 0, g16[..., None]))
    c16 = base.astype(np.uint32) * 257 + rng.integers(0, 256, base.shape)
    fx.write("src/rgb16.png", png_raw(67, 45, 16, 2, c16))
    fx.write("src/rgba16.png", png_raw(67, 45, 16, 6, np.dstack([c16, alpha.astype(np.uint32) * 257])))
    fx.write("src/greyalpha16.png", png_raw(67, 45, 16, 4, np.dstack([c16[..., 1], alpha.astype(np.uint32) * 250])))
    g4 = np.asarray(grey) >> 4
    fx.write("src/grey4.png", png_raw(67, 45, 4, 0, g4[..., None]))
    fx.write("src/grey2.png", png_raw(67, 45, 2, 0, (np.asarray(grey) >> 6)[..., None]))
    fx.write("src/grey8_trns.png", png_raw(67, 45, 8, 0, np.asarray(grey)[..., None], trns=b"\0\x80"))
    fx.write("src/rgb8_trns.png", png_raw(67, 45, 8, 2, base, trns=b"\0\x10\0\x20\0\x30"))
    fx.write("src/rgb8_interlaced.png", png_raw(67, 45, 8, 2, base, interlace=True))
    fx.write("src/palette2_interlaced.png",
             png_raw(67, 45, 2, 3, (np.asarray(grey) >> 6)[..., None], plte=[[10, 200, 30], [0, 0, 0], [255, 255, 255], [90, 60, 250]],
                     interlace=True))
    # indices beyond the 5-entry PLTE: Pillow shows its default palette (a grey ramp)
    fx.write("src/palette8_short.png", png_raw(67, 45, 8, 3, (np.asarray(grey) >> 5)[..., None],
                                               plte=[[200, 10, 10], [10, 200, 10], [10, 10, 200], [250, 250, 0], [0, 250, 250]]))
    fx.write("src/rgb16_interlaced.png", png_raw(67, 45, 16, 2, c16, interlace=True))
    for name in ["rgb8", "rgba8", "grey8", "greyalpha8", "palette8", "palette8_trns", "palette4", "grey1",
                 "grey16", "rgb16", "rgba16", "greyalpha16", "grey4", "grey2", "grey8_trns", "rgb8_trns",
                 "rgb8_interlaced", "palette2_interlaced", "palette8_short", "rgb16_interlaced"]:
        fx.decode(f"src/{name}.png")
        fx.crop(f"src/{name}.png", 32)

    # --- JPEG flavours (decode parity with Pillow's libjpeg decode) ---
    jbase = Image.fromarray(photo(131, 89, 2), "RGB")
    fx.save_pil("src/rgb_q90.jpg", jbase, format="JPEG", quality=90)
    fx.save_pil("src/rgb_444.jpg", jbase, format="JPEG", quality=95, subsampling=0)
    fx.save_pil("src/rgb_422.jpg", jbase, format="JPEG", quality=85, subsampling=1)
    fx.save_pil("src/grey.jpg", jbase.convert("L"), format="JPEG", quality=90)
    fx.save_pil("src/progressive.jpg", jbase, format="JPEG", quality=90, progressive=True, optimize=True)
    fx.save_pil("src/cmyk.jpg", jbase.convert("CMYK"), format="JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 (Image.open ignores it, and so do we)
    fx.save_pil("src/rgb_exif_rot.jpg", jbase, format="JPEG", quality=80, exif=exif.tobytes())
    fx.save_pil("src/odd_13x7.jpg", jbase.resize((13, 7)), format="JPEG", quality=90)
    for name in ["rgb_q90", "rgb_444", "rgb_422", "grey", "progressive", "cmyk", "rgb_exif_rot", "odd_13x7"]:
        fx.decode(f"src/{name}.jpg")
    fx.crop("src/grey.jpg", 64)
    fx.crop("src/cmyk.jpg", 32)
    if make_ycck(fx.path("src/ycck.jpg")):
        fx.decode("src/ycck.jpg")
    # corrupt entropy-coded data that libjpeg decodes with a warning: Pillow keeps the
    # (damaged) image, and so must we, pixel for pixel
    small = io.BytesIO()
    Image.fromarray(photo(64, 48, 11), "RGB").save(small, format="JPEG", quality=90)
    small = small.getvalue()
    sos = small.find(b"\xff\xda")
    mrng = np.random.default_rng(12)
    kept = 0
    while kept < 3:
        m = bytearray(small)
        at = int(mrng.integers(sos + 14, len(m) - 2))
        m[at] ^= int(mrng.integers(1, 256))
        try:
            Image.open(io.BytesIO(bytes(m))).convert("RGB")
        except Exception:  # noqa: BLE001 - only mutants Pillow accepts are kept
            continue
        fx.write(f"src/corrupt_{kept}.jpg", bytes(m))
        fx.decode(f"src/corrupt_{kept}.jpg")
        kept += 1

    # --- resize + crop: sizes, aspect ratios, up- and downscaling ---
    fx.save_pil("src/photo_400x300.jpg", Image.fromarray(photo(400, 300, 3), "RGB"), format="JPEG", quality=90)
    fx.save_pil("src/photo_96x128.png", Image.fromarray(photo(96, 128, 4), "RGB"), format="PNG")
    fx.save_pil("src/wide_600x40.png", Image.fromarray(photo(600, 40, 5), "RGB"), format="PNG")
    fx.save_pil("src/tall_30x500.jpg", Image.fromarray(photo(30, 500, 6), "RGB").convert("L"), format="JPEG", quality=90)
    fx.save_pil("src/tiny_7x5.png", Image.fromarray(photo(7, 5, 8), "RGB"), format="PNG")
    fx.save_pil("src/one_1x9.png", Image.fromarray(photo(1, 9, 9), "RGB"), format="PNG")
    fx.save_pil("src/photo_90x64.png", Image.fromarray(photo(90, 64, 10), "RGB"), format="PNG")
    fx.crop("src/photo_400x300.jpg", 224)
    fx.crop("src/photo_400x300.jpg", 32)
    fx.crop("src/photo_400x300.jpg", 97)
    fx.crop("src/photo_96x128.png", 160)
    fx.crop("src/photo_96x128.png", 64)
    fx.crop("src/wide_600x40.png", 224)
    fx.crop("src/wide_600x40.png", 32)
    fx.crop("src/tall_30x500.jpg", 64)
    fx.crop("src/tall_30x500.jpg", 224)
    fx.crop("src/tiny_7x5.png", 224)
    fx.crop("src/tiny_7x5.png", 3)
    fx.crop("src/one_1x9.png", 16)
    fx.crop("src/photo_90x64.png", 64)  # no resize, crop only
    fx.crop("src/photo_90x64.png", 50)
    fx.full("src/photo_400x300.jpg", 123, 77)
    fx.full("src/photo_400x300.jpg", 400, 23)  # vertical pass only
    fx.full("src/photo_400x300.jpg", 37, 300)   # horizontal pass only
    fx.full("src/photo_96x128.png", 401, 13)
    fx.full("src/tiny_7x5.png", 1, 1)
    fx.prep("src/photo_400x300.jpg", 32)
    fx.prep("src/photo_96x128.png", 24)

    # --- hostile and corrupt files: CL_ERR_DATA with a clear message ---
    good_png = open(fx.path("src/rgb8.png"), "rb").read()
    good_jpg = open(fx.path("src/rgb_q90.jpg"), "rb").read()

    def ihdr_png(w, h, depth=8, ctype=2, idat=b""):
        return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
                + png_chunk(b"IDAT", zlib.compress(idat)) + png_chunk(b"IEND", b""))

    fx.error("src/bad_trunc_half.png", good_png[:len(good_png) // 2], "data", "truncated")
    fx.error("src/bad_trunc_header.png", good_png[:20], "data", "truncated")
    crc = bytearray(good_png)
    crc[-20] ^= 0xFF  # inside the last IDAT's data: zlib or CRC failure
    fx.error("src/bad_idat.png", bytes(crc), "data", "corrupt PNG")
    fx.error("src/bad_wide.png", ihdr_png(30001, 1), "data", "outside the limits")
    fx.error("src/bad_bomb.png", ihdr_png(20000, 20000), "data", "outside the limits")
    fx.error("src/bad_zero.png", ihdr_png(0, 5), "data", "corrupt PNG")
    fx.error("src/bad_depth.png", ihdr_png(4, 4, depth=3, ctype=0), "data", "corrupt PNG")
    fx.error("src/bad_nodata.png", ihdr_png(64, 64, idat=b"\0" * 10), "data", "corrupt PNG")
    fx.error("src/bad_trunc_half.jpg", good_jpg[:len(good_jpg) // 2], "data", "truncated")
    fx.error("src/bad_trunc_header.jpg", good_jpg[:100], "data", "JPEG")
    sof = bytearray(good_jpg)
    i = sof.find(b"\xff\xc0")
    sof[i + 5:i + 9] = struct.pack(">HH", 15000, 15000)  # height, width: 2.25e8 pixels
    fx.error("src/bad_bomb.jpg", bytes(sof), "data", "outside the limits")
    sof[i + 5:i + 9] = struct.pack(">HH", 0, 100)
    fx.error("src/bad_zero.jpg", bytes(sof), "data", "corrupt JPEG")
    fx.error("src/bad_empty.png", b"", "data", "empty")
    fx.error("src/bad_text.png", b"hello, I am not an image\n", "unsupported", "not a PNG or JPEG")

    # --- real photographs from Debian's python3-skimage, when installed ---
    if os.path.isdir(PHOTO_DIR):
        fx.photo("chelsea.png", 64)
        fx.photo("rocket.jpg", 224)
        fx.photo("coffee.png", 64)
        fx.photo("camera.png", 64)
        fx.photo("hubble_deep_field.jpg", 32)
        fx.photo("motorcycle_left.png", 32)
    else:
        print(f"note: {PHOTO_DIR} absent (python3-skimage): no photo cases", file=sys.stderr)

    with open(fx.path("MANIFEST.tsv"), "w") as f:
        f.write("# written by scripts/make_image_goldens.py (Pillow %s); see its docstring\n"
                % Image.__version__)
        f.write("\n".join(fx.lines) + "\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(root) for n in ns)
    print(f"{len(fx.lines)} cases, {total} bytes under {root}")


if __name__ == "__main__":
    main()
