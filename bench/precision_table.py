#!/usr/bin/env python3
"""precision_table.py — every method's average test accuracy in two results.csv files of one suite (f32 and
`ttmerge bench --precision bf16`), side by side, with the difference and whether it is within a target.

    /usr/bin/python3 bench/precision_table.py F32/results.csv BF16/results.csv [--target 0.3]

The average is over the suite's tasks of each method's `ok` rows (as leaderboard.csv); methods missing
from either file are listed as such.
"""
import argparse
import csv
import statistics
import sys


def averages(path):
    acc = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] == "ok" and r["accuracy"] != "":
                acc.setdefault(r["method"], []).append(float(r["accuracy"]))
    return {m: statistics.fmean(v) for m, v in acc.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("f32")
    ap.add_argument("bf16")
    ap.add_argument("--target", type=float, default=0.3, help="largest |bf16 - f32| in points (default 0.3)")
    a = ap.parse_args()
    f, b = averages(a.f32), averages(a.bf16)
    print("| method | f32 | bf16 | bf16 - f32 |")
    print("|---|---:|---:|---:|")
    worst, n_over = 0.0, 0
    for m in sorted(set(f) | set(b), key=lambda m: (m not in f, m)):
        if m not in f or m not in b:
            print(f"| {m} | {f.get(m, float('nan')):.2f} | {b.get(m, float('nan')):.2f} | missing |")
            continue
        d = b[m] - f[m]
        worst = max(worst, abs(d))
        n_over += abs(d) > a.target
        print(f"| {m} | {f[m]:.2f} | {b[m]:.2f} | {d:+.2f}{' (over)' if abs(d) > a.target else ''} |")
    print(f"\nlargest |difference| {worst:.2f} points; {n_over} method(s) over the {a.target} target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
