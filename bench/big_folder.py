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



# ---------------------------------------------------------------- (b) decoding

def peak_rss() -> int:
    """This process's peak resident set (VmHWM) in bytes: anonymous memory and mapped file pages; the page
    cache that serves a memory map does not count until a page is mapped."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _plain_loop(paths: list[str]) -> float:
    """Images/s of the loop a user would write first: one process, PIL, to an RGB array."""
    import numpy as np
    from PIL import Image
    started = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            np.asarray(img.convert("RGB"))
    return len(paths) / (time.perf_counter() - started)


def _child_decode(root: str, cache: str, sample: int) -> dict:
    """In a fresh process: cnnlab's first load (the scan, then the decode into the cache file, each on every
    core), with a plain single-process PIL loop over `sample` files before, between and after (a neighbour's
    load on the shared machine falls on both; the median is the baseline)."""
    from cnnlab.data.ingest import _list_split, read_imagefolder, scan_folder, workers
    _, files, _ = _list_split(Path(root))
    paths = [p for name in sorted(files) for p in files[name]]
    picked = paths[:: max(1, len(paths) // sample)][:sample]
    plain = [_plain_loop(picked)]
    started = time.perf_counter()
    scan_folder(Path(root), Path(cache))
    scanned = time.perf_counter() - started
    plain.append(_plain_loop(picked))
    started = time.perf_counter()
    splits, *_ = read_imagefolder(Path(root), cache_dir=Path(cache), in_memory=False)
    decoded = time.perf_counter() - started
    plain.append(_plain_loop(picked))
    n = len(paths)
    return {"images": n, "workers": workers(), "plain_pil_img_per_s": statistics.median(plain),
            "plain_pil_runs": plain, "plain_sample": len(picked), "load_avg_after": os.getloadavg(),
            "scan_s": scanned, "decode_s": decoded, "scan_img_per_s": n / scanned, "decode_img_per_s": n / decoded,
            "first_load_img_per_s": n / (scanned + decoded),
            "decoded_bytes": sum(x.nbytes for x, _ in splits.values()),
            "bytes_per_image": int(splits["train"][0][0].nbytes)}


# ---------------------------------------------------------------- (c), (d) training

NET = {"layers": [  # small enough that the data path is a visible share of a step (the case that tests it)
    {"conv": {"filters": 16, "kernel": 3, "stride": 2, "padding": "same", "activation": "relu"}},
    {"maxpool": 2},
    {"conv": {"filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}},
    {"maxpool": 2},
    {"conv": {"filters": 64, "kernel": 3, "padding": "same", "activation": "relu"}},
    "global_avgpool", {"dense": 20}]}


def _child_train(root: str, cache: str, in_memory: bool, steps: int, warmup: int, batch: int) -> dict:
    """In a fresh process: cnnlab's own session and trainer on the folder, stopped after `steps` steps; images/s
    over the steps after `warmup` (the first touches cold pages and warms the allocator)."""
    import torch
    from cnnlab.train.engine import StopRequested
    from cnnlab.train.session import Session, prepare_config
    os.environ["CNNLAB_CACHE_DIR"] = cache
    torch.set_num_threads(1)
    cfg = prepare_config({"model": NET, "data": {"name": "imagefolder", "root": root, "in_memory": in_memory},
                          "batch_size": batch, "epochs": 1, "threads": 1, "seed": 0, "compile": False,
                          "augment": {"crop": 4, "flip": "horizontal"}})
    started = time.perf_counter()
    session = Session(cfg)
    setup = time.perf_counter() - started
    trainer, stamps = session.trainer, []

    def stop() -> bool:
        stamps.append(time.perf_counter())
        return trainer.step >= steps
    trainer.should_stop = stop
    try:
        trainer.fit()
    except StopRequested:
        pass
    seconds = stamps[-1] - stamps[warmup - 1]
    return {"in_memory": in_memory, "setup_s": setup, "img_per_s": (len(stamps) - warmup) * batch / seconds,
            "peak_rss": peak_rss(), "train_images": len(session.data.train_x),
            "train_bytes": session.data.train_x.nbytes, "weights_sum": float(sum(
                p.double().sum() for p in session.model.parameters()))}


def _in_child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "_child", json.dumps(args)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    info = open("/proc/cpuinfo").read()
    model = info.split("model name")[1].split("\n")[0].split(":", 1)[1].strip() if "model name" in info else "?"
    flags = sorted({f for f in ("avx512_bf16", "amx_bf16") if f in info.split()})
    mem = [line for line in open("/proc/meminfo") if line.startswith("MemTotal")][0].split()[1]
    import torch
    return {"cpu": model, "cores": os.cpu_count(), "bf16_flags": flags, "mem_total_gib": int(mem) / 2**20,
            "torch": torch.__version__, "load_avg": os.getloadavg()}


def measure(root: Path, cache: Path, steps: int, warmup: int, batch: int, repeats: int, sample: int, out: Path,
            decode_only: bool = False):
    import shutil
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_total_gib']:.1f} GiB, bf16 flags: "
          f"{' '.join(m['bf16_flags']) or 'none'}; torch {m['torch']}; load average {m['load_avg'][0]:.2f}")
    shutil.rmtree(cache, ignore_errors=True)
    d = _in_child("decode", str(root), str(cache), sample)
    print(f"first load of {d['images']:,} images ({d['bytes_per_image']:,} bytes each decoded, "
          f"{d['decoded_bytes'] / 2**30:.2f} GiB): scan {d['scan_img_per_s']:,.0f} img/s + decode into the cache "
          f"{d['decode_img_per_s']:,.0f} img/s ({d['workers']} workers) = {d['first_load_img_per_s']:,.0f} img/s; "
          f"a plain single-process PIL loop {d['plain_pil_img_per_s']:,.0f} img/s over {d['plain_sample']:,} files "
          f"(decode {d['decode_img_per_s'] / d['plain_pil_img_per_s']:.2f}x)")
    if decode_only:
        _write(out, {"command": " ".join(sys.argv), "machine": m, "decode": d})
        return
    runs = {True: [], False: []}
    for r in range(repeats):  # interleaved: a neighbour's load falls on both paths alike
        for in_memory in (True, False):
            row = _in_child("train", str(root), str(cache), in_memory, steps, warmup, batch)
            runs[in_memory].append(row)
            print(f"  repeat {r + 1} {'in memory' if in_memory else 'memmap   '}: {row['img_per_s']:,.0f} img/s, "
                  f"peak RSS {row['peak_rss'] / 2**30:.2f} GiB, setup {row['setup_s']:.1f} s")
    mem = statistics.median(r["img_per_s"] for r in runs[True])
    disk = statistics.median(r["img_per_s"] for r in runs[False])
    set_bytes = runs[False][0]["train_bytes"]
    rss_disk = max(r["peak_rss"] for r in runs[False])
    rss_mem = max(r["peak_rss"] for r in runs[True])
    same = len({r["weights_sum"] for rows in runs.values() for r in rows}) == 1
    print(f"steady training ({steps - warmup} steps of {batch} after {warmup}, 1 thread, medians of {repeats}): "
          f"memmap {disk:,.0f} img/s, in memory {mem:,.0f} img/s: {disk / mem:.1%}")
    print(f"peak RSS: memmap {rss_disk / 2**30:.2f} GiB, in memory {rss_mem / 2**30:.2f} GiB; the training split "
          f"decoded is {set_bytes / 2**30:.2f} GiB: memmap peak / set {rss_disk / set_bytes:.1%}")
    print(f"the same weights on both paths after {steps} steps: {same}")
    result = {"command": " ".join(sys.argv), "machine": m, "decode": d, "steps": steps, "warmup": warmup,
              "batch": batch, "repeats": repeats, "train_in_memory": runs[True], "train_memmap": runs[False],
              "median_img_per_s": {"in_memory": mem, "memmap": disk}, "memmap_over_in_memory": disk / mem,
              "train_set_bytes": set_bytes, "peak_rss": {"in_memory": rss_mem, "memmap": rss_disk},
              "memmap_peak_rss_over_set": rss_disk / set_bytes, "same_weights": same,
              "note": "a shared 2-core machine: only ratios measured in this run, interleaved, mean anything"}
    _write(out, result)


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        kind, *args = json.loads(sys.argv[2])
        print(json.dumps(_child_decode(*args) if kind == "decode" else _child_train(*args)))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cmd", choices=["generate", "measure"])
    p.add_argument("root", type=Path, help="the folder of JPEGs")
    p.add_argument("--n", type=int, default=100_000, help="generate: images")
    p.add_argument("--size", type=int, default=128, help="generate: pixels per side")
    p.add_argument("--procs", type=int, default=os.cpu_count(), help="generate: processes")
    p.add_argument("--cache", type=Path, help="measure: the cache folder, emptied first (default ROOT.cache)")
    p.add_argument("--steps", type=int, default=60, help="measure: training steps per run")
    p.add_argument("--warmup", type=int, default=10, help="measure: steps left out of images/s")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sample", type=int, default=3000, help="measure: files the plain PIL loop decodes")
    p.add_argument("--out", type=Path, help="default docs/results/big_folder-N.json")
    p.add_argument("--decode-only", action="store_true", help="measure: (a) alone, into big_folder-N-decode.json")
    a = p.parse_args()
    if a.cmd == "generate":
        generate(a.root, a.n, a.size, a.procs)
        return
    n = sum(1 for _ in a.root.rglob("*.jpg"))
    out = a.out or Path(__file__).resolve().parent.parent / "docs" / "results" / \
        f"big_folder-{n}{'-decode' if a.decode_only else ''}.json"
    measure(a.root, a.cache or a.root.with_name(a.root.name + ".cache"), a.steps, a.warmup, a.batch, a.repeats,
            a.sample, out, a.decode_only)


if __name__ == "__main__":
    main()
