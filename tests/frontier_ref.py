#!/usr/bin/python3
"""frontier_ref.py — known answers for the SVD-based and data-free frontier merges (TSV-M, Iso-C, Iso-CTS,
WUDI, CART, PCB).

Numpy transcriptions (float64) of the official code, line for line where it matters:
  TSV-M    AntoAndGar/task_singular_vectors  src/utils/TSVM_utils.py::compute_and_sum_svd_mem_reduction
  Iso-C    danielm1405/iso-merging           src/utils/iso.py::iso_c   (= FusionBench iso_utils.py)
  Iso-CTS  danielm1405/iso-merging           src/utils/iso.py::iso_cts (= FusionBench iso_utils.py)
  WUDI     nathanielyvo/WUDI-Merging         vit/wudi_main.py::get_redundant_task_vector (torch Adam)
  CART     JH-GEECS/CART                     src/merging.py::_merge_weights("CART"), _get_truncated_task_vectors
  PCB      duguodong7/pcb-merging            vision_source_code/pcb.py (__main__)
ttmerge computes in float32 as the official code; the check is on reconstructions (never on singular
vectors, whose signs and order within equal values are arbitrary): every tensor within
||ttmerge − reference||_F <= 1e-5 · ||reference||_F (plus 1e-7 · ||τ||_F for tensors whose reference is ~0).

  frontier_ref.py handmade --runner build/svd_layer_run
      small task vectors from a fixed seed, degenerate cases included (K = 1, K = 64, a rank the layer
      cannot give, an all-zero task vector, an all-zero tensor, 1×n and n×1 matrices), each run through
      svd_layer_run and checked
  frontier_ref.py suite --ttmerge build/ttmerge --suite build/suite-tiny
      the suite's real task vectors: `ttmerge merge --set alpha=A` per method (WUDI, CART and PCB at their
      official defaults), every tensor of the merged checkpoint checked against θ0 + A · reference, and
      the same bits with --threads 1
WUDI's reference follows autograd's form of the gradient and torch.optim.Adam; CART's centring is float32
in the official order (its rounding is part of the result); PCB runs on the flattened model.
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


def wudi(taus, iters=300, lr=1e-5):
    """get_redundant_task_vector for one matrix: Adam on sum_t ||(tau_m - tau_t) tau_t^T||^2 / ||tau_t||^2,
    the gradient as autograd forms it, torch.optim.Adam's update (bias-corrected, eps after the sqrt)."""
    x = sum(taus).copy()
    norms = [float(np.sum(t * t)) for t in taus]
    m1, m2 = np.zeros_like(x), np.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step in range(1, iters + 1):
        g = np.zeros_like(x)
        for t, n in zip(taus, norms):
            if n > 0:  # a zero task vector: no loss term (0/0 in the official code)
                g += 2 * ((x - t) @ t.T) @ t / n
        m1 = m1 + (g - m1) * (1 - b1)
        m2 = m2 * b2 + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
        x = x - (lr / bc1) * (m1 / (np.sqrt(m2) / np.sqrt(bc2) + eps))
    return x


def is_wudi_tensor(key, shape):
    return len(shape) == 2 and any(k in key for k in ("attn.in_proj_weight", "attn.out_proj.weight",
                                                      "mlp.c_fc.weight", "mlp.c_proj.weight"))


def is_cart_tensor(key, shape):
    return ("attn" in key or "mlp" in key) and not ("ln" in key or "bias" in key) and len(shape) == 2


def cart_tensor(key, theta0, taus32, ratio=0.12, prior=2.0):
    """CART for one tensor: theta0 and taus in float32, the centring in float32 in the official order,
    the SVD in float64. Returns the merged theta (float64 of the float32 result)."""
    K = len(taus32)
    total = taus32[0].copy()
    for t in taus32[1:]:
        total = total + t
    avg = theta0 + np.float32(1.0 / K) * total
    acc = None
    for t in taus32:
        c = (t + theta0) - avg
        if is_cart_tensor(key, c.shape):
            U, s, Vt = np.linalg.svd(c.astype(np.float64), full_matrices=False)
            r = max(1, int(ratio * s.shape[0]))
            c = ((U[:, :r] * s[:r]) @ Vt[:r]).astype(np.float32)
        acc = c if acc is None else acc + c
    return (avg + np.float32(prior) * acc).astype(np.float64)


def pcb(X, lam=1.2, clamp_ratio=0.01, keep=0.05):
    """pcb.py's __main__ on X [K, d] (float64); minmax of a constant row is 0 (the official 0/0 is NaN)."""
    n, d = X.shape

    def clamp(x, lo_ratio, hi_ratio):
        s = np.sort(x, axis=1)
        return np.clip(x, s[:, int(d * lo_ratio)][:, None], s[:, int(d * (1 - hi_ratio) - 1)][:, None])

    def normalize(x):
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        span = hi - lo
        return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.0)

    A = clamp(np.abs(X), clamp_ratio, clamp_ratio)
    Xc = np.sign(X) * A
    Nn = np.sign(X) * normalize(A)
    intra = np.exp(n * normalize(A) ** 2)
    inter = np.tanh(X * Nn.sum(axis=0))
    scale = normalize(clamp(intra * inter, 1 - keep, 0))
    return (Xc * lam * scale).sum(axis=0) / np.maximum(scale.sum(axis=0), 1e-12)


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


def layer_reference(method, taus, param):
    """What svd_layer_run computes for one [K, m, n] stack (param: fraction, iters or rank_ratio)."""
    t64 = [t.astype(np.float64) for t in taus]
    if method == "wudi":
        return wudi(t64, iters=int(param))
    if method == "cart":
        return cart_tensor("attn.w", np.zeros(taus.shape[1:], np.float32), list(taus), ratio=param)
    if method == "pcb":
        return pcb(taus.reshape(len(taus), -1).astype(np.float64)).reshape(taus.shape[1:])
    return merged_tensor(method, "w", t64, param)


def model_reference(method, pre, fts):
    """The merged tau (theta - theta0, float64) of every tensor for the methods without alpha."""
    keys = list(pre)
    taus32 = {k: [ft[k] - pre[k] for ft in fts] for k in keys}
    if method == "wudi":
        return {k: (wudi([t.astype(np.float64) for t in taus32[k]]) if is_wudi_tensor(k, pre[k].shape)
                    else np.zeros(pre[k].shape)) for k in keys}
    if method == "cart":
        return {k: cart_tensor(k, pre[k], taus32[k]) - pre[k].astype(np.float64) for k in keys}
    X = np.stack([np.concatenate([taus32[k][t].astype(np.float64).ravel() for k in keys]) for t in range(len(fts))])
    flat, out, at = pcb(X), {}, 0
    for k in keys:
        out[k] = flat[at:at + pre[k].size].reshape(pre[k].shape)
        at += pre[k].size
    return out


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
    for method, param in (("wudi", 40), ("cart", 0.12), ("pcb", 0)):
        # WUDI at the scale of real task vectors (~1e-3 an entry), where 300 steps of lr 1e-5 move τ_m
        # by a good part of itself (at scale 1 they would leave it where it started)
        scale = 1e-3 if method == "wudi" else 1.0
        tv_ = tv
        tv = (lambda K, m, n, s=scale, f=tv_: (s * f(K, m, n)).astype(np.float32))
        cases += [
            (f"{method} K=3 12x8", method, param, tv(3, 12, 8)),
            (f"{method} K=3 8x12", method, param, tv(3, 8, 12)),
            (f"{method} K=8 48x16", method, param, tv(8, 48, 16)),
            (f"{method} K=1 10x6", method, param, tv(1, 10, 6)),
            (f"{method} K=64 20x12", method, param, tv(64, 20, 12)),
            (f"{method} K=4 1x9", method, param, tv(4, 1, 9)),
        ]
        z = tv(4, 14, 10)
        z[2] = 0
        cases.append((f"{method} K=4 14x10 task 2 all zero", method, param, z))
        cases.append((f"{method} K=3 6x5 all zero", method, param, np.zeros((3, 6, 5), np.float32)))
        tv = tv_
    cases += [
        ("wudi K=8 24x40 300 steps (the official count)", "wudi", 300, (1e-3 * tv(8, 24, 40)).astype(np.float32)),
        ("cart rank_ratio=1 (the whole rank: the plain weight average + 2 * sum of c_t)", "cart", 1.0, tv(5, 16, 12)),
        ("cart rank_ratio=0.5 K=3 11x7", "cart", 0.5, tv(3, 11, 7)),
        ("pcb K=8 64x48 (heavy-tailed)", "pcb", 0, (tv(8, 64, 48) ** 3).astype(np.float32)),
    ]
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
            ref = layer_reference(method, taus, fraction)
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
            sets = ["--set", f"alpha={alpha}"] if alpha is not None else []
            refs = model_reference(method, pre, fts) if alpha is None else None
            alpha = 1.0 if alpha is None else alpha
            p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", method] + sets +
                               ["--out", out, "--quiet"], capture_output=True, text=True, env=env)
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
                ref = refs[key] if refs is not None else merged_tensor(method, key, taus, 0.8)
                n_svd += {"wudi": is_wudi_tensor, "cart": is_cart_tensor,
                          "pcb": lambda k, sh: True}.get(method, is_svd_tensor)(key, th0.shape)
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
            if not refs and rec.get("alpha") != alpha:
                print(f"FAIL {method}: ttmerge.record alpha {rec.get('alpha')} != {alpha}")
                failed += 1
            print(f"{'ok  ' if not failed else 'done'} {method} alpha={alpha}: {len(pre)} tensors ({n_svd} by the method's rule), "
                  f"worst relative error {worst:.2e}")
            # one tensor per thread with single-threaded BLAS: the same bits on 1 thread
            one = os.path.join(tmp, method + ".1.safetensors")
            p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", method] + sets + [
                                "--threads", "1", "--out", one, "--quiet"], capture_output=True, text=True, env=env)
            if p.returncode != 0 or any((read_safetensors(one)[0][k] != merged[k]).any() for k in merged):
                print(f"FAIL {method}: --threads 1 gives other bits ({p.stderr.strip()})")
                failed += 1
    return failed


def run_bad_params(ttmerge, suite_dir):
    """Parameters out of range: one line on stderr, exit 2, no output file."""
    failed = 0
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bad.safetensors")
        for method, kv in (("cart", "rank_ratio=0"), ("cart", "rank_ratio=1.5"), ("pcb", "keep=0"),
                           ("pcb", "clamp=0.6"), ("wudi", "iters=-1"), ("wudi", "lr=x")):
            p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", method, "--set", kv, "--out", out,
                                "--quiet"], capture_output=True, text=True, env=env)
            if p.returncode != 2 or os.path.exists(out) or len(p.stderr.strip().splitlines()) != 1:
                print(f"FAIL {method} --set {kv}: exit {p.returncode}, stderr {p.stderr!r}")
                failed += 1
            else:
                print(f"ok   {method} --set {kv}: {p.stderr.strip()}")
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
            failed = run_suite(a.ttmerge, a.suite, {"tsv-m": 0.7, "iso-c": 1.3, "iso-cts": 1.5, "wudi": None,
                                                    "cart": None, "pcb": None})
            failed += run_bad_params(a.ttmerge, a.suite)
    except (OSError, ValueError, KeyError) as e:
        print(f"frontier_ref: {e}", file=sys.stderr)
        return 2
    print("all match" if not failed else f"{failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
