#!/usr/bin/env bash
# valgrind_smoke.sh BIN TINY_SUITE SOURCE_DIR — the CLI under valgrind memcheck: --help, a
# Task Arithmetic merge, two AdaMerging steps (forward + backward + Adam), eval of the merge on
# 16 of tiny's test images, check of the golden against itself, and a truncated checkpoint.
# Each must exit with its usual status and memcheck must report nothing (invalid reads/writes,
# uses of uninitialised values, bad frees, definite or possible leaks); the only suppression is
# a libgomp thread-pool internal (tests/valgrind.supp). Exit 77 (skipped) without valgrind.
# Inputs are kept small: under memcheck the engine runs ~50x slower.
set -uo pipefail
bin=$1 suite=$2 src=$3
command -v valgrind >/dev/null 2>&1 || { echo "valgrind not installed: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
# Valgrind 3.19 cannot execute AVX-512 (SIGILL). Its synthetic CPUID already hides AVX-512 on
# this Zen 4 machine (oneDNN reports "isa:Intel AVX2" under memcheck), but that depends on the
# valgrind version and the CPU: capping oneDNN's JIT at AVX2 makes the run not depend on it.
export ONEDNN_MAX_CPU_ISA=AVX2
export TTMERGE_ISA=avx2 # and ttmerge's own AVX-512 kernels (core/cpu.h) likewise
vg=(valgrind --tool=memcheck --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,possible --suppressions="$src/tests/valgrind.supp")
fail=0

# run WANT_STATUS ARGS...: ttmerge ARGS under memcheck; stdout and stderr go to $tmp/log.
run() {
  local want=$1
  shift
  "${vg[@]}" "$bin" "$@" >"$tmp/log" 2>&1
  local st=$?
  if ((st == 99)); then
    echo "FAIL: memcheck reported errors in: ttmerge $*"
    cat "$tmp/log"
    fail=1
  elif ((st != want)); then
    echo "FAIL: ttmerge $* exited $st under valgrind, want $want"
    cat "$tmp/log"
    fail=1
  else
    echo "ok (exit $st, memcheck clean): ttmerge $*"
  fi
}

# 16 test images of tiny's mnist task as IDX (header: magic, then big-endian dims).
n=16
{ printf '\x00\x00\x08\x03\x00\x00\x00\x10\x00\x00\x00\x1c\x00\x00\x00\x1c'
  tail -c +17 "$suite/data/mnist/test-images.idx" | head -c $((n * 784)); } >"$tmp/images.idx"
{ printf '\x00\x00\x08\x01\x00\x00\x00\x10'
  tail -c +9 "$suite/data/mnist/test-labels.idx" | head -c $n; } >"$tmp/labels.idx"
head -c 100 "$suite/pretrained.safetensors" >"$tmp/truncated.safetensors"

run 0 --help
run 0 merge --suite "$suite" --method ta --set lambda=0.3 --out "$tmp/ta.safetensors" --threads 2 --quiet
run 0 merge --suite "$suite" --method adamerging --set steps=2 --set batch=4 --set accum=1 \
      --out "$tmp/ada.safetensors" --threads 1 --quiet
# Fisher merging: backward through the fine-tuned models on a partial last batch (6 = 4 + 2 images)
run 0 merge --suite "$suite" --method fisher --set samples=6 --set batch=4 --out "$tmp/fisher.safetensors" \
      --threads 2 --quiet
run 0 eval --model "$tmp/ta.safetensors" --input "$tmp/images.idx" --labels "$tmp/labels.idx" \
      --head "$suite/heads/mnist.safetensors" --threads 1
run 0 check --golden "$src/reports/golden/tiny.csv" --results "$src/reports/golden/tiny.csv" --tol 0 --quiet
run 2 eval --model "$tmp/truncated.safetensors" --input "$tmp/images.idx" --head "$suite/heads/mnist.safetensors"
exit $fail
