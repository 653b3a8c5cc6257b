#!/usr/bin/env bash
# run_vit_bench.sh — ttmerge engine vs PyTorch: build vit_bench if needed, run both at 1 and 2 threads,
# join the CSVs and print the ttmerge/torch throughput ratio per config, batch, pass and thread count.
#
#   bench/run_vit_bench.sh [--threads "1 2"] [--reps R] [--configs vision8,vitb32] [--passes LIST] [--batches LIST]
#                          [--out DIR] [--wait-idle]
#
# --batches: batch sizes for every config instead of each config's own (vision8 128,16; vitb32 32);
# run_all.sh times evaluation at ttmerge's evaluation batch this way (--passes eval --batches 256).
# --wait-idle: before each run, wait (up to 30 min) until the machine was < 8% busy for 5 s. After each run
# the script prints how much of the machine's CPU time other processes used during it ("others"); with
# --wait-idle a run is repeated (up to 5 times) while others used >= 5%.
# Environment: BUILD_DIR (default <repo>/build-bench), PYTHON (default /usr/bin/python3).
# Output: DIR/ttmerge_<N>t.csv, DIR/torch_<N>t.csv, DIR/all.csv (joined), DIR/*.log, and the table on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
python=${PYTHON:-/usr/bin/python3}
threads_list="1 2"
reps=""
configs="vision8,vitb32"
passes="fwd,fwd_bwd_all,fwd_bwd_attn"
batches=""
out=""
wait_idle=0

while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads_list=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --configs) configs=$2; shift 2 ;;
        --passes) passes=$2; shift 2 ;;
        --batches) batches=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --wait-idle) wait_idle=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run_vit_bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
out=${out:-$build/vit_bench_results}
mkdir -p "$out"

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target vit_bench >/dev/null
bin=$build/vit_bench

# shellcheck source=bench/lib.sh
. "$here/lib.sh"

rep_args=()
[ -n "$reps" ] && rep_args=(--reps "$reps")
[ -n "$batches" ] && rep_args+=(--batches "$batches")

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, $(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') MHz"
for n in $threads_list; do
    echo "== $n thread(s): load before ttmerge: $(cut -d' ' -f1-3 /proc/loadavg)"
    guarded "$out/ttmerge_${n}t.log" env OMP_NUM_THREADS="$n" "$bin" --threads "$n" --configs "$configs" --passes "$passes" \
        "${rep_args[@]}" --csv "$out/ttmerge_${n}t.csv"
    peak=$(sed -n 's/^# peak_measured_gflops=\([0-9.]*\).*/\1/p' "$out/ttmerge_${n}t.log")
    echo "== $n thread(s): load before torch: $(cut -d' ' -f1-3 /proc/loadavg)"
    guarded "$out/torch_${n}t.log" env OMP_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n" "$python" "$here/pytorch/torch_vit.py" \
        --threads "$n" --configs "$configs" --passes "$passes" "${rep_args[@]}" --peak-gflops "${peak:-0}" --csv "$out/torch_${n}t.csv"
    echo "== $n thread(s): load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done

# join: header once, then every row of every CSV
all=$out/all.csv
first=1
: >"$all"
for n in $threads_list; do
    for peer in ttmerge torch; do
        f=$out/${peer}_${n}t.csv
        if [ $first = 1 ]; then cat "$f" >>"$all"; first=0; else tail -n +2 "$f" >>"$all"; fi
    done
done

pct_guard "$all"

echo
echo "ttmerge vs torch (median images/s; ratio > 1 means ttmerge is faster; %pk = % of the measured FMA peak)"
awk -F, 'NR > 1 {
    key = $1 FS $2 FS $3 FS $4
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    ips[key, $10] = $7; gf[key, $10] = $8; pk[key, $10] = $9
}
END {
    printf "%-8s %5s %3s  %-13s %11s %6s %6s %11s %6s %6s %7s\n", "config", "batch", "thr", "pass",
           "ttm img/s", "GF/s", "%pk", "torch img/s", "GF/s", "%pk", "ratio"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, f, FS)
        t = ips[k, "ttmerge"]; p = ips[k, "torch"]
        printf "%-8s %5s %3s  %-13s %11.1f %6.1f %6.1f %11.1f %6.1f %6.1f %7s\n", f[1], f[2], f[3], f[4],
               t, gf[k, "ttmerge"], pk[k, "ttmerge"], p, gf[k, "torch"], pk[k, "torch"],
               (t != "" && p != "" && p > 0) ? sprintf("%.2fx", t / p) : "n/a"
    }
}' "$all" | tee "$out/comparison.txt"
echo "CSV: $all"
