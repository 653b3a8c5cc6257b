#!/usr/bin/env bash
# run.sh — the default benchmark: build ttmerge, build the vision8 suite (or reuse it), bench
# every method on it (resuming an interrupted run), write the report and print the leaderboard.
#   scripts/run.sh [SUITE]      SUITE defaults to vision8 (tiny for a one-minute demo)
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-vision8}
bash scripts/setup.sh
bash scripts/fetch-mnist.sh cache
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ttm=./build/ttmerge

if [[ ! -f "out/$suite/suite.json" ]]; then
  echo "== building suite $suite (data, pretraining, heads, fine-tuning) =="
  time "$ttm" suite build "$suite" --out "out/$suite"
fi
echo "== bench: every method on $suite =="
time "$ttm" bench --suite "out/$suite" --out "out/results-$suite" || true  # failed methods are rows
"$ttm" report "out/results-$suite"
echo
column -s, -t < "out/results-$suite/leaderboard.csv" | sed 's/"//g'
echo
echo "report: out/results-$suite/report.html and report.md"
