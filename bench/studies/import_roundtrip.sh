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
#   bench/studies/import_roundtrip.sh build/ttmerge suites/seed0 all   (alone on the machine)
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
# method, task, accuracy, status: identical (the suite column differs by name); normalised
# accuracies within 0.001. Parsed as CSV: params hold commas.
/usr/bin/python3 - "$work/r-idx/results.csv" "$work/r-img/results.csv" <<'PY' || exit 1
import csv, sys
a, b = ({(r["method"], r["task"]): r for r in csv.DictReader(open(p))} for p in sys.argv[1:3])
bad = [k for k in a if k not in b or (a[k]["accuracy"], a[k]["status"]) != (b[k]["accuracy"], b[k]["status"])]
bad += [k for k in b if k not in a]
norm = [k for k in a if k in b and a[k]["normalized_accuracy"] and
        abs(float(a[k]["normalized_accuracy"]) - float(b[k]["normalized_accuracy"] or "inf")) > 0.001]
for k in (bad + norm)[:20]:
    print("FAIL:", k, a.get(k, {}).get("accuracy"), "vs", b.get(k, {}).get("accuracy"))
if bad or norm:
    sys.exit(1)
print(f"round trip: {len(a)} method x task accuracies identical")
PY
echo "method,avg_accuracy (IDX suite = imported from PNG)"
awk -F, 'NR > 1 { print $2 "," $3 }' "$work/r-img/leaderboard.csv"
