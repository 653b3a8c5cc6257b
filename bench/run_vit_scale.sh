#!/usr/bin/env bash
# run_vit_scale.sh — speed at the real model's scale: CLIP's ViT-B/32 and ViT-B/16 image towers whole
# (12 blocks, 224 px, QuickGELU, random weights), ttmerge in f32 and in bf16 (--precision bf16) against
# PyTorch (f32 on OpenBLAS), in interleaved rounds: within a round each workload runs ttmerge f32, ttmerge
# bf16, then torch, so a change of the machine's load hits all three alike.
#
#   bench/run_vit_scale.sh [--rounds R] [--torch-rounds T] [--configs "vitb32full vitb16full"]
#                          [--work "eval step tint"] [--threads N] [--warmup W] [--reps N] [--out DIR]
#                          [--precisions "f32 bf16"] [--micro N]
#
# --precisions: ttmerge's precisions to run (drop bf16 on a CPU without native bf16, where it would
# only repeat f32); --micro N: the learners' steps run their images N at a time (adamerge_bench
# --micro; the PyTorch peer runs whole batches).
#
# Workloads: eval = one forward of INFER_BATCH = 256 images on the inference plan (vit_bench --passes eval;
# torch_vit.py --passes eval under no_grad); step = one layer-wise AdaMerging step of 8 tasks x 16 test images
# (adamerge_bench --accum 1 on a synthetic suite written once into DIR; torch_adamerge.py on the same files);
# tint = one Model Tinting step at tinting's defaults: merge, one task's 32 test images forward+backward with
# its trainable head, pseudo-conf CE on the expert's labels (computed before timing), Adam on lambda and the
# head (adamerge_bench --learner tinting; torch_adamerge.py --learner tinting; the same suite as step).
# Defaults: 2 rounds (torch in the first --torch-rounds = 1 of them: on 2 shared cores a torch forward of 256
# ViT-B/16 images takes minutes), 2 threads, 1 warm-up and 1 timed run per program and round.
# Output: DIR/times.csv (round,config,batch,threads,work,median_s,min_s,images_per_s,gflops,pct_peak,peer; the
# % of peak of a bf16 row is of the measured bf16 dot-product peak, of an f32 row of the FMA peak, torch's of
# the FMA peak) and the summary on stdout: median seconds over rounds per peer, f32/bf16 and torch/ttmerge.
# Environment: BUILD_DIR (default build-bench, built here), PYTHON (default /usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
py=${PYTHON:-/usr/bin/python3}
rounds=2
torch_rounds=1
configs="vitb32full vitb16full"
work="eval step tint"
threads=2
warmup=1
reps=1
out=""
precisions="f32 bf16"
micro=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --torch-rounds) torch_rounds=$2; shift 2 ;;
        --configs) configs=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --precisions) precisions=$2; shift 2 ;;
        --micro) micro=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "run_vit_scale.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$reps" "$threads"; do
    case "$v" in '' | *[!0-9]* | 0) echo "run_vit_scale.sh: --rounds, --reps and --threads want positive integers" >&2; exit 2 ;; esac
done
out=${out:-$build/vit_scale}
mkdir -p "$out"
if [ ! -x "$build/vit_bench" ] || [ ! -x "$build/adamerge_bench" ]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j2 --target vit_bench adamerge_bench >/dev/null
fi
export OMP_NUM_THREADS=$threads

times=$out/times.csv
echo "round,config,batch,threads,work,median_s,min_s,images_per_s,gflops,pct_peak,peer" >"$times"
# append a program's CSV rows (config,batch,threads,pass,median_s,...,peer) under a round and a workload name
add_rows() { awk -F, -v r="$1" -v w="$2" 'NR > 1 { $4 = w; OFS = ","; print r, $0 }' OFS=, "$3" >>"$times"; }

for r in $(seq 1 "$rounds"); do
    for c in $configs; do
        for w in $work; do
            echo "==== round $r of $rounds: $c $w ($(date -u +%H:%M:%S), loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
            d=$out/r$r/$c-$w
            mkdir -p "$d"
            if [ "$w" = eval ]; then
                for p in $precisions; do
                    "$build/vit_bench" --threads "$threads" --configs "$c" --passes eval --batches 256 --warmup "$warmup" \
                        --reps "$reps" --precision "$p" --csv "$d/ttmerge-$p.csv" >"$d/ttmerge-$p.log"
                    add_rows "$r" eval "$d/ttmerge-$p.csv"
                done
                if [ "$r" -le "$torch_rounds" ]; then
                    "$py" "$here/pytorch/torch_vit.py" --threads "$threads" --configs "$c" --passes eval --batches 256 \
                        --warmup "$warmup" --reps "$reps" --csv "$d/torch.csv" >"$d/torch.log"
                    add_rows "$r" eval "$d/torch.csv"
                fi
            elif [ "$w" = step ] || [ "$w" = tint ]; then
                suite=$out/suite-$c
                if [ ! -f "$suite/suite.json" ]; then
                    rm -rf "$suite"
                    "$build/adamerge_bench" --make-suite "$suite" --arch "$c" --tasks 8 >"$out/make-suite-$c.log"
                fi
                # step: AdaMerging's, one forward of 8 x 16; tint: Tinting's defaults (one task's 32 images)
                if [ "$w" = step ]; then learner=(--batch 16 --accum 1); else learner=(--learner tinting); fi
                for p in $precisions; do
                    "$build/adamerge_bench" --suite "$suite" --threads "$threads" --steps "$reps" --warmup "$warmup" \
                        "${learner[@]}" --micro "$micro" --precision "$p" --config "$c" --csv "$d/ttmerge-$p.csv" >"$d/ttmerge-$p.log"
                    add_rows "$r" "$w" "$d/ttmerge-$p.csv"
                done
                if [ "$r" -le "$torch_rounds" ]; then
                    "$py" "$here/pytorch/torch_adamerge.py" --suite "$suite" --threads "$threads" --steps "$reps" \
                        --warmup "$warmup" "${learner[@]}" --config "$c" --csv "$d/torch.csv" >"$d/torch.log"
                    add_rows "$r" "$w" "$d/torch.csv"
                fi
            else
                echo "run_vit_scale.sh: unknown workload $w (eval, step, tint)" >&2
                exit 2
            fi
            grep -h "peak_measured_gflops\|^peak bf16" "$d"/ttmerge-*.log | sed 's/^/  /' || true
        done
    done
done

echo
echo "ViT at scale, $threads threads, median seconds over rounds (ratios > 1: the second is slower):"
awk -F, 'NR > 1 { k = $2 SUBSEP $5; key[k] = 1; n[k, $11]++; v[k, $11, n[k, $11]] = $6; p[k, $11] = $10 }
    function med(k, peer,   m, i, j, s, x) { m = n[k, peer]; if (!m) return 0
        for (i = 1; i <= m; i++) s[i] = v[k, peer, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (s[j] < s[i]) { x = s[i]; s[i] = s[j]; s[j] = x }
        return m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2 }
    END { printf "%-11s %-5s %10s %10s %10s %9s %11s %11s\n", "config", "work", "f32_s", "bf16_s", "torch_s", "f32/bf16", "torch/f32", "torch/bf16"
        for (k in key) { split(k, a, SUBSEP); f = med(k, "ttmerge"); b = med(k, "ttmerge-bf16"); t = med(k, "torch")
            printf "%-11s %-5s %10.2f %10.2f %10s %8.2fx %11s %11s\n", a[1], a[2], f, b, t ? sprintf("%.2f", t) : "-",
                b ? f / b : 0, t && f ? sprintf("%.2fx", t / f) : "-", t && b ? sprintf("%.2fx", t / b) : "-" } }' "$times"
echo "CSV: $times"
