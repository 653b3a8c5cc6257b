#!/usr/bin/env bash
# readme_tour.sh BUILD_DIR SOURCE_DIR — the README's commands work as written.
#   1. The "A tour" block (the first ```sh block under "## A tour") runs verbatim, with bash -e,
#      in a scratch directory laid out like the repository's root (build/ and reports/ linked).
#   2. Every verb of the "CLI" block answers --help with exit 0.
#   3. Every relative link of the README names a file that exists.
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
readme=$src/README.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive

block() {  # block HEADING: the first fenced block after "## HEADING"
  awk -v h="## $1" '$0 == h {s = 1; next} s && /^## / {exit} s && /^```/ {if (f) exit; f = 1; next} f {print}' "$readme"
}

tour=$(block "A tour")
[[ -n $tour ]] || { echo "FAIL: no code block under '## A tour' in $readme"; exit 1; }
ln -s "$build" "$tmp/build"
ln -s "$src/reports" "$tmp/reports"
echo "== the tour, as written =="
printf '%s\n' "$tour"
(cd "$tmp" && bash -euo pipefail -c "$tour") >"$tmp/tour.log" 2>&1 || {
  echo "FAIL: the tour stopped; its output:"; tail -40 "$tmp/tour.log"; exit 1; }
grep -q '^PASS' "$tmp/tour.log" || { echo "FAIL: the tour's check did not print PASS"; tail -20 "$tmp/tour.log"; exit 1; }

echo "== every verb of the CLI block has --help =="
n=0
while read -r _ verb sub _; do
  [[ $verb == suite ]] && verb="suite $sub"
  "$build/ttmerge" $verb --help >/dev/null || { echo "FAIL: ttmerge $verb --help"; exit 1; }
  n=$((n + 1))
done < <(block "CLI" | grep '^ttmerge ')
((n >= 5)) || { echo "FAIL: only $n verbs found in the CLI block"; exit 1; }

echo "== the README's links =="
while read -r link; do
  [[ -e $src/$link ]] || { echo "FAIL: README links to $link, which does not exist"; exit 1; }
done < <(grep -o '](\([^)#]*\))' "$readme" | sed 's/^](//; s/)$//' | grep -v '^https\?:' | sort -u)
echo "ok: the tour ran and passed its check; $n CLI lines answer --help; every link resolves"
