#!/usr/bin/env bash
# run.sh — the default benchmark. Until the suite builder and the bench harness land it
# builds ttmerge, prints the CLI, runs the engine microbenchmark and a model smoke run
# (a random vision8-shaped ViT evaluated on Fashion-MNIST's 10k test images).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

./build/ttmerge --help
out=out/smoke
mkdir -p "$out"
arch='{"image_size":28,"channels":1,"patch_size":7,"width":64,"layers":4,"heads":4,"mlp_ratio":4,
       "output_dim":64,"act":"gelu","normalize_features":true,"logit_scale":20}'
./build/ttmerge init --arch "$arch" --out "$out/random.safetensors" --head-out "$out/head.safetensors" --seed 0
fm=/usr/share/datasets/fashion-mnist
echo "== smoke: random ViT on Fashion-MNIST test (accuracy near chance, 10%) =="
time ./build/ttmerge eval --model "$out/random.safetensors" --head "$out/head.safetensors" \
  --input "$fm/t10k-images-idx3-ubyte.gz" --labels "$fm/t10k-labels-idx1-ubyte.gz" \
  --task fashion-mnist --logits-out "$out/logits.npy"
if [[ -x build/vit_bench ]]; then
  echo "== engine microbenchmark =="
  ./build/vit_bench
fi
