#!/usr/bin/env bash
# eval_cli.sh — `ttmerge eval` as a user runs it, at the real model's shape: a randomly initialised
# CLIP ViT-B/32 (or B/16) image tower (ttmerge init, 224 px, 12 blocks, QuickGELU) evaluated on N
# random 224 x 224 RGB images (IDX) with a random 10-class head, wall time and peak RSS from
# /usr/bin/time, in interleaved rounds over one or more ttmerge binaries (a before/after pair in one
# run: these VMs drift within minutes).
#
#   bench/eval_cli.sh [--arch b32|b16] [--images N] [--rounds R] [--threads T] [--batch B] [--out DIR]
#                     BIN [BIN ...]
#
# Defaults: b32, 288 images (one full pass of the infer batch and a partial one of 32), 3 rounds,
# 2 threads, ttmerge's default batch. Output: DIR/eval_cli.csv (round,bin,images,seconds,peak_rss_mb)
# and per binary the median seconds and peak RSS; the logits of every binary are compared with the
# first's: within 1e-5 of the largest logit (a partial pass may round differently: docs/inference.md).
# Run it alone: another heavy job on the same cores changes the times.
set -euo pipefail
arch=b32 images=288 rounds=3 threads=2 batch="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        -*) echo "eval_cli.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "eval_cli.sh: give at least one ttmerge binary" >&2; exit 2; }
case "$arch" in
    b32) patch=32 ;;
    b16) patch=16 ;;
    *) echo "eval_cli.sh: --arch b32 or b16" >&2; exit 2 ;;
esac
out=${out:-$(mktemp -d)}
mkdir -p "$out"
py=/usr/bin/python3
json="{\"image_size\":224,\"channels\":3,\"patch_size\":$patch,\"width\":768,\"layers\":12,\"heads\":12,\"mlp_ratio\":4,\"output_dim\":512,\"act\":\"quick_gelu\",\"ln_eps\":1e-5,\"normalize_features\":true,\"logit_scale\":100}"
"$1" init --arch "$json" --out "$out/model.safetensors" --head-out "$out/head.safetensors" --classes 10 \
    --seed 1 --quiet
"$py" - "$out/images.idx" "$images" <<'EOF'
import struct, sys
import numpy as np
path, n = sys.argv[1], int(sys.argv[2])
px = np.random.default_rng(7).integers(0, 256, size=(n, 3, 224, 224), dtype=np.uint8)
with open(path, "wb") as f:
    f.write(struct.pack(">BBBB", 0, 0, 8, 4) + struct.pack(">IIII", n, 3, 224, 224))
    f.write(px.tobytes())
EOF
csv=$out/eval_cli.csv
echo "round,bin,images,seconds,peak_rss_mb" >"$csv"
export OMP_NUM_THREADS=$threads
for r in $(seq 1 "$rounds"); do
    i=0
    for bin in "$@"; do
        args=(eval --model "$out/model.safetensors" --head "$out/head.safetensors" --input "$out/images.idx"
              --threads "$threads" --quiet --logits-out "$out/logits$i.npy")
        [ -n "$batch" ] && args+=(--batch "$batch")
        /usr/bin/time -f "%e %M" -o "$out/time.txt" "$bin" "${args[@]}" >/dev/null
        read -r sec kb <"$out/time.txt"
        echo "$r,$bin,$images,$sec,$((kb / 1024))" >>"$csv"
        if [ "$i" -gt 0 ] && ! "$py" -c "
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(a - b).max() / np.abs(a).max())
print(f'{sys.argv[3]}: logits within {d:.2g} of the first binary\'s (largest difference / largest logit)')
sys.exit(d > 1e-5)" "$out/logits0.npy" "$out/logits$i.npy" "$bin"; then
            echo "eval_cli.sh: logits of $bin differ from those of $1 by more than 1e-5" >&2
            exit 1
        fi
        i=$((i + 1))
    done
done
"$py" - "$csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for b in dict.fromkeys(r["bin"] for r in rows):
    s = [float(r["seconds"]) for r in rows if r["bin"] == b]
    m = [int(r["peak_rss_mb"]) for r in rows if r["bin"] == b]
    print(f"{b}: median {statistics.median(s):.2f} s (min {min(s):.2f}, {len(s)} runs), peak RSS {max(m)} MB")
EOF
echo "files: $out"
