#!/usr/bin/env python3
"""mpi_scaling_model.py — what `mpirun ttmerge bench` would take on the standard benchmark (8 tasks,
CLIP ViT-B/32, 224 px) on 1, 8 and 64 nodes. A model with stated assumptions, not a measurement.

Assumptions (change them with --key=value):
  cores      64 cores per node, one rank per node, all threads of a node in that rank
  eff        0.8  parallel efficiency of one rank's threads on one method
  fb_rate    14   images per core-second for forward+backward of ViT-B/32 at batch 64/lane
                  (measured: an AdaMerging step of 128 images, 2 lanes x 64, 4.5 s on 2 AVX-512 cores)
  fwd_rate   42   images per core-second for inference (forward is ~1/3 of forward+backward)
  test       87433 test images of the 8 tasks (SUN397 19850, Cars 8041, RESISC45 6300, EuroSAT 2700,
                  SVHN 26032, GTSRB 12630, MNIST 10000, DTD 1880); val = 10% of that
  params     87.8e6 ViT-B/32 visual parameters (fp32: 351 MB of gradient)
  bw, lat    12.5 GB/s and 2 us between nodes (100 Gb/s InfiniBand-class)
The methods (19, as `bench --methods all`), in core-seconds, from their passes over the data:
  a merge with a λ/α search: 11 val evaluations + 1 test evaluation (+ its merge, neglected)
  AdaMerging (task/layer-wise, ++, awd): 500 steps x 128 images forward+backward + 1 test evaluation
  Tinting: 100 rounds x 8 tasks x 32 images forward+backward + 8 experts' pseudo-labels on test + 1 test
  individual: 8 experts on test; zeroshot: 1 test evaluation; SVD merges: + 60 core-s of LAPACK
Three schedules:
  grid      each method on one node (as built: the grid hands whole methods to ranks), LPT order
  dp-built  + the learners data-parallel over all nodes as built: every step sums the full
            parameter gradient in rank order (a chain of R-1 hops + a broadcast of 351 MB)
  (a learner's node computes batch/R images per step; below 1 image per core its cores idle: the
  step cannot go faster than one image per core)
  dp-lambda + the learners reducing dL/dλ instead (K x tensors floats, ~5 KB: latency only); the
            sum's association then differs from one process's: within rounding, not bit for bit
"""
import math
import sys

A = dict(cores=64, eff=0.8, fb_rate=14.0, fwd_rate=42.0, test=87433, params=87.8e6, bw=12.5e9, lat=2e-6,
         steps=500, batch=128, tint_images=100 * 8 * 32, tensors=152, tasks=8)


def methods(a):
    test = a["test"] / a["fwd_rate"]
    val_search = 11 * 0.1 * a["test"] / a["fwd_rate"] + test
    ada = a["steps"] * a["batch"] / a["fb_rate"]
    tint = a["tint_images"] / a["fb_rate"]
    m = {"zeroshot": (test, 0), "individual": (8 * test / 8, 0)}
    for name in ["ta", "ties", "consensus-ta", "consensus-ties", "tatr", "dare", "lata", "awd", "graft"]:
        m[name] = (val_search, 0)
    for name in ["tsv-m", "iso-c", "iso-cts"]:
        m[name] = (val_search + 60, 0)
    for name in ["adamerging-task", "adamerging", "adamerging++", "awd-adamerging"]:
        m[name] = (test, ada)  # (evaluation core-s, learning core-s)
    m["tinting"] = (2 * test, tint)
    return m


def step_comm(a, R, mode):
    if R == 1:
        return 0.0
    if mode == "dp-built":
        b = a["params"] * 4
        return (R - 1) * (a["lat"] + b / a["bw"]) + math.ceil(math.log2(R)) * (a["lat"] + b / a["bw"])
    return 2 * math.ceil(math.log2(R)) * a["lat"] + a["tasks"] * a["tensors"] * 4 / a["bw"]


def makespan(a, R, mode):
    node = a["cores"] * a["eff"]  # core-seconds per second on one node
    jobs = []
    for name, (ev, learn) in methods(a).items():
        if mode == "grid" or not learn:
            jobs.append((ev + learn) / node)
        else:  # the learner and its evaluations spread over all R nodes, then the next method
            steps, batch = (a["steps"], a["batch"]) if name != "tinting" else (100 * 8, 32)
            # a node short of images (below 16 per lane, one lane per 16 cores) idles its cores
            fill = min(1.0, batch / R / (16 * a["cores"] / 16))
            jobs.append(("all", ev / (node * R) + learn / (node * R * fill) + steps * step_comm(a, R, mode)))
    solo = sorted([j for j in jobs if not isinstance(j, tuple)], reverse=True)
    together = sum(j[1] for j in jobs if isinstance(j, tuple))
    load = [0.0] * R
    for j in solo:  # LPT: the longest method first, to the least loaded node
        load[load.index(min(load))] += j
    return together + max(load)


def main():
    a = dict(A)
    for arg in sys.argv[1:]:
        k, v = arg.lstrip("-").split("=")
        a[k] = float(v)
    total = sum(e + l for e, l in methods(a).values())
    print(f"19 methods: {total / 3600:.1f} core-hours; one node = {a['cores']:.0f} cores x {a['eff']} efficiency")
    print(f"{'nodes':>5} {'grid':>10} {'dp-built':>10} {'dp-lambda':>10}   (minutes; comm per step: built / lambda)")
    for R in (1, 8, 64):
        row = [makespan(a, R, m) / 60 for m in ("grid", "dp-built", "dp-lambda")]
        print(f"{R:>5} {row[0]:>10.1f} {row[1]:>10.1f} {row[2]:>10.1f}   "
              f"({step_comm(a, R, 'dp-built') * 1e3:.0f} ms / {step_comm(a, R, 'dp-lambda') * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
