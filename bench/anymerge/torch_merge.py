#!/usr/bin/python3
"""torch_merge.py — the PyTorch peers of `ttmerge merge --base --models` for bench/anymerge_bench.sh.

  torch_merge.py --mode eager|lazy --method ta|ties|dare|consensus-ta BASE M1,M2,... OUT [--lambda L]
                 [--topk P] [--density D] [--tall-lambda T] [--k K] [--shard-size BYTES]

eager: every checkpoint loaded whole into memory first (torch tensors in their file dtype, as
       `load_file` of every model would), then merged tensor by tensor in float32.
lazy:  MergeKit's way (mergekit/io/lazy_tensor_loader.py + tasks): for each tensor name, that
       tensor is read from each model's mapped shard (a copy, as safe_open's get_tensor), merged
       in float32, cast to the base's dtype and queued into the current output shard, which is
       written once it exceeds --shard-size (mergekit/io/tensor_writer.py).
Methods, as MergeKit computes them: ta = θ0 + λ Σ τ_k; ties = MergeKit's TIES (magnitude trim to
the top `topk`% PER TENSOR — MergeKit's sparsify — sign by the sum, disjoint mean) times λ;
dare = Bernoulli(density) keep and 1/density rescale, then the TA sum; consensus-ta = TALL masks
m_t = |τ_t| > T |Σ τ − τ_t| (T = tall_lambda 0.6, FusionBench's fixed value, as `ttmerge merge`), kept
where at least K (2) tasks agree, θ0 + λ m ⊙ Σ τ (MergeKit has no Consensus: the tall_masks code's math). The safetensors format is
read and written with numpy (st_numpy.py); no `safetensors` package is needed.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_numpy import read_set, write_file  # noqa: E402

TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
RAW = {"F32": np.float32, "F16": np.int16, "BF16": np.int16}


def to_torch(entry, copy=True):
    dt, shape, raw = entry
    a = np.array(raw) if copy else raw  # np.array copies out of the mapping
    return torch.from_numpy(a.view(RAW[dt])).view(TORCH[dt]).reshape(shape)


def to_bytes(t):
    if t.dtype == torch.float32:
        return t.contiguous().numpy()
    return t.contiguous().view(torch.int16).numpy()


def merge(method, base, tvs, lam, topk, density, gen, tall_lambda=0.6, k_agree=2):
    if method == "consensus-ta":
        mtl = torch.zeros_like(base)
        for t in tvs:
            mtl += t
        count = torch.zeros(base.shape, dtype=torch.int32)
        for t in tvs:
            count += (t.abs() > tall_lambda * (mtl - t).abs()).to(torch.int32)
        return base + lam * torch.where(count >= k_agree, mtl, torch.zeros_like(mtl))
    if method == "dare":
        tvs = [torch.where(torch.rand(t.shape, generator=gen) < density, t / density, torch.zeros_like(t)) for t in tvs]
    if method in ("ta", "dare"):
        acc = torch.zeros_like(base)
        for t in tvs:
            acc += t
        return base + lam * acc
    # ties, MergeKit's: per-tensor magnitude trim, mass sign vote, disjoint mean
    trimmed = []
    for t in tvs:
        k = int(t.numel() * topk / 100.0)
        if k == 0:
            trimmed.append(torch.zeros_like(t))
            continue
        flat = t.abs().reshape(-1)
        thr = torch.topk(flat, k, sorted=False).values.min()
        trimmed.append(torch.where(t.abs() >= thr, t, torch.zeros_like(t)))
    stack = torch.stack(trimmed)
    sign = torch.sign(stack.sum(0))
    agree = (torch.sign(stack) == sign) & (stack != 0)
    num = (stack * agree).sum(0)
    cnt = agree.sum(0).clamp(min=1)
    return base + lam * (num / cnt)


class ShardWriter:
    def __init__(self, out, limit):
        self.out, self.limit, self.cur, self.size, self.n, self.names = out, limit, {}, 0, 0, {}
        os.makedirs(out)

    def add(self, name, dt, t):
        b = to_bytes(t)
        self.cur[name] = (dt, tuple(t.shape), b)
        self.size += b.nbytes
        if self.size >= self.limit:
            self.flush()

    def flush(self):
        if self.cur:
            self.n += 1
            fn = f"model-{self.n:05d}.safetensors"
            write_file(os.path.join(self.out, fn), self.cur, {"format": "pt"})
            self.cur, self.size = {}, 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["eager", "lazy"], required=True)
    ap.add_argument("--method", choices=["ta", "ties", "dare", "consensus-ta"], required=True)
    ap.add_argument("base")
    ap.add_argument("models")
    ap.add_argument("out")
    ap.add_argument("--lambda", dest="lam", type=float, default=0.3)
    ap.add_argument("--topk", type=float, default=20)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--tall-lambda", type=float, default=0.6)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=5 * 10**9)
    a = ap.parse_args()
    base = read_set(a.base)
    models = [read_set(p) for p in a.models.split(",")]
    gen = torch.Generator().manual_seed(0)
    if a.mode == "eager":  # everything in memory first
        base_t = {n: to_torch(e) for n, e in base.items() if e[0] in TORCH}
        models_t = [{n: to_torch(m[n]) for n in base_t} for m in models]
    w = ShardWriter(a.out, a.shard_size)
    for name in sorted(base):
        dt = base[name][0]
        if dt not in TORCH:
            continue
        if a.mode == "eager":
            b = base_t[name].float()
            tvs = [m[name].float() - b for m in models_t]
        else:
            b = to_torch(base[name]).float()
            tvs = [to_torch(m[name]).float() - b for m in models]
        out = merge(a.method, b, tvs, a.lam, a.topk, a.density, gen, a.tall_lambda, a.k)
        w.add(name, dt, out.to(TORCH[dt]))
    w.flush()


if __name__ == "__main__":
    import time
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t0 = time.perf_counter()
    main()
    print(f"merge_seconds {time.perf_counter() - t0:.3f}", file=sys.stderr)  # without the interpreter's start
