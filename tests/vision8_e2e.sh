#!/usr/bin/env bash
# vision8_e2e.sh — the default benchmark end to end, as a regression test of its accuracies and
# of the ordering the suite exists to show:
#   1. build the vision8 suite from scratch (data, 24-epoch pretraining, heads, 8 fine-tunes);
#   2. bench every method, 2 threads, seed 0;
#   3. every accuracy within TOL points of reports/golden/vision8.csv (`ttmerge check`);
#   4. the published ViT-B/32 ordering (methods.md): layer-wise AdaMerging above TA, TIES and
#      both Consensus merges, and Model Tinting above layer-wise AdaMerging.
# About 11 minutes on 2 quiet cores; run by scripts/test.sh (not --quick), not by ctest.
#   tests/vision8_e2e.sh BUILD/ttmerge [OUT_DIR] [TOL]
set -euo pipefail
bin=$1 out=${2:-build/vision8-e2e} tol=${3:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
export TTMERGE_MNIST_DIR=${TTMERGE_MNIST_DIR:-$here/cache/mnist/package/src/digits}
rm -rf "$out"
mkdir -p "$out"
start=$SECONDS
"$bin" suite build vision8 --out "$out/suite" --threads 2 --quiet
echo "vision8: suite built in $((SECONDS - start)) s"
start=$SECONDS
"$bin" bench --suite "$out/suite" --out "$out/results" --threads 2 --seed 0 --quiet
echo "vision8: 16 methods benched in $((SECONDS - start)) s"
"$bin" check --golden "$here/reports/golden/vision8.csv" --results "$out/results/results.csv" --tol "$tol"

# Average accuracy per method from the leaderboard (rank,method,avg_accuracy,...).
avg() {
  awk -F, -v m="\"$1\"" '$2 == m { print $3; found = 1 } END { if (!found) exit 1 }' "$out/results/leaderboard.csv" ||
    { echo "vision8: method $1 missing from the leaderboard"; exit 1; }
}
above() { # above A B: A's average strictly above B's
  local a b
  a=$(avg "$1") b=$(avg "$2")
  if awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > b) }'; then
    echo "vision8: $1 ($a) > $2 ($b)"
  else
    echo "vision8: ordering broken: $1 ($a) is not above $2 ($b)"
    exit 1
  fi
}
for m in ta ties consensus-ta consensus-ties; do above adamerging "$m"; done
above tinting adamerging
echo "vision8 end to end: accuracies within $tol points of the golden, published ordering holds"
