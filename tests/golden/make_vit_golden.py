#!/usr/bin/python3
"""make_vit_golden.py — PyTorch reference goldens for ttmerge's C ViT.

Run with Debian's python3 (python3-torch):  /usr/bin/python3 tests/golden/make_vit_golden.py
Needs only torch and the standard library. Writes, deterministically,
  vit_gelu.safetensors       and   vit_quickgelu.safetensors
into --out-dir (default: this script's directory), then re-reads them (as --verify does).
  --verify    only re-read existing files and check them (shapes, layout, recomputed outputs).

The model is open_clip's VisionTransformer (pre-LN, nn.MultiheadAttention, class token,
ln_post on token 0, features = ln_post(x[:,0]) @ proj) plus a linear task head. The
reference is computed in float64 from float32-representable weights and inputs, then
stored as F32. File layout: see README.md next to this script.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH_KEYS = ["image_size", "channels", "patch_size", "width", "layers", "heads", "mlp_ratio",
             "output_dim", "act", "ln_eps", "normalize_features", "logit_scale", "num_classes"]

CONFIGS = [
    dict(file="vit_gelu.safetensors", batch=3, seed=0,
         arch=dict(image_size=12, channels=1, patch_size=4, width=16, layers=2, heads=2,
                   mlp_ratio=4.0, output_dim=8, act="gelu", ln_eps=1e-5,
                   normalize_features=True, logit_scale=20.0, num_classes=5)),
    dict(file="vit_quickgelu.safetensors", batch=2, seed=1,
         arch=dict(image_size=8, channels=3, patch_size=4, width=12, layers=1, heads=3,
                   mlp_ratio=2.0, output_dim=6, act="quick_gelu", ln_eps=1e-5,
                   normalize_features=False, logit_scale=1.0, num_classes=4)),
]


# ----------------------------------------------------------------------------- the model
class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResBlock(nn.Module):
    def __init__(self, w, h, m, act, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(w, eps=eps)
        self.attn = nn.MultiheadAttention(w, h, batch_first=True)
        self.ln_2 = nn.LayerNorm(w, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(w, m))
        self.mlp.add_module("gelu", nn.GELU() if act == "gelu" else QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(m, w))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        w, p, S, C = a["width"], a["patch_size"], a["image_size"], a["channels"]
        m = int(w * a["mlp_ratio"])
        g = S // p
        self.conv1 = nn.Conv2d(C, w, kernel_size=p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(w))
        self.positional_embedding = nn.Parameter(torch.empty(g * g + 1, w))
        self.ln_pre = nn.LayerNorm(w, eps=a["ln_eps"])
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            [ResBlock(w, a["heads"], m, a["act"], a["ln_eps"]) for _ in range(a["layers"])])
        self.ln_post = nn.LayerNorm(w, eps=a["ln_eps"])
        self.proj = nn.Parameter(torch.empty(w, a["output_dim"]))
        self.head = nn.Linear(a["output_dim"], a["num_classes"])

    def tokens(self, img):
        x = self.conv1(img)                                  # [B, w, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, g*g, w]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        return self.ln_pre(x)

    def features(self, img):
        x = self.tokens(img)
        for blk in self.transformer.resblocks:
            x = blk(x)
        return self.ln_post(x[:, 0, :]) @ self.proj

    def logits(self, f):
        if self.a["normalize_features"]:
            f = self.a["logit_scale"] * (f / f.norm(dim=-1, keepdim=True))
        return self.head(f)

    def forward(self, img):
        f = self.features(img)
        return f, self.logits(f)


def param_names(a):
    """Every model tensor name (the checkpoint names), in open_clip's module order."""
    n = ["conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight", "ln_pre.bias"]
    for i in range(a["layers"]):
        b = "transformer.resblocks.%d." % i
        n += [b + s for s in ("ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                              "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
                              "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]
    return n + ["ln_post.weight", "ln_post.bias", "proj", "head.weight", "head.bias"]


def expected_shapes(a, B):
    w, C, p, S = a["width"], a["channels"], a["patch_size"], a["image_size"]
    m, D, K, T = int(w * a["mlp_ratio"]), a["output_dim"], a["num_classes"], (S // p) ** 2 + 1
    sh = {"conv1.weight": [w, C, p, p], "class_embedding": [w], "positional_embedding": [T, w],
          "ln_pre.weight": [w], "ln_pre.bias": [w], "ln_post.weight": [w], "ln_post.bias": [w],
          "proj": [w, D], "head.weight": [K, D], "head.bias": [K]}
    for i in range(a["layers"]):
        b = "transformer.resblocks.%d." % i
        sh.update({b + "ln_1.weight": [w], b + "ln_1.bias": [w],
                   b + "attn.in_proj_weight": [3 * w, w], b + "attn.in_proj_bias": [3 * w],
                   b + "attn.out_proj.weight": [w, w], b + "attn.out_proj.bias": [w],
                   b + "ln_2.weight": [w], b + "ln_2.bias": [w],
                   b + "mlp.c_fc.weight": [m, w], b + "mlp.c_fc.bias": [m],
                   b + "mlp.c_proj.weight": [w, m], b + "mlp.c_proj.bias": [w]})
    assert list(sh) and set(sh) == set(param_names(a))
    out = dict(sh)
    for n in param_names(a):
        out["golden.grad_ce." + n] = sh[n]
        out["golden.grad_entropy." + n] = sh[n]
    out.update({"golden.input": [B, C, S, S], "golden.labels": [B], "golden.features": [B, D],
                "golden.logits": [B, K], "golden.loss_ce": [1], "golden.loss_entropy": [1]})
    return out


def init_params(model, a):
    """Deterministic float32 init (call after torch.manual_seed); nothing trivially 0/1."""
    with torch.no_grad():
        for n in param_names(a):
            t = model.get_parameter(n)
            if n.startswith("ln_") or ".ln_" in n:
                if n.endswith(".weight"):
                    t.copy_(1.0 + 0.1 * torch.randn(t.shape))
                else:
                    t.copy_(0.1 * torch.randn(t.shape))
            elif t.dim() == 1 and n != "class_embedding":  # biases
                t.copy_(0.1 * torch.randn(t.shape))
            else:
                t.copy_(0.2 * torch.randn(t.shape))


def losses(logits, labels):
    ce = F.cross_entropy(logits, labels)
    logp = F.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp).sum(dim=-1).mean()
    return ce, ent


# ------------------------------------------------------------ an independent re-computation
def manual_act(x, act):
    if act == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return x * torch.sigmoid(1.702 * x)


def manual_ln(x, g, b, eps):
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def manual_attention(y, P, pre, H):
    """Multi-head self-attention by hand: q,k,v = in_proj split in that order."""
    B, T, w = y.shape
    dh = w // H
    Wq, Wk, Wv = P[pre + "attn.in_proj_weight"].split(w, dim=0)
    bq, bk, bv = P[pre + "attn.in_proj_bias"].split(w, dim=0)
    q, k, v = y @ Wq.t() + bq, y @ Wk.t() + bk, y @ Wv.t() + bv
    out = torch.empty_like(y)
    for h in range(H):
        s = slice(h * dh, (h + 1) * dh)
        att = (q[:, :, s] @ k[:, :, s].transpose(1, 2)) / math.sqrt(dh)
        att = torch.exp(att - att.max(dim=-1, keepdim=True).values)
        att = att / att.sum(dim=-1, keepdim=True)
        out[:, :, s] = att @ v[:, :, s]
    return out @ P[pre + "attn.out_proj.weight"].t() + P[pre + "attn.out_proj.bias"]


def manual_forward(P, a, img):
    """Forward from a name->tensor dict with no nn modules (conv as patch matmul)."""
    w, p, S, C, eps = a["width"], a["patch_size"], a["image_size"], a["channels"], a["ln_eps"]
    g, B = S // p, img.shape[0]
    # patches row-major over the grid, each flattened as (c, ky, kx) like conv1.weight
    patches = img.reshape(B, C, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * p * p)
    x = patches @ P["conv1.weight"].reshape(w, -1).t()
    x = torch.cat([P["class_embedding"].expand(B, 1, w), x], dim=1) + P["positional_embedding"]
    x = manual_ln(x, P["ln_pre.weight"], P["ln_pre.bias"], eps)
    for i in range(a["layers"]):
        pre = "transformer.resblocks.%d." % i
        x = x + manual_attention(manual_ln(x, P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], eps), P, pre, a["heads"])
        y = manual_ln(x, P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], eps)
        y = manual_act(y @ P[pre + "mlp.c_fc.weight"].t() + P[pre + "mlp.c_fc.bias"], a["act"])
        x = x + y @ P[pre + "mlp.c_proj.weight"].t() + P[pre + "mlp.c_proj.bias"]
    f = manual_ln(x[:, 0], P["ln_post.weight"], P["ln_post.bias"], eps) @ P["proj"]
    fh = f
    if a["normalize_features"]:
        fh = a["logit_scale"] * f / torch.sqrt((f * f).sum(dim=-1, keepdim=True))
    return f, fh @ P["head.weight"].t() + P["head.bias"]


def self_check(model, a, img, labels, f, logits, grads):
    """Assert the nn.Module reference against hand-written math and finite differences."""
    P = {n: model.get_parameter(n).detach() for n in param_names(a)}
    # 1) first block's attention by hand vs nn.MultiheadAttention
    with torch.no_grad():
        x0 = model.tokens(img)
        blk = model.transformer.resblocks[0]
        y = blk.ln_1(x0)
        ref = blk.attn(y, y, y, need_weights=False)[0]
        mine = manual_attention(y, P, "transformer.resblocks.0.", a["heads"])
        assert (ref - mine).abs().max().item() < 1e-10, "attention mismatch"
        # 2) the whole forward by hand
        f2, l2 = manual_forward(P, a, img)
        assert (f2 - f).abs().max().item() < 1e-10, "features mismatch"
        assert (l2 - logits).abs().max().item() < 1e-10, "logits mismatch"
    # 3) gradients: central differences on a few entries of every tensor, both losses
    gen = torch.Generator().manual_seed(1234)
    h = 1e-6
    for n in param_names(a):
        t = model.get_parameter(n)
        for _ in range(2):
            j = int(torch.randint(t.numel(), (1,), generator=gen))
            with torch.no_grad():
                flat = t.view(-1)
                old = flat[j].item()
                flat[j] = old + h
                lp = losses(model(img)[1], labels)
                flat[j] = old - h
                lm = losses(model(img)[1], labels)
                flat[j] = old
            for k, key in enumerate(("ce", "entropy")):
                fd = (lp[k].item() - lm[k].item()) / (2 * h)
                an = grads[key][n].view(-1)[j].item()
                assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), \
                    "grad %s %s[%d]: fd %.12g autograd %.12g" % (key, n, j, fd, an)


# ------------------------------------------------------------------------ safetensors I/O
def st_write(path, tensors, metadata):
    """Hand-written safetensors writer: all F32 little-endian, tensors sorted by name."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().reshape(-1)
        b = struct.pack("<%df" % t.numel(), *t.tolist())
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata)
    hj = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    hj += b" " * ((-(8 + len(hj))) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fp:
        fp.write(struct.pack("<Q", len(hj)))
        fp.write(hj)
        for b in blobs:
            fp.write(b)
    os.replace(tmp, path)


def st_read(path):
    """Hand-written safetensors reader (F32 only) with layout checks; returns (tensors, metadata)."""
    with open(path, "rb") as fp:
        raw = fp.read()
    (hl,) = struct.unpack("<Q", raw[:8])
    assert (8 + hl) % 8 == 0, "data section not 8-byte aligned"
    header = json.loads(raw[8:8 + hl].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    data = raw[8 + hl:]
    out, expect = {}, 0
    for name in sorted(header, key=lambda n: header[n]["data_offsets"][0]):
        e = header[name]
        assert e["dtype"] == "F32", name
        s, t = e["data_offsets"]
        n = 1
        for d in e["shape"]:
            n *= d
        assert s == expect and t - s == 4 * n, "bad offsets for " + name
        expect = t
        out[name] = torch.tensor(struct.unpack("<%df" % n, data[s:t]),
                                 dtype=torch.float32).reshape(e["shape"])
    assert expect == len(data), "trailing bytes after the data section"
    assert list(sorted(header)) == sorted(header, key=lambda n: header[n]["data_offsets"][0]), \
        "tensors not stored in name order"
    return out, meta


# --------------------------------------------------------------------------- generation
def build(cfg):
    a, B = cfg["arch"], cfg["batch"]
    model = ViT(a)
    torch.manual_seed(cfg["seed"])               # the init below is the only RNG use before inputs
    init_params(model, a)                        # float32 values ...
    img = torch.rand(B, a["channels"], a["image_size"], a["image_size"]) * 2.0 - 1.0
    labels = torch.randint(0, a["num_classes"], (B,))
    model = model.double()                       # ... computed on exactly, in float64
    img = img.double()
    model.train()                                # no dropout anywhere; keeps MHA on the slow path

    f, logits = model(img)
    ce, ent = losses(logits, labels)
    params = [model.get_parameter(n) for n in param_names(a)]
    g_ce = torch.autograd.grad(ce, params, retain_graph=True)
    g_ent = torch.autograd.grad(ent, params)
    grads = {"ce": dict(zip(param_names(a), g_ce)), "entropy": dict(zip(param_names(a), g_ent))}

    self_check(model, a, img, labels, f.detach(), logits.detach(), grads)

    T = {n: p.detach() for n, p in zip(param_names(a), params)}
    for n in param_names(a):
        T["golden.grad_ce." + n] = grads["ce"][n]
        T["golden.grad_entropy." + n] = grads["entropy"][n]
    T.update({"golden.input": img, "golden.labels": labels.double(), "golden.features": f.detach(),
              "golden.logits": logits.detach(), "golden.loss_ce": ce.detach().reshape(1),
              "golden.loss_entropy": ent.detach().reshape(1)})
    meta = {"ttmerge.arch": json.dumps({k: a[k] for k in ARCH_KEYS}, separators=(", ", ": ")),
            "golden.batch": str(B), "golden.seed": str(cfg["seed"])}
    return T, meta


def verify(path, cfg):
    T, meta = st_read(path)
    a = json.loads(meta["ttmerge.arch"])
    assert list(a) == ARCH_KEYS and a == cfg["arch"], "arch metadata mismatch"
    B = int(meta["golden.batch"])
    assert B == cfg["batch"]
    exp = expected_shapes(a, B)
    assert set(T) == set(exp), "tensor set mismatch: %s" % (set(T) ^ set(exp))
    for n, s in exp.items():
        assert list(T[n].shape) == s, "%s shape %s != %s" % (n, list(T[n].shape), s)
    # recompute from the stored F32 weights (in float64) with an nn-free forward
    P = {n: T[n].double() for n in param_names(a)}
    f, logits = manual_forward(P, a, T["golden.input"].double())
    labels = T["golden.labels"]
    assert torch.equal(labels, labels.round()) and labels.min() >= 0 and labels.max() < a["num_classes"]
    df = (f - T["golden.features"].double()).abs().max().item()
    dl = (logits - T["golden.logits"].double()).abs().max().item()
    assert df < 1e-5 and dl < 1e-5, "recomputed features/logits drift: %g %g" % (df, dl)
    ce, ent = losses(logits, labels.long())
    assert abs(ce.item() - T["golden.loss_ce"].item()) < 1e-5
    assert abs(ent.item() - T["golden.loss_entropy"].item()) < 1e-5
    # gradients again from the stored weights via the nn.Module model
    model = ViT(a).double()
    with torch.no_grad():
        for n in param_names(a):
            model.get_parameter(n).copy_(P[n])
    _, lg = model(T["golden.input"].double())
    ce2, ent2 = losses(lg, labels.long())
    params = [model.get_parameter(n) for n in param_names(a)]
    worst = 0.0
    for key, loss in (("ce", ce2), ("entropy", ent2)):
        gs = torch.autograd.grad(loss, params, retain_graph=True)
        for n, g in zip(param_names(a), gs):
            st = T["golden.grad_%s.%s" % (key, n)].double()
            err = ((g - st).abs() / (1.0 + g.abs())).max().item()
            worst = max(worst, err)
    assert worst < 1e-5, "stored gradients drift: %g" % worst
    print("ok %s: %d tensors, %d bytes, max |dlogits| %.2e, max grad rel err %.2e"
          % (os.path.basename(path), len(T), os.path.getsize(path), dl, worst))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--verify", action="store_true", help="only check existing files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for cfg in CONFIGS:
        path = os.path.join(args.out_dir, cfg["file"])
        if not args.verify:
            os.makedirs(args.out_dir, exist_ok=True)
            T, meta = build(cfg)
            st_write(path, T, meta)
        verify(path, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
