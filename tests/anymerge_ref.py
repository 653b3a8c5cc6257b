#!/usr/bin/python3
"""anymerge_ref.py — numpy reference of `ttmerge merge --base --models` (baselines/anymerge.h).

  anymerge_ref.py OUT BASE M1,M2,... METHOD [--set k=v ...] [--seed S] [--dtype bf16|f16|f32]
                  [--sample N] [--weights w1,w2,...]

recomputes the merge in numpy (float32, the same operation order as the C kernels) and compares
OUT's tensors with it: every tensor, or N sampled ones (--sample; the TIES thresholds are still
global: numpy's order statistic over every merged element, one model at a time), bit for bit after
rounding to the output dtype (BF16: round to nearest even, computed here with integer ops). The
SVD merges (tsv-m, iso-c, iso-cts) of 2-D tensors are numpy's float64 SVDs (the official
algorithms, written from the papers' code): their merged task vector rounded to float32 may
differ from LAPACK's in the last bit, so there at most 1 in 10^4 entries (and at least one) may
be one unit in the last place of the output dtype away; the other tensors are bit for bit.
Prints one line per problem and exits 1 if any; the thresholds are printed for the log.
"""
import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "anymerge"))
from st_numpy import as_f32, bf16_rne, read_set  # noqa: E402

M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix64_np(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def name_key(name):
    """kern_name_key: FNV-1a 64 of the tensor name's bytes."""
    h = 0xcbf29ce484222325
    for c in name.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def dare_keep(seed, task, tensor, n, density):
    """kern_hash_u01(seed, task, tensor, i) < density for i < n."""
    h = mix64(mix64(mix64(seed) ^ task) ^ tensor)
    i = np.arange(n, dtype=np.uint64)
    u = (mix64_np(np.uint64(h) ^ i) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return u < density


def polar(x):
    """The orthogonal polar factor A B of x = A S B (its thin SVD)."""
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    return u @ vh


def svd_merge(method, taus, fraction):
    """The merged task vector of one 2-D tensor in float64: TSV-M (top 1/K singular triplets of each
    τ_t side by side, both stacks replaced by their polar factors), Iso-C (the sum's singular vectors
    with the mean singular value), Iso-CTS (the sum's top c directions + each task's top s outside
    them, polar factors, the mean of all k singular values)."""
    m, n = taus[0].shape
    K, k = len(taus), min(m, n)
    if method == "iso-c":
        u, s, vh = np.linalg.svd(sum(taus), full_matrices=False)
        return (u * s.mean()) @ vh
    ucat, scat, vcat = np.zeros((m, k)), np.zeros(k), np.zeros((k, n))
    if method == "tsv-m":
        r = int(k * (1.0 / K))
        if r == 0:
            return np.zeros((m, n))
        for t, x in enumerate(taus):
            u, s, vh = np.linalg.svd(x, full_matrices=False)
            ucat[:, t * r:(t + 1) * r], scat[t * r:(t + 1) * r], vcat[t * r:(t + 1) * r] = u[:, :r], s[:r], vh[:r]
        return (polar(ucat) * scat) @ polar(vcat)
    c0 = int(k * fraction)
    c = k - int(np.rint((k - c0) / K)) * K
    st = int((k - c) / K)
    u, s, vh = np.linalg.svd(sum(taus), full_matrices=False)
    uc = u[:, :c]
    ucat[:, K * st:K * st + c], scat[K * st:K * st + c], vcat[K * st:K * st + c] = uc, s[:c], vh[:c]
    for t, x in enumerate(taus):
        if st == 0:
            continue
        u, s, vh = np.linalg.svd(x - uc @ (uc.T @ x), full_matrices=False)
        ucat[:, t * st:(t + 1) * st], scat[t * st:(t + 1) * st], vcat[t * st:(t + 1) * st] = u[:, :st], s[:st], vh[:st]
    return scat.mean() * (polar(ucat) @ polar(vcat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("base")
    ap.add_argument("models")
    ap.add_argument("method")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--weights", default=None)
    a = ap.parse_args()
    p = {"topk": 20.0, "density": 0.5, "base": "ta", "merge": "mean", "k": 2, "tall_lambda": 0.6, "lambda": None,
         "common_space_fraction": 0.8, "q": 1.0, "rank_ratio": 0.12, "clamp": 0.01, "keep": 0.05, "gamma": 0.5}
    for kv in a.set:
        k, v = kv.split("=", 1)
        p["lambda" if k == "alpha" else k] = v if k in ("base", "merge") else float(v)
    svd_method = a.method in ("tsv-m", "iso-c", "iso-cts", "cart")
    ties = a.method in ("ties", "consensus-ties") or (a.method == "dare" and p["base"] == "ties")
    mean = p["merge"] == "mean" and a.method != "consensus-ties"
    lam = p["lambda"] if p["lambda"] is not None else (1.0 if ties and mean and a.method != "consensus-ties" else 0.3)
    if svd_method and p["lambda"] is None:
        lam = {"tsv-m": 1.0, "cart": 2.0}.get(a.method, 1.5)
    if a.method == "pcb" and p["lambda"] is None:
        lam = 1.2
    lam = np.float32(lam)
    base = read_set(a.base)
    models = [read_set(m) for m in a.models.split(",")]
    K = len(models)
    w = [float(x) for x in a.weights.split(",")] if a.weights else [1.0] * K
    out = read_set(a.out)
    names = sorted(base)
    merged = [n for n in names if base[n][0] in ("F32", "F16", "BF16", "F64")]

    lata_w = {}  # lata: (tensor, model) -> its weight, found below

    def tv(name, k):
        b = as_f32(base[name]).reshape(-1)
        x = as_f32(models[k][name]).reshape(-1) - b
        wk = lata_w.get((name, k), w[k])
        if wk != 1.0 and a.method != "pcb":  # pcb: w_k scales the model's λ
            x = np.float32(wk) * x
        if a.method == "dare":
            keep = dare_keep(a.seed, k, name_key(name), x.size, p["density"])
            x = np.where(keep, x / np.float32(p["density"]), np.float32(0)).astype(np.float32)
        return x

    thr = [np.float32(0)] * K
    majority = 0
    if ties:
        d = sum(int(np.prod(base[n][1])) for n in merged)
        keep_n = int(d * (p["topk"] / 100.0))
        if keep_n < d:
            for k in range(K):
                mags = np.concatenate([np.abs(tv(n, k)) for n in merged])
                thr[k] = np.partition(mags, d - keep_n - 1)[d - keep_n - 1]  # kthvalue(d - keep)
                del mags
        print("thresholds", " ".join(f"{float(t):.9g}" for t in thr))
        bal = und = 0
        for n in merged:
            s = np.zeros(int(np.prod(base[n][1])), np.float32)
            some = np.zeros(s.shape, bool)
            for k in range(K):
                x = tv(n, k)
                keep = (np.abs(x) >= thr[k]) & (x != 0)
                s += np.where(keep, x, np.float32(0))
                some |= keep
            bal += int(np.sign(s).sum())
            und += int((some & (s == 0)).sum())
        majority = 1 if bal > 0 else -1 if bal < 0 else 0
        print(f"majority sign {majority:+d}, {und} kept entries with a trimmed sum of exactly 0")

    def omega(n):
        """TATR's conflict per entry (zero-shot), in the C order of float operations."""
        xs = [tv(n, k) for k in range(K)]
        A = np.zeros_like(xs[0])
        for x in xs:
            A += np.abs(x)
        o = np.zeros_like(A)
        for x in xs:
            a = np.abs(x)
            o += a * (A - a)
        return o

    if a.method == "lata":  # the suite's lata: per tensor 1 − |cos(τ_k, mean τ)| (float64), per model the
        # ceil(L·topk/100) highest weighted 1, the others gamma, normalised to mean 1; then ta
        topk = p["topk"] if any(kv.startswith("topk=") for kv in a.set) else 50.0
        L, score = len(merged), np.zeros((K, len(merged)))
        for l, n in enumerate(merged):
            xs = [tv(n, k) for k in range(K)]
            v = np.zeros_like(xs[0])
            for x in xs:
                v += x
            v *= np.float32(1.0 / K)
            v64 = v.astype(np.float64)
            for k in range(K):
                x64 = xs[k].astype(np.float64)
                sa, sb = float(x64 @ x64), float(v64 @ v64)
                c = 0.0 if sa == 0 or sb == 0 else min(1.0, abs(float(x64 @ v64)) / (np.sqrt(sa) * np.sqrt(sb)))
                score[k, l] = 1 - c
        n_top = min(L, max(0, int(np.ceil(L * topk / 100.0 - 1e-9))))
        mean = (n_top + p["gamma"] * (L - n_top)) / L
        for k in range(K):
            for l, n in enumerate(merged):
                above = sum(score[k, j] > score[k, l] or (score[k, j] == score[k, l] and j < l) for j in range(L))
                m = float(np.float32(1.0 if above < n_top else p["gamma"])) / mean
                lata_w[(n, k)] = float(np.float32(m)) if w[k] == 1.0 else float(np.float32(w[k] * float(np.float32(m))))
        print("lata weights", " ".join(f"{lata_w[(merged[0], k)]:.6g}" for k in range(K)))

    tatr_thr = np.float32(np.inf)
    if a.method == "tatr":
        d = sum(int(np.prod(base[n][1])) for n in merged)
        rank = int(d * ((100.0 - p["q"]) / 100.0))
        if rank < d:
            tatr_thr = np.partition(np.concatenate([omega(n) for n in merged]), rank)[rank]
        print(f"tatr threshold {float(tatr_thr):.9g}")

    # PCB (the suite's pcb.c, pcb.py's __main__) on the whole model, in the C order of float operations:
    # per model the clamp bounds of |τ_k| and the score's order statistic and max, by sorting
    def pcb_clamped(x, r):
        a = np.clip(np.abs(x), r[0], r[1]).astype(np.float32)
        mm = (a - r[0]) / (r[1] - r[0]) if r[1] > r[0] else np.zeros_like(a)
        return a, mm.astype(np.float32)

    def pcb_sum_n(xs):
        s = np.zeros_like(xs[0])
        for k in range(K):
            s += np.sign(xs[k]) * pcb_clamped(xs[k], pcb_rows[k])[1]
        return s

    def pcb_score(x, s, r):
        mm = pcb_clamped(x, r)[1].astype(np.float64)
        return (np.exp(np.float64(K) * mm * mm) * np.tanh(x.astype(np.float64) * s.astype(np.float64))).astype(np.float32)

    pcb_rows = []
    if a.method == "pcb":
        d = sum(int(np.prod(base[n][1])) for n in merged)
        r_lo, r_hi, r_b = int(d * p["clamp"]), int(d * (1.0 - p["clamp"]) - 1.0), int(d * (1.0 - p["keep"]))
        X = [np.concatenate([tv(n, k) for n in merged]) for k in range(K)]
        for k in range(K):
            m = np.sort(np.abs(X[k]))
            pcb_rows.append([m[r_lo], m[r_hi]])
        S = pcb_sum_n(X)
        for k in range(K):
            B = pcb_score(X[k], S, pcb_rows[k])
            pcb_rows[k] += [np.sort(B)[r_b], B.max()]
        del X, S
        print("pcb bounds", " ".join(f"{float(v):.9g}" for r in pcb_rows for v in r))

    def pcb_merge(xs):
        s = pcb_sum_n(xs)
        num, den = np.zeros(s.shape), np.zeros(s.shape)
        for k in range(K):
            r = pcb_rows[k]
            b_ = pcb_score(xs[k], s, r)
            b_ = np.where(b_ < r[2], r[2], b_)
            sc = ((b_ - r[2]) / (r[3] - r[2])).astype(np.float32) if r[3] > r[2] else np.zeros_like(b_)
            t = np.sign(xs[k]) * pcb_clamped(xs[k], r)[0] * (lam * np.float32(w[k]))
            num += t.astype(np.float64) * sc.astype(np.float64)
            den += sc
        return (num / np.maximum(den, 1e-12)).astype(np.float32)

    def ties_merge(xs, use_mean):
        s = np.zeros_like(xs[0])
        for k in range(K):
            s += np.where((np.abs(xs[k]) >= thr[k]) & (xs[k] != 0), xs[k], np.float32(0))
        sign = np.where(s > 0, 1, np.where(s < 0, -1, majority))
        o = np.zeros_like(s)
        cnt = np.zeros(s.shape, np.int32)
        for k in range(K):
            x = xs[k]
            agree = (np.abs(x) >= thr[k]) & np.where(sign > 0, x > 0, x < 0)
            o += np.where(agree, x, np.float32(0))
            cnt += agree
        if use_mean:
            o = np.where(cnt > 1, o / np.maximum(cnt, 1).astype(np.float32), o)
        return o.astype(np.float32)

    svd_tensors = set()
    check = merged if not a.sample else random.Random(0).sample(merged, min(a.sample, len(merged)))
    bad = 0
    for n in check:
        b = as_f32(base[n]).reshape(-1)
        if a.method == "average":
            acc = np.zeros_like(b)
            for k in range(K):
                acc += np.float32(w[k]) * as_f32(models[k][n]).reshape(-1)
            ref = acc * np.float32(1.0 / sum(w))
        elif a.method == "cart":  # θ_avg + λ Σ c̃_k, c_k = (τ_k + θ0) − θ_avg, the C order of float operations
            xs = [tv(n, k) for k in range(K)]
            s = np.zeros_like(b)
            for x in xs:
                s += x
            avg = b + np.float32(1.0 / K) * s
            cs = [(x + b) - avg for x in xs]
            shape = base[n][1]
            if len(shape) == 2 and ("attn" in n or "mlp" in n) and "ln" not in n and "bias" not in n:
                k_ = min(shape)
                r = max(1, min(k_, int(p["rank_ratio"] * k_)))
                lows = []
                for c in cs:
                    u, sv, vh = np.linalg.svd(c.reshape(shape).astype(np.float64), full_matrices=False)
                    lows.append(((u[:, :r] * sv[:r]) @ vh[:r]).astype(np.float32).reshape(-1))
                cs = lows
                svd_tensors.add(n)
            acc = np.zeros_like(b)
            for c in cs:
                acc += c
            ref = avg + lam * acc
        elif svd_method:
            xs = [tv(n, k) for k in range(K)]
            shape = base[n][1]
            if len(shape) == 2 and "text_projection" not in n:
                taus = [x.reshape(shape).astype(np.float64) for x in xs]
                mtl = svd_merge(a.method, taus, p["common_space_fraction"]).astype(np.float32).reshape(-1)
                svd_tensors.add(n)
            elif a.method == "iso-c":
                mtl = np.zeros_like(b)
                for x in xs:
                    mtl += x
                mtl /= np.float32(K)
            else:  # the running mean
                mtl = xs[0].copy()
                for k in range(1, K):
                    mtl += (xs[k] - mtl) / np.float32(k + 1)
            ref = b + lam * mtl
        else:
            xs = [tv(n, k) for k in range(K)]
            if ties:
                mtl = ties_merge(xs, mean)
            elif a.method == "pcb":
                mtl = pcb_merge(xs)
            else:
                mtl = np.zeros_like(b)
                for x in xs:
                    mtl += x
            if a.method == "tatr":
                mtl = np.where(omega(n) < tatr_thr, mtl, np.float32(0))
            if a.method.startswith("consensus"):
                cnt = np.zeros(b.shape, np.int32)
                for x in xs:
                    cnt += np.abs(x) > np.float32(p["tall_lambda"]) * np.abs(mtl - x)
                mtl = np.where(cnt >= int(p["k"]), mtl, np.float32(0))
            ref = b + (np.float32(1) if a.method == "pcb" else lam) * mtl
        dt = a.dtype or {"BF16": "bf16", "F16": "f16", "F32": "f32"}[base[n][0]]
        got_e = out[n]
        if dt == "bf16":
            want_bits, got_bits = bf16_rne(ref), got_e[2].view(np.uint16)
        elif dt == "f16":
            want_bits, got_bits = ref.astype(np.float16).view(np.uint16), got_e[2].view(np.uint16)
        else:
            want_bits, got_bits = ref.view(np.uint32), got_e[2].view(np.uint32)
        diff = np.nonzero(want_bits != got_bits)[0]
        if n in svd_tensors and diff.size:  # float64 SVDs of two libraries: the last bit, rarely
            far = np.abs(want_bits.astype(np.int64) - got_bits.astype(np.int64))[diff] > 1
            if not far.any() and diff.size <= max(1, ref.size // 10000):
                diff = diff[:0]
        if diff.size:
            i = diff[0]
            print(f"{n}: {diff.size} of {ref.size} differ; first [{i}]: want {ref[i]!r} got bits {got_bits[i]:#x}")
            bad += 1
    for n in names:
        if n not in merged and bytes(base[n][2]) != bytes(out[n][2]):
            print(f"{n}: not copied from the base")
            bad += 1
    extra = f" ({len(svd_tensors)} through SVDs)" if svd_method else ""
    print(f"{a.method}: {len(check)} tensors checked{extra}, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
