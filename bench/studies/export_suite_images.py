#!/usr/bin/python3
"""Export a built suite's image splits as PNG files (lossless) and write the import suite file
that reads them back: the round trip `suite -> images -> suite build (import)` that
bench/studies/import_roundtrip.sh checks gives the IDX suite's accuracies.

  export_suite_images.py SUITE_DIR OUT_DIR [--name NAME]

Writes OUT_DIR/<task>/<split>/<label:03d>/<index:06d>.png (the split's own order is kept by the
manifest OUT_DIR/<task>/<split>.csv: `path,label` rows in the IDX order, which the importer reads
in that order; a folder would be read in ImageFolder's class order), and OUT_DIR/import.yaml: the
suite's pretrained, fine-tuned and head files, the exported val split as given validation data,
every image of every split (train: 0, val: 0, test: 0), and the suite's normalisation.
Grey images (1 channel) are written as 8-bit greyscale PNG, colour ones as RGB PNG.
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
from PIL import Image


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"{path}: not a u8 IDX file")
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("out")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    with open(os.path.join(a.suite, "suite.json")) as f:
        man = json.load(f)
    suite = os.path.abspath(a.suite)
    out = os.path.abspath(a.out)
    ch = man["arch"]["channels"]
    norm = man["normalize"]
    per = lambda v: [float(v)] * 3 if not isinstance(v, list) else [float(x) for x in v] + [float(v[-1])] * (3 - len(v))
    mode = man["finetune_modes"][0]
    lines = [f"name: {a.name or man['name'] + '-images'}", f"seed: {man['seed']}", "import:",
             f"  pretrained: {os.path.join(suite, man.get('pretrained', 'pretrained.safetensors'))}",
             "  preprocess: clip",
             f"  normalize: {{mean: {per(norm['mean'])}, std: {per(norm['std'])}}}",
             "tasks:"]
    for t in man["tasks"]:
        name = t["name"]
        for split in ("train", "val", "test"):
            img = read_idx(os.path.join(suite, "data", name, f"{split}-images.idx"))
            lab = read_idx(os.path.join(suite, "data", name, f"{split}-labels.idx"))
            if img.ndim == 3:
                img = img[:, None]
            rows = []
            for i in range(img.shape[0]):
                rel = os.path.join(split, f"{int(lab[i]):03d}", f"{i:06d}.png")
                p = os.path.join(out, name, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                x = img[i]
                pic = Image.fromarray(x[0], "L") if ch == 1 else Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)), "RGB")
                pic.save(p, format="PNG")
                rows.append(f"{rel},{int(lab[i])}\n")
            with open(os.path.join(out, name, f"{split}.csv"), "w") as f:
                f.write("path,label\n")
                f.writelines(rows)
        ft = t["finetuned"][mode]
        lines += [f"  - name: {name}",
                  f"    finetuned: {ft if ft.startswith('/') else os.path.join(suite, ft)}",
                  f"    head: {os.path.join(suite, t['head'])}",
                  f"    data: {{test: {out}/{name}/test.csv, train: {out}/{name}/train.csv, val: {out}/{name}/val.csv}}",
                  "    train: 0", "    val: 0", "    test: 0"]
    with open(os.path.join(out, "import.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(os.path.join(out, "import.yaml"))


if __name__ == "__main__":
    main()
