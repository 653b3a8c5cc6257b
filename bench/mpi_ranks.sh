#!/usr/bin/env bash
# mpi_ranks.sh BIN_MPI SUITE OUT [ROUNDS] — one process x 2 threads against 2 MPI ranks x 1 thread,
# in interleaved rounds (A B A B ...), on a built suite (vision8: the default benchmark's):
#   grid:       `ttmerge bench` of a subset of methods (wall time of the whole grid)
#   adamerging: `ttmerge merge --method adamerging` (layer-wise, 500 steps): wall time, and on
#               2 ranks the MPI calls, bytes and seconds per step that rank 0 reports
# BIN_MPI is ttmerge built with -DTTMERGE_MPI=ON (without mpirun it runs as one process).
# Writes OUT/mpi_ranks.csv (round,what,config,wall_s,mpi_calls,mpi_mb,mpi_s) and prints it.
set -euo pipefail
bin=$1 suite=$2 out=$3 rounds=${4:-2}
mkdir -p "$out"
export OMP_WAIT_POLICY=passive OMPI_MCA_mpi_yield_when_idle=1
mpi=(mpirun --oversubscribe -np 2 -x OMP_WAIT_POLICY -x OMPI_MCA_mpi_yield_when_idle)
((EUID == 0)) && mpi+=(--allow-run-as-root)
methods=${METHODS:-zeroshot,individual,ta,ties,consensus-ta,lata,adamerging-task,tinting}
csv=$out/mpi_ranks.csv
echo "round,what,config,wall_s,mpi_calls,mpi_mb,mpi_s" >"$csv"
now() { date +%s.%N; }
for ((r = 1; r <= rounds; r++)); do
  for cfg in 1x2 2x1; do
    if [[ $cfg == 1x2 ]]; then run=("$bin") threads=2; else run=("${mpi[@]}" "$bin") threads=1; fi
    rm -rf "$out/grid-$cfg"
    t0=$(now)
    "${run[@]}" bench --suite "$suite" --methods "$methods" --threads $threads --out "$out/grid-$cfg" --quiet --no-models
    echo "$r,grid,$cfg,$(echo "$(now) - $t0" | bc),,," >>"$csv"
    t0=$(now)
    "${run[@]}" merge --suite "$suite" --method adamerging --threads $threads --out "$out/am-$cfg.safetensors" \
      2>"$out/am-$cfg.log"
    wall=$(echo "$(now) - $t0" | bc)
    # "rank 0 of 2: N MPI calls, X MB sent, Y s in MPI"
    stats=$(sed -n 's/.*rank 0 of 2: \([0-9]*\) MPI calls, \([0-9.]*\) MB sent, \([0-9.]*\)s in MPI/\1,\2,\3/p' "$out/am-$cfg.log")
    echo "$r,adamerging,$cfg,$wall,${stats:-,,}" >>"$csv"
  done
done
column -s, -t "$csv"
