#!/usr/bin/env bash
# vision8_seeds.sh — how much of the vision8 leaderboard survives its noise: build the suite at
# several suite seeds (data order, pretraining, heads, fine-tunes all follow the seed), bench
# every method on each, and report
#   - per run: bootstrap intervals over test examples and paired differences vs TA
#     (RUN/leaderboard.csv, RUN/stats.csv, RUN/report.html);
#   - across runs: mean ± sd of each method's average accuracy and of its difference with TA, and
#     in how many runs the paired interval excludes 0 (OUT/across.csv, OUT/report.md);
#   - which published orderings hold with evidence in each run (`ttmerge check --order`).
# Not run by CI: about (5 min build + 3 min bench) of 2 quiet cores per seed.
#   bench/studies/vision8_seeds.sh BUILD/ttmerge [OUT_DIR] [SEEDS]     # SEEDS default "0 1 2"
# SUITE=tiny METHODS=ta,ties,tinting try the script quickly on another suite or fewer methods.
set -euo pipefail
bin=$1 out=${2:-build/vision8-seeds} seeds=${3:-0 1 2}
suite=${SUITE:-vision8} methods=${METHODS:-all}
here=$(cd "$(dirname "$0")/../.." && pwd)
export TTMERGE_MNIST_DIR=${TTMERGE_MNIST_DIR:-$here/cache/mnist/package/src/digits}
export OMP_WAIT_POLICY=passive
mkdir -p "$out"
runs=()
for s in $seeds; do
  run="$out/seed$s"
  if [[ ! -f "$run/suite/suite.json" ]]; then
    start=$SECONDS
    "$bin" suite build "$suite" --out "$run/suite" --threads 2 --seed "$s" --quiet
    echo "seed $s: suite built in $((SECONDS - start)) s"
  fi
  start=$SECONDS
  # the methods' own seed stays 0: what varies here is the suite (data, pretraining, fine-tunes)
  "$bin" bench --suite "$run/suite" --out "$run/results" --methods "$methods" --threads 2 --seed 0 --quiet --no-models || true
  echo "seed $s: benched in $((SECONDS - start)) s"
  "$bin" report "$run/results" --ref ta --resamples 2000 --quiet
  runs+=("$run/results")
done
"$bin" report "${runs[@]}" --out "$out" --ref ta --resamples 2000
cat "$out/report.md"
claims="adamerging>ta,adamerging>ties,adamerging>consensus-ta,adamerging>consensus-ties,tinting>adamerging"
claims+=",consensus-ta>ta,lata>ta,adamerging-task>ta,ties>ta"
for r in "${runs[@]}"; do
  echo "== $r"
  "$bin" check --results "$r/results.csv" --order "$claims" --resamples 2000 || true
done
