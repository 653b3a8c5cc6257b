# lib.sh — shell helpers shared by bench/run_vit_bench.sh and bench/run_all.sh (sourced).
#
# guarded LOG CMD...   run CMD with stdout tee'd to LOG, then report how much of the machine's CPU
#                      time OTHER processes used meanwhile ("others", from /proc/stat minus this
#                      shell's children). With wait_idle=1: wait for a quiet 5 s window first, and
#                      repeat the run (up to 5 attempts, the last is kept) while others used >= 5%.
# The caller sets wait_idle (0/1). The last run's share is left in $guarded_others.
# pct_guard CSV...     every row's pct_peak_measured (the benchmark CSVs' column 9) must be at most 100:
#                      above the measured FMA peak is a benchmark bug (a FLOP count or the peak);
#                      prints the rows that are not, names them so, and returns 70.

# /proc/stat aggregate: "total busy" jiffies
cpu_jiffies() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t, t - $5 - $6}' /proc/stat; }
busy_fraction() {  # over $1 seconds
    local t1 b1 t2 b2
    read -r t1 b1 < <(cpu_jiffies); sleep "$1"; read -r t2 b2 < <(cpu_jiffies)
    awk -v t=$((t2 - t1)) -v b=$((b2 - b1)) 'BEGIN { printf "%.3f\n", (t > 0 ? b / t : 0) }'
}
wait_for_idle() {
    [ "${wait_idle:-0}" = 1 ] || return 0
    local start=$SECONDS b
    while :; do
        b=$(busy_fraction 5)
        awk -v b="$b" 'BEGIN { exit !(b < 0.08) }' && return 0
        if [ $((SECONDS - start)) -gt 1800 ]; then echo "== machine still busy ($b) after 30 min; running anyway"; return 0; fi
    done
}
guarded_others=0
guarded() {
    local log=$1; shift
    local t1 b1 t2 b2 c1 c2 attempt max=1 status=0 me=$BASHPID  # this (sub)shell: guarded may run in a pipeline
    [ "${wait_idle:-0}" = 1 ] && max=5
    for attempt in $(seq 1 $max); do
        wait_for_idle
        read -r t1 b1 < <(cpu_jiffies)
        c1=$(awk '{print $16 + $17}' /proc/$me/stat)  # cutime + cstime of this (sub)shell: its waited-for children
        status=0
        "$@" | tee "$log" || status=$?               # the callers run with pipefail: the command's status
        read -r t2 b2 < <(cpu_jiffies)
        c2=$(awk '{print $16 + $17}' /proc/$me/stat)
        guarded_others=$(awk -v t=$((t2 - t1)) -v b=$((b2 - b1)) -v m=$((c2 - c1)) \
            'BEGIN { o = b - m; if (o < 0) o = 0; printf "%.1f", (t > 0 ? 100 * o / t : 0) }')
        echo "== attempt $attempt: others used ${guarded_others}% of the machine's CPU time during the run; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
        [ $status = 0 ] || { echo "== command failed (exit $status): $*"; return $status; }
        if awk -v o="$guarded_others" 'BEGIN { exit !(o < 5) }'; then break; fi
    done
    return 0
}

pct_guard() {
    awk -F, 'FNR == 1 { if ($9 != "pct_peak_measured") { print "pct_guard: " FILENAME " has no pct_peak_measured column" > "/dev/stderr"; bad = 1; nextfile } next }
        $9 + 0 > 100 {
            printf "benchmark bug: %s, %s batch %s, %s threads, %s (%s) at %s%% of the measured FMA peak: its FLOP count or the peak is wrong\n",
                FILENAME, $1, $2, $3, $4, $10, $9 > "/dev/stderr"
            bad = 1
        }
        END { exit bad ? 70 : 0 }' "$@"
}
