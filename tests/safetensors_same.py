#!/usr/bin/env python3
"""safetensors_same.py A B [REL_TOL] — the two checkpoints hold the same tensors, value for value.

REL_TOL 0 (the default) asks for equal bits; otherwise |a - b| <= REL_TOL * |a| for every value.
Prints the number of differing values and the largest relative difference; exit 1 when over.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}"
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(raw[base + lo:base + hi], dtype=np.float32)
    return out


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    if a.keys() != b.keys():
        print(f"FAIL: different tensors: {sorted(a.keys() ^ b.keys())}")
        return 1
    differ, worst = 0, 0.0
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        differ += int((a[name] != b[name]).sum())
        if x.size:
            worst = max(worst, float((np.abs(x - y) / np.maximum(np.abs(x), 1e-30)).max()))
    ok = differ == 0 if tol == 0 else worst <= tol
    print(f"{'ok' if ok else 'FAIL'}: {len(a)} tensors, {differ} values differ, largest relative difference {worst:.3g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
