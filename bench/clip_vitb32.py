"""clip_vitb32.py — the checkpoint check of tests/clip_checkpoints.py at the true ViT-B/32 shape
(image 224, patch 32, width 768, 12 layers, 12 heads, output 512), plus the cost of opening a
full-size Hugging Face CLIPModel checkpoint (605 MB F32 with its text tower). Not run by ctest.

  OMP_WAIT_POLICY=passive /usr/bin/python3 bench/clip_vitb32.py BUILD_DIR [WORKDIR] [--seed S] [--images N]

Writes, from the seed, a random CLIPModel directory (config.json + model.safetensors: vision tower,
a text tower of the real shapes, position_ids buffers, logit_scale), runs
`ttmerge eval --features-out` on N random 224x224 images and reports the max relative error
(max |diff| / max |ref|) against the independent float64 PyTorch forward of tests/clip_ref.py; then
BUILD_DIR/ckpt_open times opening the directory (headers only) and loading the image tower, with
the peak RSS after each (VmHWM), in interleaved rounds against the same tower as a ttmerge file.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import clip_ref as R  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("work", nargs="?", default="/tmp/ttmerge-clip-vitb32")
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--images", type=int, default=8)
ap.add_argument("--rounds", type=int, default=3)
a = ap.parse_args()
W, L, HEADS, S, P, D = 768, 12, 12, 224, 32, 512
shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)

t0 = time.time()
p = R.random_params(a.seed, W, L, S, P, D)
t = R.hf_tensors(p)
r = np.random.RandomState(a.seed + 1)


def rnd(*shape):
    return ("F32", (r.standard_normal(shape) * 0.02).astype(np.float32))


tw, tm = 512, 2048  # the text tower of ViT-B/32's CLIPModel, real shapes, random values
t["text_model.embeddings.token_embedding.weight"] = rnd(49408, tw)
t["text_model.embeddings.position_embedding.weight"] = rnd(77, tw)
for i in range(12):
    b = f"text_model.encoder.layers.{i}."
    for n in ("q", "k", "v", "out"):
        t[b + f"self_attn.{n}_proj.weight"], t[b + f"self_attn.{n}_proj.bias"] = rnd(tw, tw), rnd(tw)
    for n in ("layer_norm1", "layer_norm2"):
        t[b + n + ".weight"], t[b + n + ".bias"] = rnd(tw), rnd(tw)
    t[b + "mlp.fc1.weight"], t[b + "mlp.fc1.bias"] = rnd(tm, tw), rnd(tm)
    t[b + "mlp.fc2.weight"], t[b + "mlp.fc2.bias"] = rnd(tw, tm), rnd(tw)
t["text_model.final_layer_norm.weight"], t["text_model.final_layer_norm.bias"] = rnd(tw), rnd(tw)
t["text_projection.weight"] = rnd(D, tw)
t["logit_scale"] = ("F32", np.array(4.6052, np.float32))
t["text_model.embeddings.position_ids"] = ("I64", np.arange(77, dtype=np.int64)[None])
t["vision_model.embeddings.position_ids"] = ("I64", np.arange(50, dtype=np.int64)[None])
model = os.path.join(a.work, "clip-vit-base-patch32")
R.write_hf_dir(model, t, R.hf_config(W, L, HEADS, S, P, D, full=True))
size = os.path.getsize(os.path.join(model, "model.safetensors"))
n_params = sum(int(np.prod(v[1].shape)) for k, v in t.items() if v[0] == "F32")
print(f"wrote {model}: {len(t)} tensors, {n_params} float parameters, {size / 1e6:.1f} MB "
      f"({time.time() - t0:.1f}s)")
del t

pixels = np.random.RandomState(a.seed + 2).randint(0, 256, size=(a.images, 3, S, S)).astype(np.uint8)
images = os.path.join(a.work, "images.idx")
R.write_idx_images(images, pixels)
out = os.path.join(a.work, "features.npy")
env = dict(os.environ, OMP_WAIT_POLICY="passive")
t0 = time.time()
subprocess.run([os.path.join(a.build, "ttmerge"), "eval", "--model", model, "--input", images, "--features-out", out,
                "--quiet"], check=True, env=env)
t_eval = time.time() - t0
got = np.load(out)
want = R.clip_vision_features(p, pixels, HEADS, "quick_gelu")
err = R.rel_err(got, want)
print(f"features [{got.shape[0]}, {got.shape[1]}]: max relative error {err:.3e} "
      f"(max |diff| / max |ref|; float64 PyTorch reference); ttmerge eval {t_eval:.1f}s")
# the peer: the same image tower as a ttmerge file (the reader before this layout support), in
# interleaved rounds, one fresh process each
ttm = os.path.join(a.work, "vitb32.ttmerge.safetensors")
subprocess.run([os.path.join(a.build, "ttmerge"), "convert", model, "--to", "ttmerge", "--out", ttm, "--quiet"],
               check=True, env=env)
print("layout,round,open_s,open_peak_rss_mb,tensors,load_s,load_peak_rss_mb,params")
for r in range(a.rounds):
    for name, path in (("hf-clipmodel-605MB", model), ("ttmerge-vision-351MB", ttm)):
        o = subprocess.run([os.path.join(a.build, "ckpt_open"), path, "1"], check=True, env=env,
                           capture_output=True, text=True).stdout.strip().split("\n")[1]
        print(f"{name},{r}," + o.split(",", 1)[1])
sys.exit(0 if err <= 1e-4 else 1)
