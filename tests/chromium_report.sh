#!/bin/sh
# chromium_report.sh — render a report.html in headless Chromium and check that the charts drew.
#
#   tests/chromium_report.sh [TTMERGE_BIN]        # default: $TTMERGE_BIN, else build/ttmerge
#   KEEP=DIR tests/chromium_report.sh              # keep the results dir + screenshot in DIR
#
# Builds a crafted results directory (9 methods incl. the two references, 5 tasks, one failed
# method, a name that needs HTML escaping, adaptation curves for 3 methods), runs
# `ttmerge report` on it, screenshots report.html at 1200x2400 with Chromium (no network, no
# GPU, throw-away profile) and decodes the PNG with a small stdlib-only Python decoder to assert:
# the image is not blank (many distinct colours) and the chart palette is really painted
# (>= 6 palette colours, each covering >= 3000 px: bars, not the 10 px table swatches). Installs Debian's `chromium` with
# apt-get when missing (root only); exits 77 (skipped) when it cannot.
# Exit: 0 ok, 1 check failed, 2 usage/setup error, 77 skipped.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-${TTMERGE_BIN:-$here/build/ttmerge}}
[ -x "$bin" ] || { echo "chromium_report: $bin: not an executable (build first or pass TTMERGE_BIN)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "chromium_report: python3 is needed" >&2; exit 77; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "chromium_report: installing Debian's chromium (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || true
        browser=$(command -v chromium || true)
    fi
    [ -n "$browser" ] || { echo "chromium_report: chromium not available: skipped" >&2; exit 77; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ttmerge-chromium-XXXXXX")
profile=$(mktemp -d "${TMPDIR:-/tmp}/ttmerge-chromium-profile-XXXXXX")
cleanup() {
    rm -rf "$profile"
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$work"/. "$KEEP"/ && echo "chromium_report: kept in $KEEP" >&2; fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---- a crafted results directory ----------------------------------------------------------
python3 - "$work" <<'EOF'
import math, os, sys
d = sys.argv[1]
tasks = ["mnist", "fashion", "digits", "mnist-rot", "fashion-inv"]
#           method, base accuracy, seconds, status
methods = [("zeroshot", 41, 0.0, "ok"), ("individual", 96, 0.0, "ok"), ("ta", 71, 1.4, "ok"),
           ("ties", 74, 2.9, "ok"), ("consensus-ta", 73, 3.6, "ok"), ("dare", 69, 1.8, "ok"),
           ("adamerging", 84, 310.0, "ok"), ("tinting", 89, 420.0, "ok"), ("<b>lata</b> & co", 72, 4.4, "ok"),
           ("graft", 0, 25.0, "failed")]
def q(s): return '"' + s.replace('"', '""') + '"'
rows = ["suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,seed,status,error"]
for k, (m, base, sec, st) in enumerate(methods):
    for j, t in enumerate(tasks):
        wobble = 6 * math.sin(1.7 * k + 2.3 * j)
        acc = min(100.0, max(0.0, base + wobble))
        ind = min(100.0, 96 + 2 * math.sin(j))
        a, n, err = ("%.4f" % acc, "%.4f" % (100 * acc / ind), "") if st == "ok" else ("", "", "graft: empty mask for " + t)
        rows.append(",".join([q("vision5"), q(m), q('{"lambda":0.3,"note":"a, \\"b\\""}' if m == "ta" else "{}"), q(t), a, n,
                              "%.3f" % sec, "%.1f" % (200 + 40 * k), q("b970e6d"), "2", "0", q(st), q(err)]))
open(os.path.join(d, "results.csv"), "w").write("\n".join(rows) + "\n")
os.makedirs(os.path.join(d, "curves"))
for m, s in [("adamerging", 1.0), ("tinting", 1.25), ("ties", 0.7)]:
    with open(os.path.join(d, "curves", m + ".csv"), "w") as f:
        f.write("step,loss,entropy,accuracy\n")
        for step in range(0, 301, 3):
            e = 0.25 + 1.5 * s * math.exp(-step / (60 * s))
            f.write("%d,%.4f,%.4f,%s\n" % (step, e, e, "" if step % 30 else "%.2f" % (70 + step / 20)))
EOF

"$bin" report "$work" --quiet || { echo "chromium_report: ttmerge report failed" >&2; exit 1; }
n_svg=$(grep -o '<svg' "$work/report.html" | wc -l)
[ "$n_svg" -eq 3 ] || { echo "chromium_report: expected 3 <svg> in report.html, found $n_svg" >&2; exit 1; }

# ---- render -------------------------------------------------------------------------------
png="$work/report.png"
timeout 180 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --screenshot="$png" --window-size=1200,2400 \
    "file://$work/report.html" >"$work/chromium.log" 2>&1 || true
[ -s "$png" ] || { echo "chromium_report: no screenshot (see chromium log below)" >&2; tail -5 "$work/chromium.log" >&2; exit 1; }

# ---- check the pixels -----------------------------------------------------------------------
python3 - "$png" <<'EOF'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("chromium_report: %s is not a PNG" % path)
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, = struct.unpack(">I", data[pos:pos + 4]); kind = data[pos + 4:pos + 8]; body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b"IHDR": hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT": idat += body
w, h, depth, ctype, _, _, interlace = hdr
if depth != 8 or ctype not in (2, 6) or interlace:
    sys.exit("chromium_report: unsupported PNG (depth %d, colour type %d, interlace %d)" % (depth, ctype, interlace))
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, i, counts = bytearray(stride), 0, {}
for y in range(h):
    f = raw[i]; i += 1
    cur = bytearray(raw[i:i + stride]); i += stride
    if f == 1:
        for x in range(bpp, stride): cur[x] = (cur[x] + cur[x - bpp]) & 255
    elif f == 2:
        for x in range(stride): cur[x] = (cur[x] + prev[x]) & 255
    elif f == 3:
        for x in range(stride): cur[x] = (cur[x] + (((cur[x - bpp] if x >= bpp else 0) + prev[x]) >> 1)) & 255
    elif f == 4:
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(cur[x:x + 3])
        counts[px] = counts.get(px, 0) + 1
    prev = cur
palette = ["4e79a7", "f28e2b", "e15759", "76b7b2", "59a14f", "edc948", "b07aa1", "ff9da7", "a0a0a0", "4a4a4a"]
painted = {c: counts.get(bytes.fromhex(c), 0) for c in palette}
solid = [c for c, n in painted.items() if n >= 3000]  # bars; the table swatches are ~100 px each
print("chromium_report: %dx%d PNG, %d distinct colours; palette pixels: %s" %
      (w, h, len(counts), ", ".join("#%s=%d" % kv for kv in painted.items())))
white = counts.get(b"\xff\xff\xff", 0) / float(w * h)
if len(counts) < 50 or white > 0.97:
    sys.exit("chromium_report: the screenshot looks blank (%d colours, %.1f%% white)" % (len(counts), 100 * white))
if len(solid) < 6:
    sys.exit("chromium_report: only %d chart colours painted (want >= 6): the SVG charts did not render" % len(solid))
print("chromium_report: ok")
EOF
