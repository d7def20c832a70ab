"""Load a data set into memory as uint8 tensors, with a seeded stratified validation split.

Search order for the files: --data-dir / CNNLAB_DATA_DIR, then the cache (~/.cache/cnnlab or
CNNLAB_CACHE_DIR), then a checksummed download into the cache.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, unknown
from . import diskcache, readers
from .ingest import IngestReport, read_imagefolder, stderr_progress
from .split import stratified_split
from .catalog import DATASET_NAMES, SOURCES, Source
from .download import DownloadFailed, download_source
from .mirror import MirrorTest, mirror_test


@dataclass
class ImageDataset:
    """A whole data set in memory. Images are uint8 (N, C, H, W); labels int64. `val_*` is None without a split."""
    name: str
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    ingest: IngestReport | None = None  # an image folder's: files skipped and why, warnings (cnnlab.data.ingest)
    train_files: list[str] | None = None  # an image folder's file of each image (the data doctor names them)
    test_files: list[str] | None = None
    val_files: list[str] | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, in 0..1 units (what normalisation uses)."""
        # from a 256-bin histogram per channel: exact, and 0.2 s for CIFAR-10 where float64 sums took 2.4 s; in
        # blocks, so that a memory-mapped set passes through RSS a block at a time (cnnlab/data/diskcache.py)
        x = self.train_x
        values = torch.arange(256, dtype=torch.float64) / 255
        count = x.shape[0] * x.shape[2] * x.shape[3]
        hist = torch.zeros(x.shape[1], 256, dtype=torch.float64)
        for block in diskcache.blocks(x):
            for c in range(x.shape[1]):
                hist[c] += torch.bincount(block[:, c].reshape(-1), minlength=256).to(torch.float64)
        mean = (hist * values).sum(1) / count
        std = ((hist * values ** 2).sum(1) / count - mean ** 2).clamp_min(1e-12).sqrt()
        return mean.tolist(), std.tolist()


def default_cache_dir() -> Path:
    return Path(os.environ.get("CNNLAB_CACHE_DIR") or Path.home() / ".cache" / "cnnlab")


def _has_files(folder: Path, source: Source) -> bool:
    return all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in source.required)


def locate(source: Source, data_dir: str | os.PathLike | None, cache_dir: Path, download: bool = True) -> Path:
    """The folder holding the set's files, downloading them into the cache if neither place has them."""
    data_dir = data_dir or os.environ.get("CNNLAB_DATA_DIR")
    candidates = [Path(data_dir) / source.subdir] if data_dir else []
    candidates.append(cache_dir / source.subdir)
    for folder in candidates:
        if _has_files(folder, source):
            return folder
    where = " or ".join(str(c) for c in candidates)
    need = ", ".join(source.required)
    if not download:
        raise UserError(f"{source.name}: files not found in {where}; expected {need}")
    try:
        return download_source(source, cache_dir)
    except DownloadFailed as exc:
        urls = " ".join(d.urls[0] for d in source.downloads)
        raise UserError(
            f"{source.name}: files not found in {where}, and the download failed ({exc}).\n"
            f"Put {need} into {candidates[0]} (download {urls}"
            f"{' and unpack it there' if source.downloads[0].extract else ''}), or pass --data-dir DIR "
            f"where DIR/{source.subdir}/ holds them.") from None


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, val_split: float | None = None,
                 seed: int = 0, root: str | os.PathLike | None = None, image_size=None,
                 download: bool = True, cache_dir: str | os.PathLike | None = None, strict: bool = False,
                 skip_empty: bool = False, in_memory="auto") -> ImageDataset:
    """Load `name` (cifar10, cifar100, mnist, fashion-mnist, imagefolder) into memory.

    `root` is the folder for imagefolder; a `name` that is an existing folder means imagefolder too. Its
    broken files are skipped and reported in `.ingest` (`strict`: refused); an empty class folder is an error
    unless `skip_empty`. An image folder's splits are decoded once into a cache file each and read into memory,
    or memory-mapped where they do not fit (`in_memory`: auto, true, false; cnnlab/data/diskcache.py).
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if name not in DATASET_NAMES and Path(name).is_dir():
        name, root = "imagefolder", name
    report, named = None, {}
    if name == "imagefolder":
        if root is None:
            raise UserError("imagefolder needs data.root: a folder with one sub-folder of images per class")
        progress = stderr_progress if sys.stderr.isatty() else None
        splits, classes, report, named = read_imagefolder(Path(root), image_size, cache, strict, skip_empty,
                                                          progress=progress, val_split=val_split, seed=seed,
                                                          in_memory=in_memory)
        train, val, test = splits["train"], splits.get("val"), splits["test"]
    elif name in SOURCES:
        source = SOURCES[name]
        folder = locate(source, data_dir, cache, download)
        reader = {"cifar10": readers.read_cifar10, "cifar100": readers.read_cifar100,
                  "idx": readers.read_idx}[source.reader]
        train, test, names = reader(folder)
        classes = list(names or source.classes or [str(i) for i in range(int(train[1].max()) + 1)])
        val = None
        if val_split:
            keep, held = stratified_split(train[1], float(val_split), seed)
            train, val = (train[0][keep], train[1][keep]), (train[0][held], train[1][held])
    else:
        raise unknown("data set", name, DATASET_NAMES, where="data.name")
    if len(np.unique(train[1])) < 2:
        raise UserError(f"{name}: the training set has a single class; a classifier needs at least two")

    def images(x):  # an image folder's are tensors already (in memory or mapped); a reader's, arrays
        return x if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
    t = torch.from_numpy
    return ImageDataset(name, [str(c) for c in classes], images(train[0]), t(train[1]), images(test[0]), t(test[1]),
                        None if val is None else images(val[0]), None if val is None else t(val[1]), report,
                        named.get("train"), named.get("test"), named.get("val"))


@dataclass(frozen=True)
class FolderFacts:
    """What training on an image folder needs to know before it starts, read once per process."""
    input_shape: tuple
    num_classes: int
    train_images: int
    mirror: MirrorTest          # whether flips keep labels (cnnlab.data.mirror)


_facts: dict[tuple, FolderFacts] = {}  # an image folder is read once per process (the last 32 remembered)
_facts_lock = threading.Lock()


def folder_facts(name: str, data_dir=None, root=None, image_size=None, skip_empty: bool = False) -> FolderFacts:
    key = (name, str(data_dir), str(root), str(image_size), skip_empty)
    with _facts_lock:
        if key not in _facts:
            # mapped, whatever its size: the facts read 10,000 images at most (cnnlab/data/diskcache.py)
            ds = load_dataset(name, data_dir, root=root, image_size=image_size, skip_empty=skip_empty,
                              in_memory=False)
            if len(_facts) >= 32:
                _facts.pop(next(iter(_facts)))
            _facts[key] = FolderFacts(ds.input_shape, ds.num_classes, len(ds.train_x),
                                      mirror_test(ds.train_x, ds.train_y))
        return _facts[key]


def input_spec(name: str, data_dir=None, root=None, image_size=None, skip_empty: bool = False) -> tuple[tuple, int]:
    """(input shape, class count) of a data set: known without reading for the built-in sets; an image folder
    is read (once per process) to find its image size and classes."""
    if name in SOURCES:
        return SOURCES[name].input_shape, SOURCES[name].num_classes
    facts = folder_facts(name, data_dir, root, image_size, skip_empty)
    return facts.input_shape, facts.num_classes


def train_images(data) -> int:
    """How many images a run on `data` (a DataConfig) trains on: the official count for a built-in set, the
    folder's count for an image folder, less the validation split, at most `limit`, then its `subset` share."""
    total = SOURCES[data.name].train_images if data.name in SOURCES else \
        folder_facts(data.name, data.dir, data.root, data.image_size, data.skip_empty).train_images
    kept = total - round(total * (data.val_split or 0))
    if data.limit:  # the first `limit` images, then a share of them: the order prepare_data takes them in
        kept = min(kept, data.limit)
    return round(kept * data.subset) if data.subset else kept
