#!/usr/bin/python3
"""adamerge_step_check.py — the benchmarked step of a learner (AdaMerging's or Model Tinting's) is the
one PyTorch computes: adamerge_bench --learner L --check-out against torch_adamerge.py --check, at a
small size (a synthetic vision8-architecture suite of 3 tasks, written here from a seed).

  tests/adamerge_step_check.py --bench build/adamerge_bench --learner adamerging|tinting [--micro M]

1. adamerge_bench writes the loss and dL/dλ (Tinting: and dL/dhead of every task, at seeded heads) at
   seeded coefficients; torch_adamerge.py --check recomputes them: exit 0 expected.
   With --micro M the objective is computed M images at a time (chunks that split or span the
   tasks' batches of 16 (AdaMerging) or 32 (Tinting)): PyTorch's whole-batch numbers still hold.
2. The comparison can fail: the same file with one gradient entry moved by 1% of the largest
   magnitude (dL/dλ; for Tinting also dL/dhead), or the loss by 0.1%, must give exit 1.

Exit 0 on success, 1 on a mismatch, 77 when /usr/bin/python3 lacks torch.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401  (torch_adamerge.py needs it)
except ImportError:
    print("adamerge_step_check.py: skipped: /usr/bin/python3 has no torch")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_PEER = os.path.join(HERE, "..", "bench", "pytorch", "torch_adamerge.py")


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def torch_check(suite, path):
    rc, out = run([sys.executable, TORCH_PEER, "--suite", suite, "--check", path])
    lines = [l for l in out.splitlines() if l.startswith(("check", "the loss keeps"))]
    return rc, "\n".join(lines) if lines else out


def largest(rows):
    return max(abs(x) for r in rows for x in r)


def corruptions(c):
    """(what, a copy of the check file with that one change)"""
    out = []
    g = copy.deepcopy(c)
    g["grad"][-1][-1] += 0.01 * largest(c["grad"])
    out.append(("dL/dlambda[%d][%d] + 1%% of max |g|" % (len(c["grad"]) - 1, len(c["grad"][0]) - 1), g))
    loss = copy.deepcopy(c)
    loss["loss"] *= 1.001
    out.append(("loss x 1.001", loss))
    if "head_grad" in c:
        h = copy.deepcopy(c)
        m = max(largest(hg["weight"]) for hg in c["head_grad"])
        h["head_grad"][-1]["bias"][0] += 0.01 * m
        out.append(("dL/dhead (last task's bias[0]) + 1% of max |g|", h))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="adamerge_bench")
    ap.add_argument("--learner", choices=("adamerging", "tinting"), required=True)
    ap.add_argument("--micro", type=int, default=0, help="adamerge_bench --micro (0: whole batches)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="adamerge_step_check.") as tmp:
        suite = os.path.join(tmp, "suite")
        rc, out = run([args.bench, "--make-suite", suite, "--arch", "vision8", "--tasks", "3", "--seed", "7"])
        if rc:
            sys.exit("adamerge_step_check.py: --make-suite failed (%d):\n%s" % (rc, out))
        path = os.path.join(tmp, "check.json")
        rc, out = run([args.bench, "--suite", suite, "--learner", args.learner, "--steps", "1", "--warmup", "0",
                       "--micro", str(args.micro), "--check-out", path])
        if rc:
            sys.exit("adamerge_step_check.py: adamerge_bench --check-out failed (%d):\n%s" % (rc, out))
        with open(path) as f:
            c = json.load(f)
        if c.get("learner") != args.learner:
            sys.exit("adamerge_step_check.py: %s: learner %r, expected %r" % (path, c.get("learner"), args.learner))
        rc, out = torch_check(suite, path)
        print(out)
        if rc:
            print("FAIL: torch_adamerge.py --check exit %d on ttmerge's %s objective" % (rc, args.learner))
            return 1
        for what, bad in corruptions(c):
            bad_path = os.path.join(tmp, "bad.json")
            with open(bad_path, "w") as f:
                json.dump(bad, f)
            rc, out = torch_check(suite, bad_path)
            if rc != 1:
                print("FAIL: the check passed (exit %d) with %s:\n%s" % (rc, what, out))
                return 1
            print("the check fails, as it should, with %s" % what)
    print("OK: %s step's objective agrees with PyTorch's" % args.learner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
