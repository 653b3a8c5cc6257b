#!/usr/bin/python3
"""clip_text_bench.py — CLIP's text tower at the full ViT-B/32 shape: equivalence and throughput.
Not run by ctest (minutes). Run it with no other heavy job on the machine:

  env OMP_WAIT_POLICY=passive /usr/bin/python3 bench/clip_text_bench.py \\
      build/ttmerge [WORKDIR] [--seed S] [--rounds R] [--threads 2]

1. Equivalence: tests/clip_text_check.py's checks with 12 layers per tower (text width 512, 8 heads,
   context 77, vocabulary 49,408; image 224 px / patch 32, width 768, 12 heads; output 512), Hugging
   Face and open_clip layouts: text features, head weights and the zero-shot logits of `ttmerge eval
   --head` against the float64 PyTorch reference of tests/clip_ref.py (max |diff| / max |ref|).
2. Throughput of the text tower on a SUN397 head (397 classes x 2 templates = 794 prompts; the
   vocabulary is the test's learned one, so prompts are a few tokens longer than with CLIP's):
     ttmerge  `ttmerge heads --threads T`: the time of its text forwards (what it prints as "text
              tower": plans + forwards, batch 64, rows cut after the longest prompt's end-of-text);
     peer     PyTorch float32, torch.set_num_threads(T), open_clip's text encoder built from
              nn.MultiheadAttention (batch_first) / nn.LayerNorm / nn.Linear with the same weights and
              the causal mask, under torch.no_grad(), batch 64, each batch padded to its longest row
              (Hugging Face's padding=True; with --full-context also every batch padded to 77, as
              open_clip.tokenize's rows are: slow).
   Rounds are interleaved (ttmerge, then the peer); medians are printed, in prompts/s.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import clip_ref as R  # noqa: E402
import clip_text_check as C  # noqa: E402


class TextTower(torch.nn.Module):
    """open_clip's TextTransformer (encode_text) in float32 from open_clip-named numpy params."""

    def __init__(self, p, heads, layers):
        super().__init__()
        w = p["token_embedding.weight"].shape[1]
        t = lambda a: torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)), requires_grad=False)  # noqa: E731
        self.tok, self.pos = t(p["token_embedding.weight"]), t(p["positional_embedding"])
        self.blocks = torch.nn.ModuleList()
        for i in range(layers):
            b = f"transformer.resblocks.{i}."
            m = torch.nn.Module()
            m.ln_1, m.ln_2 = torch.nn.LayerNorm(w), torch.nn.LayerNorm(w)
            m.attn = torch.nn.MultiheadAttention(w, heads, batch_first=True)
            m.c_fc, m.c_proj = torch.nn.Linear(w, 4 * w), torch.nn.Linear(4 * w, w)
            for mod, name in ((m.ln_1, "ln_1"), (m.ln_2, "ln_2"), (m.c_fc, "mlp.c_fc"), (m.c_proj, "mlp.c_proj"),
                              (m.attn.out_proj, "attn.out_proj")):
                mod.weight, mod.bias = t(p[b + name + ".weight"]), t(p[b + name + ".bias"])
            m.attn.in_proj_weight, m.attn.in_proj_bias = t(p[b + "attn.in_proj_weight"]), t(p[b + "attn.in_proj_bias"])
            self.blocks.append(m)
        self.ln_final = torch.nn.LayerNorm(w)
        self.ln_final.weight, self.ln_final.bias = t(p["ln_final.weight"]), t(p["ln_final.bias"])
        self.proj = t(p["text_projection"])

    def forward(self, ids):
        T = ids.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.tok[ids] + self.pos[:T]
        for m in self.blocks:
            h = m.ln_1(x)
            x = x + m.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            h = m.c_fc(m.ln_2(x))
            x = x + m.c_proj(h * torch.sigmoid(1.702 * h))
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.proj


def peer_seconds(model, rows, batch, full):
    with torch.no_grad():
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            r = rows[i:i + batch]
            T = rows.shape[1] if full else int((r > 0).sum(1).max())
            model(torch.from_numpy(r[:, :T].astype(np.int64)))
        return time.perf_counter() - t0


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("work", nargs="?", default="/tmp/ttmerge-clip-text-bench")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-equivalence", action="store_true")
    ap.add_argument("--full-context", action="store_true", help="also time the peer padded to 77 (slow)")
    a = ap.parse_args(argv)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    check = C.Check()
    m = C.make_models(a.work, a.seed, 12, 12)
    if not a.skip_equivalence:
        ref = C.reference(m)
        C.check_layout(check, a.bin, a.work, m, ref, "hf", m["hf"], [])
        C.check_layout(check, a.bin, a.work, m, ref, "open_clip", m["oc"],
                       ["--vocab", os.path.join(m["vocab_dir"], "openclip", "bpe_simple_vocab_16e6.txt.gz")])

    sun = os.path.join(HERE, "..", "suites", "clip", "sun397")
    classes = open(os.path.join(sun, "classnames.txt"), encoding="utf-8").read().splitlines()
    templates = open(os.path.join(sun, "templates.txt"), encoding="utf-8").read().splitlines()
    rows = np.array([m["oc_tok"].row(t.replace("{}", c)) for c in classes for t in templates])
    n, longest = len(rows), int((rows > 0).sum(1).max())
    torch.set_num_threads(a.threads)
    model = TextTower(m["tp"], C.THEADS, 12).eval()
    with torch.no_grad():  # the peer computes what ttmerge does
        got = model(torch.from_numpy(rows[:8].astype(np.int64))).numpy()
    e = R.rel_err(got, R.clip_text_features(m["tp"], rows[:8], C.THEADS))
    check(e <= 1e-4, f"peer (float32 nn.MultiheadAttention) vs the float64 reference: rel err {e:.2e}")
    out = os.path.join(a.work, "sun397_head.safetensors")
    times = {"ttmerge": [], "peer (pad to longest in batch)": []}
    if a.full_context:
        times["peer (pad to 77)"] = []
    for r in range(a.rounds):
        rc, _, err = C.run(a.bin, "heads", "--clip", m["hf"], "--classes", os.path.join(sun, "classnames.txt"),
                           "--templates", os.path.join(sun, "templates.txt"), "--out", out, "--threads",
                           str(a.threads))
        hit = re.search(r"text tower ([0-9.]+) s", err)
        if rc or not hit:
            check(False, f"ttmerge heads on SUN397: exit {rc} {err.strip()}")
            break
        times["ttmerge"].append(float(hit.group(1)))
        times["peer (pad to longest in batch)"].append(peer_seconds(model, rows, 64, False))
        if a.full_context:
            times["peer (pad to 77)"].append(peer_seconds(model, rows, 64, True))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    if times["ttmerge"]:
        print(f"\ntext tower, SUN397 head: {n} prompts (longest {longest} tokens), {a.threads} threads, "
              f"median of {len(times['ttmerge'])} interleaved rounds")
        base = statistics.median(times["ttmerge"])
        for k, v in times.items():
            med = statistics.median(v)
            print(f"  {k:32s} {med:7.3f} s  {n / med:8.1f} prompts/s  ({med / base:.2f}x ttmerge's time)")
    if check.failures:
        print(f"{len(check.failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
