"""clip_ref.py — random CLIP image and text towers written by hand in the Hugging Face and open_clip
layouts, and independent PyTorch forwards of both towers (for tests/clip_checkpoints.py,
tests/clip_text_check.py, bench/clip_vitb32.py and bench/clip_text_bench.py).

Nothing here imports transformers or open_clip (neither is installed): both layouts are written
from their name tables (docs/checkpoints.md), and the forward is written from the architecture —
patch conv (no bias), class token, position embedding, ln_pre, pre-LN blocks
(x += out_proj(MHA(ln_1 x)); x += c_proj(act(c_fc(ln_2 x)))), features = ln_post(x[:, 0]) @ proj.
The text tower is open_clip's encode_text / OpenAI's CLIP.encode_text: token_embedding[ids] +
positional_embedding, the same blocks with an additive causal mask (-inf above the diagonal),
ln_final, the row at ids.argmax(-1) (the end-of-text token, the largest id), @ text_projection.
"""
import json
import os
import struct

import numpy as np
import torch

# ---- safetensors by hand ------------------------------------------------------------------------

_DT = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2), "I64": (np.int64, 8),
       "I32": (np.int32, 4)}


def to_dtype(a, dtype):
    """float32 array -> (stored array, the float32 values it holds)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a, a
    if dtype == "F16":
        h = a.astype(np.float16)
        return h, h.astype(np.float32)
    if dtype == "BF16":
        t = torch.from_numpy(a.copy()).to(torch.bfloat16)
        return t.view(torch.int16).numpy().view(np.uint16), t.to(torch.float32).numpy()
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> (dtype string, numpy array of the stored type)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """name -> (dtype, shape, raw bytes); and the metadata dict."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {k: (v["dtype"], tuple(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
    return out, meta


def read_any(path):
    """All tensors of a file, a directory with model.safetensors, or a sharded directory."""
    if os.path.isdir(path):
        idx = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(os.path.join(path, "model.safetensors")):
            return read_safetensors(os.path.join(path, "model.safetensors"))[0]
        wm = json.load(open(idx))["weight_map"]
        out = {}
        for shard in sorted(set(wm.values())):
            out.update(read_safetensors(os.path.join(path, shard))[0])
        return out
    return read_safetensors(path)[0]


def as_f32(entry):
    dt, shape, raw = entry
    if dt == "BF16":
        u = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    return np.frombuffer(raw, _DT[dt][0]).astype(np.float32).reshape(shape)


# ---- a random model in open_clip names (no prefix) ----------------------------------------------

def random_params(seed, width, layers, image, patch, out_dim, channels=3, mlp_ratio=4):
    r = np.random.RandomState(seed)
    g = image // patch
    m = width * mlp_ratio

    def n(*shape, std=0.02):
        return (r.standard_normal(shape) * std).astype(np.float32)

    p = {"conv1.weight": n(width, channels, patch, patch, std=0.05),
         "class_embedding": n(width, std=0.1),
         "positional_embedding": n(g * g + 1, width, std=0.1),
         "ln_pre.weight": 1 + n(width, std=0.1), "ln_pre.bias": n(width, std=0.1)}
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        p.update({b + "ln_1.weight": 1 + n(width, std=0.1), b + "ln_1.bias": n(width, std=0.1),
                  b + "attn.in_proj_weight": n(3 * width, width, std=width ** -0.5),
                  b + "attn.in_proj_bias": n(3 * width, std=0.05),
                  b + "attn.out_proj.weight": n(width, width, std=width ** -0.5),
                  b + "attn.out_proj.bias": n(width, std=0.05),
                  b + "ln_2.weight": 1 + n(width, std=0.1), b + "ln_2.bias": n(width, std=0.1),
                  b + "mlp.c_fc.weight": n(m, width, std=width ** -0.5), b + "mlp.c_fc.bias": n(m, std=0.05),
                  b + "mlp.c_proj.weight": n(width, m, std=m ** -0.5), b + "mlp.c_proj.bias": n(width, std=0.05)})
    p.update({"ln_post.weight": 1 + n(width, std=0.1), "ln_post.bias": n(width, std=0.1),
              "proj": n(width, out_dim, std=width ** -0.5)})
    return p


def round_params(p, dtype):
    """The values a file of this dtype holds (and what to store)."""
    stored, values = {}, {}
    for k, v in p.items():
        stored[k], values[k] = to_dtype(v, dtype)
    return stored, values


# ---- the two layouts ------------------------------------------------------------------------------

HF_EMBED = {"conv1.weight": "vision_model.embeddings.patch_embedding.weight",
            "class_embedding": "vision_model.embeddings.class_embedding",
            "positional_embedding": "vision_model.embeddings.position_embedding.weight",
            "ln_pre.weight": "vision_model.pre_layrnorm.weight", "ln_pre.bias": "vision_model.pre_layrnorm.bias",
            "ln_post.weight": "vision_model.post_layernorm.weight",
            "ln_post.bias": "vision_model.post_layernorm.bias"}
HF_BLOCK = {"ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
            "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
            "ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
            "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
            "mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias"}


def hf_tensors(p, dtype="F32", projection=True):
    """open_clip-named float32 params -> HF names -> (dtype, stored array)."""
    out = {}

    def put(name, a):
        out[name] = (dtype, to_dtype(a, dtype)[0])

    for k, v in p.items():
        if k in HF_EMBED:
            put(HF_EMBED[k], v)
        elif k == "proj":
            if projection:
                put("visual_projection.weight", v.T)
        else:
            i, rest = k[len("transformer.resblocks."):].split(".", 1)
            b = f"vision_model.encoder.layers.{i}."
            if rest in HF_BLOCK:
                put(b + HF_BLOCK[rest], v)
            else:  # in_proj = concat(q, k, v)
                w = v.shape[0] // 3
                kind = "weight" if rest.endswith("weight") else "bias"
                for j, part in enumerate("qkv"):
                    put(b + f"self_attn.{part}_proj.{kind}", v[j * w:(j + 1) * w])
    return out


def hf_config(width, layers, heads, image, patch, out_dim, act="quick_gelu", full=False, eps=1e-5, text_config=None):
    vc = {"hidden_size": width, "intermediate_size": 4 * width, "num_hidden_layers": layers,
          "num_attention_heads": heads, "image_size": image, "patch_size": patch, "hidden_act": act,
          "layer_norm_eps": eps, "num_channels": 3, "projection_dim": out_dim}
    if full:
        return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": out_dim,
                "vision_config": vc, "text_config": text_config or {"hidden_size": 32}}
    return dict(vc, architectures=["CLIPVisionModelWithProjection"], model_type="clip_vision_model")


def text_tower_hf(seed, dtype="F32"):
    r = np.random.RandomState(seed + 7)
    t = {"text_model.embeddings.token_embedding.weight": r.randn(50, 32), "text_model.final_layer_norm.weight":
         r.randn(32), "text_projection.weight": r.randn(16, 32), "logit_scale": np.array(4.6052)}
    out = {k: (dtype, to_dtype(v.astype(np.float32), dtype)[0]) for k, v in t.items()}
    out["vision_model.embeddings.position_ids"] = ("I64", np.arange(17, dtype=np.int64)[None])
    out["text_model.embeddings.position_ids"] = ("I64", np.arange(7, dtype=np.int64)[None])
    return out


def text_tower_open_clip(seed, outer=""):
    r = np.random.RandomState(seed + 9)
    t = {"token_embedding.weight": r.randn(50, 32), "positional_embedding": r.randn(7, 32),
         "transformer.resblocks.0.attn.in_proj_weight": r.randn(96, 32), "ln_final.weight": r.randn(32),
         "text_projection": r.randn(32, 16), "logit_scale": np.array(4.6052)}
    return {outer + k: ("F32", v.astype(np.float32)) for k, v in t.items()}


def write_hf_dir(d, tensors, config, shards=1):
    os.makedirs(d, exist_ok=True)
    if config is not None:
        json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
        return
    names = sorted(tensors)
    wm = {}
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in names[s::shards]}
        write_safetensors(os.path.join(d, fn), part, {"format": "pt"})
        wm.update({k: fn for k in part})
    json.dump({"metadata": {"total_size": 0}, "weight_map": wm},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)


def open_clip_tensors(p, prefix="visual.", dtype="F32"):
    return {prefix + k: (dtype, to_dtype(v, dtype)[0]) for k, v in p.items()}


# ---- a random text tower in open_clip names (unprefixed), and the HF names ----------------------

def random_text_params(seed, width, layers, context=77, vocab=49408, out_dim=512, mlp_ratio=4):
    r = np.random.RandomState(seed)
    m = width * mlp_ratio

    def n(*shape, std=0.02):
        return (r.standard_normal(shape) * std).astype(np.float32)

    p = {"token_embedding.weight": n(vocab, width, std=0.5), "positional_embedding": n(context, width, std=0.1)}
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        p.update({b + "ln_1.weight": 1 + n(width, std=0.1), b + "ln_1.bias": n(width, std=0.1),
                  b + "attn.in_proj_weight": n(3 * width, width, std=width ** -0.5),
                  b + "attn.in_proj_bias": n(3 * width, std=0.05),
                  b + "attn.out_proj.weight": n(width, width, std=width ** -0.5),
                  b + "attn.out_proj.bias": n(width, std=0.05),
                  b + "ln_2.weight": 1 + n(width, std=0.1), b + "ln_2.bias": n(width, std=0.1),
                  b + "mlp.c_fc.weight": n(m, width, std=width ** -0.5), b + "mlp.c_fc.bias": n(m, std=0.05),
                  b + "mlp.c_proj.weight": n(width, m, std=m ** -0.5), b + "mlp.c_proj.bias": n(width, std=0.05)})
    p.update({"ln_final.weight": 1 + n(width, std=0.1), "ln_final.bias": n(width, std=0.1),
              "text_projection": n(width, out_dim, std=width ** -0.5)})
    return p


HF_TEXT = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
           "positional_embedding": "text_model.embeddings.position_embedding.weight",
           "ln_final.weight": "text_model.final_layer_norm.weight",
           "ln_final.bias": "text_model.final_layer_norm.bias"}


def hf_text_tensors(p, dtype="F32"):
    """open_clip-named text params -> HF CLIPModel names (text_projection.weight = text_projectionᵀ)."""
    out = {}

    def put(name, a):
        out[name] = (dtype, to_dtype(a, dtype)[0])

    for k, v in p.items():
        if k in HF_TEXT:
            put(HF_TEXT[k], v)
        elif k == "text_projection":
            put("text_projection.weight", v.T)
        else:
            i, rest = k[len("transformer.resblocks."):].split(".", 1)
            b = f"text_model.encoder.layers.{i}."
            if rest in HF_BLOCK:
                put(b + HF_BLOCK[rest], v)
            else:
                w = v.shape[0] // 3
                kind = "weight" if rest.endswith("weight") else "bias"
                for j, part in enumerate("qkv"):
                    put(b + f"self_attn.{part}_proj.{kind}", v[j * w:(j + 1) * w])
    return out


def hf_text_config(width, layers, heads, context=77, vocab=49408, act="quick_gelu", eps=1e-5):
    return {"hidden_size": width, "intermediate_size": 4 * width, "num_hidden_layers": layers,
            "num_attention_heads": heads, "max_position_embeddings": context, "vocab_size": vocab,
            "hidden_act": act, "layer_norm_eps": eps, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}


def clip_text_features(p, rows, heads, act="quick_gelu", eps=1e-5):
    """p: open_clip-named text params; rows int [n, context] token ids. float64 throughout."""
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in p.items()}
    f = quick_gelu if act == "quick_gelu" else gelu
    ids = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    n, T = ids.shape
    width = t["token_embedding.weight"].shape[1]
    x = t["token_embedding.weight"][ids] + t["positional_embedding"][:T]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (width,), t[name + ".weight"], t[name + ".bias"], eps)

    hd = width // heads
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in t:
        b = f"transformer.resblocks.{i}."
        h = ln(x, b + "ln_1")
        qkv = h @ t[b + "attn.in_proj_weight"].T + t[b + "attn.in_proj_bias"]
        q, k, v = (z.reshape(n, T, heads, hd).transpose(1, 2) for z in qkv.split(width, -1))
        a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + mask, -1) @ v
        a = a.transpose(1, 2).reshape(n, T, width)
        x = x + a @ t[b + "attn.out_proj.weight"].T + t[b + "attn.out_proj.bias"]
        h = ln(x, b + "ln_2")
        h = f(h @ t[b + "mlp.c_fc.weight"].T + t[b + "mlp.c_fc.bias"])
        x = x + h @ t[b + "mlp.c_proj.weight"].T + t[b + "mlp.c_proj.bias"]
        i += 1
    x = ln(x, "ln_final")
    eot = torch.from_numpy(np.argmax(np.asarray(rows), -1))  # the first largest id
    return (x[torch.arange(n), eot] @ t["text_projection"]).numpy()


def zero_shot_weights(features, n_classes, n_templates):
    """task_vectors' build_classification_head without the scale: normalise, mean, normalise."""
    f = features.reshape(n_classes, n_templates, -1)
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    w = f.mean(1)
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


# ---- images (IDX, uint8 [n, c, h, w]) -------------------------------------------------------------

def write_idx_images(path, pixels):
    n, c, h, w = pixels.shape
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, 4]))
        f.write(struct.pack(">4i", n, c, h, w))
        f.write(pixels.astype(np.uint8).tobytes())


# ---- the reference forward ------------------------------------------------------------------------

def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))


def clip_vision_features(p, pixels, heads, act="quick_gelu", eps=1e-5, mean=0.5, std=0.5):
    """p: open_clip-named float arrays; pixels uint8 [n, c, S, S]. float64 throughout."""
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in p.items()}
    f = quick_gelu if act == "quick_gelu" else gelu
    x = (torch.from_numpy(pixels.astype(np.float64)) / 255.0 - mean) / std
    w = t["conv1.weight"]
    width, patch = w.shape[0], w.shape[2]
    x = torch.nn.functional.conv2d(x, w, stride=patch)          # [n, width, g, g]
    x = x.flatten(2).transpose(1, 2)                            # [n, g², width]
    cls = t["class_embedding"].expand(x.shape[0], 1, width)
    x = torch.cat([cls, x], 1) + t["positional_embedding"]

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (width,), t[name + ".weight"], t[name + ".bias"], eps)

    x = ln(x, "ln_pre")
    n, T, _ = x.shape
    hd = width // heads
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in t:
        b = f"transformer.resblocks.{i}."
        h = ln(x, b + "ln_1")
        qkv = h @ t[b + "attn.in_proj_weight"].T + t[b + "attn.in_proj_bias"]
        q, k, v = (z.reshape(n, T, heads, hd).transpose(1, 2) for z in qkv.split(width, -1))
        a = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, -1) @ v
        a = a.transpose(1, 2).reshape(n, T, width)
        x = x + a @ t[b + "attn.out_proj.weight"].T + t[b + "attn.out_proj.bias"]
        h = ln(x, b + "ln_2")
        h = f(h @ t[b + "mlp.c_fc.weight"].T + t[b + "mlp.c_fc.bias"])
        x = x + h @ t[b + "mlp.c_proj.weight"].T + t[b + "mlp.c_proj.bias"]
        i += 1
    return (ln(x[:, 0], "ln_post") @ t["proj"]).numpy()


def rel_err(got, want):
    """max |got - want| / max |want| (both [n, D])."""
    return float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))
