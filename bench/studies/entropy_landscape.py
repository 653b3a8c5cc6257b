#!/usr/bin/python3
"""entropy_landscape.py — does low prediction entropy mean high accuracy on a suite?

AdaMerging's premise is that, across merge coefficients, the mean prediction entropy on a task's
unlabeled test inputs falls where its accuracy rises. This script checks it along the Task
Arithmetic line θ0 + λ Σ τ_k: for each λ it merges with `ttmerge merge --method ta --set
lambda=λ`, evaluates every task with `ttmerge eval --logits-out`, and prints per task (and on
average) the test accuracy and the mean entropy of softmax(logits). The λ with the lowest mean
entropy should be near the one with the highest accuracy, task by task, for entropy
minimisation to help.

  /usr/bin/python3 bench/studies/entropy_landscape.py --suite out/vision8 [--bin build/ttmerge] [--csv F]

Needs numpy (Debian python3-numpy). Writes nothing but the optional CSV (task,lambda,accuracy,entropy).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_idx_labels(path):
    with open(path, "rb") as f:
        b = f.read()
    ndim = struct.unpack(">I", b[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(dims).astype(np.int64)


def accuracy_entropy(logits, labels):
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1).mean()
    return 100.0 * float((z.argmax(axis=1) == labels).mean()), float(entropy)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--bin", default="build/ttmerge")
    ap.add_argument("--lambdas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1.0")
    ap.add_argument("--csv")
    args = ap.parse_args()
    with open(os.path.join(args.suite, "suite.json")) as f:
        tasks = [t["name"] for t in json.load(f)["tasks"]]
    lambdas = [float(x) for x in args.lambdas.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "ta.safetensors")
        for lam in lambdas:
            subprocess.run([args.bin, "merge", "--suite", args.suite, "--method", "ta", "--set", "lambda=%g" % lam,
                            "--out", model, "--quiet"], check=True)
            for t in tasks:
                npy = os.path.join(tmp, "logits.npy")
                subprocess.run([args.bin, "eval", "--suite", args.suite, "--model", model, "--task", t,
                                "--logits-out", npy, "--quiet"], check=True, stdout=subprocess.DEVNULL)
                labels = read_idx_labels(os.path.join(args.suite, "data", t, "test-labels.idx"))
                acc, ent = accuracy_entropy(np.load(npy), labels)
                rows.append((t, lam, acc, ent))
    print("%-16s %s" % ("task", "  ".join("λ=%-11g" % lam for lam in lambdas)))
    for t in tasks + ["average"]:
        cells = []
        for lam in lambdas:
            sel = [r for r in rows if r[1] == lam and (t == "average" or r[0] == t)]
            cells.append("%5.1f/%.3f" % (np.mean([r[2] for r in sel]), np.mean([r[3] for r in sel])))
        best_acc = lambdas[int(np.argmax([float(c.split("/")[0]) for c in cells]))]
        min_ent = lambdas[int(np.argmin([float(c.split("/")[1]) for c in cells]))]
        print("%-16s %s   best acc at λ=%g, lowest entropy at λ=%g" % (t, "  ".join(cells), best_acc, min_ent))
    print("cells: test accuracy % / mean entropy (nats)")
    if args.csv:
        with open(args.csv + ".tmp", "w") as f:
            f.write("task,lambda,accuracy,entropy\n")
            for r in rows:
                f.write("%s,%g,%.4f,%.6f\n" % r)
        os.replace(args.csv + ".tmp", args.csv)


if __name__ == "__main__":
    sys.exit(main())
