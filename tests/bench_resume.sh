#!/usr/bin/env bash
# bench_resume.sh BIN TINY_SUITE — `ttmerge bench` SIGKILLed mid-run resumes to the same results.
# 1. an uninterrupted bench of six methods (reference);
# 2. the same bench, SIGKILLed (the bench process only, as `kill -9` or the OOM killer would)
#    once three methods are in results.csv, while the fourth (a 100-step AdaMerging) runs;
#    its running method must die with it (no orphan left writing into the directory);
# 3. the rerun says the three are "already done", runs the rest, and its results.csv matches
#    the reference at tolerance 0 both ways (`ttmerge check`), row for row, and so do its
#    predictions/ and stats.csv (the intervals; leaderboard.csv also holds wall times), byte for byte.
set -euo pipefail
bin=$1 suite=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
args=(--suite "$suite" --methods zeroshot,ta,ties,adamerging-task,dare,individual
      --set adamerging-task.steps=100 --threads 2 --seed 7)

"$bin" bench "${args[@]}" --out "$tmp/ref" --quiet
"$bin" bench "${args[@]}" --out "$tmp/run" --quiet &
pid=$!
tasks=$((($(wc -l <"$tmp/ref/results.csv") - 1) / 6))   # one row per method and task
methods_done() { [[ -f $tmp/run/results.csv ]] && echo $((($(wc -l <"$tmp/run/results.csv") - 1) / tasks)) || echo 0; }
for ((i = 0; i < 6000; i++)); do   # poll every 10 ms, at most 60 s
  (($(methods_done) >= 3)) && break
  kill -0 "$pid" 2>/dev/null || { echo "FAIL: the bench finished before it could be killed"; exit 1; }
  sleep 0.01
done
children=$(pgrep -P "$pid" || true)
[[ -n $children ]] || { echo "FAIL: no method was running when the bench was killed"; exit 1; }
kill -9 "$pid"
st=0
wait "$pid" || st=$?
((st == 137)) || { echo "FAIL: bench exited $st, not killed by SIGKILL"; exit 1; }
done_before=$(methods_done)
echo "killed after $done_before methods, while pid(s) $children ran the next"
sleep 0.5
for c in $children; do   # gone, or a zombie waiting for its new parent to reap it
  if [[ -n $(ps -o stat= -p "$c" | grep -v '^Z') ]]; then
    echo "FAIL: method process $c outlived the killed bench"
    kill -9 "$c"
    exit 1
  fi
done

"$bin" bench "${args[@]}" --out "$tmp/run" 2>"$tmp/rerun.log"
resumed=$(grep -c 'already done (resume)' "$tmp/rerun.log" || true)
((resumed == done_before)) || { cat "$tmp/rerun.log"; echo "FAIL: $resumed methods resumed, $done_before were done"; exit 1; }
"$bin" check --golden "$tmp/ref/results.csv" --results "$tmp/run/results.csv" --tol 0 --quiet
"$bin" check --golden "$tmp/run/results.csv" --results "$tmp/ref/results.csv" --tol 0 --quiet
rows() { wc -l <"$1/results.csv"; }
(($(rows "$tmp/ref") == $(rows "$tmp/run"))) || { echo "FAIL: row counts differ"; exit 1; }
[[ ! -e $tmp/run/rows ]] || { echo "FAIL: rows/ left behind"; exit 1; }
# the per-example predictions and the statistics computed from them resume to the same bytes
diff -r "$tmp/ref/predictions" "$tmp/run/predictions" || { echo "FAIL: predictions/ differ"; exit 1; }
cmp "$tmp/ref/stats.csv" "$tmp/run/stats.csv" || { echo "FAIL: stats.csv differs"; exit 1; }
echo "resumed $resumed of 6 methods; results equal the uninterrupted run at tolerance 0"
