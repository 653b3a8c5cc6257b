#!/usr/bin/env bash
# anymerge.sh BIN SOURCE_DIR [TINY_SUITE] — `ttmerge merge --base --models` / `--config` end to end.
# 1. every method on generated BF16 sharded models (and F16 and F32 sets, other dtypes, tiny slices)
#    equals tests/anymerge_ref.py's numpy merge bit for bit (TIES: numpy's global order statistic);
# 2. a MergeKit-style --config gives the same bits as the equivalent command line; a weight rule
#    ({filter: mlp, value: 0}) leaves exactly the matching tensors at the base;
# 3. bad input (shape, missing tensor, missing or truncated shard, existing OUT, bad config) is one
#    line naming the problem, exit 2, and leaves nothing at OUT nor a temporary directory;
# 4. a file-size limit (RLIMIT_FSIZE), a full tmpfs (when mount works) and SIGKILL mid-merge leave no
#    model at OUT; a shard truncated mid-merge is one line naming it, exit 2, nothing left;
# 5. with TINY_SUITE: the suite's checkpoints merged this way equal `merge --suite` bit for bit
#    (ta, ties, dare, consensus-ta, consensus-ties, pcb, ... at fixed λ; tsv-m, iso-c, iso-cts at fixed α).
# The SVD merges (tsv-m, iso-c, iso-cts) are checked against numpy's float64 SVDs in 1. (the last
# bit of the float32 merged task vector may differ there: anymerge_ref.py says how far).
set -euo pipefail
bin=$1 src=$2 suite=${3:-}
py=/usr/bin/python3
tmp=$(mktemp -d -p "$([[ -d /dev/shm && -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")")  # fsync is free in memory
cleanup() { mountpoint -q "$tmp/full" 2>/dev/null && umount "$tmp/full"; rm -rf "$tmp"; }
trap cleanup EXIT
export OMP_WAIT_POLICY=passive
fail() { echo "FAIL: $*"; exit 1; }
gen() { $py "$src/bench/anymerge/gen_models.py" "$@" >/dev/null; }
ref() { $py "$src/tests/anymerge_ref.py" "$@" | tail -1; }
merge() { "$bin" merge --quiet "$@"; }

gen "$tmp/m" --small --gb 0.002 --K 3 --shard-size 200KB --seed 1
gen "$tmp/h" --small --gb 0.001 --K 2 --dtype f16 --shard-size 1GB --seed 2
gen "$tmp/f" --small --gb 0.001 --K 3 --dtype f32 --shard-size 300KB --seed 3 # distinct magnitudes: a threshold off by one rank shows
B=$tmp/m/base M=$tmp/m/ft0,$tmp/m/ft1,$tmp/m/ft2

# 1. numpy reference
check() { # NAME METHOD REF_ARGS -- MERGE_ARGS
  local name=$1 method=$2; shift 2
  local refargs=() mergeargs=()
  while [[ $1 != -- ]]; do refargs+=("$1"); shift; done; shift
  mergeargs=("$@")
  merge --method "$method" --out "$tmp/o_$name" "${mergeargs[@]}"
  out=$(ref "$tmp/o_$name" "${refargs[@]}" "$method") || fail "$name: $out"
  echo "$name: $out"
}
for m in ta ties dare consensus-ta consensus-ties average tatr pcb; do
  check "$m" "$m" "$B" "$M" --seed 5 -- --base "$B" --models "$M" --shard-size 500KB --seed 5
done
# pcb's four order statistics per model over slices that cut tensors, F32, model weights (which
# scale each model's λ), its own clamp and keep through --config; 1 and 2 threads the same bits
cat >"$tmp/pcb.yaml" <<YAML
merge_method: pcb
base_model: $tmp/f/base
models:
  - {model: $tmp/f/ft0, parameters: {weight: 0.5}}
  - {model: $tmp/f/ft1}
  - {model: $tmp/f/ft2, parameters: {weight: 1.25}}
parameters: {clamp: 0.05, keep: 0.2}
YAML
merge --config "$tmp/pcb.yaml" --slice 333 --out "$tmp/o_pcb_cfg"
out=$(ref "$tmp/o_pcb_cfg" "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" pcb --weights 0.5,1,1.25 --set clamp=0.05 \
      --set keep=0.2) || fail "pcb config: $out"
echo "pcb config: $out"
"$bin" merge --quiet --threads 1 --config "$tmp/pcb.yaml" --out "$tmp/o_pcb_cfg1"
cmp -s "$tmp/o_pcb_cfg/model.safetensors" "$tmp/o_pcb_cfg1/model.safetensors" || fail "pcb: 1 and 2 threads differ"
# its order statistics by the radix passes alone (the bracketed mode's workspace over budget)
TTMERGE_SELECT_WORK=1 merge --config "$tmp/pcb.yaml" --out "$tmp/o_pcb_radix"
cmp -s "$tmp/o_pcb_cfg/model.safetensors" "$tmp/o_pcb_radix/model.safetensors" || fail "pcb: radix and bracketed differ"
# tatr's global threshold of Ω over slices that cut tensors, on F32 models with q = 20
check tatr-f32 tatr "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set q=20 --set lambda=0.6 -- \
  --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set q=20 --set lambda=0.6 --slice 333
# the kernels without AVX-512 (the scalar DARE hash, 8-wide sums): the same bits
for m in ta dare; do
  TTMERGE_ISA=avx2 check "$m-avx2" "$m" "$B" "$M" --seed 5 -- --base "$B" --models "$M" --shard-size 500KB --seed 5
done
check dare-ties dare "$B" "$M" --seed 9 --set base=ties --set topk=30 --set density=0.7 -- \
  --base "$B" --models "$M" --seed 9 --set base=ties --set topk=30 --set density=0.7 --slice 777
check ties-sum ties "$B" "$M" --set merge=sum --set topk=5 --set lambda=0.7 --dtype f16 -- \
  --base "$B" --models "$M" --set merge=sum --set topk=5 --set lambda=0.7 --dtype f16
check f16-f32 ties "$tmp/h/base" "$tmp/h/ft0,$tmp/h/ft1" --dtype f32 -- \
  --base "$tmp/h/base" --models "$tmp/h/ft0,$tmp/h/ft1" --dtype f32 --slice 100
for m in ties consensus-ties; do
  check "f32-$m" $m "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 -- \
    --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 --slice 333
done
# the thresholds by the two radix passes (the bracketed mode's workspace over budget), and in the
# bracketed mode at one thread (another split of the counting parts): the same bits
for m in ties consensus-ties; do
  TTMERGE_SELECT_WORK=1 check "f32-$m-radix" $m "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 -- \
    --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 --slice 333
done
TTMERGE_SELECT_WORK=1 check dare-ties-radix dare "$B" "$M" --seed 9 --set base=ties --set topk=30 --set density=0.7 -- \
  --base "$B" --models "$M" --seed 9 --set base=ties --set topk=30 --set density=0.7 --slice 777
check ties-1thread ties "$B" "$M" -- --base "$B" --models "$M" --threads 1
# the sample kept as a histogram (large models' kind): the same bits
for m in ties consensus-ties; do
  TTMERGE_SAMPLE_HIST=0 check "f32-$m-hist" $m "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 -- \
    --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=10 --slice 333
done
TTMERGE_SAMPLE_HIST=0 check ties-hist ties "$B" "$M" -- --base "$B" --models "$M"
# the SVD merges: BF16 shards with the defaults; F32 with α, the Iso-CTS fraction and model weights
# (through --config), on 2 threads and on 1 (each 2-D tensor whole on one thread: the same bits)
check cart-f32 cart "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set rank_ratio=0.3 --set lambda=1.5 -- \
  --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set rank_ratio=0.3 --set lambda=1.5 --slice 333
for m in tsv-m iso-c iso-cts cart; do
  check "$m" "$m" "$B" "$M" -- --base "$B" --models "$M" --shard-size 500KB
  cat >"$tmp/$m.yaml" <<YAML
merge_method: $m
base_model: $tmp/f/base
models:
  - model: $tmp/f/ft0
    parameters: {weight: 0.5}
  - model: $tmp/f/ft1
  - model: $tmp/f/ft2
    parameters: {weight: 1.25}
parameters: {alpha: 0.7, common_space_fraction: 0.5}
YAML
  merge --config "$tmp/$m.yaml" --out "$tmp/o_f$m"
  out=$(ref "$tmp/o_f$m" "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" $m --weights 0.5,1,1.25 --set alpha=0.7 \
        --set common_space_fraction=0.5) || fail "$m config: $out"
  echo "$m config: $out"
  "$bin" merge --quiet --threads 1 --config "$tmp/$m.yaml" --out "$tmp/o_f1$m"
  cmp -s "$tmp/o_f$m/model.safetensors" "$tmp/o_f1$m/model.safetensors" || fail "$m: 1 and 2 threads differ"
  # one matrix at a time on 2 threads (a memory budget below any matrix's): the same bits
  { cat "$tmp/$m.yaml"; echo "max_memory: 1KB"; } >"$tmp/$m-mem.yaml"
  merge --threads 2 --config "$tmp/$m-mem.yaml" --out "$tmp/o_fm$m"
  cmp -s "$tmp/o_f$m/model.safetensors" "$tmp/o_fm$m/model.safetensors" || fail "$m: max_memory 1KB differs"
done
merge --threads 2 --max-memory 1 --base "$B" --models "$M" --method tsv-m --shard-size 500KB --out "$tmp/o_tsvm_mem"
for f in "$tmp"/o_tsv-m/*.safetensors; do
  cmp -s "$f" "$tmp/o_tsvm_mem/$(basename "$f")" || fail "tsv-m: --max-memory 1 differs in $(basename "$f")"
done
# under --config the SVD merges keep their own default scale (MergeKit's λ = 1 is for its methods)
printf 'merge_method: cart\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\n' "$tmp/f/base" "$tmp/f/ft0" \
  "$tmp/f/ft1" >"$tmp/cart-default.yaml"
merge --config "$tmp/cart-default.yaml" --out "$tmp/o_cart_default"
out=$(ref "$tmp/o_cart_default" "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1" cart) || fail "cart's default λ under --config: $out"
echo "cart config default: $out"
# lata against numpy (its weights are a ranking of the tensors' scores: exact there), the statistics
# streamed a read of 2048 elements at a time (--slice 3000) and a chunk at a time; awd with the
# statistics streamed either way: the same bits
check lata-ref lata "$B" "$M" -- --base "$B" --models "$M" --slice 3000
check lata-f32 lata "$tmp/f/base" "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=30 --set gamma=0.25 -- \
  --base "$tmp/f/base" --models "$tmp/f/ft0,$tmp/f/ft1,$tmp/f/ft2" --set topk=30 --set gamma=0.25
for c in global layer; do
  merge --method awd --set cosine=$c --set iters=20 --out "$tmp/o_awd_$c" --base "$B" --models "$M"
  merge --method awd --set cosine=$c --set iters=20 --slice 3000 --out "$tmp/o_awd_${c}_s" --base "$B" --models "$M"
  for f in "$tmp/o_awd_$c"/*.safetensors; do
    cmp -s "$f" "$tmp/o_awd_${c}_s/$(basename "$f")" || fail "awd cosine=$c: --slice 3000 differs in $(basename "$f")"
  done
done
# awd and lata reduce to ta when their weights are all 1 (no AWD step; LATA's gamma = 1), on the
# sharded BF16 set, and run with their defaults (weights from the whole-tensor statistics pass)
merge --method ta --out "$tmp/o_ta1" --base "$B" --models "$M"
merge --method awd --set iters=0 --out "$tmp/o_awd0" --base "$B" --models "$M"
merge --method lata --set gamma=1 --out "$tmp/o_lata1" --base "$B" --models "$M"
merge --method awd --out "$tmp/o_awd" --base "$B" --models "$M"
merge --method lata --out "$tmp/o_lata" --base "$B" --models "$M"
$py - "$src" "$tmp" <<'PY' || fail "awd / lata against ta"
import sys
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import read_set
o = {n: read_set(f"{sys.argv[2]}/o_{n}") for n in ("ta1", "awd0", "lata1", "awd", "lata")}
same = lambda a, b: all(bytes(o[a][n][2]) == bytes(o[b][n][2]) for n in o[a])
bad = [x for x in ("awd0", "lata1") if not same("ta1", x)] + [x for x in ("awd", "lata") if same("ta1", x)]
print(f"awd, lata: ta with unit weights, another merge with their defaults; wrong: {bad}")
sys.exit(1 if bad else 0)
PY
# BF16 ta, consensus-ta and ties merge in registers 16 entries at a time: blocks of odd lengths (the tail)
for m in ta consensus-ta ties; do
  check "$m-tail" $m "$B" "$M" --set k=3 --set tall_lambda=0.4 -- --base "$B" --models "$M" --set k=3 \
    --set tall_lambda=0.4 --slice 777
done
# exact cancellations under a positive majority: the entries the fused pass could not decide, in F32
# and BF16 (TIES' in-register BF16 merge lists them itself)
$py - "$src" "$tmp/f" "$tmp/c" "$tmp/cb" <<'PY'
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import as_f32, bf16_rne, read_set, write_file
f, c, cb = sys.argv[2], sys.argv[3], sys.argv[4]
os.makedirs(c)
os.makedirs(cb)
base, ft = read_set(f + "/base"), [read_set(f"{f}/ft{k}") for k in range(2)]
b = {n: as_f32(e) for n, e in base.items() if e[0] == "F32"}
b["lm_head.weight"][:] = 0   # base 0 and τ1 = −τ0 there: every kept pair cancels exactly
t0 = {n: as_f32(ft[0][n]) for n in b}
m0 = {n: (b[n] + np.abs(t0[n] - b[n])).astype(np.float32) for n in b}
m1 = {n: (b[n] + np.abs(as_f32(ft[1][n]) - b[n])).astype(np.float32) for n in b}
m0["lm_head.weight"] = t0["lm_head.weight"]
m1["lm_head.weight"] = -t0["lm_head.weight"]
for name, d in (("base", b), ("ft0", m0), ("ft1", m1)):
    write_file(f"{c}/{name}.safetensors", {n: ("F32", x.shape, np.ascontiguousarray(x)) for n, x in d.items()})
    write_file(f"{cb}/{name}.safetensors", {n: ("BF16", x.shape, bf16_rne(x)) for n, x in d.items()})
PY
for set in c cb; do
  C=(--base "$tmp/$set/base.safetensors" --models "$tmp/$set/ft0.safetensors,$tmp/$set/ft1.safetensors" --set topk=30
     --slice 777) # blocks with tails
  for cap in 0 5; do
    for m in ties consensus-ties; do
      TTMERGE_UNDECIDED_CAP=$cap merge --method $m --out "$tmp/o_$set$cap$m" "${C[@]}"
      out=$($py "$src/tests/anymerge_ref.py" "$tmp/o_$set$cap$m" "$tmp/$set/base.safetensors" \
            "$tmp/$set/ft0.safetensors,$tmp/$set/ft1.safetensors" $m --set topk=30) || fail "cancellations: $out"
      grep -q "majority sign +1, [1-9]" <<<"$out" || fail "the cancellation case lost its point: $out"
      echo "cancellations ($set, cap $cap): $(tr '\n' ' ' <<<"$out")"
    done
  done
done
[[ $(ls "$tmp/o_ta" | grep -c '^model-.*-of-.*safetensors$') -ge 2 && -f $tmp/o_ta/model.safetensors.index.json ]] ||
  fail "--shard-size 500KB did not give an index and several shards"
cmp -s "$B/config.json" "$tmp/o_ta/config.json" || fail "the base's config.json was not copied"
[[ -f $tmp/o_f16-f32/model.safetensors ]] || fail "one shard is not model.safetensors"

# 2. --config
cat >"$tmp/c.yaml" <<YAML
merge_method: ties
base_model: $B
models:
  - model: $B
  - model: $tmp/m/ft0
    parameters: {weight: 0.5}
  - model: $tmp/m/ft1
    parameters: {weight: 1.5}
  - model: $tmp/m/ft2
parameters:
  density: 0.3
  lambda: 0.9
dtype: bfloat16
out_shard_size: 1MB
YAML
merge --config "$tmp/c.yaml" --out "$tmp/o_cfg"
out=$(ref "$tmp/o_cfg" "$B" "$M" ties --weights 0.5,1.5,1 --set topk=30 --set lambda=0.9) || fail "config: $out"
echo "config: $out"
# dare over ta with model weights and a density whose reciprocal is not exact (x / ρ divided): the
# one-pass BF16 kernel, against numpy, at both ISA levels
cat >"$tmp/d.yaml" <<YAML
merge_method: dare_linear
base_model: $B
models:
  - {model: $tmp/m/ft0, parameters: {weight: 0.5}}
  - {model: $tmp/m/ft1, parameters: {weight: 1.5}}
  - {model: $tmp/m/ft2}
parameters: {density: 0.3, lambda: 0.9}
seed: 4
YAML
for isa in avx512 avx2; do
  TTMERGE_ISA=$isa merge --config "$tmp/d.yaml" --out "$tmp/o_dcfg_$isa"
  out=$(ref "$tmp/o_dcfg_$isa" "$B" "$M" dare --seed 4 --weights 0.5,1.5,1 --set density=0.3 --set lambda=0.9) ||
    fail "dare config ($isa): $out"
  echo "dare config ($isa): $out"
done
cat >"$tmp/r.yaml" <<YAML
merge_method: task_arithmetic
base_model: $B
models:
  - {model: $tmp/m/ft0, parameters: {weight: [{filter: mlp, value: 0}, {value: 1}]}}
  - {model: $tmp/m/ft1, parameters: {weight: [{filter: mlp, value: 0}]}}
YAML
merge --config "$tmp/r.yaml" --out "$tmp/o_rule"
merge --base "$B" --models "$tmp/m/ft0,$tmp/m/ft1" --method ta --set lambda=1 --out "$tmp/o_norule"
$py - "$src" "$B" "$tmp/o_rule" "$tmp/o_norule" <<'PY' || fail "weight rules"
import sys
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import read_set
base, rule, norule = (read_set(p) for p in sys.argv[2:])
bad = 0
for n in base:
    want = base[n] if ".mlp." in n else norule[n]
    if bytes(want[2]) != bytes(rule[n][2]):
        print(f"{n}: not the {'base' if '.mlp.' in n else 'rule-free merge'}")
        bad += 1
print(f"weight rules: {len(base)} tensors, {bad} wrong")
sys.exit(1 if bad else 0)
PY

# 3. bad input: one line, exit 2, nothing left
expect_fail() { # WANT_SUBSTRING OUT -- ARGS
  local want=$1 out=$2; shift 3
  local st=0
  "$bin" merge --quiet --out "$out" "$@" 2>"$tmp/err" || st=$?
  ((st == 2)) || fail "exit $st (want 2) for: $* : $(cat "$tmp/err")"
  [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "not one line: $(cat "$tmp/err")"
  grep -qF -- "$want" "$tmp/err" || fail "message lacks '$want': $(cat "$tmp/err")"
  [[ ! -e $out ]] || [[ $want == "already exists" ]] || fail "$out was written"
  ! ls -d "$out".tmp.* 2>/dev/null || fail "a temporary directory was left"
  echo "refused: $(cat "$tmp/err")"
}
cp -r "$tmp/m/ft2" "$tmp/bad"
$py - "$src" "$tmp/bad" <<'PY'
import json, os, sys
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import read_file, write_file
d = sys.argv[2]
ix = json.load(open(d + "/model.safetensors.index.json"))
f = d + "/" + ix["weight_map"]["model.norm.weight"]
t = {n: (e[0], e[1], bytes(e[2])) for n, e in read_file(f).items()}
dt, shape, raw = t["model.norm.weight"]
t["model.norm.weight"] = (dt, (shape[0] // 2, 2), raw)   # same bytes, another shape
write_file(f, t)
PY
expect_fail "tensor model.norm.weight has shape [64] in" "$tmp/x1" -- --base "$B" --models "$tmp/m/ft0,$tmp/bad" --method ta
cp -r "$tmp/m/ft2" "$tmp/miss"
rm "$tmp/miss/$(ls "$tmp/miss" | grep -m1 'of-.*safetensors')"
expect_fail "$tmp/miss" "$tmp/x2" -- --base "$B" --models "$tmp/miss" --method ties
cp -r "$tmp/m/ft2" "$tmp/trunc"
f=$tmp/trunc/$(ls "$tmp/trunc" | grep -m1 'of-.*safetensors')
truncate -s $(($(stat -c %s "$f") - 100)) "$f"
expect_fail "$f" "$tmp/x3" -- --base "$B" --models "$tmp/trunc" --method ta
expect_fail "missing from" "$tmp/x4" -- --base "$B" --models "$tmp/h/ft0" --method ta
expect_fail "pcb: parameter clamp=0.5 leaves no entries" "$tmp/x14" -- --base "$B" --models "$M" --method pcb --set clamp=0.5
expect_fail "parameter keep=0: expected a number in (0, 1]" "$tmp/x15" -- --base "$B" --models "$M" --method pcb --set keep=0
expect_fail "--max-memory: 'lots' is not a size" "$tmp/x12" -- --base "$B" --models "$M" --method tsv-m --max-memory lots
printf 'merge_method: tsv-m\nbase_model: %s\nmodels:\n  - model: %s\nmax_memory: 0\n' "$B" "$tmp/m/ft0" >"$tmp/mem0.yaml"
expect_fail "max_memory '0' is not a size" "$tmp/x13" -- --config "$tmp/mem0.yaml"
expect_fail "is not in the base" "$tmp/x7" -- --base "$tmp/h/base" --models "$tmp/m/ft0" --method ta
cp -r "$tmp/m/ft2" "$tmp/nan"
$py - "$src" "$tmp/nan" <<'PY'
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import read_file, write_file
d = sys.argv[2]
f = d + "/" + json.load(open(d + "/model.safetensors.index.json"))["weight_map"]["lm_head.weight"]
t = {n: (e[0], e[1], np.array(e[2])) for n, e in read_file(f).items()}
t["lm_head.weight"][2].view(np.uint16)[77] = 0x7fc0   # a BF16 NaN
write_file(f, t)
PY
expect_fail "tensor lm_head.weight: element 77 is nan" "$tmp/x8" -- --base "$B" --models "$tmp/m/ft0,$tmp/nan" --method ties
# the same found inside a thread's chunk (the methods without TIES merge chunk by chunk)
expect_fail "tensor lm_head.weight: element 77 is nan" "$tmp/x9" -- --base "$B" --models "$tmp/m/ft0,$tmp/nan" --method ta
# ... and in a matrix an SVD merge reads whole on a thread
expect_fail "tensor lm_head.weight: element 77 is nan" "$tmp/x10" -- --base "$B" --models "$tmp/m/ft0,$tmp/nan" --method tsv-m
expect_fail "$f" "$tmp/x11" -- --base "$B" --models "$tmp/trunc" --method iso-c
expect_fail "tatr merges over ta here" "$tmp/x12" -- --base "$B" --models "$M" --method tatr --set base=ties
mkdir "$tmp/exists"
expect_fail "already exists" "$tmp/exists" -- --base "$B" --models "$M" --method ta
printf 'merge_method: ties\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: [0.1, 0.5]}\n' "$B" "$tmp/m/ft0" >"$tmp/bad.yaml"
expect_fail "line 5" "$tmp/x5" -- --config "$tmp/bad.yaml"
printf 'merge_method: ties\nbase_model: %s\nslices: []\nmodels: []\n' "$B" >"$tmp/bad2.yaml"
expect_fail "slices" "$tmp/x6" -- --config "$tmp/bad2.yaml"

# 4. interrupted writes leave no model
st=0
(ulimit -f 200; exec "$bin" merge --quiet --base "$B" --models "$M" --method ta --out "$tmp/fsz") 2>"$tmp/err" || st=$?
((st != 0)) || fail "a 100 KiB file-size limit did not stop the merge"
grep -q "File too large" "$tmp/err" || fail "RLIMIT_FSIZE: $(cat "$tmp/err")"
[[ ! -e $tmp/fsz ]] && ! ls -d "$tmp"/fsz.tmp.* 2>/dev/null || fail "RLIMIT_FSIZE left output"
echo "file-size limit: $(cat "$tmp/err")"
mkdir "$tmp/full"
if mount -t tmpfs -o size=1M tmpfs "$tmp/full" 2>/dev/null; then
  st=0
  "$bin" merge --quiet --base "$B" --models "$M" --method ties --out "$tmp/full/o" 2>"$tmp/err" || st=$?
  ((st != 0)) && grep -q "No space left" "$tmp/err" || fail "full disk: exit $st: $(cat "$tmp/err")"
  [[ -z $(ls -A "$tmp/full") ]] || fail "full disk left $(ls "$tmp/full")"
  echo "full disk: $(cat "$tmp/err")"
  umount "$tmp/full"
else
  echo "full disk: skipped (no tmpfs mount here)"
fi
# SIGKILL at the moment the temporary directory appears: OUT is then absent, or (when the merge won
# the race) complete and equal to an uninterrupted merge; at least one of the attempts must land
# mid-merge, so the property is exercised whatever the machine's speed.
"$bin" merge --quiet --base "$B" --models "$M" --method ties --slice 64 --out "$tmp/killed-ref"
mid=0
for ((try = 0; try < 10 && mid < 2; try++)); do
  rm -rf "$tmp"/killed "$tmp"/killed.tmp.*
  "$bin" merge --quiet --base "$B" --models "$M" --method ties --slice 64 --out "$tmp/killed" &
  pid=$!
  for ((i = 0; i < 2000; i++)); do ls -d "$tmp"/killed.tmp.* >/dev/null 2>&1 && break; sleep 0.005; done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  if [[ -e $tmp/killed ]]; then
    diff -r "$tmp/killed" "$tmp/killed-ref" >/dev/null || fail "a merge SIGKILLed after it finished left a model unlike the uninterrupted one"
  else
    mid=$((mid + 1))
  fi
done
((mid > 0)) || fail "no SIGKILL landed mid-merge in 10 attempts"
echo "SIGKILL mid-merge: nothing at OUT in $mid of $try attempts (the others had finished: complete and equal)"
# A shard truncated to its header after the merge opened it: the read that comes up short is one
# line naming the file, exit 2, and no model nor temporary directory is left. The truncation races
# the merge as the SIGKILL above does: at least one attempt must land mid-merge.
cp -r "$tmp/m/ft2" "$tmp/tr0"
hdrs=()
for f in "$tmp"/tr0/*.safetensors; do
  hdrs+=("$(basename "$f"):$($py -c "import struct, sys; print(8 + struct.unpack('<Q', open(sys.argv[1], 'rb').read(8))[0])" "$f")")
done
mid=0
for ((try = 0; try < 10 && mid < 2; try++)); do
  rm -rf "$tmp"/tr "$tmp"/trout "$tmp"/trout.tmp.*
  cp -r "$tmp/tr0" "$tmp/tr"
  st=0
  "$bin" merge --quiet --base "$B" --models "$tmp/m/ft0,$tmp/tr" --method ta --slice 64 --out "$tmp/trout" 2>"$tmp/err" &
  pid=$!
  for ((i = 0; i < 2000; i++)); do ls -d "$tmp"/trout.tmp.* >/dev/null 2>&1 && break; sleep 0.005; done
  for h in "${hdrs[@]}"; do truncate -s "${h#*:}" "$tmp/tr/${h%%:*}"; done
  wait $pid || st=$?
  if ((st == 0)); then
    [[ -d $tmp/trout ]] || fail "a merge that succeeded left no output"
    continue
  fi
  ((st == 2)) || fail "truncated mid-merge: exit $st (want 2): $(cat "$tmp/err")"
  [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "truncated mid-merge: not one line: $(cat "$tmp/err")"
  grep -q "$tmp/tr/model-.*ended early" "$tmp/err" || fail "truncated mid-merge: the message does not name the shard: $(cat "$tmp/err")"
  [[ ! -e $tmp/trout ]] && ! ls -d "$tmp"/trout.tmp.* 2>/dev/null || fail "truncated mid-merge: output left"
  mid=$((mid + 1))
  msg=$(cat "$tmp/err")
done
((mid > 0)) || fail "no truncation landed mid-merge in 10 attempts"
echo "shard truncated mid-merge ($mid of $try attempts): $msg"

# 5. the suite's merges
if [[ -n $suite ]]; then
  models=$($py -c "import json,sys; s=json.load(open(sys.argv[1]+'/suite.json')); print(','.join(sys.argv[1]+'/'+t['finetuned']['full'] for t in s['tasks']))" "$suite")
  # awd with cosine=layer only for 10 steps: its 300 plain steps are chaotic there, and the suite sums
  # the tensors' groups in its layout's order, this path in the files' (name) order
  for m in ta ties dare consensus-ta consensus-ties tsv-m iso-c iso-cts cart pcb awd awd-layer lata tatr; do
    scale=lambda extra=()
    [[ $m == tsv-m || $m == iso-c* ]] && scale=alpha
    [[ $m == consensus* ]] && extra=(--set tall_lambda=0.6)
    [[ $m == awd-layer ]] && extra=(--set cosine=layer --set iters=10 --set update=prox)
    merge --suite "$suite" --method ${m%-layer} --set $scale=0.3 "${extra[@]}" --out "$tmp/s_$m.safetensors"
    merge --base "$suite/pretrained.safetensors" --models "$models" --method ${m%-layer} --set $scale=0.3 "${extra[@]}" \
      --out "$tmp/a_$m"
    $py - "$src" "$tmp/s_$m.safetensors" "$tmp/a_$m" "$m" <<'PY' || fail "suite path differs"
import sys
sys.path.insert(0, sys.argv[1] + "/bench/anymerge")
from st_numpy import read_set
a, b = read_set(sys.argv[2]), read_set(sys.argv[3])
a = {n: e for n, e in a.items() if not n.startswith("ttmerge.")}  # the suite's records (awd's coefficients)
bad = [n for n in a if n not in b or bytes(a[n][2]) != bytes(b[n][2])]
print(f"suite {sys.argv[4]}: {len(a)} tensors, {len(bad)} differ {bad[:3]}")
sys.exit(1 if bad or len(a) != len(b) else 0)
PY
  done
fi
echo "anymerge: OK"
