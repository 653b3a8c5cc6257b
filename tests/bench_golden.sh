#!/usr/bin/env bash
# The main job end to end on the tiny suite: bench every method, compare with the committed
# golden (reports/golden/tiny.csv) within a tolerance in accuracy points, write the report.
# Refresh the golden deliberately: see reports/README.md.
set -euo pipefail
bin=$1 suite=$2 golden=$3 tol=${4:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" bench --suite "$suite" --out "$out" --quiet
"$bin" check --golden "$golden" --results "$out/results.csv" --tol "$tol" --quiet
"$bin" report "$out" --quiet
for f in results.csv leaderboard.csv report.md report.html curves/adamerging.csv models/ta.safetensors; do
  [[ -s "$out/$f" ]] || { echo "missing $f"; exit 1; }
done
grep -q "<svg" "$out/report.html" || { echo "report.html has no chart"; exit 1; }
echo "bench on tiny matches $golden within $tol points"
