#!/usr/bin/python3
"""image_throughput.py — decode + CLIP preprocessing throughput: `ttmerge data prepare` vs
Pillow + torchvision, on the same JPEG folder, in interleaved rounds (medians reported).

  /usr/bin/python3 bench/image_throughput.py --ttmerge build/ttmerge [--n 600] [--rounds 5] [--threads 2]

The folder (ImageFolder layout) is generated once from Fashion-MNIST: images upscaled to
300..500 px per side, colourised with texture, saved as JPEG quality 90 (4:2:0), the size
range of typical photo data sets. Both sides produce the same float32 [n,3,224,224] array
(checked bit-identical once) and write it to a .npy file in the same directory:

  ttmerge   `ttmerge data prepare --input DIR --preprocess clip --out X.npy --threads T --quiet`
            (OpenMP over images, T threads)
  peer      torch DataLoader(ImageFolder(DIR, CLIP's transform), batch_size=64, num_workers=T),
            each worker with torch.set_num_threads(1), batches copied into one preallocated
            array, then np.save: the standard way of running this transform on T cores.

Each round runs both (order alternating). ttmerge's time is the wall time of the process; the
peer's is measured inside it from the ImageFolder scan to the end of np.save, so Python's and
torch's import time is NOT counted against it (it is printed separately). Run with OMP_WAIT_POLICY=passive on an otherwise idle machine; the
ratio of the medians is the figure that means something. On a shared machine the CPU seconds
(user + system of each process tree; the peer's import CPU measured by an import-only run and
subtracted) are the steadier figure and are printed too.
"""
import argparse
import gzip
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def generate(root, n, seed):
    from PIL import Image
    rng = np.random.default_rng(seed)
    with gzip.open(FMNIST, "rb") as f:
        _, m, h, w = struct.unpack(">IIII", f.read(16))
        imgs = np.frombuffer(f.read(m * h * w), np.uint8).reshape(m, h, w)
    for i in range(n):
        g = Image.fromarray(imgs[int(rng.integers(m))])
        W, H = int(rng.integers(300, 501)), int(rng.integers(300, 501))
        t = np.asarray(g.resize((W, H), Image.BICUBIC)).astype(np.float64)[..., None] / 255
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        rgb = c0 * (1 - t) + c1 * t + rng.normal(0, 12, (H, W, 3))
        d = os.path.join(root, f"class{i % 10}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


PEER = r"""
import sys, time, numpy as np, torch
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
root, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
if root == "--imports-only":
    sys.exit(0)
tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                lambda im: im.convert("RGB"), T.ToTensor(),
                T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
t0 = time.perf_counter()
ds = ImageFolder(root, transform=tf)
x = np.empty((len(ds), 3, 224, 224), np.float32)
dl = DataLoader(ds, batch_size=64, num_workers=workers, worker_init_fn=lambda _: torch.set_num_threads(1))
i = 0
for xb, _ in dl:
    x[i:i + len(xb)] = xb.numpy()
    i += len(xb)
np.save(out, x)
print(time.perf_counter() - t0)
"""


def timed(cmd, env):
    """(wall time of the process, the time it reports on stdout or that wall time, CPU seconds
    of the process and its children: user + system)"""
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    return wall, float(r.stdout) if r.stdout.strip() else wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttmerge", required=True)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--dir", help="generate into (or reuse) this directory")
    a = ap.parse_args()
    env = dict(os.environ, OMP_WAIT_POLICY="passive", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="ttmerge-imgbench-") as tmp:
        root = a.dir or os.path.join(tmp, "folder")
        if not os.path.isdir(root) or not os.listdir(root):
            os.makedirs(root, exist_ok=True)
            generate(root, a.n, a.seed)
        xo, po = os.path.join(tmp, "ttmerge.npy"), os.path.join(tmp, "peer.npy")
        peer = os.path.join(tmp, "peer.py")
        open(peer, "w").write(PEER)
        ours_cmd = [a.ttmerge, "data", "prepare", "--input", root, "--preprocess", "clip", "--out", xo,
                    "--threads", str(a.threads), "--quiet"]
        peer_cmd = [sys.executable, peer, root, po, str(a.threads)]
        n = sum(len(fs) for _, _, fs in os.walk(root))
        ours, theirs, startup, ours_cpu, theirs_cpu = [], [], [], [], []
        for r in range(a.rounds):
            for side in ([0, 1] if r % 2 == 0 else [1, 0]):
                if side == 0:
                    wall, _, cpu = timed(ours_cmd, env)
                    ours.append(wall)
                    ours_cpu.append(cpu)
                else:
                    wall, inner, cpu = timed(peer_cmd, env)
                    imports_cpu = timed([sys.executable, peer, "--imports-only", po, "0"], env)[2]
                    theirs.append(inner)
                    startup.append(wall - inner)
                    theirs_cpu.append(cpu - imports_cpu)
            print(f"round {r + 1}: ttmerge {n / ours[-1]:.0f} images/s, Pillow+torchvision {n / theirs[-1]:.0f} "
                  f"images/s (+{startup[-1]:.1f} s of imports), ratio {theirs[-1] / ours[-1]:.2f}; CPU seconds "
                  f"{ours_cpu[-1]:.2f} vs {theirs_cpu[-1]:.2f} (imports subtracted), ratio "
                  f"{theirs_cpu[-1] / ours_cpu[-1]:.2f}", flush=True)
            if r == 0:
                same = np.array_equal(np.load(xo), np.load(po))
                print(f"outputs bit-identical: {same}")
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"{n} JPEGs 300-500 px -> [n,3,224,224] float32 .npy, {a.threads} threads/workers, {a.rounds} rounds:")
        print(f"  ttmerge data prepare       median {mo:.2f} s  {n / mo:.0f} images/s")
        print(f"  Pillow+torchvision loader  median {mt:.2f} s  {n / mt:.0f} images/s "
              f"(imports not counted: median {statistics.median(startup):.1f} s)")
        print(f"  ratio {mt / mo:.2f}x (wall);  CPU time per image: ttmerge "
              f"{1e3 * statistics.median(ours_cpu) / n:.2f} ms, peer {1e3 * statistics.median(theirs_cpu) / n:.2f} ms, "
              f"ratio {statistics.median(theirs_cpu) / statistics.median(ours_cpu):.2f}x")


if __name__ == "__main__":
    main()
