#!/usr/bin/env bash
# ulimit_oom.sh BIN TINY_SUITE — out of memory is reported, never a crash. `ttmerge merge` (TA,
# AdaMerging) and `ttmerge eval` run under address-space limits (ulimit -v) stepping from the
# least the dynamic loader needs up to where they succeed: every run must either succeed, or
# exit 3 with ONE stderr line saying "out of memory" and leave no output file. Both outcomes
# must occur, or the sweep proved nothing; the ten limits above the first success must succeed.
# (Not run under ASan: its shadow memory cannot be mapped under ulimit -v.)
set -uo pipefail
bin=$1 suite=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
step=2000 top=400000   # KB

limited() { local kb=$1; shift; bash -c 'ulimit -v "$0"; exec "$@"' "$kb" "$@"; }

# The least limit at which the binary starts at all (below it ld.so fails to map libdnnl: 127).
lo=
for ((kb = 20000; kb <= 200000; kb += 2000)); do
  if limited $kb "$bin" --help >/dev/null 2>&1; then lo=$kb; break; fi
done
[[ -n $lo ]] || { echo "FAIL: ttmerge --help does not start under 200 MB"; exit 1; }
echo "the loader needs ~$((lo / 1000)) MB; sweeping from there in $((step / 1000)) MB steps"

fail=0
sweep() {  # sweep NAME OUTPUT ARGS...
  local name=$1 out=$2 oom=0 ok=0
  shift 2
  for ((kb = lo; kb <= top; kb += step)); do
    rm -f "$out"
    limited $kb "$bin" "$@" >/dev/null 2>"$tmp/err"
    local st=$? lines
    lines=$(wc -l <"$tmp/err")
    if ((st == 0)); then
      ok=1
      break
    elif ((st == 3)) && ((lines == 1)) && grep -q 'out of memory' "$tmp/err"; then
      oom=$((oom + 1))
      if [[ $out != - && -e $out ]]; then echo "FAIL: $name at $kb KB: out of memory but $out written"; fail=1; fi
    else
      echo "FAIL: $name under ulimit -v $kb: exit $st, $lines stderr line(s):"
      head -5 "$tmp/err"
      fail=1
    fi
  done
  if ((ok == 0 || oom == 0)); then
    echo "FAIL: $name: $oom out-of-memory exits, success reached: $ok (the sweep must see both)"
    fail=1
    return
  fi
  echo "ok: $name: $oom clean out-of-memory exits, then success at $((kb / 1000)) MB"
  # Just above the first success, where a run's address space is tightest: ten more limits must
  # all succeed (a crash there was random, ~5% of runs, before one malloc arena: core/threads.c).
  local first=$kb
  for ((kb = first + step; kb <= first + 10 * step; kb += step)); do
    rm -f "$out"
    limited $kb "$bin" "$@" >/dev/null 2>"$tmp/err"
    local st=$?
    if ((st != 0)); then
      echo "FAIL: $name under ulimit -v $kb (above a success at $first): exit $st"
      head -5 "$tmp/err"
      fail=1
    fi
  done
}

sweep "merge ta" "$tmp/ta.safetensors" merge --suite "$suite" --method ta --out "$tmp/ta.safetensors" --quiet --threads 2
sweep "merge adamerging" "$tmp/ada.safetensors" merge --suite "$suite" --method adamerging --set steps=3 \
      --out "$tmp/ada.safetensors" --quiet --threads 2
sweep "eval --suite" - eval --suite "$suite" --model "$suite/pretrained.safetensors" --threads 1
exit $fail
