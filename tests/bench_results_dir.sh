#!/usr/bin/env bash
# bench_results_dir.sh BIN TINY_SUITE — one results directory holds one suite, and a failed
# method's rows carry no accuracy:
# 1. a bench of another suite (a copy of tiny renamed `tiny-b` in its suite.json; the suite's
#    name comes from there) into a directory holding tiny results is refused: exit 2, one line
#    naming both suites, no file changed — also when only the directory's suite.json says so,
#    for a suite of the same name built with another seed, and with --fresh; --fresh starts a
#    directory of its own suite over even when its results.csv does not parse;
# 2. a method that fails (an unparsable parameter) gets rows with empty accuracy and
#    normalized_accuracy, status failed; `ttmerge check` reports it as a failed method (exit 1)
#    and the leaderboard ranks it failed, with empty averages.
set -euo pipefail
bin=$1 suite=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
common=(--threads 1 --seed 0 --quiet)
fail() { echo "FAIL: $*"; exit 1; }

# A second suite, cheaply: the same files under another name (or another build seed).
other_suite() { # DIR SED_EXPR
  mkdir -p "$1"
  cp -rs "$(cd "$suite" && pwd)/." "$1/"
  rm "$1/suite.json"
  sed "$2" "$suite/suite.json" >"$1/suite.json"
  cmp -s "$suite/suite.json" "$1/suite.json" && fail "the sed expression $2 changed nothing"
  return 0
}
other_suite "$tmp/suite-b" '0,/"name": "tiny"/s//"name": "tiny-b"/'
other_suite "$tmp/suite-seed" '0,/"seed": 0,/s//"seed": 1,/'

extra=()
snapshot() { (cd "$1" && find . -type f ! -name .lock -print0 | sort -z | xargs -0 md5sum); }
refused() { # DIR SUITE_DIR EXPECTED_PHRASE...
  local dir=$1 sdir=$2 st=0
  shift 2
  local before
  before=$(snapshot "$dir")
  "$bin" bench --suite "$sdir" --methods ta "${common[@]}" "${extra[@]}" --out "$dir" 2>"$tmp/err" || st=$?
  ((st == 2)) || { cat "$tmp/err"; fail "bench of $sdir into $dir exited $st, expected 2"; }
  (($(wc -l <"$tmp/err") == 1)) || { cat "$tmp/err"; fail "the refusal is not one line"; }
  for p in "$@"; do grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err"; fail "the refusal does not say: $p"; }; done
  [[ $(snapshot "$dir") == "$before" ]] || fail "a refused bench changed $dir"
  [[ ! -e $dir/rows ]] || fail "a refused bench left $dir/rows"
}

# 1. mixed suites
"$bin" bench --suite "$suite" --methods zeroshot,ta "${common[@]}" --out "$tmp/r"
refused "$tmp/r" "$tmp/suite-b" "$tmp/r holds results of suite 'tiny' (results.csv)" "is suite 'tiny-b'"
refused "$tmp/r" "$tmp/suite-seed" "suite 'tiny' built with seed 0" "suite 'tiny' built with seed 1"
# only suite.json tells (a bench killed before its first method was saved)
mkdir -p "$tmp/r2" && cp "$suite/suite.json" "$tmp/r2/"
refused "$tmp/r2" "$tmp/suite-b" "holds results of suite 'tiny' (suite.json)" "is suite 'tiny-b'"
extra=(--fresh) # starting over does not make room for another suite
refused "$tmp/r" "$tmp/suite-b" "$tmp/r holds results of suite 'tiny' (results.csv)" "is suite 'tiny-b'"
extra=()
# the same suite resumes as before; the other suite benches fine into its own directory
"$bin" bench --suite "$suite" --methods zeroshot,ta,ties "${common[@]}" --out "$tmp/r" 2>"$tmp/err" ||
  { cat "$tmp/err"; fail "the same suite was refused"; }
"$bin" bench --suite "$tmp/suite-b" --methods ta "${common[@]}" --out "$tmp/rb"
grep -q '^"tiny-b","ta",' "$tmp/rb/results.csv" || fail "suite-b rows are not named tiny-b"
# --fresh starts the tables over, even from a results.csv that does not parse
echo 'not,a,results,file' >"$tmp/rb/results.csv"
"$bin" bench --suite "$tmp/suite-b" --methods ta "${common[@]}" --out "$tmp/rb" 2>/dev/null && fail "a malformed results.csv was accepted"
"$bin" bench --suite "$tmp/suite-b" --methods ta "${common[@]}" --fresh --out "$tmp/rb"
(($(wc -l <"$tmp/rb/results.csv") == 4)) || fail "--fresh did not start results.csv over"

# 2. a failed method: empty accuracy, reported as failed
st=0
"$bin" bench --suite "$suite" --methods ta,ties --set ties.topk=abc "${common[@]}" --out "$tmp/f" || st=$?
((st == 1)) || fail "a bench with a failed method exited $st, expected 1"
n=$(grep -c '^"tiny","ties","[^"]*","[^"]*",,,.*,"failed","[^"]*abc' "$tmp/f/results.csv" || true)
tasks=$(grep -c '^"tiny","ta",' "$tmp/f/results.csv")
((n == tasks && tasks >= 2)) || { cat "$tmp/f/results.csv"; fail "$n failed ties rows with empty accuracy, expected $tasks"; }
grep -q '^[0-9]*,"ties",,,' "$tmp/f/leaderboard.csv" && grep -qE ',"failed"(,|$)' "$tmp/f/leaderboard.csv" ||
  { cat "$tmp/f/leaderboard.csv"; fail "the leaderboard does not show ties failed with empty averages"; }
st=0
"$bin" check --golden "$tmp/r/results.csv" --results "$tmp/f/results.csv" >"$tmp/check" || st=$?
((st == 1)) || { cat "$tmp/check"; fail "check exited $st on a failed method, expected 1"; }
grep -q 'methods with failed rows (1)' "$tmp/check" && grep -qE '^  tiny +ties +[0-9]+ +.*abc' "$tmp/check" ||
  { cat "$tmp/check"; fail "check does not report ties as failed"; }
"$bin" report "$tmp/f" --quiet
grep -q '^- ties (failed, 0 of [0-9]* tasks ok): .*abc' "$tmp/f/report.md" || { cat "$tmp/f/report.md"; fail "report.md does not list ties as failed"; }
echo "mixed suites refused (4 ways, nothing written); --fresh restarts its own suite; a failed method has empty accuracies and is reported failed"
