#!/usr/bin/env bash
# run_fuzz.sh BIN SEED_DIR WORK_DIR SECONDS [libFuzzer flags...] — one timed libFuzzer run.
# Starts from the committed seeds (read only), grows a fresh WORK_DIR corpus, prints one summary
# line (runs, exec/s, corpus growth, peak RSS; also kept in WORK_DIR/summary). On a crash, leak,
# timeout or sanitizer report the reproducer is in WORK_DIR/artifacts/ and the run fails: see
# fuzz/README.md ("A crash").
set -euo pipefail
bin=$1 seeds=$2 work=$3 secs=$4
shift 4
name=$(basename "$bin")
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
log=$work/fuzz.log
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rc=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds" >"$log" 2>&1 || rc=$?
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
if ((rc != 0)) || compgen -G "$work/artifacts/*" >/dev/null; then
  tail -n 60 "$log"
  echo "$name: FAILED (exit $rc); reproducer(s):" "$work"/artifacts/*
  echo "turn it into a regression input: cp REPRODUCER fuzz/corpus/<target>/<what-it-broke>, fix, rebuild (ctest replays it)"
  exit 1
fi
echo "$name: $(stat number_of_executed_units) runs in ${secs} s = $(stat average_exec_per_sec) exec/s," \
     "corpus $(ls "$seeds" | wc -l) seeds + $(ls "$work/corpus" | wc -l) found, peak RSS $(stat peak_rss_mb) MB, no crash" |
  tee "$work/summary"
