#!/usr/bin/python3
"""svd_merge_bench.py — TSV-M, Iso-CTS and WUDI at ViT-B/32 layer sizes: ttmerge against PyTorch.

  OMP_WAIT_POLICY=passive bench/svd_merge_bench.py --bench build/svd_merge_bench [--threads 2]
      [--blocks 1] [--rounds 3] [--tasks 8] [--seed 0] [--methods tsv-m,iso-cts,wudi] [--wudi-iters 300]
      [--csv out.csv]

Writes seeded task vectors (numpy, float32; a shared rank-8 part plus noise, per task) for ViT-B/32's
matrix shapes into a temporary directory, then runs interleaved rounds: per round and method,
ttmerge's svd_merge_bench (one matrix per OpenMP thread, float64 inside, the `ttmerge merge` path)
and the same computation in PyTorch (torch.linalg.svd, one tensor after the other as the official
code, `threads` torch/OpenBLAS threads) in float64 and in float32 (the official precision). One merge
= `blocks` transformer blocks (in_proj 2304x768, out_proj 768x768, c_fc 3072x768, c_proj 768x3072)
plus positional_embedding 50x768 and proj 768x512 (WUDI: the 4 block matrices only, `wudi-iters` Adam
steps each; the PyTorch peer is the official autograd loop, torch.optim.Adam on the summed loss, which
forms (τ_m − τ_t) τ_tᵀ for every task at every step). Every peer is a fresh process. Before timing,
the float64 peers' merged attn.out_proj.weight are compared (relative Frobenius error), the proof
that both compute the same thing. Prints a table of per-merge seconds (median, min over rounds) and
the ratios torch / ttmerge.

  bench/svd_merge_bench.py --peer torch --data DIR --method tsv-m --dtype float64 [--check-out F.npy]
      one PyTorch merge (what the rounds call).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = [(2304, 768), (768, 768), (3072, 768), (768, 3072), (50, 768), (768, 512)]
PER_BLOCK = 4


def make_data(dir_, K, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    for m, n in SHAPES:
        shared = rng.standard_normal((m, 8)) @ rng.standard_normal((8, n))
        tau = np.empty((K, m, n), np.float32)
        for t in range(K):
            tau[t] = 1e-3 * (0.5 * shared + rng.standard_normal((m, n)))
        np.save(os.path.join(dir_, f"tau_{m}x{n}.npy"), tau)


# ---- the PyTorch peer: the official per-tensor code (TSVM_utils.py, iso.py) ----

def torch_tsvm(taus, torch):
    sv_reduction = 1 / len(taus)
    for i, vec in enumerate(taus):
        u, s, v = torch.linalg.svd(vec, full_matrices=False)
        if i == 0:
            sum_u, sum_s, sum_v = torch.zeros_like(u), torch.zeros_like(s), torch.zeros_like(v)
        r = int(s.shape[0] * sv_reduction)
        sum_u[:, i * r:(i + 1) * r] = u[:, :r]
        sum_s[i * r:(i + 1) * r] = s[:r]
        sum_v[i * r:(i + 1) * r, :] = v[:r, :]
    u_u, _, v_u = torch.linalg.svd(sum_u, full_matrices=False)
    u_v, _, v_v = torch.linalg.svd(sum_v, full_matrices=False)
    return torch.linalg.multi_dot((u_u, v_u, torch.diag(sum_s), u_v, v_v))


def torch_isocts(taus, torch, fraction=0.8):
    shape_ = taus[0].shape
    K = len(taus)
    combined_w = sum(taus)
    common = int(min(shape_) * fraction)
    common = min(shape_) - round((min(shape_) - common) / K) * K
    u, s, v = torch.linalg.svd(combined_w, full_matrices=False)
    cu, cs, cv = u[:, :common], s[:common], v[:common, :]
    n_dims = int((min(shape_) - common) / K)
    for i, w in enumerate(taus):
        w_ts = w - cu @ (cu.T @ w)  # the official (cu @ cu.T) @ w forms an m x m matrix; same result
        u_ts, s_ts, v_ts = torch.linalg.svd(w_ts, full_matrices=False)
        if i == 0:
            U, S, V = torch.zeros_like(u_ts), torch.zeros_like(s_ts), torch.zeros_like(v_ts)
        U[:, i * n_dims:(i + 1) * n_dims] = u_ts[:, :n_dims]
        S[i * n_dims:(i + 1) * n_dims] = s_ts[:n_dims]
        V[i * n_dims:(i + 1) * n_dims, :] = v_ts[:n_dims, :]
    U[:, K * n_dims:K * n_dims + common] = cu
    S[K * n_dims:K * n_dims + common] = cs
    V[K * n_dims:K * n_dims + common, :] = cv
    a, _, b = torch.linalg.svd(U, full_matrices=False)
    c, _, d = torch.linalg.svd(V, full_matrices=False)
    S = torch.ones_like(S) * S.mean()
    return torch.linalg.multi_dot((a @ b, torch.diag(S), c @ d))


def torch_wudi(taus, torch, iters):
    """get_redundant_task_vector (vit/wudi_main.py) for one matrix."""
    with torch.enable_grad():
        merged = sum(taus).clone().requires_grad_(True)
        opt = torch.optim.Adam([merged], lr=1e-5)
        norms = [torch.norm(t) ** 2 for t in taus]
        for _ in range(iters):
            opt.zero_grad()
            loss = sum(torch.norm((merged - t) @ t.T) ** 2 / n for t, n in zip(taus, norms))
            loss.backward()
            opt.step()
    return merged.detach()


def torch_peer(a):
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    dtype = {"float64": torch.float64, "float32": torch.float32}[a.dtype]
    data = {}
    for m, n in SHAPES:
        x = torch.from_numpy(np.load(os.path.join(a.data, f"tau_{m}x{n}.npy")))
        data[(m, n)] = [x[t].to(dtype) for t in range(x.shape[0])]
    fn = {"tsv-m": torch_tsvm, "iso-cts": torch_isocts,
          "wudi": lambda taus, torch: torch_wudi(taus, torch, a.wudi_iters)}[a.method]
    jobs = [SHAPES[j % PER_BLOCK] for j in range(a.blocks * PER_BLOCK)]
    if a.method != "wudi":
        jobs += SHAPES[PER_BLOCK:]
    t0 = time.perf_counter()
    outs = []
    with torch.no_grad():
        for shape in jobs:
            outs.append(fn(data[shape], torch).to(torch.float32))
    sec = time.perf_counter() - t0
    if a.check_out:
        np.save(a.check_out, outs[1].numpy())
    print(json.dumps({"peer": f"torch-{a.dtype}", "method": a.method, "blocks": a.blocks, "K": len(data[SHAPES[0]]),
                      "threads": torch.get_num_threads(), "seconds": round(sec, 3)}))


# ---- the rounds ----

def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"svd_merge_bench: {' '.join(cmd[:3])} failed: {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer")
    ap.add_argument("--bench", help="path of the svd_merge_bench binary")
    ap.add_argument("--data")
    ap.add_argument("--method", default="tsv-m")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--check-out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="tsv-m,iso-cts,wudi")
    ap.add_argument("--wudi-iters", type=int, default=300)
    ap.add_argument("--csv")
    a = ap.parse_args()
    if a.peer == "torch":
        return torch_peer(a)
    if not a.bench:
        sys.exit("svd_merge_bench: --bench PATH (build/svd_merge_bench) is required")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive"))
    me = os.path.abspath(__file__)
    peers = {
        "ttmerge": lambda d, m, extra: [a.bench, "--data", d, "--method", m, "--blocks", str(a.blocks),
                                        "--iters", str(a.wudi_iters)] + extra,
        "torch-float64": lambda d, m, extra: [sys.executable, me, "--peer", "torch", "--data", d, "--method", m,
                                              "--dtype", "float64", "--blocks", str(a.blocks),
                                              "--threads", str(a.threads), "--wudi-iters", str(a.wudi_iters)] + extra,
        "torch-float32": lambda d, m, extra: [sys.executable, me, "--peer", "torch", "--data", d, "--method", m,
                                              "--dtype", "float32", "--blocks", str(a.blocks),
                                              "--threads", str(a.threads), "--wudi-iters", str(a.wudi_iters)] + extra,
    }
    methods = a.methods.split(",")
    times = {(p, m): [] for p in peers for m in methods}
    with tempfile.TemporaryDirectory() as d:
        import numpy as np
        make_data(d, a.tasks, a.seed)
        for m in methods:  # same computation: the float64 peers agree
            c_out, t_out = os.path.join(d, "c.npy"), os.path.join(d, "t.npy")
            run(peers["ttmerge"](d, m, ["--check-out", c_out]), env)
            run(peers["torch-float64"](d, m, ["--check-out", t_out]), env)
            x, y = np.load(c_out).astype(np.float64), np.load(t_out).astype(np.float64)
            rel = np.linalg.norm(x - y) / np.linalg.norm(y)
            print(f"check {m}: ttmerge vs torch float64, attn.out_proj.weight relative error {rel:.2e}", flush=True)
            if not rel < 1e-5:
                sys.exit("svd_merge_bench: the peers disagree")
        for r in range(a.rounds):
            for m in methods:
                for p in peers:
                    res = run(peers[p](d, m, []), env)
                    times[(p, m)].append(res["seconds"])
                    print(f"round {r + 1} {m:8s} {p:14s} {res['seconds']:8.3f} s", flush=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\n{cpu}, {os.cpu_count()} CPUs, {a.threads} threads, K={a.tasks}, {a.blocks} block(s) + pos + proj "
          f"(WUDI: the blocks, {a.wudi_iters} steps), "
          f"{a.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':8s} {'peer':14s} {'median s':>9s} {'min s':>8s} {'torch/ttmerge (median)':>24s}")
    rows = []
    for m in methods:
        base = statistics.median(times[("ttmerge", m)])
        for p in peers:
            med, lo = statistics.median(times[(p, m)]), min(times[(p, m)])
            print(f"{m:8s} {p:14s} {med:9.3f} {lo:8.3f} {med / base:24.2f}")
            rows.append((m, p, med, lo, med / base))
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("method,peer,threads,blocks,K,wudi_iters,median_s,min_s,ratio_to_ttmerge\n")
            for m, p, med, lo, ratio in rows:
                f.write(f"{m},{p},{a.threads},{a.blocks},{a.tasks},{a.wudi_iters},{med:.3f},{lo:.3f},{ratio:.3f}\n")


if __name__ == "__main__":
    main()
