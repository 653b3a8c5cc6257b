"""clip_suite_formats.py TTMERGE_BIN SUITE_DIR WORKDIR — a suite whose checkpoints are in other layouts.

Copies the tiny suite, rewrites its pretrained checkpoint as an open_clip file and its fine-tuned
checkpoints as Hugging Face directories (same paths, `ttmerge convert`), and checks that
  - `merge --method ta` on the copy gives the same tensor bytes as on the original, written in the
    pretrained checkpoint's layout (open_clip: visual.* names), and `--format hf` / `--format ttmerge`
    write those layouts with the same values;
  - `eval --suite` of the merged open_clip file prints the same accuracies as the original's.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref as R  # noqa: E402

BIN, SUITE, WORK = sys.argv[1:4]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    if r.returncode:
        print(r.stderr)
    return r.returncode, r.stdout


shutil.rmtree(WORK, ignore_errors=True)
copy = os.path.join(WORK, "suite")
shutil.copytree(SUITE, copy)
pre = os.path.join(copy, "pretrained.safetensors")
ok = run("convert", pre, "--to", "open_clip", "--out", pre + ".oc", "--quiet")[0] == 0
os.replace(pre + ".oc", pre)
ft_dir = os.path.join(copy, "finetuned")
for f in sorted(os.listdir(ft_dir)):
    src = os.path.join(ft_dir, f)
    ok = ok and run("convert", src, "--to", "hf", "--out", src + ".hf", "--quiet")[0] == 0
    os.unlink(src)
    os.rename(src + ".hf", src)  # a directory where the file was: suite.json is unchanged
check(ok, "suite copy: pretrained as open_clip, fine-tuned as Hugging Face directories")

a, b = os.path.join(WORK, "a.safetensors"), os.path.join(WORK, "b.safetensors")
ok = run("merge", "--suite", SUITE, "--method", "ta", "--out", a, "--quiet")[0] == 0 and \
    run("merge", "--suite", copy, "--method", "ta", "--out", b, "--quiet")[0] == 0
ta, tb = (R.read_any(a), R.read_any(b)) if ok else ({}, {})
check(ok and sorted("visual." + k for k in ta) == sorted(tb) and all(ta[k] == tb["visual." + k] for k in ta),
      "merge ta: same bytes, written in the pretrained checkpoint's layout (open_clip)")
h, t = os.path.join(WORK, "h"), os.path.join(WORK, "t.safetensors")
ok = run("merge", "--suite", copy, "--method", "ta", "--out", h, "--format", "hf", "--quiet")[0] == 0 and \
    run("convert", h, "--to", "ttmerge", "--out", t, "--quiet")[0] == 0
tt = R.read_any(t) if ok else {}
check(ok and os.path.exists(os.path.join(h, "config.json")) and all(ta[k] == tt[k] for k in ta),
      "merge --format hf: a Hugging Face directory with the same values")
ok = run("merge", "--suite", copy, "--method", "ta", "--out", t, "--format", "ttmerge", "--quiet")[0] == 0
check(ok and R.read_any(t) == ta, "merge --format ttmerge: the original's file, byte for byte in every tensor")
ra, rb = run("eval", "--suite", SUITE, "--model", a, "--quiet"), run("eval", "--suite", copy, "--model", b, "--quiet")
check(ra[0] == 0 and rb[0] == 0 and ra[1] == rb[1] and ra[1].count("\n") > 2,
      "eval --suite: the open_clip merge gives the same accuracies")
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
