#!/usr/bin/env bash
# clip_tokenizer_ref.sh TTMERGE SRC WORK STEP — ttmerge tokenize against the Python reference
# (tests/clip_tokenizer_ref.py), ids compared exactly.
#   make      learn a vocabulary, write the strings and the reference ids into WORK (a fixture)
#   openclip  the open_clip .txt.gz (also as plain text and as its directory): 77-id rows, pad 0
#   hf        vocab.json + merges.txt: 77-id rows, pad = eot
#   sweep     every code point in letter/digit/space contexts, unpadded
set -euo pipefail
bin=$1 src=$2 work=$3 step=$4
py=/usr/bin/python3
ref=$src/tests/clip_tokenizer_ref.py

# compare GOT EXPECTED CASES MIN_LINES: identical, and at least MIN_LINES strings
compare() {
  local got=$1 want=$2 cases=$3 min=$4 n
  n=$(wc -l < "$want")
  if (( n < min )); then echo "FAIL: $want has $n strings, expected at least $min" >&2; exit 1; fi
  if ! cmp -s "$got" "$want"; then
    "$py" - "$got" "$want" "$cases" <<'PY' >&2
import sys
got = open(sys.argv[1]).read().splitlines()
want = open(sys.argv[2]).read().splitlines()
cases = open(sys.argv[3], "rb").read().split(b"\0")
bad = [i for i in range(len(want)) if i >= len(got) or got[i] != want[i]]
print("FAIL: %d of %d strings differ (%d lines out)" % (len(bad), len(want), len(got)))
for i in bad[:8]:
    print(repr(cases[i].decode("utf-8")))
    print("  got ", got[i] if i < len(got) else "(none)")
    print("  want", want[i])
PY
    exit 1
  fi
  echo "ok: $n strings, ids identical ($(basename "$got"))"
}

oc=$work/openclip/bpe_simple_vocab_16e6.txt.gz
case $step in
  make)
    rm -rf "$work" && mkdir -p "$work"
    "$py" "$ref" make "$work"
    ;;
  openclip)
    "$bin" tokenize --vocab "$oc" --input "$work/cases.bin" --null > "$work/got_openclip.txt"
    compare "$work/got_openclip.txt" "$work/expected_openclip.txt" "$work/cases.bin" 2000
    gzip -dc "$oc" > "$work/plain_vocab.txt"
    "$bin" tokenize --vocab "$work/plain_vocab.txt" --input "$work/cases.bin" --null > "$work/got_plain.txt"
    compare "$work/got_plain.txt" "$work/expected_openclip.txt" "$work/cases.bin" 2000
    "$bin" tokenize --vocab "$work/openclip" --input - --null < "$work/cases.bin" > "$work/got_dir.txt"
    compare "$work/got_dir.txt" "$work/expected_openclip.txt" "$work/cases.bin" 2000
    # line mode, texts holding NUL (compare() splits the cases at NUL: show them as lines)
    "$bin" tokenize --vocab "$oc" --input "$work/cases_lines.txt" > "$work/got_lines.txt"
    tr '\n\0' '\0\1' < "$work/cases_lines.txt" > "$work/cases_lines.bin"
    compare "$work/got_lines.txt" "$work/expected_lines.txt" "$work/cases_lines.bin" 200
    ;;
  hf)
    "$bin" tokenize --vocab "$work/hf" --pad eot --input "$work/cases.bin" --null > "$work/got_hf.txt"
    compare "$work/got_hf.txt" "$work/expected_hf.txt" "$work/cases.bin" 2000
    "$bin" tokenize --vocab "$work/hf/vocab.json" --pad eot --input "$work/cases.bin" --null > "$work/got_hf_json.txt"
    compare "$work/got_hf_json.txt" "$work/expected_hf.txt" "$work/cases.bin" 2000
    ;;
  sweep)
    "$py" "$ref" sweep "$work"
    "$bin" tokenize --vocab "$oc" --context-length 0 --input "$work/sweep.bin" --null > "$work/got_sweep.txt"
    compare "$work/got_sweep.txt" "$work/expected_sweep.txt" "$work/sweep.bin" 65000
    ;;
  *) echo "clip_tokenizer_ref.sh: unknown step '$step'" >&2; exit 2 ;;
esac
