#!/usr/bin/env bash
# bench_concurrent.sh BIN TINY_SUITE — three `ttmerge bench` processes writing into one results
# directory at the same time, with overlapping method lists, lose no rows:
# 1. a single-process bench of the union of the three lists (reference);
# 2. the three benches started together into one directory (each method of a list is run unless
#    another bench has already finished it: methods in several lists may run once or twice);
# 3. all exit 0; results.csv holds every method's rows exactly once and matches the reference at
#    tolerance 0 both ways (`ttmerge check`); leaderboard.csv and timings.csv list every method
#    exactly once; no rows/ work directory is left behind.
# Without the directory lock (each bench rewriting the files from what it read at its start)
# the directory ends with one bench's methods only.
set -euo pipefail
bin=$1 suite=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
common=(--suite "$suite" --threads 1 --seed 3 --quiet)
lists=(ta,ties,dare,consensus-ta lata,tatr,awd,ta zeroshot,dare,lata,individual,ties)
union=zeroshot,ta,ties,dare,consensus-ta,lata,tatr,awd,individual
n_methods=9

"$bin" bench "${common[@]}" --methods "$union" --out "$tmp/ref"
tasks=$((($(wc -l <"$tmp/ref/results.csv") - 1) / n_methods))
((tasks >= 2)) || { echo "FAIL: reference has $tasks tasks per method"; exit 1; }

pids=()
for l in "${lists[@]}"; do
  "$bin" bench "${common[@]}" --methods "$l" --out "$tmp/run" 2>"$tmp/err.${#pids[@]}" &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  st=0
  wait "${pids[$i]}" || st=$?
  ((st == 0)) || { cat "$tmp/err.$i"; echo "FAIL: bench ${lists[$i]} exited $st"; exit 1; }
done

# results.csv: every method × task exactly once, nothing else
rows=$(($(wc -l <"$tmp/run/results.csv") - 1))
((rows == n_methods * tasks)) || { cat "$tmp/run/results.csv"; echo "FAIL: $rows rows, expected $((n_methods * tasks))"; exit 1; }
for m in ${union//,/ }; do
  c=$(grep -c "^\"tiny\",\"$m\"," "$tmp/run/results.csv" || true)
  ((c == tasks)) || { echo "FAIL: results.csv holds $c rows of $m, expected $tasks"; exit 1; }
  c=$(grep -c "^[0-9]*,\"$m\"," "$tmp/run/leaderboard.csv" || true)
  ((c == 1)) || { cat "$tmp/run/leaderboard.csv"; echo "FAIL: leaderboard.csv lists $m $c times"; exit 1; }
  c=$(grep -c "^tiny,$m,ok," "$tmp/run/timings.csv" || true)
  ((c == 1)) || { cat "$tmp/run/timings.csv"; echo "FAIL: timings.csv lists $m $c times"; exit 1; }
done
(($(wc -l <"$tmp/run/leaderboard.csv") == n_methods + 1)) || { echo "FAIL: leaderboard.csv has extra rows"; exit 1; }
(($(wc -l <"$tmp/run/timings.csv") == n_methods + 2)) || { echo "FAIL: timings.csv has extra rows"; exit 1; }
(($(grep -c '^tiny,(suite),' "$tmp/run/timings.csv") == 1)) || { echo "FAIL: timings.csv (suite) row"; exit 1; }
# the same accuracies as one bench alone
"$bin" check --golden "$tmp/ref/results.csv" --results "$tmp/run/results.csv" --tol 0 --quiet
"$bin" check --golden "$tmp/run/results.csv" --results "$tmp/ref/results.csv" --tol 0 --quiet
[[ ! -e $tmp/run/rows ]] || { ls -R "$tmp/run/rows"; echo "FAIL: rows/ left behind"; exit 1; }
echo "3 concurrent benches: $n_methods methods x $tasks tasks, each once, equal to one bench at tolerance 0"
