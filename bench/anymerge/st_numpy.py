"""st_numpy.py — safetensors read and written with numpy alone (no `safetensors` package).

read_set(path) maps a .safetensors file or a Hugging Face directory (model.safetensors, or
model.safetensors.index.json and its shards) and returns {name: (dtype, shape, memmap of the raw
bytes)}; as_f32() converts F32/F16/BF16 to float32 exactly. write_file() writes one file in the
format's layout (header padded to 8 bytes). bf16_rne() rounds float32 to BF16 bits, to nearest even.
"""
import json
import os
import struct

import numpy as np

NP = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64, "I64": np.int64,
      "I32": np.int32, "U8": np.uint8}


def read_file(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    out = {}
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = mm[8 + n + b: 8 + n + end]
        out[name] = (e["dtype"], tuple(e["shape"]), raw)
    return out


def files_of(path):
    if os.path.isfile(path):
        return [path]
    one = os.path.join(path, "model.safetensors")
    if os.path.exists(one):
        return [one]
    ix = json.load(open(os.path.join(path, "model.safetensors.index.json")))
    return [os.path.join(path, s) for s in sorted(set(ix["weight_map"].values()))]


def read_set(path):
    out = {}
    for f in files_of(path):
        out.update(read_file(f))
    return out


def as_f32(entry):
    dt, shape, raw = entry
    if dt == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return raw.view(NP[dt]).astype(np.float32).reshape(shape)


def bf16_rne(x):
    """float32 -> BF16 bits (uint16), to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def write_file(path, tensors, meta=None):
    """tensors: {name: (dtype, shape, bytes-like)} written in name order."""
    hdr, off, blobs = {}, 0, []
    for name in sorted(tensors):
        dt, shape, data = tensors[name]
        data = memoryview(data).cast("B")
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
