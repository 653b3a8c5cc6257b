#!/usr/bin/env bash
# anymerge_bench.sh DIR [ROUNDS] [METHODS] [PEER_METHODS] — `ttmerge merge --base --models` against PyTorch.
#
# DIR holds base/ and ft0..ftK-1/ from bench/anymerge/gen_models.py (e.g. K = 8 BF16 models of
# 0.5 / 1 / 2 GB). In each of ROUNDS (default 3) interleaved rounds, for each method of METHODS
# (default ta,ties,dare), it runs and times (wall seconds, peak RSS from /usr/bin/time):
#   ttmerge  ttmerge merge --base --models (2 threads, output in the base's BF16);
#   lazy     bench/anymerge/torch_merge.py --mode lazy: MergeKit's tensor-by-tensor way;
#   eager    the same with every model loaded whole first (skipped when the inputs exceed 50% of
#            MemAvailable: it holds them in memory twice, as loaded and as float32 task vectors);
#   read     cat of every input file to /dev/null: the time to read the inputs once (warm cache).
# Every timed run starts from a warm page cache (all inputs read once, untimed): VMs that reclaim
# idle page cache (DAMON's kdamond) would otherwise time the disk.
# PEER_METHODS (default: METHODS) limits the PyTorch peers to some methods: at 2 GB per model a lazy
# PyTorch merge takes minutes per method.
# TTMERGE_OTHER=PATH adds another ttmerge binary (impl "other", e.g. an older build), run right after
# TTMERGE on each method of each round, so that the two are compared interleaved.
# merge_s: for PyTorch the time after the interpreter and torch were imported; for ttmerge the time
# before the output is synced to disk (ttmerge fsyncs every file before publishing the directory;
# the PyTorch writers do not).
# Writes DIR/bench.csv (round,method,impl,seconds,merge_s,peak_rss_mb) and prints a summary (medians).
set -euo pipefail
dir=$1 rounds=${2:-3} methods=${3:-ta,ties,dare}
peer_methods=${4:-$methods}
here=$(cd "$(dirname "$0")" && pwd)
bin=${TTMERGE:-$here/../build/ttmerge}
py=/usr/bin/python3
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
K=$(ls -d "$dir"/ft* | wc -l)
models=$(ls -d "$dir"/ft* | sort -V | paste -sd,)
inputs=$(du -sb "$dir"/base "$dir"/ft* | awk '{s += $1} END {printf "%.0f\n", s}')
avail=$(awk '/MemAvailable/ {printf "%.0f\n", $2 * 1024}' /proc/meminfo)
eager=1
((inputs < avail / 2)) || eager=0
out=$dir/bench.csv
echo "round,method,impl,seconds,merge_s,peak_rss_mb" >"$out"
run() { # ROUND METHOD IMPL CMD...
  local r=$1 m=$2 impl=$3; shift 3
  rm -rf "$dir/out"
  sync # the last output's writeback done before the clock starts, not during the next run
  cat "$dir"/base/* "$dir"/ft*/* >/dev/null # warm the page cache (untimed)
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" 2>"$dir/err.txt" >/dev/null || { cat "$dir/err.txt"; exit 1; }
  read -r sec kb <"$dir/time.txt"
  ms=$(awk '/^merge_seconds/ {print $2}' "$dir/err.txt")
  [[ -n $ms ]] || ms=$(sed -n 's/.* in \([0-9.]*\)s (\([0-9.]*\)s of it syncing.*/\1 \2/p' "$dir/err.txt" | awk '{print $1 - $2}')
  echo "$r,$m,$impl,$sec,${ms:-$sec},$((kb / 1024))" | tee -a "$out"
}
cat "$dir"/base/* "$dir"/ft*/* >/dev/null # warm the page cache
for ((r = 1; r <= rounds; r++)); do
  run "$r" - read cat "$dir"/base/*.safetensors "$dir"/ft*/*.safetensors
  for m in ${methods//,/ }; do
    run "$r" "$m" ttmerge "$bin" merge --threads 2 --base "$dir/base" --models "$models" --method "$m" \
      --set lambda=0.3 --shard-size 2GB --out "$dir/out"
    [[ -z ${TTMERGE_OTHER:-} ]] || run "$r" "$m" other "$TTMERGE_OTHER" merge --threads 2 --base "$dir/base" \
      --models "$models" --method "$m" --set lambda=0.3 --shard-size 2GB --out "$dir/out"
    [[ ",$peer_methods," == *",$m,"* ]] || continue
    run "$r" "$m" lazy $py "$here/anymerge/torch_merge.py" --mode lazy --method "$m" "$dir/base" "$models" "$dir/out" \
      --shard-size 2000000000
    ((eager)) && run "$r" "$m" eager $py "$here/anymerge/torch_merge.py" --mode eager --method "$m" "$dir/base" \
      "$models" "$dir/out" --shard-size 2000000000
  done
done
rm -rf "$dir/out" "$dir/time.txt" "$dir/err.txt"
$py - "$out" "$K" "$inputs" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = lambda xs: statistics.median(xs)
print(f"K = {sys.argv[2]} models, inputs {int(sys.argv[3]) / 1e9:.2f} GB; medians over rounds")
read = med([float(r["seconds"]) for r in rows if r["impl"] == "read"])
print(f"read the inputs once (warm cache): {read:.2f} s")
for m in sorted({r["method"] for r in rows} - {"-"}):
    line = {}
    for impl in ("ttmerge", "other", "lazy", "eager"):
        rs = [r for r in rows if r["method"] == m and r["impl"] == impl]
        if rs:
            line[impl] = (med([float(r["seconds"]) for r in rs]), med([float(r["merge_s"]) for r in rs]),
                          max(int(r["peak_rss_mb"]) for r in rs))
    t = line["ttmerge"][0]
    parts = [f"{i} {s:.1f}s (merge {ms:.1f}s) {rss} MB" for i, (s, ms, rss) in line.items()]
    if "other" in line:
        parts.append(f"other/ttmerge {line['other'][0] / t:.2f}x")
    if "lazy" in line:
        parts.append(f"lazy/ttmerge {line['lazy'][1] / t:.1f}x")
    parts.append(f"ttmerge/read {t / read:.1f}x ({line['ttmerge'][1] / read:.1f}x before the sync)")
    print(f"{m}: " + "; ".join(parts))
PY
