#!/usr/bin/env bash
# The importer against the suite builder: export a built suite's splits as PNG files
# (export_suite_images.py), import them back (`ttmerge suite build import.yaml`: the same
# pretrained, fine-tuned and head files, the images decoded again), bench both suites with the
# same methods, seed and threads, and require the same accuracy for every method and task, to
# the last digit of results.csv (normalised accuracies within 0.001: a trained suite's
# suite.json keeps the fine-tuned accuracies to 6 digits, an imported one's to 9). Also checks that the imported suite's data are the IDX suite's
# bytes. Prints both leaderboards' averages.
#
#   bench/studies/import_roundtrip.sh BIN SUITE_DIR [METHODS|all] [WORK_DIR]
#   flock /work/briefs/heavy.lock bench/studies/import_roundtrip.sh build/ttmerge /work/seeds/seed0/suite all
set -euo pipefail
bin=$(realpath "$1") suite=$(realpath "$2") methods=${3:-all} work=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z "$work" ]]; then work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t0=$(date +%s.%N)
/usr/bin/python3 "$here/export_suite_images.py" "$suite" "$work/images" > /dev/null
t1=$(date +%s.%N)
"$bin" suite build "$work/images/import.yaml" --out "$work/imported" --quiet
t2=$(date +%s.%N)
n_png=$(find "$work/images" -name '*.png' | wc -l)
echo "exported $n_png PNG files in $(echo "$t1 - $t0" | bc) s; imported (decode + evaluate) in $(echo "$t2 - $t1" | bc) s"
# the imported pixels and labels are the IDX suite's, byte for byte
for d in "$suite"/data/*/; do
  task=$(basename "$d")
  for f in "$d"*.idx; do cmp -s "$f" "$work/imported/data/$task/$(basename "$f")" ||
    { echo "FAIL: data/$task/$(basename "$f") differs after the round trip"; exit 1; }; done
done
"$bin" bench --suite "$suite" --out "$work/r-idx" --methods "$methods" --quiet
"$bin" bench --suite "$work/imported" --out "$work/r-img" --methods "$methods" --quiet
# method, task, accuracy, status: identical (the suite column differs by name)
cut -d, -f2,4,5,12 "$work/r-idx/results.csv" > "$work/a"
cut -d, -f2,4,5,12 "$work/r-img/results.csv" > "$work/b"
if ! cmp -s "$work/a" "$work/b"; then
  echo "FAIL: accuracies differ between the IDX suite and its image import:"; diff "$work/a" "$work/b" | head -20; exit 1
fi
paste -d, <(cut -d, -f6 "$work/r-idx/results.csv") <(cut -d, -f6 "$work/r-img/results.csv") |
  awk -F, 'NR > 1 && ($1 - $2 > 0.001 || $2 - $1 > 0.001) { print "FAIL: normalised accuracy " $1 " vs " $2; bad = 1 } END { exit bad }'
echo "method,avg_accuracy (IDX suite = imported from PNG)"
awk -F, 'NR > 1 { print $2 "," $3 }' "$work/r-img/leaderboard.csv"
echo "round trip: $(($(wc -l < "$work/a") - 1)) method x task accuracies identical"
