"""Larger than memory, at full speed (issue 34): an image folder decoded once into a uint8 cache on disk
(cnnlab/data/diskcache.py) and trained through the page cache, against the in-memory path.

    python bench/big_folder.py generate DIR [--n 100000] [--size 128]   # parallel, resumable
    python bench/big_folder.py measure DIR [--steps 40] [--repeats 3]

`generate` writes N JPEGs (quality 90) into DIR/<class>/: CIFAR-10 training images (10 classes) and
Fashion-MNIST training images as RGB (10 more), each upscaled bilinearly from 32 or 28 px to `size`.
`measure` prints the machine, then
  (a) first-load decode images/s: cnnlab's cache build (every core) against a plain single-process PIL loop
      over a sample of the files;
  (b) steady training images/s of a small net for a fixed number of steps, memmap path against in-memory
      path, interleaved in the same invocation (medians and their ratio): the machine is shared, so only the
      ratio means anything;
  (c) peak RSS (VmHWM) of each path's training process against the decoded set's size;
and writes docs/results/big_folder-N.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("CNNLAB_DATA_DIR", "/work/shared/datasets"))


# ---------------------------------------------------------------- (a) the folder

def _sources():
    """(images uint8 (N, 3, h, w), labels, class names) of the two training sets, CIFAR-10 first."""
    import numpy as np
    from cnnlab.data import readers
    from cnnlab.data.catalog import SOURCES
    (cx, cy), _, cnames = readers.read_cifar10(DATA / "cifar-10-batches-py")
    (fx, fy), _, _ = readers.read_idx(DATA / "fashion-mnist")
    fnames = SOURCES["fashion-mnist"].classes
    return [(cx, cy, ["cifar-" + str(c) for c in (cnames or range(10))]),
            (np.repeat(fx, 3, axis=1), fy, ["fashion-" + str(c).replace("/", "-") for c in fnames])]


_SOURCES: list = []


def _write_range(args) -> int:
    """Images start..stop of the interleaved order written as JPEGs; existing ones kept (resumable)."""
    root, size, start, stop = args
    from PIL import Image
    sources = _SOURCES  # read once by the parent; the forked workers share it
    written = 0
    for i in range(start, stop):
        x, y, names = sources[i % 2]
        j = i // 2
        path = Path(root) / names[int(y[j])] / f"{i:06d}.jpg"
        if path.exists():
            continue
        img = Image.fromarray(x[j].transpose(1, 2, 0)).resize((size, size), Image.BILINEAR)
        tmp = path.with_suffix(".tmp")
        img.save(tmp, "JPEG", quality=90)
        os.replace(tmp, path)  # a killed generation leaves no half JPEG: the next run writes it again
        written += 1
    return written


def generate(root: Path, n: int, size: int, procs: int) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    global _SOURCES
    _SOURCES = sources = _sources()
    limit = 2 * min(len(s[0]) for s in sources)
    if n > limit:
        raise SystemExit(f"--n {n}: at most {limit:,} (CIFAR-10 and Fashion-MNIST training images, alternating)")
    for _, _, names in sources:
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
    step = 2000
    started = time.perf_counter()
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("fork")) as pool:
        done = sum(pool.map(_write_range, [(str(root), size, s, min(n, s + step)) for s in range(0, n, step)]))
    print(f"generated {done:,} JPEGs ({n - done:,} were there) in {time.perf_counter() - started:.0f} s into {root}")


if __name__ == "__main__" and sys.argv[1:2] == ["generate"]:
    p = argparse.ArgumentParser()
    p.add_argument("cmd"); p.add_argument("root", type=Path)
    p.add_argument("--n", type=int, default=100_000); p.add_argument("--size", type=int, default=128)
    p.add_argument("--procs", type=int, default=2)
    a = p.parse_args()
    generate(a.root, a.n, a.size, a.procs)
