#!/usr/bin/python3
"""frontier_ref.py — known answers for the SVD-based merges (TSV-M, Iso-C, Iso-CTS).

Numpy transcriptions (float64) of the official code, line for line where it matters:
  TSV-M    AntoAndGar/task_singular_vectors  src/utils/TSVM_utils.py::compute_and_sum_svd_mem_reduction
  Iso-C    danielm1405/iso-merging           src/utils/iso.py::iso_c   (= FusionBench iso_utils.py)
  Iso-CTS  danielm1405/iso-merging           src/utils/iso.py::iso_cts (= FusionBench iso_utils.py)
ttmerge computes in float32 as the official code; the check is on reconstructions (never on singular
vectors, whose signs and order within equal values are arbitrary): every tensor within
||ttmerge − reference||_F <= 1e-5 · ||reference||_F (plus 1e-7 · ||τ||_F for tensors whose reference is ~0).

  frontier_ref.py handmade --runner build/svd_layer_run
      small task vectors from a fixed seed, degenerate cases included (K = 1, K = 64, a rank the layer
      cannot give, an all-zero task vector, an all-zero tensor, 1×n and n×1 matrices), each run through
      svd_layer_run and checked
  frontier_ref.py suite --ttmerge build/ttmerge --suite build/suite-tiny
      the suite's real task vectors: `ttmerge merge --set alpha=A` per method, every tensor of the
      merged checkpoint checked against θ0 + A · reference, and the same bits with --threads 1
Exit 0 when everything matches, 1 with one line per mismatch otherwise, 2 on bad input.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

RTOL = 1e-5


# ---- the official algorithms, per tensor ----

def is_svd_tensor(key, shape):
    return len(shape) == 2 and "text_projection" not in key


def running_mean(taus):
    mean = taus[0].copy()
    for i, t in enumerate(taus[1:], start=1):
        mean += (t - mean) / (i + 1)
    return mean


def polar(x):
    a, _, b = np.linalg.svd(x, full_matrices=False)
    return a @ b


def tsv_m(taus):
    """compute_and_sum_svd_mem_reduction for one 2-D key."""
    sv_reduction = 1 / len(taus)
    for i, vec in enumerate(taus):
        u, s, v = np.linalg.svd(vec, full_matrices=False)
        if i == 0:
            sum_u, sum_s, sum_v = np.zeros_like(u), np.zeros_like(s), np.zeros_like(v)
        r = int(s.shape[0] * sv_reduction)
        sum_u[:, i * r:(i + 1) * r] = u[:, :r]
        sum_s[i * r:(i + 1) * r] = s[:r]
        sum_v[i * r:(i + 1) * r, :] = v[:r, :]
    u_u, _, v_u = np.linalg.svd(sum_u, full_matrices=False)
    u_v, _, v_v = np.linalg.svd(sum_v, full_matrices=False)
    return np.linalg.multi_dot((u_u, v_u, np.diag(sum_s), u_v, v_v))


def iso_c(taus):
    """iso_c for one 2-D key."""
    new = sum(taus) / len(taus)
    new *= len(taus)
    U, S, V = np.linalg.svd(new, full_matrices=False)
    return np.linalg.multi_dot((U, np.diag(np.ones_like(S) * S.mean()), V))


def iso_cts(taus, common_space_fraction):
    """iso_cts for one 2-D key."""
    shape_ = taus[0].shape
    K = len(taus)
    combined_w = sum(taus)
    common = int(min(shape_) * common_space_fraction)
    ts_total = round((min(shape_) - common) / K) * K
    common = min(shape_) - ts_total
    u, s, v = np.linalg.svd(combined_w, full_matrices=False)
    cu, cs, cv = u[:, :common], s[:common], v[:common, :]
    n_dims = int((min(shape_) - common) / K)
    for i, w in enumerate(taus):
        w_ts = w - cu @ cu.T @ w
        u_ts, s_ts, v_ts = np.linalg.svd(w_ts, full_matrices=False)
        if i == 0:
            U, Sv, V = np.zeros_like(u_ts), np.zeros_like(s_ts), np.zeros_like(v_ts)
        U[:, i * n_dims:(i + 1) * n_dims] = u_ts[:, :n_dims]
        Sv[i * n_dims:(i + 1) * n_dims] = s_ts[:n_dims]
        V[i * n_dims:(i + 1) * n_dims, :] = v_ts[:n_dims, :]
    U[:, K * n_dims:K * n_dims + common] = cu
    Sv[K * n_dims:K * n_dims + common] = cs
    V[K * n_dims:K * n_dims + common, :] = cv
    U, V = polar(U), polar(V)
    Sv = np.ones_like(Sv) * Sv.mean()
    return np.linalg.multi_dot((U, np.diag(Sv), V))


def merged_tensor(method, key, taus, fraction):
    """The merged τ of one tensor, with the official rule for non-matrix tensors."""
    if not is_svd_tensor(key, taus[0].shape):
        if method == "iso-c":
            return sum(taus) / len(taus)
        return running_mean(taus)
    if method == "tsv-m":
        return tsv_m(taus)
    if method == "iso-c":
        return iso_c(taus)
    return iso_cts(taus, fraction)


def mismatch(got, ref, taus):
    """None when got matches ref, else the relative error."""
    scale = max(np.linalg.norm(ref), 1e-2 * max(np.linalg.norm(t) for t in taus))
    err = np.linalg.norm(got.astype(np.float64) - ref)
    if not np.isfinite(err) or err > RTOL * scale:
        return err / max(scale, 1e-300)
    return None


# ---- safetensors (8-byte little-endian header length, JSON header, raw data) ----

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + b:base + e], dtype="<f4").reshape(info["shape"])
    return out, header.get("__metadata__", {})


# ---- hand-made task vectors ----

def handmade_cases():
    """(name, method, fraction, taus [K, m, n] float32)."""
    rng = np.random.default_rng(20250101)

    def tv(K, m, n, shared=2):
        base = rng.standard_normal((m, shared)) @ rng.standard_normal((shared, n))
        return (0.3 * base + rng.standard_normal((K, m, n))).astype(np.float32)

    cases = []
    for method in ("tsv-m", "iso-c", "iso-cts"):
        cases += [
            (f"{method} K=3 12x8", method, 0.8, tv(3, 12, 8)),
            (f"{method} K=3 8x12", method, 0.8, tv(3, 8, 12)),
            (f"{method} K=8 48x16", method, 0.8, tv(8, 48, 16)),
            (f"{method} K=8 16x64", method, 0.8, tv(8, 16, 64)),
            (f"{method} K=1 10x6", method, 0.8, tv(1, 10, 6)),
            (f"{method} K=64 20x12 (rank 1/K of 12 is 0)", method, 0.8, tv(64, 20, 12)),
            (f"{method} K=64 96x80", method, 0.8, tv(64, 96, 80)),
            (f"{method} K=4 1x9", method, 0.8, tv(4, 1, 9)),
            (f"{method} K=4 9x1", method, 0.8, tv(4, 9, 1)),
        ]
        z = tv(4, 14, 10)
        z[2] = 0
        cases.append((f"{method} K=4 14x10 task 2 all zero", method, 0.8, z))
        cases.append((f"{method} K=3 6x5 all zero", method, 0.8, np.zeros((3, 6, 5), np.float32)))
    cases += [
        ("iso-cts fraction=1 (common space = the whole rank)", "iso-cts", 1.0, tv(5, 16, 12)),
        ("iso-cts fraction=0 (task spaces only)", "iso-cts", 0.0, tv(4, 16, 12)),
        ("iso-cts fraction=0.5 K=3 11x7 (rounding of the task share)", "iso-cts", 0.5, tv(3, 11, 7)),
    ]
    return cases


def run_handmade(runner):
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, method, fraction, taus in handmade_cases():
            src, dst = os.path.join(tmp, "tau.npy"), os.path.join(tmp, "out.npy")
            np.save(src, taus)
            p = subprocess.run([runner, method, src, dst, repr(fraction)], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL {name}: svd_layer_run exit {p.returncode}: {p.stderr.strip()}")
                failed += 1
                continue
            got = np.load(dst)
            t64 = [t.astype(np.float64) for t in taus]
            ref = merged_tensor(method, "w", t64, fraction)
            bad = mismatch(got, ref, t64)
            if bad is not None:
                print(f"FAIL {name}: relative error {bad:.3g} > {RTOL:g}")
                failed += 1
            else:
                print(f"ok   {name}")
        # a fraction that leaves no room: one line, exit 2, no output
        np.save(src, np.ones((3, 2, 2), np.float32))
        p = subprocess.run([runner, "iso-cts", src, dst + ".no", "0"], capture_output=True, text=True)
        if p.returncode != 2 or os.path.exists(dst + ".no") or len(p.stderr.strip().splitlines()) != 1:
            print(f"FAIL iso-cts negative common subspace: exit {p.returncode}, stderr {p.stderr!r}")
            failed += 1
        else:
            print("ok   iso-cts negative common subspace is an input error")
    return failed


# ---- the suite's real task vectors ----

def run_suite(ttmerge, suite_dir, alphas):
    with open(os.path.join(suite_dir, "suite.json")) as f:
        spec = json.load(f)
    pre, _ = read_safetensors(os.path.join(suite_dir, "pretrained.safetensors"))
    fts = [read_safetensors(os.path.join(suite_dir, t["finetuned"]["full"]))[0] for t in spec["tasks"]]
    failed = 0
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    with tempfile.TemporaryDirectory() as tmp:
        for method, alpha in alphas.items():
            out = os.path.join(tmp, method + ".safetensors")
            p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", method, "--set", f"alpha={alpha}",
                                "--out", out, "--quiet"], capture_output=True, text=True, env=env)
            if p.returncode != 0:
                print(f"FAIL {method}: ttmerge merge exit {p.returncode}: {p.stderr.strip()}")
                failed += 1
                continue
            merged, meta = read_safetensors(out)
            worst, n_svd = 0.0, 0
            for key, th0 in pre.items():
                th0 = th0.astype(np.float64)
                # τ as the official code forms it: θ_t − θ0 in float32
                taus = [(ft[key] - pre[key]).astype(np.float64) for ft in fts]
                ref = merged_tensor(method, key, taus, 0.8)
                n_svd += is_svd_tensor(key, th0.shape)
                got = (merged[key].astype(np.float64) - th0) / alpha
                # θ0 + α·τ is rounded to float32: allow that rounding, relative to θ
                scale = max(np.linalg.norm(ref), 1e-2 * max(np.linalg.norm(t) for t in taus))
                err = np.linalg.norm(got - ref)
                round_off = 2 * np.finfo(np.float32).eps * np.linalg.norm(merged[key].astype(np.float64)) / alpha
                rel = err / scale
                worst = max(worst, rel)
                if not np.isfinite(err) or err > RTOL * scale + round_off:
                    print(f"FAIL {method} {key}: relative error {rel:.3g} > {RTOL:g}")
                    failed += 1
            rec = json.loads(meta.get("ttmerge.record", "{}"))
            if rec.get("alpha") != alpha:
                print(f"FAIL {method}: ttmerge.record alpha {rec.get('alpha')} != {alpha}")
                failed += 1
            print(f"{'ok  ' if not failed else 'done'} {method} alpha={alpha}: {len(pre)} tensors ({n_svd} by SVD), "
                  f"worst relative error {worst:.2e}")
            # one tensor per thread with single-threaded BLAS: the same bits on 1 thread
            one = os.path.join(tmp, method + ".1.safetensors")
            p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", method, "--set", f"alpha={alpha}",
                                "--threads", "1", "--out", one, "--quiet"], capture_output=True, text=True, env=env)
            if p.returncode != 0 or any((read_safetensors(one)[0][k] != merged[k]).any() for k in merged):
                print(f"FAIL {method}: --threads 1 gives other bits ({p.stderr.strip()})")
                failed += 1
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("handmade")
    h.add_argument("--runner", required=True)
    s = sub.add_parser("suite")
    s.add_argument("--ttmerge", required=True)
    s.add_argument("--suite", required=True)
    a = ap.parse_args()
    try:
        if a.mode == "handmade":
            failed = run_handmade(a.runner)
        else:
            failed = run_suite(a.ttmerge, a.suite, {"tsv-m": 0.7, "iso-c": 1.3, "iso-cts": 1.5})
    except (OSError, ValueError, KeyError) as e:
        print(f"frontier_ref: {e}", file=sys.stderr)
        return 2
    print("all match" if not failed else f"{failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
