"""clip_checkpoints.py TTMERGE_BIN WORKDIR [SEED] — real CLIP checkpoint layouts end to end.

From SEED, writes small random CLIP image towers (width 64, 2 layers, image 32, patch 8) as
Hugging Face checkpoints (config.json + model.safetensors; sharded with an index; F16; BF16; a
full CLIPModel with a text tower and position_ids; a CLIPVisionModel without projection) and as
open_clip files ("visual.", "model.visual." and no prefix; an open_clip_config.json directory), and:
  1. `ttmerge eval --features-out` matches an independent PyTorch forward (tests/clip_ref.py) to
     1e-4 relative (max |diff| / max |ref|), and a wrong activation does not (the check can fail);
  2. `ttmerge convert` round trips HF -> open_clip -> HF and open_clip -> HF -> open_clip give
     byte-identical tensors (and the same config.json), F16/BF16 become their exact F32 values,
     sharded output reads back the same, and converted models give bit-identical features;
  3. every malformed input is one line on stderr naming the file, exit 2, and no output.
Exit 0 when all hold; prints each check.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref as R  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 1234
W, L, S, P, D, HEADS = 64, 2, 32, 8, 48, 4
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    return r.returncode, r.stderr


def features(model, *extra):
    out = os.path.join(WORK, "f.npy")
    if os.path.exists(out):
        os.unlink(out)
    rc, err = run("eval", "--model", model, "--input", IMAGES, "--features-out", out, "--quiet", *extra)
    if rc:
        print(err)
        return None
    return np.load(out)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
rng = np.random.RandomState(SEED)
pixels = rng.randint(0, 256, size=(5, 3, S, S)).astype(np.uint8)
IMAGES = os.path.join(WORK, "images.idx")
R.write_idx_images(IMAGES, pixels)
p = R.random_params(SEED, W, L, S, P, D)
path = lambda *a: os.path.join(WORK, *a)  # noqa: E731

# ---- 1. features against the reference ------------------------------------------------------------
models = []  # (name, path, values (open_clip names, f32), heads, act, extra eval args)
for dt in ("F32", "F16", "BF16"):
    vals = R.round_params(p, dt)[1]
    d = path(f"hf_{dt.lower()}")
    R.write_hf_dir(d, R.hf_tensors(p, dt), R.hf_config(W, L, HEADS, S, P, D))
    models.append((f"HF {dt}", d, vals, HEADS, "quick_gelu", ()))
d = path("hf_sharded")
R.write_hf_dir(d, R.hf_tensors(p), R.hf_config(W, L, HEADS, S, P, D), shards=3)
models.append(("HF sharded (3 shards + index)", d, p, HEADS, "quick_gelu", ()))
models.append(("HF index file given directly", path("hf_sharded", "model.safetensors.index.json"), p, HEADS,
               "quick_gelu", ()))
d = path("hf_full_gelu")
t = R.hf_tensors(p)
t.update(R.text_tower_hf(SEED))
R.write_hf_dir(d, t, R.hf_config(W, L, HEADS, S, P, D, act="gelu", full=True, eps=1e-6))
models.append(("HF CLIPModel (text tower, position_ids, gelu, eps 1e-6)", d, p, HEADS, "gelu", (), 1e-6))
q = dict(p, proj=np.eye(W, dtype=np.float32))
d = path("hf_vision_only")
R.write_hf_dir(d, R.hf_tensors(p, projection=False), dict(R.hf_config(W, L, HEADS, S, P, D),
                                                          architectures=["CLIPVisionModel"]))
models.append(("HF CLIPVisionModel (no projection: pooler output)", d, q, HEADS, "quick_gelu", ()))
d = path("hf_noconfig.safetensors")
R.write_safetensors(d, R.hf_tensors(p))
models.append(("HF single file, no config (heads = width/64)", d, p, 1, "quick_gelu", ()))
for prefix, outer in (("visual.", ""), ("model.visual.", "model."), ("", None)):
    t = R.open_clip_tensors(p, prefix)
    if outer is not None:
        t.update(R.text_tower_open_clip(SEED, outer))
    f = path(f"oc_{prefix or 'bare.'}safetensors")
    R.write_safetensors(f, t)
    models.append((f"open_clip '{prefix}' (default quick_gelu, heads = width/64)", f, p, 1, "quick_gelu", ()))
models.append(("open_clip --act gelu", path("oc_visual.safetensors"), p, 1, "gelu", ("--act", "gelu")))
d = path("oc_dir")
os.makedirs(d)
R.write_safetensors(os.path.join(d, "open_clip_model.safetensors"), R.open_clip_tensors(p))
json.dump({"model_cfg": {"embed_dim": D, "vision_cfg": {"width": W, "layers": L, "head_width": 16}}},
          open(os.path.join(d, "open_clip_config.json"), "w"))
models.append(("open_clip directory, open_clip_config.json (gelu, head_width 16)", d, p, 4, "gelu", ()))

ref_cache = {}
for name, m, vals, heads, act, extra, *eps in models:
    got = features(m, *extra)
    want = R.clip_vision_features(vals, pixels, heads, act, eps=eps[0] if eps else 1e-5)
    e = R.rel_err(got, want) if got is not None else float("inf")
    check(got is not None and got.shape == want.shape and e <= 1e-4, f"features {name}: rel err {e:.2e}")
    ref_cache[m] = got
# the comparison can fail: the same model read with the other activation is far off
got = features(path("hf_f32"), "--act", "gelu")
e = R.rel_err(got, R.clip_vision_features(p, pixels, HEADS, "quick_gelu"))
check(e > 1e-3, f"negative control (HF read with --act gelu) differs: rel err {e:.2e}")

# ---- 2. conversions ------------------------------------------------------------------------------


def same_tensors(a, b, names=None):
    ta, tb = R.read_any(a), R.read_any(b)
    keys = names if names is not None else sorted(ta)
    return sorted(keys) == sorted(k for k in tb if names is None or k in names) and all(ta[k] == tb[k] for k in keys)


def convert(src, to, out, *extra):
    rc, err = run("convert", src, "--to", to, "--out", out, "--quiet", *extra)
    if rc:
        print(err)
    return rc == 0


ok = convert(path("hf_f32"), "open_clip", path("rt_oc.safetensors")) and \
    convert(path("rt_oc.safetensors"), "hf", path("rt_hf"))
check(ok and same_tensors(path("hf_f32"), path("rt_hf")), "HF -> open_clip -> HF: identical tensors")
check(ok and open(path("hf_f32", "config.json")).read() == open(path("rt_hf", "config.json")).read(),
      "HF -> open_clip -> HF: identical config.json")
oc_names = [k for k in R.read_any(path("oc_visual.safetensors")) if k.startswith("visual.")]
ok = convert(path("oc_visual.safetensors"), "hf", path("rt2_hf")) and \
    convert(path("rt2_hf"), "open_clip", path("rt2_oc.safetensors"))
check(ok and same_tensors(path("oc_visual.safetensors"), path("rt2_oc.safetensors"), oc_names) and
      sorted(R.read_any(path("rt2_oc.safetensors"))) == sorted(oc_names),
      "open_clip -> HF -> open_clip: identical visual.* tensors (text tower not carried)")
ok = convert(path("hf_f32"), "hf", path("rt_sharded"), "--shard-size", "40000")
files = sorted(os.listdir(path("rt_sharded"))) if ok else []
check(ok and "model.safetensors.index.json" in files and len([f for f in files if f.startswith("model-")]) > 2 and
      same_tensors(path("hf_f32"), path("rt_sharded")), f"HF --shard-size 40000: {len(files) - 2} shards, same tensors")
check(ok and np.array_equal(features(path("rt_sharded")), ref_cache[path("hf_f32")]),
      "sharded output gives bit-identical features")
check(np.array_equal(features(path("rt_oc.safetensors")), ref_cache[path("hf_f32")]),
      "open_clip output of an HF model gives bit-identical features (act/heads kept in ttmerge.arch)")
for dt in ("F16", "BF16"):
    ok = convert(path(f"hf_{dt.lower()}"), "ttmerge", path(f"rt_{dt}.safetensors"))
    got = R.read_any(path(f"rt_{dt}.safetensors")) if ok else {}
    src = R.read_any(path(f"hf_{dt.lower()}"))
    exact = ok and all(got[k][0] == "F32" for k in got) and np.array_equal(
        R.as_f32(got["transformer.resblocks.1.mlp.c_fc.weight"]),
        R.as_f32(src["vision_model.encoder.layers.1.mlp.fc1.weight"]))
    exact = exact and np.array_equal(R.as_f32(got["proj"]), R.as_f32(src["visual_projection.weight"]).T)
    check(exact, f"{dt} -> ttmerge: F32 tensors holding exactly the {dt} values")
ok = convert(path("hf_noconfig.safetensors"), "hf", path("gen_hf"))
cfg = json.load(open(path("gen_hf", "config.json"))) if ok else {}
check(ok and cfg.get("hidden_size") == W and cfg.get("num_attention_heads") == 1 and
      R.read_safetensors(path("gen_hf", "model.safetensors"))[1].get("format") == "pt",
      "HF output without an input config: generated config.json, format=pt metadata")

# ---- 3. malformed inputs --------------------------------------------------------------------------
bad = {}


def bad_hf(name, mutate_tensors=None, config=None, shards=1):
    d = path("bad_" + name)
    t = R.hf_tensors(p)
    if mutate_tensors:
        mutate_tensors(t)
    R.write_hf_dir(d, t, config if config is not None else R.hf_config(W, L, HEADS, S, P, D), shards)
    bad[name] = d
    return d


d = bad_hf("config_json")
open(os.path.join(d, "config.json"), "w").write('{"vision_config": {"hidden_size": 64,')
bad_hf("config_mismatch", config=R.hf_config(W + 64, L, HEADS, S, P, D))
bad_hf("config_act", config=R.hf_config(W, L, HEADS, S, P, D, act="relu"))
d = bad_hf("index_json", shards=2)
open(os.path.join(d, "model.safetensors.index.json"), "w").write('{"weight_map": {"a": 1}}')
d = bad_hf("missing_shard", shards=3)
os.unlink(os.path.join(d, "model-00002-of-00003.safetensors"))
d = bad_hf("index_names_absent", shards=2)
ix = json.load(open(os.path.join(d, "model.safetensors.index.json")))
ix["weight_map"]["vision_model.not_there.weight"] = "model-00001-of-00002.safetensors"
json.dump(ix, open(os.path.join(d, "model.safetensors.index.json"), "w"))
d = bad_hf("two_shards", shards=2)
ix = json.load(open(os.path.join(d, "model.safetensors.index.json")))
dup = "vision_model.post_layernorm.bias"
other = "model-00002-of-00002.safetensors" if ix["weight_map"][dup].startswith("model-00001") else \
    "model-00001-of-00002.safetensors"
tt, meta = R.read_safetensors(os.path.join(d, other))
t2 = {k: (v[0], np.frombuffer(v[2], R._DT[v[0]][0]).reshape(v[1])) for k, v in tt.items()}
t2[dup] = ("F32", p["ln_post.bias"])
R.write_safetensors(os.path.join(d, other), t2, meta)
bad_hf("dtype", lambda t: t.update({"vision_model.pre_layrnorm.bias": ("I32", np.zeros(W, np.int32))}))
bad_hf("shape", lambda t: t.update({"vision_model.encoder.layers.1.mlp.fc1.weight":
                                    ("F32", np.zeros((4 * W, W + 1), np.float32))}))
bad_hf("mixed", lambda t: t.update({"visual.ln_post.bias": ("F32", p["ln_post.bias"])}))
bad_hf("missing_layer", lambda t: t.pop("vision_model.encoder.layers.0.self_attn.k_proj.weight"))
f = path("bad_none.safetensors")
R.write_safetensors(f, {"encoder.weight": ("F32", np.zeros((4, 4), np.float32))})
bad["none"] = f
f = path("bad_oc_extra.safetensors")
R.write_safetensors(f, dict(R.open_clip_tensors(p, ""), **{"decoder.weight": ("F32", np.zeros(3, np.float32))}))
bad["oc_extra"] = f
f = path("bad_oc_pos.safetensors")
R.write_safetensors(f, dict(R.open_clip_tensors(p), **{"visual.positional_embedding":
                                                        ("F32", np.zeros((18, W), np.float32))}))
bad["oc_positions"] = f
for name, m in sorted(bad.items()):
    for verb in ("eval", "convert"):
        out = path(f"out_{name}_{verb}")
        args = ("eval", "--model", m, "--input", IMAGES, "--features-out", out + ".npy") if verb == "eval" else \
            ("convert", m, "--to", "hf", "--out", out)
        rc, err = run(*args)
        lines = err.strip().split("\n")
        left = [x for x in os.listdir(WORK) if x.startswith(f"out_{name}_{verb}")]
        named = os.path.basename(m.rstrip("/")) in err or "bad_" + name in err
        check(rc == 2 and len(lines) == 1 and named and not left,
              f"bad input {name} ({verb}): exit {rc}, {len(lines)} line(s), leftovers {left}: {lines[0][:160]}")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
