#!/usr/bin/python3
"""torch_vit.py — the PyTorch peer of bench/micro/vit_bench.c (run with /usr/bin/python3, torch 1.13).

The same pre-LN ViT as open_clip's VisionTransformer (conv1 without bias, class and positional
embedding, ln_pre, residual blocks with nn.MultiheadAttention(batch_first=True) and a GELU MLP,
ln_post on the class token, proj), the same configs and batches, eager mode:
  fwd           model(images) under torch.no_grad()
  fwd_bwd_all   model(images).sum().backward(), every parameter requires grad
  fwd_bwd_attn  the same with only attn.in_proj_weight / attn.out_proj.weight requiring grad
  eval          = fwd: PyTorch evaluates with the same no_grad forward (ttmerge's eval pass adds
                its uint8 normalisation and batch-parallel lanes, core/infer.h)
3 warm-ups, then the median/min of R reps (20 for vision8, 5 for vitb32). Gradients are set to None
before each rep outside the timed region. FLOPs are counted exactly like vit_forward_flops() in
core/vit.c (backward = 2x forward, so fwd+bwd = 3x forward).

  /usr/bin/python3 bench/pytorch/torch_vit.py --threads 1 --csv torch_1t.csv --peak-gflops 117
"""
import argparse
import collections
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

CONFIGS = collections.OrderedDict(
    vision8=dict(image_size=28, channels=1, patch_size=7, width=64, layers=4, heads=4, mlp_ratio=4.0,
                 output_dim=64, batches=(128, 16), reps=20),
    vitb32=dict(image_size=224, channels=3, patch_size=32, width=768, layers=2, heads=12, mlp_ratio=4.0,
                output_dim=512, batches=(32,), reps=5),
    # CLIP's ViT-B/32 image tower whole, evaluated at ttmerge's infer batch (INFER_BATCH, core/infer.h)
    vitb32full=dict(image_size=224, channels=3, patch_size=32, width=768, layers=12, heads=12, mlp_ratio=4.0,
                    output_dim=512, act="quick_gelu", batches=(256,), reps=3),
    # ViT-B/16 likewise (197 tokens)
    vitb16full=dict(image_size=224, channels=3, patch_size=16, width=768, layers=12, heads=12, mlp_ratio=4.0,
                    output_dim=512, act="quick_gelu", batches=(256,), reps=3),
)
WARMUP = 3
PASSES = ("fwd", "fwd_bwd_all", "fwd_bwd_attn", "eval")
FLOP_FACTOR = {"fwd": 1.0, "fwd_bwd_all": 3.0, "fwd_bwd_attn": 3.0, "eval": 1.0}


class QuickGELU(nn.Module):
    """open_clip's QuickGELU: x * sigmoid(1.702 x) (ttmerge's act "quick_gelu")."""
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio, act="gelu", ln_eps=1e-5):
        super().__init__()
        m = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width, eps=ln_eps)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = nn.Sequential(collections.OrderedDict([
            ("c_fc", nn.Linear(width, m)), ("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU()),
            ("c_proj", nn.Linear(m, width))]))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image_size, channels, patch_size, width, layers, heads, mlp_ratio, output_dim, act="gelu",
                 ln_eps=1e-5):
        super().__init__()
        scale = width ** -0.5
        grid = image_size // patch_size
        self.conv1 = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=ln_eps)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, act, ln_eps) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width, eps=ln_eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)                                   # [B, w, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, P, w]
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        for blk in self.transformer.resblocks:
            x = blk(x)
        return self.ln_post(x[:, 0, :]) @ self.proj


def check_pct(prog, what, gflops, peak_gflops):
    """The guard on every % of peak (as bench_util.h's bu_check_pct): above the measured FMA peak is
    impossible, so the FLOP count or the peak is wrong: one line on stderr, exit status 70."""
    if peak_gflops > 0 and 100.0 * gflops / peak_gflops > 100.0:
        sys.stdout.flush()
        sys.stderr.write("%s: benchmark bug: %s runs at %.1f GFLOP/s = %.0f%% of the measured FMA peak (%.1f GFLOP/s): "
                         "its FLOP count or the peak is wrong\n" % (prog, what, gflops, 100.0 * gflops / peak_gflops,
                                                                     peak_gflops))
        sys.exit(70)


def forward_flops(c, batch):
    """Same count as vit_forward_flops() in core/vit.c (multiply-add = 2)."""
    grid = c["image_size"] // c["patch_size"]
    T = grid * grid + 1
    M, W, m = batch * T, c["width"], int(c["width"] * c["mlp_ratio"])
    P, Cpp = T - 1, c["channels"] * c["patch_size"] ** 2
    block = 2 * M * W * 3 * W + 2 * M * W * W + 4 * M * W * m + 4.0 * batch * T * T * W
    return 2 * batch * P * Cpp * W + c["layers"] * block + 2.0 * batch * W * c["output_dim"]


def blas_info():
    cfg = torch.__config__.show()
    info = [s.strip().split()[-1] for s in cfg.replace(",", "\n").splitlines() if "BLAS_INFO" in s]
    alt = "/etc/alternatives/libblas.so.3-x86_64-linux-gnu"
    target = os.path.realpath(alt) if os.path.exists(alt) else "(no alternatives link)"
    # which libblas the process really mapped (after a matmul has run)
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    mapped = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if "blas" in p.lower():
                    mapped.add(p)
    except OSError:
        pass
    return "; ".join(info), target, sorted(mapped)


# OpenBLAS kernels that use no AVX2: a DYNAMIC_ARCH build that does not know a newer CPU falls back to these
# (OpenBLAS 0.3.21 calls Intel family 6 model 207 "Prescott" and runs SSE3 kernels, 5-7x slower).
GENERIC_CORES = ("Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine",
                 "Northwood", "Banias", "Athlon", "Opteron", "Opteron(SSE3)", "Barcelona", "Bobcat", "Sandybridge",
                 "Bulldozer", "Piledriver", "Steamroller", "Excavator", "Unknown")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core(mapped):
    """OpenBLAS's own name of the kernels it picked (openblas_get_corename), or None."""
    import ctypes
    for m in mapped:
        if "libopenblas" in os.path.basename(m):
            lib = ctypes.CDLL(m)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
    return None


def require_openblas(allow_reference):
    """Print the BLAS torch really runs on; exit 3 unless it is OpenBLAS (Debian's torch calls the
    generic libblas.so.3: on the reference BLAS its matmuls are ~40x slower and no comparison holds).
    If OpenBLAS picked kernels without AVX2 on a CPU that has AVX-512 or AVX2, re-run this script with
    OPENBLAS_CORETYPE=SkylakeX or Haswell (read when the library loads, so it must be set before)."""
    info, target, mapped = blas_info()
    core = openblas_core(mapped)
    print("BLAS: %s; libblas.so.3 -> %s; mapped: %s; OpenBLAS core: %s%s" % (
        info, target, ", ".join(mapped) or "none", core,
        " (OPENBLAS_CORETYPE=%s)" % os.environ["OPENBLAS_CORETYPE"] if "OPENBLAS_CORETYPE" in os.environ else ""))
    if core is None:
        print("# torch_blas=other")
        if not allow_reference:
            sys.exit("%s: torch is not running on OpenBLAS (mapped: %s); install libopenblas0-openmp "
                     "(scripts/setup.sh --bench) or pass --allow-reference-blas" % (sys.argv[0], ", ".join(mapped) or "none"))
        return
    if core in GENERIC_CORES:
        flags = cpu_flags()
        want = ("SkylakeX" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags else
                "Haswell" if {"avx2", "fma"} <= flags else None)
        if want and "OPENBLAS_CORETYPE" not in os.environ:
            print("OpenBLAS picked %s kernels on a CPU with %s: re-running with OPENBLAS_CORETYPE=%s" % (
                core, "AVX-512" if want == "SkylakeX" else "AVX2", want), flush=True)
            os.environ["OPENBLAS_CORETYPE"] = want
            os.execv(sys.executable, [sys.executable] + sys.argv)
        if want and not allow_reference:
            sys.exit("%s: OpenBLAS runs %s kernels although the CPU has %s (OPENBLAS_CORETYPE=%s did not help)" % (
                sys.argv[0], core, want, os.environ.get("OPENBLAS_CORETYPE")))
    print("# torch_blas=openblas\n# openblas_core=%s" % core)


def bench_pass(model, images, pass_name, reps, warmup=WARMUP):
    params = list(model.parameters())
    if pass_name in ("fwd", "eval"):  # PyTorch's evaluation is the same no_grad forward
        def step():
            with torch.no_grad():
                model(images)
    else:
        for name, p in model.named_parameters():
            p.requires_grad_(pass_name == "fwd_bwd_all" or
                             name.endswith("attn.in_proj_weight") or name.endswith("attn.out_proj.weight"))

        def step():
            model(images).sum().backward()
    times = []
    for i in range(warmup + reps):
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return statistics.median(times), min(times)


def batch_list(text):
    """--batches: one or two sizes in [1, 4096], as vit_bench takes them"""
    try:
        sizes = [int(b) for b in text.split(",")]
    except ValueError:
        sizes = []
    if not 1 <= len(sizes) <= 2 or not all(1 <= b <= 4096 for b in sizes):
        raise argparse.ArgumentTypeError("wants one or two sizes in [1, 4096], got '%s'" % text)
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=0, help="timed reps (default 20 vision8, 5 vitb32, 3 vitb32full)")
    ap.add_argument("--csv")
    ap.add_argument("--warmup", type=int, default=WARMUP, help="untimed runs before the timed ones (default 3)")
    ap.add_argument("--configs", default="vision8,vitb32")
    ap.add_argument("--passes", default=",".join(PASSES), help="subset of fwd,fwd_bwd_all,fwd_bwd_attn,eval")
    ap.add_argument("--batches", type=batch_list, help="comma-separated batch sizes for every config (default: the config's own)")
    ap.add_argument("--peak-gflops", type=float, default=0.0,
                    help="measured peak for this thread count (from vit_bench) for pct_peak_measured")
    ap.add_argument("--allow-reference-blas", action="store_true", help="run even if torch is not on OpenBLAS")
    ap.add_argument("--check-blas", action="store_true", help="only print (and check) the BLAS torch runs on")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    names = args.configs.split(",")
    passes = args.passes.split(",")
    for p in passes:
        if p not in PASSES:
            sys.exit("torch_vit.py: unknown pass %r" % p)
    for n in names:
        if n not in CONFIGS:
            sys.exit("torch_vit.py: unknown config %r" % n)
    torch.manual_seed(0)
    print("torch %s, threads %d (omp_get_max_threads via parallel_info: %s)" % (
        torch.__version__, threads,
        [l.strip() for l in torch.__config__.parallel_info().splitlines() if "at::get_num_threads" in l]))
    require_openblas(args.allow_reference_blas)
    if args.check_blas:
        return
    print("FLOPs: forward as vit_forward_flops(); fwd+bwd = 3x forward")
    print("%-8s %5s %3s  %-13s %10s %10s %10s %8s %7s" % (
        "config", "batch", "thr", "pass", "median_ms", "min_ms", "images/s", "GFLOP/s", "%peak"))
    rows = []
    for n in names:
        c = CONFIGS[n]
        model = VisionTransformer(**{k: c[k] for k in ("image_size", "channels", "patch_size", "width", "layers",
                                                       "heads", "mlp_ratio", "output_dim")},
                                  act=c.get("act", "gelu"))
        model.eval()  # dropout is 0 anyway; fwd under no_grad may take nn.MultiheadAttention's fast path
        reps = args.reps or c["reps"]
        for batch in args.batches or c["batches"]:
            images = torch.rand(batch, c["channels"], c["image_size"], c["image_size"]) * 2 - 1
            flops = forward_flops(c, batch)
            for ps in [p for p in PASSES if p in passes]:
                med, mn = bench_pass(model, images, ps, reps, args.warmup)
                gflops = FLOP_FACTOR[ps] * flops / med / 1e9
                pct = 100.0 * gflops / args.peak_gflops if args.peak_gflops > 0 else float("nan")
                check_pct("torch_vit.py", "%s batch %d %s (%d threads)" % (n, batch, ps, threads), gflops,
                          args.peak_gflops)
                print("%-8s %5d %3d  %-13s %10.3f %10.3f %10.1f %8.2f %6.1f%%" % (
                    n, batch, threads, ps, med * 1e3, mn * 1e3, batch / med, gflops, pct), flush=True)
                rows.append((n, batch, threads, ps, med, mn, batch / med, gflops, pct))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("config,batch,threads,pass,median_s,min_s,images_per_s,gflops,pct_peak_measured,peer\n")
            for r in rows:
                f.write("%s,%d,%d,%s,%.6g,%.6g,%.6g,%.6g,%.4g,torch\n" % r)


if __name__ == "__main__":
    main()
