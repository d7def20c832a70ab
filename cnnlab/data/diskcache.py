"""An image folder's decoded images on disk: one uint8 (N, C, H, W) .npy file per split, read through the page
cache (FFCV's decoded file of fixed-size records, without its pipeline).

The decoding workers write their rows straight into the file, under a temporary name renamed when it is
complete: a killed or failing build leaves no file that a later load could take for a cache. Its name is a hash of its
inputs (each file's path, size and time, the labels, the image size and colour; cnnlab/data/ingest.py), so a
changed file makes a new cache instead of reusing a stale one. Processes building the same file at once (DDP
ranks, two runs) take turns on a lock: the first builds it, the others wait and open the finished file.

A split that fits in memory is read into memory, as before this file existed. One that does not (or with
`data.in_memory: false`) stays a memory map: a torch tensor over the file that every consumer slices as it
would an array in memory, whose pages the kernel reads on first touch and keeps in its page cache. Pages
mapped into a process count in its RSS until it unmaps them, so:
- a training batch (`take`) is not read through the map but with one pread per image, in file order, into
  the batch: 12.6 MB (256 images of 128 x 128 RGB) in ~4 ms from the page cache, where gathering it through the
  map cost ~75 ms of page faults and mapped ~3x the bytes it read (the kernel maps 64 KiB around each fault);
- whoever walks a mapped set in order (a statistic over every image, an evaluation) tells `note` how many
  bytes it read, and every RELEASE_EVERY bytes the mapping is handed back (madvise DONTNEED): the pages stay
  in the page cache, and the next touch maps them again without reading the disk.
"""
from __future__ import annotations

import fcntl
import mmap
import os
import shutil
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..device import available_memory
from ..errors import UserError
from ..fsutil import atomic_path

# in_memory: auto keeps a split in memory when it takes at most this share of MemAvailable: the other half
# is left for the model, its activations and other processes (a 2-core machine is shared by 4 people here)
IN_MEMORY_SHARE = 0.5
# bytes read through a mapped split's map between two releases of its pages: bounds what the map adds to RSS
# (256 MiB = 5,461 images of 128 x 128 RGB); a release costs 2-5 ms on a 3.7 GiB map, 0.03 ms when few pages
# are mapped (2-core EPYC)
RELEASE_EVERY = 256 * 2**20
IN_MEMORY_CHOICES = ("auto", True, False)


@dataclass(frozen=True)
class _Mapped:
    end: int              # address after the last image
    array: weakref.ref    # the np.memmap over the file
    fd: int               # the file, open for pread (closed with the array)
    offset: int           # where the images start in the file (after the .npy header)


_mapped: dict[int, _Mapped] = {}  # start address of a mapped split -> what reads it
_read: dict[int, int] = {}        # start address -> bytes read through the map since its last release


def keep_in_memory(in_memory, nbytes: int, where: str = "data.in_memory") -> bool:
    """Whether a split of `nbytes` is read into memory: `in_memory` true or false decides; "auto" when it
    takes at most IN_MEMORY_SHARE of the memory available now, divided among the local DDP ranks (each holds
    its own copy in memory, while a memory map is shared through the page cache)."""
    if in_memory not in IN_MEMORY_CHOICES:
        raise UserError(f"{where}: {in_memory!r}; valid: auto, true (every split in memory), false (memory-map "
                        "the decoded cache on disk)")
    if in_memory != "auto":
        return bool(in_memory)
    free = available_memory(torch.device("cpu"))
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    return free is None or nbytes <= IN_MEMORY_SHARE * free / ranks


# ---------------------------------------------------------------- writing

@contextmanager
def building(path: Path, shape: tuple[int, ...]):
    """Yields a temporary uint8 .npy of `shape` beside `path` for the caller to fill (its rows start at
    `np.load(tmp, mmap_mode="r").offset`), renamed to `path` when the block finishes and removed when it raises;
    yields None when `path` exists already (built earlier, or by another process while this one waited)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        if path.exists():
            yield None
            return
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a build killed outright (SIGKILL, power): the
            stale.unlink(missing_ok=True)                      # lock is ours, so nobody is writing it
        nbytes = int(np.prod(shape))
        free = shutil.disk_usage(path.parent).free
        if nbytes > free:
            raise UserError(f"{path.parent}: the decoded images need {nbytes / 2**30:.2f} GiB ({shape[0]:,} images "
                            f"of {'x'.join(map(str, shape[1:]))} bytes) and the disk has {free / 2**30:.2f} GiB "
                            "free; free space there, set CNNLAB_CACHE_DIR to a larger disk, or lower "
                            "data.image_size")
        with atomic_path(path) as tmp:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            offset = array.offset
            del array
            with open(tmp, "r+b") as f:  # every block allocated now: a full disk later would kill the workers
                os.posix_fallocate(f.fileno(), offset, max(nbytes, 1))
            yield tmp


def prune(folder: Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the `keep` last used of the caches named `prefix`-*.npy (the builds of one split of one
    folder at one size, as its files changed): a folder of 100,000 photos is ~5 GB decoded, and every edit to it
    makes a new build. Last use is the lock file's time (`building` opens it on every load). A process still
    reading a deleted cache keeps it until it closes the file. Returns what was deleted."""
    builds = [(lock.stat().st_mtime_ns, cache) for cache in folder.glob(f"{prefix}-*.npy")
              if (lock := cache.with_name(cache.name + ".lock")).exists()]
    stale = [cache for _, cache in sorted(builds, reverse=True)[keep:]]
    for cache in stale:
        cache.unlink(missing_ok=True)
        cache.with_name(cache.name + ".lock").unlink(missing_ok=True)
    return stale


# ---------------------------------------------------------------- reading

def open_images(path: Path, in_memory: bool) -> torch.Tensor:
    """The cache file as a uint8 tensor: read into memory, or mapped (copy-on-write: a stray in-place edit
    changes this process's view, never the file)."""
    if in_memory:
        return torch.from_numpy(np.load(path))
    array = np.load(path, mmap_mode="c")
    tensor = torch.from_numpy(array)  # holds the array, and so the mapping, for as long as it lives
    if array.size:
        start, fd = array.ctypes.data, os.open(path, os.O_RDONLY)
        weakref.finalize(array, os.close, fd)
        _mapped[start] = _Mapped(start + array.nbytes, weakref.ref(array), fd, array.offset)
        _read[start] = 0
    return tensor


def _address(x) -> int:
    return x.data_ptr() if torch.is_tensor(x) else np.asarray(x).ctypes.data


def _find(x) -> tuple[int, _Mapped] | None:
    address = _address(x)
    for start, m in list(_mapped.items()):
        if m.array() is None:  # its tensors are gone, so are the map and the file descriptor (the address
            del _mapped[start], _read[start]  # range may be another map's now)
        elif start <= address < m.end:
            return start, m
    return None


def mapping(x):
    """The np.memmap of the cache file `x` (a tensor or array over it, or any view of one) reads, or None when
    `x` is in memory."""
    found = _find(x)
    return found[1].array() if found else None


def on_disk(x) -> bool:
    return mapping(x) is not None


def release(x) -> None:
    """Unmap every page of the mapping behind `x` from this process (they stay in the page cache)."""
    array = mapping(x)
    if array is not None:
        array._mmap.madvise(mmap.MADV_DONTNEED)
        _read[array.ctypes.data] = 0


def note(x, nbytes: int) -> None:
    """`nbytes` were read from `x`; its mapping is released every RELEASE_EVERY bytes (nothing when in memory)."""
    array = mapping(x)
    if array is None:
        return
    start = array.ctypes.data
    _read[start] += nbytes
    if _read[start] >= RELEASE_EVERY:
        release(array)


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`x[idx]`, in `idx`'s order, on `idx`'s device. From a mapped split each image is read with pread, in
    file order (neighbouring images, neighbouring blocks: the disk reads ahead where the page cache does not
    hold them yet), straight into its place in the batch: nothing of the map enters RSS."""
    found = _find(x)
    if found is None or not x.is_contiguous():
        return x[idx]
    start, m = found
    out = torch.empty((len(idx), *x.shape[1:]), dtype=x.dtype, pin_memory=idx.device.type == "cuda")
    rows, row = out.numpy().reshape(len(idx), -1), x[0].nbytes if len(x) else 0
    base = m.offset + (x.data_ptr() - start)
    ordered, where = idx.cpu().sort()
    if len(idx) and not 0 <= int(ordered[0]) <= int(ordered[-1]) < len(x):
        raise IndexError(f"index {int(ordered[0]) if ordered[0] < 0 else int(ordered[-1])} is out of bounds for "
                         f"{len(x)} images")
    for i, k in zip(ordered.tolist(), where.tolist()):
        if os.preadv(m.fd, [rows[k]], base + i * row) != row:
            raise UserError(f"{Path(f'/proc/self/fd/{m.fd}').resolve()}: the decoded cache ends early (image {i}); "
                            "it was changed after it was written — delete it, the next load writes it again")
    return out.to(idx.device, non_blocking=True)  # the batch goes where the indices are (the training device)


def blocks(x, rows: int = 1024):  # 1,024 images of 128 x 128 RGB: 48 MiB
    """`x` in consecutive blocks of `rows` images, each `note`d after use: a pass over a mapped split holds a
    bounded part of it in RSS."""
    for start in range(0, len(x), rows):
        block = x[start:start + rows]
        yield block
        note(x, block.nbytes)
