#!/usr/bin/python3
"""data_merge_ref.py — known answers for the data-based merges (Fisher merging, RegMean).

PyTorch/numpy transcriptions (float64) of FusionBench's code (fusion_bench/method/fisher_merging/
{clip_fisher_merging,fisher_merging}.py, fusion_bench/method/regmean/{clip_regmean,regmean}.py):

  data_merge_ref.py handmade --tool build/data_merge_dump
      RegMean's closed form W = (inv(Σ G̃_k) Σ G̃_k W_kᵀ)ᵀ on hand-made Gram matrices from a seed:
      K = 3, K = 1 (gives W back), alpha = 0 (a per-column weighted mean), Grams of fewer rows than
      features (rank-deficient: solvable because alpha < 1), and a feature that is 0 for every task
      (singular: the tool must fail with one line, as torch.inverse does)
  data_merge_ref.py suite --tool build/data_merge_dump --ttmerge build/ttmerge --suite build/suite-tiny
      on the suite's real models and the training images ttmerge drew (their indices are dumped):
      - every task's diagonal Fisher against autograd of an independent float64 forward,
        batch by batch as FusionBench (the batch's Σ sqrt(p)·log p, its gradient squared, / N)
      - every task's Gram matrices against the same forward's linear inputs (XᵀX / rows)
      - `ttmerge merge --method fisher|regmean` against the closed forms of the reference, on the
        dumped statistics (the formula) and on the reference's own statistics (end to end)
      - a one-task suite: both merges give the fine-tuned model back
Tolerance: ||ttmerge − reference||_F <= 1e-5 · ||reference||_F per tensor (per layer for Grams).
Exit 0 when everything matches, 1 with one line per mismatch otherwise, 2 on bad input.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from frontier_ref import read_safetensors  # noqa: E402

RTOL = 1e-5
torch.set_default_dtype(torch.float64)


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = np.linalg.norm(ref)
    err = np.linalg.norm(got - ref)
    return err / scale if scale > 0 else err


# ---- the reference algorithms ----

def reduce_non_diagonal(g, ratio):
    """regmean.py reduce_non_diagonal_elements."""
    w = np.full_like(g, ratio)
    np.fill_diagonal(w, 1.0)
    return g * w


def regmean_closed_form(grams, weights, ratio):
    """merging_with_regmean_weights for one Linear: grams [d_in²], weights [d_out × d_in] (torch layout)."""
    gs = [reduce_non_diagonal(g, ratio) for g in grams]
    prod = sum(g @ w.astype(np.float64).T for g, w in zip(gs, weights))
    return (np.linalg.inv(sum(gs)) @ prod).T


def fisher_closed_form(params, fishers, eps=1e-6, normalize=True):
    """merging_with_fisher_weights: params/fishers are lists (per model) of dicts name -> array."""
    K = len(params)
    coef = np.ones(K) / K
    if normalize:
        norms = np.array([np.linalg.norm([np.linalg.norm(f[n]) for n in f]) for f in fishers])
        inv = 1.0 / (norms + eps)
        coef = coef * inv / inv.sum()
    out = {}
    for name in params[0]:
        num = sum(c * (f[name] + eps) * p[name].astype(np.float64) for c, f, p in zip(coef, fishers, params))
        den = sum(c * (f[name] + eps) for c, f in zip(coef, fishers))
        out[name] = num / den
    return out


# ---- an independent forward (open_clip's VisionTransformer, as tests/clip_ref.py) ----

def gelu(x, kind):
    if kind == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))


def forward(t, x, arch, taps=None):
    """t: name -> float64 tensors; x [n, C, S, S] normalised. features [n, D]; taps[name] = linear inputs."""
    width, heads, eps = arch["width"], arch["heads"], arch.get("ln_eps", 1e-5)
    w = t["conv1.weight"]
    x = torch.nn.functional.conv2d(x, w, stride=w.shape[2]).flatten(2).transpose(1, 2)
    x = torch.cat([t["class_embedding"].expand(x.shape[0], 1, width), x], 1) + t["positional_embedding"]

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (width,), t[name + ".weight"], t[name + ".bias"], eps)

    def lin(h, name, bias):
        if taps is not None:
            taps.setdefault(name, []).append(h.detach().reshape(-1, h.shape[-1]))
        return h @ t[name].T + t[bias]

    x = ln(x, "ln_pre")
    n, T, _ = x.shape
    hd = width // heads
    for i in range(arch["layers"]):
        b = f"transformer.resblocks.{i}."
        qkv = lin(ln(x, b + "ln_1"), b + "attn.in_proj_weight", b + "attn.in_proj_bias")
        q, k, v = (z.reshape(n, T, heads, hd).transpose(1, 2) for z in qkv.split(width, -1))
        a = (torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, -1) @ v).transpose(1, 2).reshape(n, T, width)
        x = x + lin(a, b + "attn.out_proj.weight", b + "attn.out_proj.bias")
        h = gelu(lin(ln(x, b + "ln_2"), b + "mlp.c_fc.weight", b + "mlp.c_fc.bias"), arch["act"])
        x = x + lin(h, b + "mlp.c_proj.weight", b + "mlp.c_proj.bias")
    return ln(x[:, 0], "ln_post") @ t["proj"]


def logits_of(feat, head, arch):
    if arch.get("normalize_features", False):
        feat = feat / feat.norm(dim=-1, keepdim=True)
    return arch.get("logit_scale", 1.0) * feat @ head["head.weight"].T + head["head.bias"]


def read_idx_images(path):
    raw = open(path, "rb").read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


def reference_stats(spec, suite_dir, task, theta, idx, batch):
    """FusionBench's Fisher (per batch) and the Grams (XᵀX / rows) of one task, float64."""
    arch = spec["arch"]
    mean, std = spec["normalize"]["mean"], spec["normalize"]["std"]
    pixels = read_idx_images(os.path.join(suite_dir, "data", task["name"], "train-images.idx"))
    c, s = arch["channels"], arch["image_size"]
    x_all = (torch.from_numpy(pixels[idx].reshape(len(idx), c, s, s).astype(np.float64)) / 255.0 - mean) / std
    head = {k: torch.from_numpy(v.astype(np.float64)) for k, v in read_safetensors(os.path.join(suite_dir, task["head"]))[0].items()}
    t = {k: torch.from_numpy(v.astype(np.float64)).requires_grad_(True) for k, v in theta.items()}
    fisher = {k: torch.zeros_like(v) for k, v in t.items()}
    taps = {}
    for at in range(0, len(idx), batch):
        x = x_all[at:at + batch]
        logits = logits_of(forward(t, x, arch, taps), head, arch)
        p = torch.softmax(logits, -1).detach()
        loss = (torch.sqrt(p) * torch.log_softmax(logits, -1)).sum(-1).sum(0)
        grads = torch.autograd.grad(loss, list(t.values()))
        for k, g in zip(t, grads):
            fisher[k] += g ** 2
    fisher = {k: (v / len(idx)).numpy() for k, v in fisher.items()}
    grams = {}
    for name, xs in taps.items():
        X = torch.cat(xs, 0)
        grams[name] = (X.T @ X / X.shape[0]).numpy()
    return fisher, grams


# ---- hand-made closed-form cases ----

def run_solve(tool, grams, weights, alpha):
    with tempfile.TemporaryDirectory() as d:
        d_out, d_in = weights[0].shape
        with open(os.path.join(d, "spec.txt"), "w") as f:
            f.write(f"{len(grams)} {d_in} {d_out} {alpha!r}\n")
        for k, (g, w) in enumerate(zip(grams, weights)):
            np.asarray(g, "<f8").tofile(os.path.join(d, f"g{k}.bin"))
            np.asarray(w, "<f4").tofile(os.path.join(d, f"w{k}.bin"))
        p = subprocess.run([tool, "solve", d], capture_output=True, text=True)
        if p.returncode != 0:
            return None, p.returncode, p.stderr.strip()
        return np.fromfile(os.path.join(d, "out.bin"), "<f4").reshape(d_out, d_in), 0, ""


def run_handmade(tool):
    rng = np.random.default_rng(20230501)
    failed = 0

    def gram(rows, d, zero_col=None):
        X = rng.standard_normal((rows, d)) * rng.uniform(0.2, 3.0, d)
        if zero_col is not None:
            X[:, zero_col] = 0
        return X.T @ X / rows

    cases = []
    d_in, d_out = 12, 7
    W = [rng.standard_normal((d_out, d_in)).astype(np.float32) for _ in range(3)]
    cases.append(("K=3 alpha=0.95", [gram(50, d_in) for _ in range(3)], W, 0.95))
    cases.append(("K=3 alpha=1", [gram(50, d_in) for _ in range(3)], W, 1.0))
    cases.append(("K=3 alpha=0", [gram(50, d_in) for _ in range(3)], W, 0.0))
    cases.append(("K=1", [gram(50, d_in)], W[:1], 0.95))
    cases.append(("rank-deficient (4 rows < 12 features) alpha=0.95", [gram(4, d_in) for _ in range(3)], W, 0.95))
    for name, grams, weights, alpha in cases:
        got, rc, msg = run_solve(tool, grams, weights, alpha)
        if got is None:
            print(f"FAIL handmade {name}: exit {rc}: {msg}")
            failed += 1
            continue
        ref = regmean_closed_form(grams, weights, alpha)
        if name == "K=1":
            ref = weights[0].astype(np.float64)  # G⁻¹ G W = W
        if name == "K=3 alpha=0":  # diagonal Grams: each input column's Gram-weighted mean
            diag = np.array([np.diag(g) for g in grams])
            ref_diag = sum(dg[None, :] * w for dg, w in zip(diag, weights)) / diag.sum(0)[None, :]
            e2 = rel(got, ref_diag)
            if e2 > RTOL:
                print(f"FAIL handmade {name}: per-column mean relative error {e2:.3g}")
                failed += 1
        e = rel(got, ref)
        print(f"{'ok  ' if e <= RTOL else 'FAIL'} handmade {name}: relative error {e:.2e}")
        failed += e > RTOL
    # a feature that no task ever sees: Σ G̃ has a zero row and column, for every alpha
    grams = [gram(50, d_in, zero_col=5) for _ in range(3)]
    got, rc, msg = run_solve(tool, grams, W, 0.95)
    if got is not None or rc != 1 or "singular" not in msg or "\n" in msg:
        print(f"FAIL handmade singular: expected exit 1 with one line naming the singular system, got {rc}: {msg!r}")
        failed += 1
    else:
        print(f"ok   handmade singular: refused ({msg})")
    return failed


# ---- the suite ----

def merge(ttmerge, suite_dir, method, out, sets):
    cmd = [ttmerge, "merge", "--suite", suite_dir, "--method", method, "--out", out, "--quiet", "--seed", "0"]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    if p.returncode != 0:
        raise RuntimeError(f"ttmerge merge --method {method}: exit {p.returncode}: {p.stderr.strip()}")
    return read_safetensors(out)[0]


def check(label, got, ref, tol=RTOL):
    e = rel(got, ref)
    if not np.isfinite(e) or e > tol:
        print(f"FAIL {label}: relative error {e:.3g} > {tol:g}")
        return 1, e
    return 0, e


def run_suite(tool, ttmerge, suite_dir, samples, batch):
    with open(os.path.join(suite_dir, "suite.json")) as f:
        spec = json.load(f)
    tasks = spec["tasks"]
    thetas = [read_safetensors(os.path.join(suite_dir, t["finetuned"]["full"]))[0] for t in tasks]
    failed = 0
    sets = [f"samples={samples}", f"batch={batch}"]
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([tool, "stats", suite_dir, tmp, str(samples), str(batch)], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"FAIL data_merge_dump stats: exit {p.returncode}: {p.stderr.strip()}")
            return 1
        layout = [line.split() for line in open(os.path.join(tmp, "layout.txt"))]
        layers = [line.split() for line in open(os.path.join(tmp, "layers.txt"))]
        ttm_F, ttm_G, ref_F, ref_G = [], [], [], []
        worst = {"fisher": 0.0, "gram": 0.0}
        for k, task in enumerate(tasks):
            idx = np.fromfile(os.path.join(tmp, f"idx_{k}.bin"), "<i4")
            if len(idx) != min(samples, task["splits"]["train"]) or len(set(idx.tolist())) != len(idx):
                print(f"FAIL {task['name']}: {len(idx)} sample indices, not {samples} distinct ones")
                failed += 1
            flat = np.fromfile(os.path.join(tmp, f"fisher_{k}.bin"), "<f4")
            F = {n: flat[int(o):int(o) + int(c)].reshape(thetas[k][n].shape) for n, o, c in layout}
            gflat = np.fromfile(os.path.join(tmp, f"gram_{k}.bin"), "<f8")
            G = {n: gflat[int(o):int(o) + int(d) * int(d)].reshape(int(d), int(d)) for n, d, _, o in layers}
            rF, rG = reference_stats(spec, suite_dir, task, thetas[k], idx, batch)
            for n in F:
                bad, e = check(f"{task['name']} Fisher of {n}", F[n], rF[n])
                failed += bad
                worst["fisher"] = max(worst["fisher"], e)
            for n in G:
                bad, e = check(f"{task['name']} Gram of {n}", G[n], rG[n])
                failed += bad
                worst["gram"] = max(worst["gram"], e)
            ttm_F.append(F), ttm_G.append(G), ref_F.append(rF), ref_G.append(rG)
        print(f"{'ok  ' if not failed else 'done'} statistics of {len(tasks)} tasks ({samples} images, batch {batch}): "
              f"Fisher worst {worst['fisher']:.2e}, Gram worst {worst['gram']:.2e}")

        # the merges: the closed forms on ttmerge's statistics and on the reference's
        for method in ("fisher", "regmean"):
            got = merge(ttmerge, suite_dir, method, os.path.join(tmp, method + ".safetensors"), sets)
            worst_f, worst_e = 0.0, 0.0
            for stats, label in ((ttm_F if method == "fisher" else ttm_G, "formula"),
                                 (ref_F if method == "fisher" else ref_G, "end to end")):
                if method == "fisher":
                    ref = fisher_closed_form(thetas, stats)
                else:
                    ref = {n: np.mean([th[n].astype(np.float64) for th in thetas], 0) for n in thetas[0]}
                    for n, _, _, _ in layers:
                        ref[n] = regmean_closed_form([s[n] for s in stats], [th[n] for th in thetas], 0.95)
                for n in ref:
                    bad, e = check(f"{method} ({label}) {n}", got[n], ref[n])
                    failed += bad
                    if label == "formula":
                        worst_f = max(worst_f, e)
                    else:
                        worst_e = max(worst_e, e)
            print(f"{'ok  ' if not failed else 'done'} {method}: {len(got)} tensors, worst relative error "
                  f"{worst_f:.2e} on ttmerge's statistics, {worst_e:.2e} on the reference's")

        # one task: both merges are the identity
        one = os.path.join(tmp, "one-task")
        os.makedirs(one)
        for entry in os.listdir(suite_dir):
            if entry != "suite.json":
                os.symlink(os.path.join(os.path.abspath(suite_dir), entry), os.path.join(one, entry))
        with open(os.path.join(one, "suite.json"), "w") as f:
            json.dump(dict(spec, tasks=tasks[:1]), f)
        for method in ("fisher", "regmean"):
            got = merge(ttmerge, one, method, os.path.join(tmp, method + ".1.safetensors"), sets)
            worst = 0.0
            for n in got:
                bad, e = check(f"{method} K=1 {n}", got[n], thetas[0][n])
                failed += bad
                worst = max(worst, e)
            print(f"{'ok  ' if worst <= RTOL else 'FAIL'} {method} K=1 gives the fine-tuned model: worst {worst:.2e}")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["handmade", "suite"])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--ttmerge")
    ap.add_argument("--suite")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    if a.mode == "handmade":
        failed = run_handmade(a.tool)
    else:
        if not a.ttmerge or not a.suite or not os.path.isfile(os.path.join(a.suite, "suite.json")):
            print("data_merge_ref.py suite: needs --ttmerge and --suite (a built suite directory)", file=sys.stderr)
            return 2
        failed = run_suite(a.tool, a.ttmerge, a.suite, a.samples, a.batch)
    print(f"{failed} mismatches" if failed else "all match")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
