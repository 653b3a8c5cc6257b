#!/usr/bin/python3
"""torch_finetune_peer.py — fine-tune one task of a built suite in PyTorch, as a check of ttmerge's trainer.

Loads the suite's pretrained.safetensors and heads/<task>.safetensors into the PyTorch ViT of
bench/pytorch/torch_vit.py, the task's train/test IDX files, and fine-tunes the whole backbone with the
head frozen (AdamW, linear warm-up then cosine; batch, steps, lr, weight decay and warm-up from
the suite's recipe in suite.json), then prints the zero-shot and fine-tuned test accuracies
beside the ones `ttmerge suite build` recorded in suite.json. The batches are not the same
images (different RNGs), so the two agree to within run-to-run noise (~1 point), not exactly.

  /usr/bin/python3 bench/pytorch/torch_finetune_peer.py --suite out/vision8 --task mnist [--threads 2]

Measured (fine-tuned test accuracy, PyTorch vs ttmerge): vision8 mnist 90.30 vs 90.30, mnist-inv
75.70 vs 75.60; on the previous 4-epoch backbone, mnist 83.1 vs 83.7. Zero-shot agrees exactly.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vit import VisionTransformer  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    tensors = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            sys.exit("%s: tensor %s is %s; this script reads F32 files (as ttmerge writes)" % (path, k, v["dtype"]))
        s, e = v["data_offsets"]
        a = np.frombuffer(b, np.float32, offset=8 + n + s, count=(e - s) // 4).reshape(v["shape"])
        tensors[k] = torch.tensor(a.copy())
    return tensors, header.get("__metadata__", {})


def read_idx(path):
    with open(path, "rb") as f:
        b = f.read()
    ndim = struct.unpack(">I", b[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.suite, "suite.json")) as f:
        manifest = json.load(f)
    ft = manifest["spec"]["finetune"]
    norm = manifest["normalize"]
    info = next((t for t in manifest["tasks"] if t["name"] == args.task), None)
    if info is None:
        sys.exit("%s/suite.json: no task %r" % (args.suite, args.task))

    sd, meta = read_safetensors(os.path.join(args.suite, "pretrained.safetensors"))
    a = json.loads(meta["ttmerge.arch"])
    model = VisionTransformer(a["image_size"], a["channels"], a["patch_size"], a["width"], a["layers"], a["heads"],
                              a["mlp_ratio"], a["output_dim"])
    model.load_state_dict(sd, strict=True)
    head, _ = read_safetensors(os.path.join(args.suite, "heads", args.task + ".safetensors"))
    W, bias = head["head.weight"], head["head.bias"]

    def logits(x):
        f = model(x)
        if a.get("normalize_features"):
            f = a["logit_scale"] * f / f.norm(dim=1, keepdim=True)
        return f @ W.T + bias

    def split(name):
        d = os.path.join(args.suite, "data", args.task)
        x = read_idx(os.path.join(d, name + "-images.idx")).astype(np.float32) / 255.0
        x = (x - norm["mean"]) / norm["std"]
        x = torch.tensor(x).reshape(len(x), a["channels"], a["image_size"], a["image_size"])
        return x, torch.tensor(read_idx(os.path.join(d, name + "-labels.idx")).astype(np.int64))

    xtr, ytr = split("train")
    xte, yte = split("test")

    def test_accuracy():
        with torch.no_grad():
            return 100.0 * (logits(xte).argmax(1) == yte).float().mean().item()

    zs = test_accuracy()
    steps, lr, B = ft["steps"], ft["lr"], ft["batch"]
    warm = int(ft["warmup"] * steps)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=ft["weight_decay"], eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    order, pos = torch.randperm(len(xtr), generator=gen), 0
    for s in range(steps):  # the schedule of core/train.c lr_warmup_cosine
        cur = lr * (s + 1) / warm if s < warm else lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm)))
        for g in opt.param_groups:
            g["lr"] = cur
        if pos + B > len(xtr):
            order, pos = torch.randperm(len(xtr), generator=gen), 0
        idx = order[pos:pos + B]
        pos += B
        loss = F.cross_entropy(logits(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    mode = manifest["finetune_modes"][0]
    print("task %s: zero-shot test %.2f (ttmerge %.2f); fine-tuned test %.2f (ttmerge %s: %.2f)" % (
        args.task, zs, info["accuracy"]["zeroshot"]["test"], test_accuracy(), mode,
        info["accuracy"]["finetuned"][mode]["test"]))


if __name__ == "__main__":
    main()
