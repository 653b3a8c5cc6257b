#!/usr/bin/python3
"""gen_models.py — synthetic LLM-like checkpoints for `ttmerge merge --base --models`.

  gen_models.py OUT --gb 2 --K 8 [--dtype bf16] [--hidden 4096] [--shard-size 2GB] [--seed 0]

writes OUT/base and OUT/ft0..ft{K-1}, each a sharded Hugging Face directory (model-0000i-of-
0000N.safetensors + model.safetensors.index.json + config.json): a token embedding [vocab, hidden],
decoder layers of q/k/v/o projections [hidden, hidden], gate/up/down MLP projections
[inter, hidden] / [hidden, inter] (inter = 2.6875 hidden, Llama's ratio) and RMS norms, then the
final norm and an lm_head [vocab, hidden] and an I64 buffer (copied, not merged). The layers that
fit in --gb with a 32,000-token vocabulary are kept and the vocabulary then grows (or shrinks) so
that the model holds --gb GB to within a row (--vocab fixes it instead).
Base weights ~ N(0, 0.02); a fine-tune adds N(0, 0.002) noise (one draw
per tensor, rotated differently per model: cheap to generate) plus its own sparse N(0, 0.02) on 1%
of the entries (the heavy tail TIES keeps). Deterministic for a seed. All models' shard i are built
together: memory is about (K + 1) x --shard-size.
--small gives a tiny model (hidden 64) for tests.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_numpy import bf16_rne, write_file  # noqa: E402

SUFFIX = {"GB": 1e9, "MB": 1e6, "KB": 1e3, "B": 1}


def size(s):
    for u, m in SUFFIX.items():
        if s.endswith(u):
            return int(float(s[: -len(u)]) * m)
    return int(s)


def layout(gb, hidden, vocab):
    inter = int(hidden * 2.6875)
    per = 4 * hidden * hidden + 3 * inter * hidden + 2 * hidden  # elements per layer
    elements = gb * 1e9 / 2  # 2 bytes each
    n_layers = max(1, int((elements - 2 * (vocab or 32000) * hidden) // per))
    if vocab is None:  # the embedding and lm_head take the rest
        vocab = max(1000, int(round((elements - n_layers * per - hidden) / (2 * hidden))))
    t = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t.append((p + f"self_attn.{n}.weight", (hidden, hidden)))
        t.append((p + "mlp.gate_proj.weight", (inter, hidden)))
        t.append((p + "mlp.up_proj.weight", (inter, hidden)))
        t.append((p + "mlp.down_proj.weight", (hidden, inter)))
        t.append((p + "input_layernorm.weight", (hidden,)))
        t.append((p + "post_attention_layernorm.weight", (hidden,)))
    t.append(("model.norm.weight", (hidden,)))
    t.append(("lm_head.weight", (vocab, hidden)))
    return t, n_layers, inter, vocab


def encode(x, dtype):
    if dtype == "bf16":
        return "BF16", bf16_rne(x)
    if dtype == "f16":
        return "F16", x.astype(np.float16)
    return "F32", x.astype(np.float32)


def plan_shards(tensors, dtype, shard):
    es = 4 if dtype == "f32" else 2
    shards, cur, cur_b = [], [], 0
    for name, shape in tensors:
        nb = int(np.prod(shape)) * es
        if cur and cur_b + nb > shard:
            shards.append(cur)
            cur, cur_b = [], 0
        cur.append((name, shape))
        cur_b += nb
    shards.append(cur)
    return shards


def write_models(dirs, tensors, dtype, shard, config, values):
    """values(name, shape) -> [array per model]; every model's shard i is written together."""
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    shards = plan_shards(tensors, dtype, shard)
    wm, total = {}, 0
    for i, names in enumerate(shards):
        fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        outs = [{} for _ in dirs]
        for name, shape in names:
            for o, x in zip(outs, values(name, shape)):
                dt, data = encode(x, dtype)
                o[name] = (dt, shape, data)
            wm[name] = fn
            total += data.nbytes
        if i == len(shards) - 1:
            for o in outs:
                o["model.position_ids"] = ("I64", (16,), np.arange(16, dtype=np.int64))
            wm["model.position_ids"] = fn
        for d, o in zip(dirs, outs):
            write_file(os.path.join(d, fn), o, {"format": "pt"})
        del outs
    for d in dirs:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2, sort_keys=True)
        json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gb", type=float, default=0.5)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=None, help="default: sized so that the model holds --gb")
    ap.add_argument("--shard-size", default="2GB")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="hidden 64, vocab 500: a test model")
    a = ap.parse_args()
    if a.small:
        a.hidden, a.vocab = 64, 500
    tensors, n_layers, inter, a.vocab = layout(a.gb, a.hidden, a.vocab)
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": a.hidden, "intermediate_size": inter,
              "num_hidden_layers": n_layers, "vocab_size": a.vocab, "model_type": "llama"}

    def values(name, shape):
        h = abs(hash((a.seed, name))) % (1 << 32)  # PYTHONHASHSEED is fixed below
        g = np.random.default_rng([a.seed, h])
        if name.endswith("norm.weight"):
            base = np.ones(shape, np.float32) + g.standard_normal(shape, np.float32) * 0.01
        else:
            base = g.standard_normal(shape, np.float32) * np.float32(0.02)
        noise = g.standard_normal(shape, np.float32).reshape(-1) * np.float32(0.002)
        out = [base]
        for k in range(a.K):  # model k's noise: the shared draw rotated (cheap), plus its own sparse part
            x = base.reshape(-1) + np.roll(noise, 7919 * (k + 1))
            idx = g.integers(0, x.size, max(1, x.size // 100))
            x[idx] += g.standard_normal(idx.size, np.float32) * np.float32(0.02)
            out.append(x.reshape(shape))
        return out

    dirs = [os.path.join(a.out, "base")] + [os.path.join(a.out, f"ft{k}") for k in range(a.K)]
    write_models(dirs, tensors, a.dtype, size(a.shard_size), config, values)
    print(f"{a.out}: base + {a.K} models, {n_layers} layers, hidden {a.hidden}, vocab {a.vocab}, {a.dtype}")


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
