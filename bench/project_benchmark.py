#!/usr/bin/env python3
"""project_benchmark.py — the whole standard benchmark's time (every method of `ttmerge bench` on the 8
tasks' test sets at CLIP ViT-B/32), projected from the costs bench/run_vit_scale.sh measured, in f32 and
bf16, on the measuring machine's cores and scaled to a bigger server, beside FusionBench's published
AdaMerging cost.

    /usr/bin/python3 bench/project_benchmark.py DIR/times.csv [--config vitb32full] [--server-cores 32]

Inputs (medians over rounds of times.csv): eval = seconds of one forward of 256 images (the infer batch),
step = seconds of one layer-wise AdaMerging step of 8 tasks x 16 images (one forward+backward of 128),
tint = seconds of one Model Tinting step (one task's 32 images; when times.csv has it).
Assumptions, printed with the table:
  - test sets of the 8 tasks (SUN397, Cars, RESISC45, EuroSAT, SVHN, GTSRB, MNIST, DTD): 87,433 images,
    each task evaluated in passes of 256 (the last one zero-padded, as core/infer.c does);
  - every method evaluates the 8 test sets once; `individual` and `emr` run each task's model on its own
    task (one pass in all); tinting first labels the test sets with the experts (one more pass); surgery
    computes the experts' and the merge's features of the test sets before evaluating (three passes);
  - AdaMerging (task-wise, layer-wise, ++, AWD-AdaMerging): 500 steps of 2 forwards+backwards of 8 x 16
    images (ttmerge's defaults, the official recipe) = 2 measured steps each; tinting: 100 rounds x 8
    tasks of one forward+backward of 32 images = one measured tint step each (without a tint measurement:
    a quarter of a measured AdaMerging step each); fisher: 256 training images per task forward+backward
    (16 step-equivalents); regmean: the same images forward only (8 infer batches);
  - not counted: merging arithmetic (memory-bound seconds for the elementwise merges; the SVD merges'
    own times are bench/svd_merge_bench.py's, WUDI's 300 Adam steps per matrix the largest), the validation grid searches of the
    lambda-tuned methods (their validation splits are not part of the standard test-set benchmark), graft's
    few steps on shots, loading checkpoints;
  - the server: the same per-core speed on --server-cores cores (perfect scaling: a lower bound on time).
"""
import argparse
import csv
import math
import statistics
import sys

TEST_SIZES = {"SUN397": 19850, "Cars": 8041, "RESISC45": 6300, "EuroSAT": 2700, "SVHN": 26032, "GTSRB": 12630,
              "MNIST": 10000, "DTD": 1880}
INFER_BATCH = 256
ADA_STEPS, ADA_ACCUM = 500, 2
TINT_STEPS, TINT_IMAGES = 100 * 8, 32
# method -> (test-set passes, measured-step equivalents, extra forward-only images)
FISHER_REGMEAN_IMAGES = 8 * 256  # `samples` training images per task
METHODS = {
    "zeroshot": (1, 0, 0), "individual": (1, 0, 0), "ta": (1, 0, 0), "ties": (1, 0, 0), "consensus-ta": (1, 0, 0),
    "consensus-ties": (1, 0, 0), "tatr": (1, 0, 0), "dare": (1, 0, 0), "lata": (1, 0, 0), "awd": (1, 0, 0),
    "graft": (1, 0, 0), "tsv-m": (1, 0, 0), "iso-c": (1, 0, 0), "iso-cts": (1, 0, 0), "wudi": (1, 0, 0),
    "cart": (1, 0, 0), "pcb": (1, 0, 0), "emr": (1, 0, 0),
    "fisher": (1, FISHER_REGMEAN_IMAGES / 128, 0), "regmean": (1, 0, FISHER_REGMEAN_IMAGES),
    "surgery": (3, 0, 0),
    "adamerging-task": (1, ADA_STEPS * ADA_ACCUM, 0), "adamerging": (1, ADA_STEPS * ADA_ACCUM, 0),
    "adamerging++": (1, ADA_STEPS * ADA_ACCUM, 0), "awd-adamerging": (1, ADA_STEPS * ADA_ACCUM, 0),
    "tinting": (2, TINT_STEPS * TINT_IMAGES / 128, 0),
}
FUSIONBENCH_ADAMERGING = (1000, 725.0)  # steps, seconds on one GPU (FusionBench's published layer-wise AdaMerging)


def medians(path, config):
    v = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["config"] == config:
                v.setdefault((r["work"], r["peer"]), []).append(float(r["median_s"]))
    return {k: statistics.median(x) for k, x in v.items()}


def hours(s):
    return f"{s / 3600:8.2f} h"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("times", help="times.csv of bench/run_vit_scale.sh")
    ap.add_argument("--config", default="vitb32full")
    ap.add_argument("--server-cores", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="cores the costs were measured on")
    a = ap.parse_args()
    m = medians(a.times, a.config)
    passes = sum(math.ceil(n / INFER_BATCH) for n in TEST_SIZES.values())
    print(f"# {a.config}: test sets {sum(TEST_SIZES.values())} images in {passes} passes of {INFER_BATCH}")
    scale = a.threads / a.server_cores
    rows = []
    for peer, name in (("ttmerge", "f32"), ("ttmerge-bf16", "bf16"), ("torch", "torch f32")):
        ev, st = m.get(("eval", peer)), m.get(("step", peer))
        if ev is None or st is None:
            print(f"# {name}: no eval or step cost in {a.times}; skipped")
            continue
        tint = m.get(("tint", peer))
        print(f"# {name}: {ev / INFER_BATCH * 1e3:.1f} ms per image evaluated, {st:.2f} s per AdaMerging step (8 x 16), "
              + (f"{tint:.2f} s per Tinting step (32)" if tint is not None else "no Tinting step: a quarter of one"))
        total_eval = total_adapt = 0.0
        for meth, (p, steps, fwd) in METHODS.items():
            total_eval += p * passes * ev + fwd / INFER_BATCH * ev
            total_adapt += TINT_STEPS * tint if meth == "tinting" and tint is not None else steps * st
        rows.append((name, total_eval, total_adapt, ADA_STEPS * ADA_ACCUM * st))
    if not rows:
        sys.exit("project_benchmark.py: nothing to project")
    print(f"\n{'precision':<10} {'where':<22} {'evaluation':>11} {'adaptation':>11} {'total':>11} "
          f"{'one AdaMerging run':>19}")
    for name, e, ad, one in rows:
        for where, f in ((f"{a.threads} cores (measured)", 1.0), (f"{a.server_cores} cores (scaled)", scale)):
            print(f"{name:<10} {where:<22} {hours(e * f):>11} {hours(ad * f):>11} {hours((e + ad) * f):>11} "
                  f"{(one * f):>17.0f} s")
    steps, secs = FUSIONBENCH_ADAMERGING
    print(f"\nFusionBench (published): layer-wise AdaMerging {steps} steps in {secs:.0f} s on one GPU = "
          f"{secs / steps:.3f} s per step; ttmerge's run above is {ADA_STEPS} steps of 2 x (8 x 16) images.")
    for name, e, ad, one in rows:
        per = one / ADA_STEPS
        print(f"  {name}: {per:.2f} s per step on {a.threads} cores ({per / (secs / steps):.1f}x the GPU's), "
              f"{per * scale:.2f} s scaled to {a.server_cores} cores ({per * scale / (secs / steps):.2f}x)")
    print("\n" + __doc__[__doc__.index("Assumptions"):].rstrip())


if __name__ == "__main__":
    main()
