#!/usr/bin/python3
"""frontier_ref.py — known answers for the SVD-based and data-free frontier merges (TSV-M, Iso-C, Iso-CTS,
WUDI, CART, PCB) and EMR-Merging, Representation Surgery.

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
      the suite's real task vectors: `ttmerge merge --set alpha=A` per method, every tensor of the
      merged checkpoint checked against θ0 + A · reference, and the same bits with --threads 1
  frontier_ref.py emr-handmade --runner build/emr_run
      EMR-Merging (harveyhuang18/EMR_Merging merge_vit/src/main_emr_merging.py::emr_merge) per tensor on
      hand-made task vectors (K = 1, an all-zero task vector, sums of exactly 0, ties of |τ|): unified
      vector and masks exact, per-task mean|τ| and mean|m ⊙ τ_uni| to 1e-12 relative
  frontier_ref.py emr-suite --ttmerge build/ttmerge --suite build/suite-tiny
      `ttmerge merge --method emr` on the suite: every delta.<tensor> and task.<task>.mask.<tensor>
      exact, the rescalers to 1e-6; then `ttmerge eval` of the compact file gives each task the same
      logits, bit for bit, as its model θ0 + λ_k (m_k ⊙ τ_uni) written out in full
  frontier_ref.py surgery-torch --runner build/surgery_run
      Representation Surgery's map z − up·relu(down·z) and L1 loss against PyTorch autograd (float64): loss
      and both gradients to 1e-6 relative, then 5 Adam steps (torch.optim.Adam, lr 1e-3) on one batch to 1e-6
  frontier_ref.py surgery-suite --ttmerge build/ttmerge --suite build/suite-tiny
      `ttmerge merge --method surgery` on the suite: each task's logits from `ttmerge eval` equal the base
      backbone's features (eval --features-out) through the stored map and the task's head, in numpy (1e-4)
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


# ---- EMR-Merging, as emr_merge in the official code (float64 sums: exact for K float32 values) ----

def emr_merge(taus):
    """taus: {key: [K arrays]} -> (unified {key}, masks {key: [K bool]}, rescalers [K])."""
    K = len(next(iter(taus.values())))
    unified, masks = {}, {}
    scales, new_scales = np.zeros(K), np.zeros(K)
    for n, tk in taus.items():
        mean = np.stack([t.astype(np.float64) for t in tk]).mean(0)
        flag = (mean > 0) * 2 - 1
        param_max = np.zeros_like(tk[0])
        masks[n] = []
        for m in range(K):
            mask = (tk[m] * flag) > 0
            masks[n].append(mask)
            param_abs = np.abs(mask * tk[m])
            param_max = np.where(param_abs > param_max, param_abs, param_max)
            scales[m] += np.mean(np.abs(tk[m].astype(np.float64)))
        unified[n] = (param_max * flag).astype(np.float32)
    for m in range(K):
        for n in unified:
            new_scales[m] += np.mean(np.abs(unified[n].astype(np.float64) * masks[n][m]))
    with np.errstate(invalid="ignore", divide="ignore"):
        rescalers = scales / new_scales
    # ttmerge: a task with nothing kept runs as θ0 (λ = 0) where the official code gives 0/0
    return unified, masks, np.where(new_scales > 0, rescalers, 0.0), scales, new_scales


def emr_handmade_cases():
    rng = np.random.default_rng(20250202)
    cases = []
    for K, n in ((3, 50), (8, 1000), (1, 17), (64, 33)):
        cases.append((f"K={K} n={n}", rng.standard_normal((K, n)).astype(np.float32)))
    z = rng.standard_normal((4, 40)).astype(np.float32)
    z[1] = 0
    cases.append(("K=4, task 1 all zero", z))
    cases.append(("K=3 all zero (flag -1, nothing kept)", np.zeros((3, 9), np.float32)))
    a = rng.standard_normal((1, 24)).astype(np.float32)
    cases.append(("K=2, τ_2 = -τ_1 (sums of exactly 0)", np.concatenate([a, -a])))
    t = np.round(rng.standard_normal((5, 30)) * 2).astype(np.float32)  # ties of |τ| and zeros
    cases.append(("K=5 integer-valued (ties, zeros)", t))
    return cases


def run_emr_handmade(runner):
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, taus in emr_handmade_cases():
            src, dst = os.path.join(tmp, "tau.npy"), os.path.join(tmp, "out.npy")
            np.save(src, taus)
            p = subprocess.run([runner, src, dst], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL emr {name}: emr_run exit {p.returncode}: {p.stderr.strip()}")
                failed += 1
                continue
            got = np.load(dst)
            stats = np.array([[float(v) for v in line.split()] for line in p.stdout.strip().splitlines()])
            uni, masks, _, scales, new_scales = emr_merge({"w": list(taus)})
            bad = []
            if not np.array_equal(got[0], uni["w"]):
                bad.append("unified vector")
            if not all(np.array_equal(got[1 + k] != 0, masks["w"][k]) for k in range(len(taus))):
                bad.append("masks")
            if not np.allclose(stats[:, 0], scales, rtol=1e-12, atol=0):
                bad.append(f"mean|tau| {stats[:, 0]} != {scales}")
            if not np.allclose(stats[:, 1], new_scales, rtol=1e-12, atol=0):
                bad.append(f"mean|m*tau_uni| {stats[:, 1]} != {new_scales}")
            print(f"FAIL emr {name}: {', '.join(bad)}" if bad else f"ok   emr {name}")
            failed += bool(bad)
    return failed


def write_safetensors(path, tensors, metadata):
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        u8 = tensors[name].dtype == np.uint8
        b = np.ascontiguousarray(tensors[name], dtype=np.uint8 if u8 else "<f4").tobytes()
        header[name] = {"dtype": "U8" if u8 else "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def run_emr_suite(ttmerge, suite_dir):
    with open(os.path.join(suite_dir, "suite.json")) as f:
        spec = json.load(f)
    tasks = [t["name"] for t in spec["tasks"]]
    pre, pre_meta = read_safetensors(os.path.join(suite_dir, "pretrained.safetensors"))
    fts = [read_safetensors(os.path.join(suite_dir, t["finetuned"]["full"]))[0] for t in spec["tasks"]]
    taus = {key: [ft[key] - pre[key] for ft in fts] for key in pre}
    uni, masks, lam, _, _ = emr_merge(taus)
    failed = 0
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "emr.safetensors")
        p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", "emr", "--out", out, "--quiet"],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print(f"FAIL emr: ttmerge merge exit {p.returncode}: {p.stderr.strip()}")
            return 1
        got, meta = read_safetensors(out)
        for key in pre:
            if not np.array_equal(got[key], pre[key]):
                print(f"FAIL emr {key}: the backbone is not θ0")
                failed += 1
            if not np.array_equal(got["delta." + key], uni[key]):
                print(f"FAIL emr delta.{key}: unified vector differs")
                failed += 1
            for k, t in enumerate(tasks):
                bits = np.unpackbits(got[f"task.{t}.mask.{key}"], bitorder="little")[:pre[key].size]
                if not np.array_equal(bits.astype(bool), masks[key][k].reshape(-1)):
                    print(f"FAIL emr task.{t}.mask.{key}: mask differs")
                    failed += 1
        got_lam = np.array([got[f"task.{t}.scale"][0] for t in tasks], np.float64)
        if not np.allclose(got_lam, lam, rtol=1e-6, atol=0):
            print(f"FAIL emr rescalers {got_lam} != {lam}")
            failed += 1
        rec = json.loads(meta.get("ttmerge.record", "{}"))
        print(f"{'ok  ' if not failed else 'done'} emr: {len(pre)} tensors, rescalers {np.round(lam, 6).tolist()}, "
              f"file {os.path.getsize(out)} bytes, masks {rec.get('mask_bytes')} bytes")
        # eval of the compact file == eval of each task's model in full (θ0 + (τ_uni·m)·λ in float32)
        for k, t in enumerate(tasks):
            full = {key: pre[key] + (uni[key] * masks[key][k]) * np.float32(got_lam[k]) for key in pre}
            fpath, a, b = (os.path.join(tmp, f"{t}.{x}") for x in ("safetensors", "a.npy", "b.npy"))
            write_safetensors(fpath, full, {k2: v for k2, v in pre_meta.items() if k2 == "ttmerge.arch"})
            rcs = [subprocess.run([ttmerge, "eval", "--suite", suite_dir, "--model", m, "--task", t, "--logits-out", o],
                                  capture_output=True, text=True, env=env) for m, o in ((out, a), (fpath, b))]
            if any(r.returncode for r in rcs) or not np.array_equal(np.load(a), np.load(b)):
                print(f"FAIL emr eval {t}: compact file's logits differ from the full model's "
                      f"({' '.join(r.stderr.strip() for r in rcs)})")
                failed += 1
        print(f"{'ok  ' if not failed else 'done'} emr eval: every task's logits equal its full model's")
        # broken compact files: one line naming the file, exit 2
        t0, key = tasks[0], "proj"
        mask = f"task.{t0}.mask.{key}"
        D = pre[key].shape[1]
        cases = [
            ("a mask without its delta", lambda d: d.pop("delta." + key), "without delta." + key),
            ("a mask without its scale", lambda d: d.pop(f"task.{t0}.scale"), f"without task.{t0}.scale"),
            ("a mask stored as F32", lambda d: d.__setitem__(mask, d[mask].astype(np.float32)), "is F32, expected U8"),
            ("a mask one byte short", lambda d: d.__setitem__(mask, d[mask][:-1].copy()), "has shape"),
            ("a mask of no tensor", lambda d: d.__setitem__(f"task.{t0}.mask.nope", d[mask]), "'nope' is not a tensor"),
            ("a surgery map without its up half",
             lambda d: d.__setitem__(f"task.{t0}.surgery.down", np.zeros((4, D), np.float32)), "without task."),
            ("surgery halves of different ranks", lambda d: d.update({f"task.{t0}.surgery.down": np.zeros((4, D), np.float32),
                                                                       f"task.{t0}.surgery.up": np.zeros((D, 5), np.float32)}),
             "disagree on the rank"),
        ]
        for what, edit, phrase in cases:
            d = dict(got)
            edit(d)
            bad = os.path.join(tmp, "bad.safetensors")
            write_safetensors(bad, d, meta)
            r = subprocess.run([ttmerge, "eval", "--suite", suite_dir, "--model", bad], capture_output=True, text=True,
                               env=env)
            lines = r.stderr.strip().splitlines()
            if r.returncode != 2 or len(lines) != 1 or bad not in lines[0] or phrase not in lines[0]:
                print(f"FAIL emr bad file, {what}: exit {r.returncode}, stderr {r.stderr!r}")
                failed += 1
            else:
                print(f"ok   emr bad file, {what}: {lines[0].split(': ', 2)[-1]}")
    return failed


# ---- Representation Surgery, as the official AlphaWrapper's feature map and L1Loss ----

def surgery_torch(z, f, down, up):
    import torch
    d = torch.tensor(down, dtype=torch.float64, requires_grad=True)
    u = torch.tensor(up, dtype=torch.float64, requires_grad=True)
    zt = torch.tensor(z, dtype=torch.float64)
    feat = zt - torch.relu(zt @ d.T) @ u.T
    loss = torch.nn.L1Loss()(feat, torch.tensor(f, dtype=torch.float64))
    loss.backward()
    return loss.item(), d.grad.numpy(), u.grad.numpy()


def surgery_adam(z, f, down, up, lr, steps):
    import torch
    d = torch.tensor(down, requires_grad=True)
    u = torch.tensor(up, requires_grad=True)
    opt = torch.optim.Adam([d, u], lr=lr, betas=(0.9, 0.999), weight_decay=0.)
    zt, ft = torch.tensor(z), torch.tensor(f)
    for _ in range(steps):
        loss = torch.nn.L1Loss()(zt - torch.relu(zt @ d.T) @ u.T, ft)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d.detach().numpy(), u.detach().numpy()


def run_surgery_torch(runner):
    rng = np.random.default_rng(20250303)
    failed = 0
    cases = [("B=16 D=32 r=16", 16, 32, 16, 1.0), ("B=5 D=12 r=3", 5, 12, 3, 1.0), ("B=1 D=8 r=1", 1, 8, 1, 1.0),
             ("B=16 D=32 r=16, up = 0 (the initial map)", 16, 32, 16, 0.0), ("B=24 D=64 r=40 (r > D/2)", 24, 64, 40, 1.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, B, D, r, up_scale in cases:
            z = rng.standard_normal((B, D)).astype(np.float32)
            f = (z + 0.5 * rng.standard_normal((B, D))).astype(np.float32)
            down = rng.uniform(-1 / np.sqrt(D), 1 / np.sqrt(D), (r, D)).astype(np.float32)
            up = (up_scale * 0.3 * rng.standard_normal((D, r))).astype(np.float32)
            paths = [os.path.join(tmp, x + ".npy") for x in ("z", "f", "down", "up")]
            for pth, arr in zip(paths, (z, f, down, up)):
                np.save(pth, arr)
            pre = os.path.join(tmp, "out")
            p = subprocess.run([runner, *paths, "1e-3", "5", pre], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL surgery {name}: surgery_run exit {p.returncode}: {p.stderr.strip()}")
                failed += 1
                continue
            loss, gd, gu = surgery_torch(z, f, down, up)
            td, tu = surgery_adam(z, f, down, up, 1e-3, 5)
            got = {x: np.load(f"{pre}.{x}.npy") for x in ("gdown", "gup", "down", "up")}
            bad = []
            if abs(float(p.stdout) - loss) > 1e-6 * abs(loss):
                bad.append(f"loss {float(p.stdout)} != {loss}")
            for key, ref in (("gdown", gd), ("gup", gu)):
                if np.abs(got[key] - ref).max() > 1e-6 * max(np.abs(ref).max(), 1e-12) + 1e-12:
                    bad.append(f"{key} off by {np.abs(got[key] - ref).max():.3g}")
            for key, ref in (("down", td), ("up", tu)):
                if np.abs(got[key] - ref).max() > 1e-6:
                    bad.append(f"{key} after 5 Adam steps off by {np.abs(got[key] - ref).max():.3g}")
            print(f"FAIL surgery {name}: {', '.join(bad)}" if bad else f"ok   surgery {name}")
            failed += bool(bad)
    return failed


def run_surgery_suite(ttmerge, suite_dir):
    with open(os.path.join(suite_dir, "suite.json")) as f:
        spec = json.load(f)
    arch, norm = spec["arch"], spec["normalize"]
    failed = 0
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "surgery.safetensors")
        p = subprocess.run([ttmerge, "merge", "--suite", suite_dir, "--method", "surgery", "--set", "steps=200",
                            "--out", out, "--quiet"], capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print(f"FAIL surgery: ttmerge merge exit {p.returncode}: {p.stderr.strip()}")
            return 1
        got, _ = read_safetensors(out)
        for t in spec["tasks"]:
            name = t["name"]
            images = os.path.join(suite_dir, "data", name, "test-images.idx")
            feats, logits = os.path.join(tmp, "f.npy"), os.path.join(tmp, "l.npy")
            r1 = subprocess.run([ttmerge, "eval", "--model", out, "--input", images, "--features-out", feats, "--mean",
                                 str(norm["mean"]), "--std", str(norm["std"])], capture_output=True, text=True, env=env)
            r2 = subprocess.run([ttmerge, "eval", "--suite", suite_dir, "--model", out, "--task", name, "--logits-out",
                                 logits], capture_output=True, text=True, env=env)
            if r1.returncode or r2.returncode:
                print(f"FAIL surgery eval {name}: {r1.stderr.strip()} {r2.stderr.strip()}")
                failed += 1
                continue
            z = np.load(feats).astype(np.float64)
            down = got[f"task.{name}.surgery.down"].astype(np.float64)
            up = got[f"task.{name}.surgery.up"].astype(np.float64)
            zs = z - np.maximum(z @ down.T, 0) @ up.T
            head, _ = read_safetensors(os.path.join(suite_dir, "heads", name + ".safetensors"))
            if arch.get("normalize_features"):
                zs = arch["logit_scale"] * zs / np.linalg.norm(zs, axis=1, keepdims=True)
            ref = zs @ head["head.weight"].astype(np.float64).T + head["head.bias"]
            err = np.abs(np.load(logits) - ref).max()
            moved = np.abs(up).max() > 0
            if not err <= 1e-4 * max(1.0, np.abs(ref).max()) or not moved:
                print(f"FAIL surgery eval {name}: logits off by {err:.3g} (map trained: {moved})")
                failed += 1
            else:
                print(f"ok   surgery eval {name}: logits = numpy's map + head on the base's features ({err:.2e})")
    return failed


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
        if info["dtype"] not in ("F32", "U8"):
            raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32 or U8")
        b, e = info["data_offsets"]
        dt = "<f4" if info["dtype"] == "F32" else np.uint8
        out[name] = np.frombuffer(raw[base + b:base + e], dtype=dt).reshape(info["shape"])
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
    eh = sub.add_parser("emr-handmade")
    eh.add_argument("--runner", required=True)
    es = sub.add_parser("emr-suite")
    es.add_argument("--ttmerge", required=True)
    es.add_argument("--suite", required=True)
    st = sub.add_parser("surgery-torch")
    st.add_argument("--runner", required=True)
    ss = sub.add_parser("surgery-suite")
    ss.add_argument("--ttmerge", required=True)
    ss.add_argument("--suite", required=True)
    a = ap.parse_args()
    try:
        if a.mode == "handmade":
            failed = run_handmade(a.runner)
        elif a.mode == "emr-handmade":
            failed = run_emr_handmade(a.runner)
        elif a.mode == "surgery-torch":
            failed = run_surgery_torch(a.runner)
        elif a.mode == "surgery-suite":
            failed = run_surgery_suite(a.ttmerge, a.suite)
        elif a.mode == "emr-suite":
            failed = run_emr_suite(a.ttmerge, a.suite)
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
