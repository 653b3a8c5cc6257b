#!/usr/bin/env bash
# The main job end to end on the tiny suite: bench every method, compare with the committed
# golden (reports/golden/tiny.csv) within a tolerance (accuracy points, or `auto`: k standard
# errors of each row), check the orderings that hold on the golden's predictions with their paired
# intervals, write the report. Refresh the golden deliberately: see reports/README.md.
set -euo pipefail
bin=$1 suite=$2 golden=$3 tol=${4:-auto}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin" bench --suite "$suite" --out "$out" --quiet
"$bin" check --golden "$golden" --results "$out/results.csv" --tol "$tol" --quiet
# each of these holds on the golden's predictions by at least 2 points (the interval's lower end)
"$bin" check --results "$out/results.csv" --order "individual>tinting,tinting>adamerging,tinting>ta,ta>adamerging,ta>graft"
"$bin" report "$out" --quiet
for f in results.csv leaderboard.csv stats.csv report.md report.html curves/adamerging.csv models/ta.safetensors \
         predictions/ta.bits predictions/individual.bits predictions/tinting.bits; do
  [[ -s "$out/$f" ]] || { echo "missing $f"; exit 1; }
done
grep -q "<svg" "$out/report.html" || { echo "report.html has no chart"; exit 1; }
grep -q 'class="err"' "$out/report.html" || { echo "report.html has no error bars"; exit 1; }
# leaderboard.csv: the documented columns, then the interval columns; every ok method has them
head -1 "$out/leaderboard.csv" | grep -q ',seconds,status,avg_se,avg_ci_low,avg_ci_high,ref,diff_vs_ref,diff_ci_low,diff_ci_high,p_value$' ||
  { echo "leaderboard.csv header: $(head -1 "$out/leaderboard.csv")"; exit 1; }
awk -F, 'NR > 1 && ($(NF-7) == "" || $(NF-4) == "") { print "leaderboard.csv: no interval for " $2; bad = 1 } END { exit bad }' \
  "$out/leaderboard.csv" || exit 1
# timings.csv: the header, the "(suite)" row and one ok row per method of results.csv, whose phases
# are numbers and sum to at most the child's total (1 ms of rounding)
awk -F, -v res="$out/results.csv" '
  BEGIN { while ((getline l < res) > 0) if (n++) { split(l, f, "\",\""); m = f[2]; if (!(m in want)) { want[m] = 1; nw++ } } }
  NR == 1 { if ($0 != "suite,method,status,load_s,merge_s,eval_s,save_s,total_s,peak_rss_mb") { print "timings.csv header: " $0; bad = 1 } next }
  $2 == "(suite)" { suite_row = 1; next }
  { if (!($2 in want) || $3 != "ok") { print "timings.csv: unexpected row " $0; bad = 1 }
    seen[$2] = 1; s = 0
    for (i = 4; i <= 7; i++) { if ($i != "" && $i !~ /^[0-9]+\.[0-9]+$/) { print "timings.csv: bad number in " $0; bad = 1 } s += $i }
    if ($8 !~ /^[0-9]+\.[0-9]+$/ || s > $8 + 0.001 || $9 !~ /^[0-9]+\.[0-9]$/) { print "timings.csv: phases exceed the total or no RSS: " $0; bad = 1 } }
  END { for (m in want) if (!(m in seen)) { print "timings.csv: no row for " m; bad = 1 }
        if (!suite_row) { print "timings.csv: no (suite) row"; bad = 1 }
        exit bad }' "$out/timings.csv" || exit 1
echo "bench on tiny matches $golden (tolerance $tol), orderings shown by paired intervals"
