#!/usr/bin/env python3
"""layering.py — dependencies point one way, and no two modules need each other.

    core <- data <- baselines <- adamerge <- tint <- bench (the grid) <- cli (the program)
    core <- reports (reads results files; knows no model, data set or method)

Checked two ways, so that neither a header nor a function declared in the wrong place slips by:
  1. every `#include "DIR/..."` in SRC/DIR2/*.{c,h} names a folder DIR2 may depend on;
  2. in the built libraries (nm), every undefined symbol of an object that another ttmerge object
     defines is a dependency object -> object: it must respect the folders, and the graph of
     objects must have no cycle (a.c calling b.c calling a.c means they are one module, or that a
     function lives in the wrong file).

usage: layering.py SOURCE_DIR BUILD_DIR      (exit 0 clean, 1 with one line per violation)
"""
import os
import re
import subprocess
import sys

ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "reports": {"core", "reports"},
    "baselines": {"core", "data", "baselines"},
    "adamerge": {"core", "data", "baselines", "adamerge"},
    "tint": {"core", "data", "baselines", "adamerge", "tint"},
    "bench": {"core", "data", "baselines", "adamerge", "tint", "reports", "bench"},
    "cli": {"core", "data", "baselines", "adamerge", "tint", "reports", "bench", "cli"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def include_violations(src):
    out = []
    for folder, ok in ALLOWED.items():
        d = os.path.join(src, folder)
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            text = open(os.path.join(d, name), encoding="utf-8").read()
            for dep in INCLUDE.findall(text):
                if dep in ALLOWED and dep not in ok:
                    out.append(f"{folder}/{name}: includes {dep}/ (a {folder}/ file may use only {', '.join(sorted(ok))})")
    return out


def library_symbols(build):
    """{object: (folder, defined set, undefined set)} from every libttm_<folder>.a."""
    objs = {}
    for folder in ALLOWED:
        lib = os.path.join(build, f"libttm_{folder}.a")
        if not os.path.exists(lib):
            continue
        text = subprocess.run(["nm", "-A", "--defined-only", "-g", lib], capture_output=True, text=True,
                              check=True).stdout
        und = subprocess.run(["nm", "-A", "-u", lib], capture_output=True, text=True, check=True).stdout
        for kind, listing in (("def", text), ("und", und)):
            for line in listing.splitlines():
                m = re.match(r"^[^:]+:([^:]+):\s*(?:[0-9a-f]+\s+)?(\w)\s+(\S+)$", line)
                if not m:
                    continue
                member, sym = m.group(1), m.group(3)
                key = f"{folder}/{member.replace('.c.o', '.c')}"
                entry = objs.setdefault(key, (folder, set(), set()))
                entry[1 if kind == "def" else 2].add(sym)
    return objs


def object_graph(objs):
    owner = {}
    for key, (_, defined, _) in objs.items():
        for sym in defined:
            owner[sym] = key
    edges = {key: set() for key in objs}
    for key, (_, _, undefined) in objs.items():
        for sym in undefined:
            if sym in owner and owner[sym] != key:
                edges[key].add(owner[sym])
    return edges


def cycles(edges):
    """Strongly connected components with more than one object (Tarjan, iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                    stack.append(nxt); on.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    v = stack.pop(); on.discard(v); comp.append(v)
                    if v == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src, build = sys.argv[1], sys.argv[2]
    bad = include_violations(src)
    objs = library_symbols(build)
    if not objs:
        print(f"layering: {build}: no libttm_*.a found (build first)", file=sys.stderr)
        return 2
    edges = object_graph(objs)
    for a in sorted(edges):
        for b in sorted(edges[a]):
            fa, fb = a.split("/")[0], b.split("/")[0]
            if fb not in ALLOWED[fa]:
                bad.append(f"{a}: calls into {b} (a {fa}/ file may use only {', '.join(sorted(ALLOWED[fa]))})")
    for comp in cycles(edges):
        bad.append("cycle between " + " <-> ".join(comp))
    for line in bad:
        print("layering: " + line)
    n = sum(len(v) for v in edges.values())
    print(f"layering: {len(objs)} objects, {n} object dependencies, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
