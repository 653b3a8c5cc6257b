#!/usr/bin/python3
"""clip_text_check.py TTMERGE_BIN WORKDIR [--seed S] [--text-layers L] [--vision-layers L]

CLIP's text tower and `ttmerge heads` against the independent PyTorch forward of tests/clip_ref.py,
at ViT-B/32's true widths (text: width 512, 8 heads, context 77, vocabulary 49,408, output 512;
image: 224 px, patch 32, width 768, 12 heads) with L layers per tower (2 by default: the ctest;
bench/clip_text_bench.py runs 12).

From the seed it learns a small BPE vocabulary (tests/clip_tokenizer_ref.py; CLIP's real one cannot
be downloaded), writes a random CLIP as a Hugging Face CLIPModel directory (config.json with a
text_config, model.safetensors, vocab.json + merges.txt) and as an open_clip state dict (visual.* and
the unprefixed text tower, the vocabulary given with --vocab), and checks, for both:
  1. `ttmerge heads --features-out`: every prompt's text features (EuroSAT's 10 classes x 3 templates,
     plus a class name longer than the context, which is cut with end-of-text kept last) within 1e-4
     relative (max |diff| / max |ref|) of the reference run on the full 77-token rows, padded with 0
     (open_clip) and with end-of-text (Hugging Face's tokenizer): both pool the same token;
  2. the head file: head.weight = normalise(mean(normalise(features))) within 1e-4, head.bias = 0,
     and ttmerge.head = {normalize_features: true, logit_scale: exp(logit_scale)};
  3. `ttmerge eval --head`: CLIP's zero-shot logits exp(s) · f̂ · Wᵀ of random images within 1e-4
     relative of the reference (image tower and text tower both from the reference);
  4. the checks can fail: the wrong activation (--act gelu) moves the features by more than 10x the
     tolerance;
  5. bad inputs (a template without "{}", an image-only checkpoint, a file without --vocab, a missing
     class file): one line on stderr naming the file, exit 2, no head file.
Exit 0 when all hold; prints each check with its error.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_ref as R  # noqa: E402
import clip_tokenizer_ref as T  # noqa: E402

TW, THEADS, CTX, VOCAB, D = 512, 8, 77, 49408, 512
VW, VHEADS, S, P = 768, 12, 224, 32
TOL = 1e-4
LOGIT_SCALE = 4.6052  # ln 100, the trained OpenAI value


class Check:
    def __init__(self):
        self.failures = []

    def __call__(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)


def run(bin_, *args):
    r = subprocess.run([bin_, *args], capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    return r.returncode, r.stdout, r.stderr


def read_head(path):
    tensors, meta = R.read_safetensors(path)
    return R.as_f32(tensors["head.weight"]), R.as_f32(tensors["head.bias"]), meta


def make_models(work, seed, text_layers, vision_layers, merges=1000):
    """Writes WORK/vocab, WORK/hf (CLIPModel dir), WORK/open_clip.safetensors, the class and template
    files and the images; returns what the checks need."""
    t0 = time.time()
    vocab_dir = os.path.join(work, "vocab")
    T.write_vocabs(vocab_dir, T.learn_merges(T.corpus(seed), merges))
    oc_tok = T.load_openclip(os.path.join(vocab_dir, "openclip", "bpe_simple_vocab_16e6.txt.gz"))
    hf_tok = T.load_hf(os.path.join(vocab_dir, "hf"))
    tp = R.random_text_params(seed, TW, text_layers, CTX, VOCAB, D)
    vp = R.random_params(seed + 1, VW, vision_layers, S, P, D)
    logit_scale = np.array(LOGIT_SCALE, dtype=np.float32)

    hf = os.path.join(work, "hf")
    tensors = R.hf_tensors(vp)
    tensors.update(R.hf_text_tensors(tp))
    tensors["logit_scale"] = ("F32", logit_scale)
    tensors["text_model.embeddings.position_ids"] = ("I64", np.arange(CTX, dtype=np.int64)[None])
    config = R.hf_config(VW, vision_layers, VHEADS, S, P, D, full=True,
                         text_config=R.hf_text_config(TW, text_layers, THEADS, CTX, VOCAB))
    R.write_hf_dir(hf, tensors, config)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(vocab_dir, "hf", f), hf)

    oc = os.path.join(work, "open_clip.safetensors")
    tensors = R.open_clip_tensors(vp, "visual.")
    tensors.update({k: ("F32", v) for k, v in tp.items()})
    tensors["logit_scale"] = ("F32", logit_scale)
    R.write_safetensors(oc, tensors)

    src = os.path.join(HERE, "..", "suites", "clip", "eurosat")
    classes = open(os.path.join(src, "classnames.txt"), encoding="utf-8").read().splitlines()
    classes.append("an extraordinarily long class name " * 12)  # more than 77 tokens: cut, eot kept last
    templates = open(os.path.join(src, "templates.txt"), encoding="utf-8").read().splitlines()
    cls_file, tpl_file = os.path.join(work, "classes.txt"), os.path.join(work, "templates.txt")
    open(cls_file, "w", encoding="utf-8").write("\n".join(classes) + "\n")
    open(tpl_file, "w", encoding="utf-8").write("\n".join(templates) + "\n")

    rng = np.random.RandomState(seed + 2)
    pixels = rng.randint(0, 256, size=(6, 3, S, S)).astype(np.uint8)
    images = os.path.join(work, "images.idx")
    R.write_idx_images(images, pixels)
    prompts = [t.replace("{}", c) for c in classes for t in templates]
    print(f"models written in {time.time() - t0:.1f} s ({len(prompts)} prompts, eot id {oc_tok.eot})", flush=True)
    return dict(vocab_dir=vocab_dir, oc_tok=oc_tok, hf_tok=hf_tok, tp=tp, vp=vp, hf=hf, oc=oc, classes=classes,
                templates=templates, cls_file=cls_file, tpl_file=tpl_file, pixels=pixels, images=images,
                prompts=prompts)


def reference(m):
    t0 = time.time()
    rows_oc = np.array([m["oc_tok"].row(s) for s in m["prompts"]])
    rows_hf = np.array([m["hf_tok"].row(s, pad=m["hf_tok"].eot) for s in m["prompts"]])
    feats_oc = R.clip_text_features(m["tp"], rows_oc, THEADS)
    feats_hf = R.clip_text_features(m["tp"], rows_hf, THEADS)
    W = R.zero_shot_weights(feats_oc, len(m["classes"]), len(m["templates"]))
    img = R.clip_vision_features(m["vp"], m["pixels"], VHEADS, mean=0.5, std=0.5)
    img = img / np.linalg.norm(img, axis=-1, keepdims=True)
    logits = np.exp(np.float64(np.float32(LOGIT_SCALE))) * img @ W.T
    print(f"reference in {time.time() - t0:.1f} s (longest prompt {int((rows_oc > 0).sum(1).max())} tokens)",
          flush=True)
    return dict(rows_oc=rows_oc, feats_oc=feats_oc, feats_hf=feats_hf, W=W, logits=logits)


def check_layout(check, bin_, work, m, ref, name, model, extra):
    out, feats = os.path.join(work, f"head_{name}.safetensors"), os.path.join(work, f"feats_{name}.npy")
    rc, _, err = run(bin_, "heads", "--clip", model, "--classes", m["cls_file"], "--templates", m["tpl_file"],
                     "--out", out, "--features-out", feats, "--threads", "2", *extra)
    check(rc == 0, f"{name}: ttmerge heads exit 0 ({err.strip().splitlines()[-1] if err.strip() else ''})")
    if rc:
        return
    got = np.load(feats)
    e_oc, e_hf = R.rel_err(got, ref["feats_oc"]), R.rel_err(got, ref["feats_hf"])
    check(e_oc <= TOL, f"{name}: text features vs reference (77 tokens, pad 0): rel err {e_oc:.2e}")
    check(e_hf <= TOL, f"{name}: text features vs reference (77 tokens, pad eot): rel err {e_hf:.2e}")
    W, b, meta = read_head(out)
    e_w = R.rel_err(W, ref["W"])
    check(e_w <= TOL and W.shape == ref["W"].shape, f"{name}: head.weight {W.shape} vs reference: rel err {e_w:.2e}")
    check(not b.any(), f"{name}: head.bias is 0")
    hs = json.loads(meta.get("ttmerge.head", "{}"))
    want = float(np.exp(np.float32(LOGIT_SCALE)))
    check(hs.get("normalize_features") is True and abs(hs.get("logit_scale", 0) - want) <= 1e-5 * want,
          f"{name}: ttmerge.head {hs} (exp(logit_scale) = {want:.6g})")
    logits = os.path.join(work, f"logits_{name}.npy")
    rc, _, err = run(bin_, "eval", "--model", model, "--input", m["images"], "--head", out, "--logits-out", logits,
                     "--quiet", "--threads", "2")
    check(rc == 0, f"{name}: ttmerge eval --head exit 0 {err.strip()}")
    if rc:
        return
    e_l = R.rel_err(np.load(logits), ref["logits"])
    check(e_l <= TOL, f"{name}: zero-shot logits (eval --head) vs reference: rel err {e_l:.2e}")


def check_can_fail(check, bin_, work, m, ref):
    feats = os.path.join(work, "feats_gelu.npy")
    rc, _, err = run(bin_, "heads", "--clip", m["hf"], "--classes", m["cls_file"], "--templates", m["tpl_file"],
                     "--out", os.path.join(work, "head_gelu.safetensors"), "--features-out", feats, "--act", "gelu",
                     "--quiet")
    e = R.rel_err(np.load(feats), ref["feats_oc"]) if rc == 0 else 0
    check(rc == 0 and e > 10 * TOL, f"the check can fail: --act gelu gives rel err {e:.2e} (> {10 * TOL:g})")


def check_bad_inputs(check, bin_, work, m):
    bad_tpl = os.path.join(work, "bad_templates.txt")
    open(bad_tpl, "w").write("a photo of a {}.\nno placeholder here\n")
    vision_only = os.path.join(work, "vision_only")
    R.write_hf_dir(vision_only, R.hf_tensors(R.random_params(1, 64, 1, 32, 8, 48)),
                   R.hf_config(64, 1, 1, 32, 8, 48))
    cases = [("a template without {}", ["--clip", m["hf"], "--classes", m["cls_file"], "--templates", bad_tpl],
              "bad_templates.txt:2"),
             ("an image-only checkpoint", ["--clip", vision_only, "--vocab", os.path.join(m["vocab_dir"], "hf"),
                                           "--classes", m["cls_file"], "--templates", m["tpl_file"]],
              "vision_only"),
             ("a single file without --vocab", ["--clip", m["oc"], "--classes", m["cls_file"], "--templates",
                                                m["tpl_file"]], "open_clip.safetensors"),
             ("a missing class file", ["--clip", m["hf"], "--classes", os.path.join(work, "nope.txt"), "--templates",
                                       m["tpl_file"]], "nope.txt")]
    for what, args, names in cases:
        out = os.path.join(work, "bad_head.safetensors")
        rc, _, err = run(bin_, "heads", *args, "--out", out, "--quiet")
        lines = err.strip().splitlines()
        check(rc == 2 and len(lines) == 1 and names in lines[0] and not os.path.exists(out)
              and not any(f.startswith("bad_head") for f in os.listdir(work)),
              f"bad input, {what}: exit {rc}, {lines[0] if lines else '(no message)'}")


def check_suite_text_head(check, bin_, work, m):
    """An imported suite whose task head is `head: {text: {classes, templates}}`: suite build encodes
    it with the pretrained CLIPModel's text tower; the stored head is `ttmerge heads`' rows times
    exp(logit_scale) (folded in, as task_vectors' heads), and its zero-shot accuracy is what the
    stored head gives on the stored images."""
    data = os.path.join(work, "suite-data")
    rng = np.random.RandomState(7)
    for i, _ in enumerate(m["classes"]):
        d = os.path.join(data, f"c{i:02d}")
        os.makedirs(d, exist_ok=True)
        for j in range(3):
            Image.fromarray(rng.randint(0, 256, size=(S + 8 * j, S, 3)).astype(np.uint8)).save(
                os.path.join(d, f"{j}.png"))
    spec = os.path.join(work, "text-suite.yaml")
    open(spec, "w").write(f"""name: texthead
seed: 0
import:
  pretrained: {m['hf']}
  preprocess: clip
tasks:
  - name: eurosat
    finetuned: {m['hf']}
    head: {{text: {{classes: {m['cls_file']}, templates: {m['tpl_file']}}}}}
    data:
      train: {data}
      val: {data}
      test: {data}
""")
    out = os.path.join(work, "text-suite")
    rc, _, err = run(bin_, "suite", "build", spec, "--out", out, "--quiet")
    check(rc == 0, f"suite build with a text head (rc {rc}) {err.strip()[:200]}")
    if rc:
        return
    hfile = os.path.join(work, "text-suite-head.safetensors")
    rc, _, err = run(bin_, "heads", "--clip", m["hf"], "--classes", m["cls_file"], "--templates", m["tpl_file"],
                     "--out", hfile, "--quiet")
    check(rc == 0, f"heads for the same classes (rc {rc}) {err.strip()[:200]}")
    W, _, meta = read_head(hfile)
    Ws, bs, _ = read_head(os.path.join(out, "heads", "eurosat.safetensors"))
    scale = json.loads(meta["ttmerge.head"])["logit_scale"]
    rel = float(np.abs(Ws - scale * W).max() / np.abs(scale * W).max())
    check(Ws.shape == W.shape and rel <= 1e-6 and not bs.any() and abs(scale - 100.0) < 1e-2,
          f"the suite's text head = exp(logit_scale) x the heads rows (rel {rel:.2e}, scale {scale:.4f})")


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("work")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--vision-layers", type=int, default=2)
    a = ap.parse_args(argv)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    check = Check()
    m = make_models(a.work, a.seed, a.text_layers, a.vision_layers)
    ref = reference(m)
    check_layout(check, a.bin, a.work, m, ref, "hf", m["hf"], [])
    check_layout(check, a.bin, a.work, m, ref, "open_clip", m["oc"],
                 ["--vocab", os.path.join(m["vocab_dir"], "openclip", "bpe_simple_vocab_16e6.txt.gz")])
    check_can_fail(check, a.bin, a.work, m, ref)
    check_bad_inputs(check, a.bin, a.work, m)
    check_suite_text_head(check, a.bin, a.work, m)
    if check.failures:
        print(f"{len(check.failures)} check(s) failed")
        return 1
    shutil.rmtree(a.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
