#!/usr/bin/env bash
# vision8_e2e.sh — the default benchmark end to end, as a regression test of its accuracies and
# of the ordering the suite exists to show:
#   1. build the vision8 suite from scratch (data, 24-epoch pretraining, heads, 8 fine-tunes);
#   2. bench every method, 2 threads, seed 0;
#   3. every accuracy of reports/golden/vision8.csv within TOL (`ttmerge check`; default auto: 4
#      standard errors of a two-sample difference per row, from the 2,000 test images per task);
#   4. the orderings that hold on vision8 built at each of three suite seeds (bench/studies/
#      vision8_seeds.sh): Model Tinting above layer-wise AdaMerging and TA, the SVD merges (TSV-M,
#      Iso-C, Iso-CTS) above TA — each with a paired bootstrap interval of the average difference
#      that excludes 0 (`ttmerge check --order`, from the run's predictions/).
#      Layer-wise AdaMerging above TA/TIES/Consensus holds at suite seeds 0 and 2 and is reversed
#      at seed 1 (entropy minimisation collapses on the two inverted tasks), so it is not asserted.
#      TA above TIES held in all three suites built on AVX-512 CPUs (+0.76 points at seed 0) but
#      not on an AVX2 one, where oneDNN's other kernels build another suite: +0.42, interval
#      [-0.05, +0.86] (TA's and TIES' predictions there are the previous revision's, byte for
#      byte: a property of the suite, not of the code); so it is not asserted either.
# About 11 minutes on 2 quiet cores; run by scripts/test.sh (not --quick), not by ctest.
#   tests/vision8_e2e.sh BUILD/ttmerge [OUT_DIR] [TOL]
set -euo pipefail
bin=$1 out=${2:-build/vision8-e2e} tol=${3:-auto}
here=$(cd "$(dirname "$0")/.." && pwd)
export TTMERGE_MNIST_DIR=${TTMERGE_MNIST_DIR:-$here/cache/mnist/package/src/digits}
rm -rf "$out"
mkdir -p "$out"
start=$SECONDS
"$bin" suite build vision8 --out "$out/suite" --threads 2 --quiet
echo "vision8: suite built in $((SECONDS - start)) s"
start=$SECONDS
"$bin" bench --suite "$out/suite" --out "$out/results" --threads 2 --seed 0 --quiet
echo "vision8: every method benched in $((SECONDS - start)) s"
"$bin" check --golden "$here/reports/golden/vision8.csv" --results "$out/results/results.csv" --tol "$tol"

# Each claim holds when the 95% paired bootstrap interval of A - B (1000 resamples, seed 0) is above 0.
"$bin" check --results "$out/results/results.csv" \
  --order "tinting>adamerging,tinting>ta,iso-cts>ta,iso-c>ta,tsv-m>ta"
echo "vision8 end to end: accuracies within tolerance ($tol) of the golden, the seed-robust orderings shown by paired intervals"
