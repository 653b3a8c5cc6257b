#!/usr/bin/env bash
# Rebuild the tiny suite with the same seed and thread count and compare every data file and
# checkpoint with the fixture's build byte for byte (suite.json differs in timings only).
set -euo pipefail
bin=$1 ref=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" suite build tiny --out "$out" --quiet
n=0
while IFS= read -r f; do
  cmp -s "$ref/$f" "$out/$f" || { echo "differs after rebuild: $f"; exit 1; }
  n=$((n + 1))
done < <(cd "$ref" && find . -name '*.safetensors' -o -name '*.idx' | sort)
[[ $n -ge 20 ]] || { echo "only $n files compared"; exit 1; }
echo "$n files identical"
