#!/usr/bin/python3
"""torch_adamerge.py — the PyTorch peer of bench/micro/adamerge_bench.c: one layer-wise AdaMerging step
(or Model Tinting's, --learner tinting).

Reads a ttmerge suite directory (suite.json, pretrained.safetensors, finetuned/<task>.safetensors,
heads/<task>.safetensors, data/<task>/test-images.idx) with the small readers below, and runs the
step of the official code (EnnengYang/AdaMerging, main_layer_wise_adamerging.py) in eager mode:

  θ_l = θ0_l + Σ_k clamp(λ_k,l, 0, 1) τ_k,l     built differentiably w.r.t. λ (autograd through the merge)
  loss = Σ_a Σ_k mean_b H(softmax(head_k(f(x_a,k,b; θ))))   a < accum (2), K tasks, batch b (16)
  loss.backward(); Adam(lr 1e-3) step on λ

The same computation as ttmerge's step (adamerge/adapt.c): each of the `accum` forwards runs all K task
batches concatenated into one batch of K x 16, through torch_vit.py's VisionTransformer (the model of
bench/pytorch/torch_vit.py, open_clip tensor names) with the merged tensors swapped in by
torch.nn.utils.stateless.functional_call. One backward covers both forwards and the merge, so autograd
forms dL/dλ_k,l = <dL/dθ_l, τ_k,l> once per step (ttmerge does the K dots after each forward).
The merge of a tensor is one matrix-vector product clamp(λ[:, l]) @ T_l with the K task vectors
stacked as T_l [K, numel] (--merge stacked, default; its backward is one more matrix-vector product),
or the official Python sum Σ_k λ_k τ_k (--merge official): stacked is the faster of the two.

  /usr/bin/python3 bench/pytorch/torch_adamerge.py --suite DIR --threads 2 [--steps 10] [--warmup 2] [--csv F]
  /usr/bin/python3 bench/pytorch/torch_adamerge.py --suite DIR --check check.json   # from adamerge_bench --check-out

--check recomputes the loss and dL/dλ at the coefficients adamerge_bench wrote (the first `batch` test
images of every task, `accum` times, as adapt_objective) and exits 1 unless the loss agrees to 1e-4
relative and the gradient to 2e-3 of its largest magnitude (in float32; --check-double also in float64).

--learner tinting: Model Tinting's step (AIM-SKKU/ModelTinting, main_layer_wise_adamerging.py with
--classifier_train; ttmerge's tint/tinting.c at its defaults): one Adam (lr 1e-2, betas 0.9/0.999) over λ
[K, L] (init 0.3, merged as above, differentiably) and every task's head (W, b), a trainable copy of its
zero-shot head. A step takes ONE task (the order reshuffled every K steps) and its next 32 test images:

  zero_grad(set_to_none) -> merge -> forward -> head_k -> pseudo-conf CE -> backward -> Adam step

pseudo-conf (crosspseudoconf): cross-entropy against the hard labels of the task's fine-tuned expert (with
its zero-shot head), over the samples where the merged model agrees with the expert or is not more
confident than it. The expert's labels and confidences are computed for every test image once before the
first step, as ttmerge does (the official code runs the expert inside each step: not timed in either
peer). A head without data in a step has no gradient and Adam leaves it alone, as ttmerge's per-task
optimiser. --check on a tinting check file recomputes the sum of the K per-task losses (task k on its first
`batch` test images, with the file's seeded heads), dL/dλ and dL/dhead of every task, with the expert
labels recomputed here; same tolerances (dL/dhead: 2e-3 of its largest magnitude over all heads).

  /usr/bin/python3 bench/pytorch/torch_adamerge.py --suite DIR --learner tinting --threads 2 [--steps 10]
"""
import argparse
import gzip
import json
import os
import random
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.utils.stateless import functional_call

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import VisionTransformer, check_pct, forward_flops, require_openblas  # noqa: E402

# ---------------------------------------------------------------- readers


def read_safetensors(path):
    """{name: float32 tensor}, metadata. Only what ttmerge writes (F32, little endian) is accepted."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if len(data) < 8:
        sys.exit("%s: not a safetensors file (too short)" % path)
    n = struct.unpack("<Q", data[:8])[0]
    if n > len(data) - 8:
        sys.exit("%s: header length %d past the end of the file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, t in header.items():
        if t.get("dtype") != "F32":
            sys.exit("%s: tensor %s has dtype %s (this reader takes F32)" % (path, name, t.get("dtype")))
        a, b = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if b - a != 4 * count or base + b > len(data):
            sys.exit("%s: tensor %s: offsets do not match its shape" % (path, name))
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=count, offset=base + a).reshape(t["shape"])
    return out, meta


def read_idx_u8(path):
    """uint8 IDX (raw or gzip) as a tensor of its dims."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit("%s: not a uint8 IDX file" % path)
    nd = data[3]
    dims = struct.unpack(">%dI" % nd, data[4:4 + 4 * nd])
    count = 1
    for d in dims:
        count *= d
    if len(data) != 4 + 4 * nd + count:
        sys.exit("%s: size does not match dims %s" % (path, dims))
    return torch.frombuffer(bytearray(data[4 + 4 * nd:]), dtype=torch.uint8).reshape(dims)


class Suite:
    def __init__(self, d):
        with open(os.path.join(d, "suite.json")) as f:
            man = json.load(f)
        self.dir, self.name = d, man["name"]
        self.arch = man["arch"]
        self.mean, self.std = man["normalize"]["mean"], man["normalize"]["std"]
        mode = man["finetune_modes"][0]
        self.pre, meta = read_safetensors(os.path.join(d, man.get("pretrained", "pretrained.safetensors")))
        self.tasks, self.ft, self.heads, self.test = [], [], [], []
        for t in man["tasks"]:
            self.tasks.append(t["name"])
            ft, _ = read_safetensors(os.path.join(d, t["finetuned"][mode]))
            self.ft.append(ft)
            h, _ = read_safetensors(os.path.join(d, t["head"]))
            self.heads.append((h["head.weight"], h["head.bias"]))
            im = read_idx_u8(os.path.join(d, "data", t["name"], "test-images.idx"))
            if im.dim() == 3:
                im = im.unsqueeze(1)
            self.test.append(im)

    def normalize(self, u8):
        """ttmerge's infer_normalize: x * (1 / (255 std)) + (-mean / std), in float32."""
        a = torch.tensor(1.0 / (255.0 * self.std), dtype=torch.float32)
        b = torch.tensor(-self.mean / self.std, dtype=torch.float32)
        return u8.to(torch.float32) * a + b


# ---------------------------------------------------------------- the step


def build_model(arch):
    act = arch.get("act", "gelu")
    if act not in ("gelu", "quick_gelu"):
        sys.exit("unsupported act %r" % act)
    m = VisionTransformer(arch["image_size"], arch["channels"], arch["patch_size"], arch["width"], arch["layers"],
                          arch["heads"], arch["mlp_ratio"], arch["output_dim"], act=act, ln_eps=arch.get("ln_eps", 1e-5))
    m.train()  # the adaptation step (dropout is 0); no fast path
    for p in m.parameters():
        p.requires_grad_(False)
    return m


class Merger:
    """θ(λ) = θ0 + Σ_k clamp(λ_k) τ_k per tensor, differentiable in λ [K, L]."""

    def __init__(self, s, names, mode):
        self.names, self.mode = names, mode
        self.pre = [s.pre[n] for n in names]
        if mode == "stacked":
            self.tv = [torch.stack([(ft[n] - s.pre[n]).reshape(-1) for ft in s.ft]) for n in names]
        else:
            self.tv = [[ft[n] - s.pre[n] for ft in s.ft] for n in names]

    def __call__(self, lam):
        c = lam.clamp(0, 1)
        out = {}
        for i, n in enumerate(self.names):
            if self.mode == "stacked":
                out[n] = self.pre[i] + torch.matmul(c[:, i], self.tv[i]).view(self.pre[i].shape)
            else:
                out[n] = self.pre[i] + sum(c[k, i] * t for k, t in enumerate(self.tv[i]))
        return out


def entropy(logits):
    """official softmax_entropy: -(softmax * log_softmax).sum(1)"""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def head_logits(arch, f, W, b):
    """the suite's head: logit_scale * normalize(f) @ W^T + b (CLIP's) or f @ W^T + b"""
    if arch.get("normalize_features", False):
        f = arch.get("logit_scale", 1.0) * F.normalize(f, dim=-1)
    return f @ W.t() + b


def objective(model, s, merger, lam, batches, B, double=False):
    """Σ_a Σ_k mean entropy; batches: list of [K*B, C, S, S] normalised inputs."""
    params = merger(lam)
    if double:
        params = {n: p.double() for n, p in params.items()}
    loss = 0.0
    for x in batches:
        feats = functional_call(model, params, (x.double() if double else x,))
        for k, (W, b) in enumerate(s.heads):
            if double:
                W, b = W.double(), b.double()
            loss = loss + entropy(head_logits(s.arch, feats[k * B:(k + 1) * B], W, b)).mean()
    return loss


# ---------------------------------------------------------------- Model Tinting's step


@torch.no_grad()
def expert_labels(model, s, chunk=64):
    """Per task: the hard labels and the confidence (max softmax) of its fine-tuned expert with its
    zero-shot head on every test image — computed once before the first step, as tint/tinting.c (the
    official code runs the expert on each batch inside the step: the same labels, an extra forward)."""
    labels, conf = [], []
    for k, t in enumerate(s.test):
        W, b = s.heads[k]
        z = torch.cat([head_logits(s.arch, functional_call(model, s.ft[k], (s.normalize(t[i:i + chunk]),)), W, b)
                       for i in range(0, t.shape[0], chunk)])
        c, y = z.softmax(1).max(1)
        labels.append(y)
        conf.append(c)
    return labels, conf


def tint_loss(logits, y, conf, kind, kept=None):
    """crosspseudoconf (pseudo-conf): CE on the expert's labels y over the samples where the merged
    model agrees with the expert, or disagrees and is not more confident (conf: the expert's max
    probability); crosspseudo (pseudo): all samples; entropy: AdaMerging's. An empty kept set gives 0
    and no gradient (as ttmerge; the official mean of nothing would be NaN). kept: a list to append the
    number of kept samples to."""
    if kind == "entropy":
        return entropy(logits).mean()
    pm, am = logits.detach().softmax(1).max(1)
    keep = (am == y) | (conf >= pm) if kind == "pseudo-conf" else torch.ones_like(y, dtype=torch.bool)
    if kept is not None:
        kept.append(int(keep.sum()))
    if not keep.any():
        return logits.sum() * 0
    return F.cross_entropy(logits[keep], y[keep])


def tint_objective(model, s, merger, lam, heads, labels, conf, B, kind, kept=None):
    """The sum of the K per-task steps' losses, task k on its first B test images with head k
    (adapt_objective with per-task steps: what adamerge_bench --learner tinting --check-out writes)."""
    params = merger(lam)
    loss = 0.0
    for k, t in enumerate(s.test):
        f = functional_call(model, params, (s.normalize(t[:B]),))
        loss = loss + tint_loss(head_logits(s.arch, f, *heads[k]), labels[k][:B], conf[k][:B], kind, kept)
    return loss


def first_batches(s, B, accum):
    x = torch.cat([s.normalize(t[:B]) for t in s.test])
    return [x] * accum


class Stream:
    """Each task's test images, cycling in order (ttmerge shuffles; the content does not change the cost)."""

    def __init__(self, s, B):
        self.s, self.B, self.pos = s, B, [0] * len(s.test)

    def task(self, k):
        """the next B test images of task k alone (a Tinting step)"""
        t = self.s.test[k]
        idx = [(self.pos[k] + i) % t.shape[0] for i in range(self.B)]
        self.pos[k] = (self.pos[k] + self.B) % t.shape[0]
        return self.s.normalize(t[idx]), idx

    def next(self):
        parts = []
        for k, t in enumerate(self.s.test):
            idx = [(self.pos[k] + i) % t.shape[0] for i in range(self.B)]
            self.pos[k] = (self.pos[k] + self.B) % t.shape[0]
            parts.append(self.s.normalize(t[idx]))
        return torch.cat(parts)


def check_tinting(s, model, names, c):
    """loss, dL/dλ and dL/dhead of every task at the check file's λ and heads; the expert labels recomputed"""
    B, kind = c["batch"], c["loss_kind"]
    cols = [names.index(n) for n in c["tensors"]]
    K = len(s.tasks)
    lam = torch.zeros(K, len(names))
    lam[:, cols] = torch.tensor(c["lambda_raw"], dtype=torch.float32)
    lam.requires_grad_(True)
    heads = [(torch.tensor(h["weight"], dtype=torch.float32).requires_grad_(True),
              torch.tensor(h["bias"], dtype=torch.float32).requires_grad_(True)) for h in c["heads"]]
    labels, conf = expert_labels(model, s)
    kept = []
    loss = tint_objective(model, s, Merger(s, names, "stacked"), lam, heads, labels, conf, B, kind, kept)
    print("the loss keeps %s of %d samples per task" % (kept, B))  # a check that should see the filter drop some
    loss.backward()
    g_c = torch.tensor(c["grad"], dtype=torch.float64)
    g = lam.grad[:, cols].double()
    hg_c = torch.cat([torch.cat([torch.tensor(h["weight"]).reshape(-1), torch.tensor(h["bias"])]) for h in c["head_grad"]])
    hg = torch.cat([torch.cat([W.grad.reshape(-1), b.grad]) for W, b in heads]).double()
    rel = abs(loss.item() - c["loss"]) / abs(c["loss"])
    gerr = (g - g_c).abs().max().item() / g_c.abs().max().item()
    herr = (hg - hg_c.double()).abs().max().item() / hg_c.abs().max().item()
    ok = rel <= 1e-4 and gerr <= 2e-3 and herr <= 2e-3
    print("check tinting (torch float32, %s on the first %d test images of each of %d tasks): loss %.8g vs ttmerge "
          "%.8g: rel %.2e; dL/dlambda [%d x %d]: max |diff| / max |g| = %.2e; dL/dhead (%d values): %.2e; %s" % (
              kind, B, K, loss.item(), c["loss"], rel, K, len(cols), gerr, hg.numel(), herr,
              "OK" if ok else "MISMATCH"))
    return 0 if ok else 1


def check(args, s, model, names):
    with open(args.check) as f:
        c = json.load(f)
    if c.get("learner", "adamerging") == "tinting":
        return check_tinting(s, model, names, c)
    B, accum = c["batch"], c["accum"]
    if not c["layerwise"]:
        sys.exit("--check: only layer-wise checks")
    cols = [names.index(n) for n in c["tensors"]]  # ttmerge layout order -> our order
    K = len(s.tasks)
    lam = torch.zeros(K, len(names))
    lam_c = torch.tensor(c["lambda_raw"], dtype=torch.float32)
    lam[:, cols] = lam_c
    g_c = torch.tensor(c["grad"], dtype=torch.float64)
    batches = first_batches(s, B, accum)
    worst = 0
    for double in (False, True) if args.check_double else (False,):
        merger = Merger(s, names, "stacked")
        l = lam.clone().requires_grad_(True)
        loss = objective(model, s, merger, l, batches, B, double)
        loss.backward()
        g = l.grad[:, cols].double()
        rel = abs(loss.item() - c["loss"]) / abs(c["loss"])
        gerr = (g - g_c).abs().max().item() / g_c.abs().max().item()
        ok = rel <= 1e-4 and gerr <= 2e-3
        print("check (torch %s): loss %.8g vs ttmerge %.8g: rel %.2e; dL/dlambda [%d x %d]: max |diff| / max |g| = "
              "%.2e; %s" % ("float64" if double else "float32", loss.item(), c["loss"], rel, K, len(cols), gerr,
                            "OK" if ok else "MISMATCH"))
        worst = max(worst, 0 if ok else 1)
    return worst


def timed_steps(args, step):
    """Run step(i) for args.warmup + args.steps steps; the seconds of the timed ones and every loss."""
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        losses.append(step(i))
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
    return times, losses


def run_adamerging(args, s, model, merger, K, L):
    """AdaMerging's steps; returns the timed steps' seconds, every step's loss, the batch, the step's contents"""
    B = args.batch
    lam = torch.full((K, L), 0.3, requires_grad=True)
    opt = torch.optim.Adam([lam], lr=args.lr, betas=(0.9, 0.999))
    stream = Stream(s, B)

    def step(i):
        opt.zero_grad(set_to_none=True)
        batches = [stream.next() for _ in range(args.accum)]
        loss = objective(model, s, merger, lam, batches, B)
        loss.backward()
        opt.step()
        return loss.item()

    times, losses = timed_steps(args, step)
    return times, losses, B, "merge + %d x fwd of %d x %d + backward + Adam" % (args.accum, K, B)


def run_tinting(args, s, model, merger, K, L):
    """Model Tinting's steps (official main_layer_wise_adamerging.py with --classifier_train, ttmerge's
    tinting defaults): one Adam (lr 1e-2) over λ [K, L] (init 0.3) and every task's head (init: its
    zero-shot head); each step takes one task — the order reshuffled every K steps — and its next B
    test images: zero_grad (to None, so that the other tasks' heads are not updated), merge, forward,
    the task's head, the loss against the expert's labels, backward, Adam step."""
    B = args.batch if args.batch_set else 32
    t0 = time.perf_counter()
    labels, conf = expert_labels(model, s)
    print("expert labels of %d tasks' test images: %.2f s (before the first step, not timed)" % (
        K, time.perf_counter() - t0))
    lam = torch.full((K, L), 0.3, requires_grad=True)
    heads = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True)) for W, b in s.heads]
    opt = torch.optim.Adam([lam] + [p for h in heads for p in h], lr=1e-2, betas=(0.9, 0.999), weight_decay=0.0)
    stream = Stream(s, B)
    order = list(range(K))
    shuffle = random.Random(0)

    def step(i):
        if i % K == 0:  # a new task order (a shuffle of K items: microseconds of the timed step)
            shuffle.shuffle(order)
        k = order[i % K]
        opt.zero_grad(set_to_none=True)
        x, idx = stream.task(k)
        f = functional_call(model, merger(lam), (x,))
        loss = tint_loss(head_logits(s.arch, f, *heads[k]), labels[k][idx], conf[k][idx], args.loss)
        loss.backward()
        opt.step()
        return loss.item()

    times, losses = timed_steps(args, step)
    return times, losses, B, "merge + fwd+bwd of one task's %d images (%s CE on the expert's labels) + Adam on " \
        "lambda and the task's head" % (B, args.loss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--learner", choices=("adamerging", "tinting"), default="adamerging",
                    help="whose step: AdaMerging's, or Model Tinting's (one task's 32 images, head trained)")
    ap.add_argument("--loss", choices=("pseudo-conf", "pseudo", "entropy"), default="pseudo-conf",
                    help="Tinting's loss (default pseudo-conf, as ttmerge's tinting)")
    ap.add_argument("--batch", type=int, default=None, help="images per task per forward (16; Tinting 32)")
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--merge", choices=("stacked", "official"), default="stacked")
    ap.add_argument("--csv")
    ap.add_argument("--config", help="config column of the CSV (default: the suite's name)")
    ap.add_argument("--check", help="JSON from adamerge_bench --check-out: compare loss and gradient, no timing")
    ap.add_argument("--check-double", action="store_true", help="--check also in float64 (slow for ViT-B sizes)")
    ap.add_argument("--peak-gflops", type=float, default=0.0)
    ap.add_argument("--allow-reference-blas", action="store_true")
    args = ap.parse_args()
    args.batch_set = args.batch is not None
    if args.batch is None:
        args.batch = 16
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print("torch %s, threads %d" % (torch.__version__, threads))
    require_openblas(args.allow_reference_blas)
    torch.manual_seed(0)
    try:
        s = Suite(args.suite)
    except (OSError, KeyError, ValueError) as e:  # one line naming the file, no traceback
        sys.exit("%s: %s: not a readable ttmerge suite: %s" % (sys.argv[0], args.suite, e))
    model = build_model(s.arch)
    names = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in s.pre]
    if missing or len(names) != len(s.pre):
        sys.exit("%s: tensor names differ from the model's (missing %s)" % (args.suite, missing[:3]))
    if args.check:
        sys.exit(check(args, s, model, names))

    K = len(s.tasks)
    merger = Merger(s, names, args.merge)
    run = run_tinting if args.learner == "tinting" else run_adamerging
    times, losses, B, what = run(args, s, model, merger, K, len(names))
    print("# step_seconds: " + " ".join("%.6f" % t for t in times))  # run_all.sh pools them over rounds
    med, mn = statistics.median(times), min(times)
    arch = s.arch
    c = dict(image_size=arch["image_size"], channels=arch["channels"], patch_size=arch["patch_size"],
             width=arch["width"], layers=arch["layers"], mlp_ratio=arch["mlp_ratio"], output_dim=arch["output_dim"])
    per_forward = B if args.learner == "tinting" else K * B  # images per forward
    accum = 1 if args.learner == "tinting" else args.accum
    gflops = 3.0 * accum * forward_flops(c, per_forward) / med / 1e9
    pct = 100.0 * gflops / args.peak_gflops if args.peak_gflops > 0 else float("nan")
    config = args.config or s.name
    pass_name = args.learner + "_step"
    check_pct("torch_adamerge.py", "%s %s (%d threads)" % (config, pass_name, threads), gflops, args.peak_gflops)
    images = per_forward * accum
    print("suite %s: K=%d, %d tensors; merge %s; step = %s" % (s.name, K, len(names), args.merge, what))
    print("%-14s %5s %3s  %-16s %10s %10s %10s %8s %7s" % ("config", "batch", "thr", "pass", "median_ms", "min_ms",
                                                          "images/s", "GFLOP/s", "%peak"))
    print("%-14s %5d %3d  %-16s %10.3f %10.3f %10.1f %8.2f %6.1f%%" % (
        config, per_forward, threads, pass_name, med * 1e3, mn * 1e3, images / med, gflops, pct))
    print("loss: first %.6f, last %.6f" % (losses[0], losses[-1]))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("config,batch,threads,pass,median_s,min_s,images_per_s,gflops,pct_peak_measured,peer\n")
            f.write("%s,%d,%d,%s,%.6g,%.6g,%.6g,%.6g,%.4g,torch\n" % (
                config, per_forward, threads, pass_name, med, mn, images / med, gflops, pct))


if __name__ == "__main__":
    main()
