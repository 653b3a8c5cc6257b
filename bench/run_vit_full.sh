#!/usr/bin/env bash
# run_vit_full.sh — evaluation of the whole ViT-B/32 image tower (12 blocks, 224 px, QuickGELU) at
# ttmerge's evaluation batch (INFER_BATCH = 256, core/infer.h), ttmerge vs PyTorch, in interleaved rounds:
# each round is bench/run_vit_bench.sh --configs vitb32full --passes eval (ttmerge, then torch, at each
# thread count), so a change in the machine's load hits both peers of a round alike.
#
#   bench/run_vit_full.sh [--rounds R] [--threads "2"] [--reps N] [--batch B] [--out DIR] [--wait-idle]
#
# Defaults: 3 rounds, 2 threads, 3 timed reps per run (after 3 warm-ups), batch 256.
# Output: DIR/rN/ (run_vit_bench.sh's files per round), DIR/rounds.csv (round, threads, each peer's median
# seconds, torch / ttmerge, ttmerge's % of the measured FMA peak) and a summary on stdout: per-round ratios
# and the median over rounds. Environment: BUILD_DIR, PYTHON as for run_vit_bench.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
rounds=3
threads_list="2"
reps=3
batch=256
out=""
idle_arg=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --threads) threads_list=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --wait-idle) idle_arg=(--wait-idle); shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "run_vit_full.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$rounds" in '' | *[!0-9]* | 0) echo "run_vit_full.sh: --rounds wants a positive integer" >&2; exit 2 ;; esac
out=${out:-$build/vit_full}
mkdir -p "$out"

for r in $(seq 1 "$rounds"); do
    echo "==== round $r of $rounds ($(date -u +%H:%M:%S), loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
    BUILD_DIR=$build bash "$here/run_vit_bench.sh" --threads "$threads_list" --configs vitb32full --passes eval \
        --batches "$batch" --reps "$reps" --out "$out/r$r" "${idle_arg[@]}"
done

# rounds.csv from each round's joined CSV (config,batch,threads,pass,median_s,min_s,images_per_s,gflops,pct,peer)
{
    echo "round,threads,ttmerge_median_s,torch_median_s,ratio,ttmerge_pct_peak"
    for r in $(seq 1 "$rounds"); do
        awk -F, -v r="$r" 'NR > 1 && $4 == "eval" { med[$3, $10] = $5; pct[$3, $10] = $9; thr[$3] = 1 }
            END { for (t in thr) if (med[t, "ttmerge"] > 0 && med[t, "torch"] > 0)
                printf "%d,%s,%s,%s,%.3f,%s\n", r, t, med[t, "ttmerge"], med[t, "torch"], med[t, "torch"] / med[t, "ttmerge"], pct[t, "ttmerge"] }' \
            "$out/r$r/all.csv"
    done
} >"$out/rounds.csv"
echo
echo "ViT-B/32 (12 blocks) evaluation of $batch images, ttmerge vs torch (ratio > 1: ttmerge faster):"
column -s, -t "$out/rounds.csv"
awk -F, 'NR > 1 { r[$2] = r[$2] " " $5; n[$2]++; v[$2, n[$2]] = $5 }
    END { for (t in n) { k = n[t]; for (i = 1; i <= k; i++) s[i] = v[t, i]
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (s[j] < s[i]) { x = s[i]; s[i] = s[j]; s[j] = x }
        med = k % 2 ? s[(k + 1) / 2] : (s[k / 2] + s[k / 2 + 1]) / 2
        printf "%s threads: median ratio over %d rounds %.2fx (rounds:%s)\n", t, k, med, r[t] } }' "$out/rounds.csv"
echo "CSV: $out/rounds.csv"
