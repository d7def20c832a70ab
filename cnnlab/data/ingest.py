"""A user's own image folder, read so that it finishes: every file scanned first (on all cores), the broken ones
counted by reason and reported once, then the good ones decoded (in parallel) into one uint8 array per split.

Layout: ROOT/<class>/**/*.jpg, or ROOT/train/<class>/ and ROOT/test/<class>/. Hidden files and folders and
files without an image suffix are ignored. Each image is turned upright by its EXIF orientation and converted
to 8-bit RGB (or L, when every image is grayscale) whatever its mode: CMYK, 16-bit (scaled, not clipped),
palette, alpha (composited onto white). An image whose header claims more than `max_pixels` is refused before
its pixels are read: a decompression bomb costs nothing. (fastai's `verify_images` did the one-pass check first.)
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import diskcache
from .split import stratified_split
from ..errors import UserError
from ..fsutil import atomic_path, write_text

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Pillow's own warning threshold (89.5 MP, about 9,459 x 9,459; 256 MiB as RGB): a 30,000 x 30,000 PNG of a few
# KiB would take 2.5 GiB decoded. `max_pixels` raises it for real panoramas.
MAX_PIXELS = 89_478_485
REASONS = ("not an image", "empty", "truncated", "undecodable", "over the pixel limit", "unreadable")
TINY_CLASS = 10        # fewer training images than this in a class: warned about
IMBALANCE_RATIO = 10   # largest class / smallest class from this: warned about
# builds of one split kept on disk as its files change (the last used; cnnlab/data/diskcache.py `prune`): a few,
# for runs that differ in the files they read (a val_split's seed, an edit tried and undone)
KEEP_BUILDS = 3
PARALLEL_FROM = 64     # fewer files than this are scanned in this process (starting workers costs ~0.1 s)
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
EXIF_ORIENTATION = 0x0112


# ---------------------------------------------------------------- one file

def probe_file(path: str, max_pixels: int = MAX_PIXELS) -> tuple[str, str, int, int, str]:
    """(reason, detail, height, width, mode) of one file, decoding it completely; reason "" when it is a usable
    image (height and width are after its EXIF orientation). Never raises for a bad file."""
    from PIL import Image, UnidentifiedImageError
    try:
        if os.stat(path).st_size == 0:
            return "empty", "0 bytes", 0, 0, ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    return "over the pixel limit", f"{w}x{h} = {w * h:,} pixels > {max_pixels:,}", h, w, img.mode
                mode = img.mode
                orientation = img.getexif().get(EXIF_ORIENTATION, 1)
                # a JPEG is checked at 1/8 scale: every byte is still read and entropy-decoded, so a truncated
                # or corrupt file fails as before, and the check is 1.5x faster on 128 px photos (1,799 -> 2,683
                # img/s) and 1.4-1.7x on 1024 x 768 ones (2-core EPYC, one process, load average 9)
                if img.format == "JPEG":
                    img.draft(None, (max(1, w // 8), max(1, h // 8)))
                img.load()
    except Image.DecompressionBombError as exc:
        return "over the pixel limit", str(exc), 0, 0, ""
    except UnidentifiedImageError:
        return "not an image", _sniff(path), 0, 0, ""
    except (PermissionError, IsADirectoryError, FileNotFoundError) as exc:
        return "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}", 0, 0, ""
    except (OSError, EOFError, SyntaxError, ValueError, TypeError, MemoryError, IndexError, KeyError) as exc:
        text = str(exc)
        truncated = isinstance(exc, EOFError) or "truncated" in text.lower() or "broken data stream" in text.lower()
        return "truncated" if truncated else "undecodable", text[:200], 0, 0, ""
    if orientation in (5, 6, 7, 8):  # a quarter turn: width and height swap
        w, h = h, w
    return "", "", h, w, mode


def _sniff(path: str) -> str:
    """What a file that is not an image starts with (a web page saved as .jpg is the usual one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return "unrecognised content"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<svg")):
        return "a web page or XML, not image data"
    return f"unrecognised content (starts {head[:8].hex()})"


def to_array(img, grayscale: bool, size: tuple[int, int] | None = None) -> np.ndarray:
    """A PIL image as uint8 (C, H, W): upright by EXIF, every mode converted to 8-bit L or RGB (16-bit scaled
    by 1/257, alpha composited onto white), resized to `size` (H, W) when given."""
    from PIL import Image, ImageOps
    # upright without a copy where it already is: the copies (here and in convert) made the decode of a
    # 128 px JPEG 1.5x slower than a plain open-convert-asarray loop (bench/big_folder.py)
    img = ImageOps.exif_transpose(img, in_place=False) if img.getexif().get(EXIF_ORIENTATION, 1) != 1 else img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img).astype(np.float32)
        if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0  # 0..65535 -> 0..255; `convert("L")` would clip everything above 255 to white
        img = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    target = "L" if grayscale else "RGB"
    img = img if img.mode == target else img.convert(target)
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def decode_image(path, size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
    """One image file as uint8 (C, H, W) (see `to_array`); a file that does not decode is named."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            return to_array(img, grayscale, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: cannot decode the image ({exc}); valid: PNG, JPEG, BMP, GIF, WebP or TIFF") from exc


def _decode_chunk(paths: list[str], size, grayscale: bool) -> np.ndarray:
    return np.stack([decode_image(p, size, grayscale) for p in paths])


def _probe_chunk(paths: list[str], max_pixels: int) -> list[tuple]:
    return [probe_file(p, max_pixels) for p in paths]


# ---------------------------------------------------------------- many files, on every core

def workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def parallel_chunks(fn, paths: list[str], progress=None, what: str = "scanning") -> list:
    """`fn(chunk)` over chunks of `paths` on every core (forked workers: no re-import), results in order;
    `progress(done, total, what)` after each chunk."""
    n = len(paths)
    procs = workers()
    chunk = max(8, min(512, n // (procs * 8) or 1))
    chunks = [paths[i:i + chunk] for i in range(0, n, chunk)]
    results: list = [None] * len(chunks)
    import multiprocessing
    # a daemonic process (the web server's training worker) may not start children: it scans in itself
    if n < PARALLEL_FROM or procs == 1 or not hasattr(os, "fork") or multiprocessing.current_process().daemon:
        done = 0
        for i, part in enumerate(chunks):
            results[i] = fn(part)
            done += len(part)
            if progress:
                progress(done, n, what)
        return results
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(fn, part): i for i, part in enumerate(chunks)}
        done = 0
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            done += len(chunks[i])
            if progress:
                progress(done, n, what)
    return results


def stderr_progress(done: int, total: int, what: str) -> None:
    """One line on a terminal, rewritten in place: `scanning 12,345/100,000 files`."""
    sys.stderr.write(f"\r{what} {done:,}/{total:,} files" + ("\n" if done >= total else ""))
    sys.stderr.flush()


# ---------------------------------------------------------------- the report

@dataclass
class IngestReport:
    """What reading a folder found: the images kept per split and class, every file skipped with its reason,
    what was ignored, and the warnings a user should read before training."""
    root: str
    classes: list[str]
    counts: dict[str, list[int]]                         # split -> images kept per class
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)
    ignored: int = 0                                     # hidden files, files without an image suffix
    empty_classes: list[str] = field(default_factory=list)  # left out (skip_empty)
    modes: dict[str, int] = field(default_factory=dict)  # colour modes of the kept images
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" (width x height) of the kept images, most common first (top 10)
    warnings: list[str] = field(default_factory=list)

    def by_reason(self) -> dict[str, list[tuple[str, str]]]:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for path, reason, detail in self.skipped:
            grouped.setdefault(reason, []).append((path, detail))
        return {r: grouped[r] for r in REASONS if r in grouped}

    def imbalance(self) -> float:
        train = [c for c in self.counts.get("train", []) if c > 0]
        return max(train) / min(train) if train else 1.0

    def render(self, first: int = 3) -> str:
        """The summary: counts by reason with the first few paths of each, and the warnings."""
        kept = {split: sum(c) for split, c in self.counts.items()}
        # a folder without train/ and test/ is all "train" here: its test images are held out of it later
        found = (", ".join(f"{n:,} images in {split}/" for split, n in kept.items()) if len(kept) > 1
                 else f"{sum(kept.values()):,} usable images")
        lines = [f"{self.root}: {len(self.classes)} classes, " + found
                 + (f"; {len(self.skipped):,} files skipped" if self.skipped else "; no file skipped")
                 + (f", {self.ignored:,} ignored (hidden or not an image suffix)" if self.ignored else "")]
        for reason, items in self.by_reason().items():
            lines.append(f"  {reason}: {len(items):,}")
            lines += [f"    {_relative(path, self.root)}  ({detail})" for path, detail in items[:first]]
            if len(items) > first:
                lines.append(f"    ... and {len(items) - first:,} more (all in skipped.txt)")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def skipped_text(self) -> str:
        """Every skipped file, one a line: reason, path, detail (what a run writes to skipped.txt)."""
        return "".join(f"{reason}\t{path}\t{detail}\n" for path, reason, detail in self.skipped)

    def as_dict(self) -> dict:
        return {"root": self.root, "classes": self.classes, "counts": self.counts,
                "skipped": [list(s) for s in self.skipped], "ignored": self.ignored,
                "empty_classes": self.empty_classes, "modes": self.modes, "sizes": self.sizes,
                "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict) -> "IngestReport":
        return cls(d["root"], d["classes"], d["counts"], [tuple(s) for s in d["skipped"]], d["ignored"],
                   d["empty_classes"], d["modes"], d["sizes"], d["warnings"])


def _relative(path: str, root: str) -> str:
    """A path as the report shows it: inside the folder, from the folder (skipped.txt keeps it whole)."""
    return os.path.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else path


def class_warnings(classes: list[str], train_counts: list[int]) -> list[str]:
    """Tiny classes and class imbalance, with what each means for training."""
    out = []
    tiny = [(name, n) for name, n in zip(classes, train_counts) if 0 < n < TINY_CLASS]
    if tiny:
        out.append("classes with fewer than %d training images: %s; a model cannot learn a class from so few "
                   "(its test accuracy there is noise) — collect more or merge it"
                   % (TINY_CLASS, ", ".join(f"{name} ({n})" for name, n in tiny)))
    present = [(n, name) for name, n in zip(classes, train_counts) if n > 0]
    if present:
        (most, big), (least, small) = max(present), min(present)
        if least and most / least >= IMBALANCE_RATIO:
            out.append(f"class imbalance {most / least:.0f}:1 ({big} {most:,}, {small} {least:,} training images); "
                       f"always answering {big} scores {most / sum(n for n, _ in present):.0%}, so read per-class "
                       "accuracy, not the total — weight the loss or collect more of the small classes")
    return out


# ---------------------------------------------------------------- the folder

def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


MAX_FILES = 5_000_000  # files listed in one folder: past this it is not a data set (a home folder, /)


def _list_split(root: Path, max_files: int = MAX_FILES) -> tuple[list[str], dict[str, list[str]], int]:
    """Class folders, their image files (recursively, sorted) and how many files were ignored."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    files, ignored, listed = {}, 0, 0
    for name in classes:
        found = []
        for path in sorted((root / name).rglob("*")):
            listed += 1
            if listed > max_files:
                raise UserError(f"{root}: more than {max_files:,} files; an image folder holds one sub-folder of "
                                "images per class — is this the right folder?")
            if path.is_dir():
                continue
            if _hidden(path, root / name) or path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored += 1
            else:
                found.append(str(path))
        files[name] = found
    ignored += sum(1 for p in root.iterdir() if p.is_file())  # loose files beside the class folders
    return classes, files, ignored


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


def _stat_key(paths: list[str]) -> list:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return out


def scan_folder(root: Path, cache_dir: Path | None = None, max_pixels: int = MAX_PIXELS, skip_empty: bool = False,
                progress=None, max_files: int = MAX_FILES) -> tuple[IngestReport, dict[str, list[tuple[str, int, tuple[int, int], str]]]]:
    """Every file of the folder probed once (in parallel; the result cached, keyed on names, sizes and times).
    Returns the report and, per split ("train", "test"), the usable images as (path, label, (h, w), mode).
    Raises on a layout no training can use: no class folders, an empty class (unless `skip_empty`), a test
    class not in train, fewer than two classes."""
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; an image folder holds one sub-folder of images per class")
    split_layout = (root / "train").is_dir()
    train_root = root / "train" if split_layout else root
    splits = {"train": _list_split(train_root, max_files)}
    if split_layout and (root / "test").is_dir():
        splits["test"] = _list_split(root / "test", max_files)
        unknown = set(splits["test"][0]) - set(splits["train"][0])
        if unknown:
            raise UserError(f"{root / 'test'}: classes {sorted(unknown)} are not in {train_root}")
    classes = splits["train"][0]
    if not classes:
        raise UserError(f"{train_root}: no images found; expected {train_root}/<class name>/*.png or *.jpg")
    everything = [p for _, files, _ in splits.values() for name in files for p in files[name]]
    ignored = sum(s[2] for s in splits.values())

    cache = cache_dir / "imagefolder" / f"{_key(str(root.resolve()), max_pixels, _stat_key(everything))}.scan.json" \
        if cache_dir else None
    probes = None
    if cache is not None and cache.exists():
        try:
            probes = {p: tuple(v) for p, v in json.loads(cache.read_text()).items()}
        except (OSError, ValueError):
            probes = None
    if probes is None:
        results = parallel_chunks(partial(_probe_chunk, max_pixels=max_pixels), everything, progress, "scanning")
        probes = dict(zip(everything, (r for part in results for r in part)))
        if cache is not None:
            write_text(cache, json.dumps(probes))

    skipped = [(p, probes[p][0], probes[p][1]) for p in everything if probes[p][0]]
    kept = {split: {name: [p for p in files[name] if not probes[p][0]] for name in files}
            for split, (_, files, _) in splits.items()}
    empty = [name for name in classes if not kept["train"][name]]
    if empty and not skip_empty:
        folders = ", ".join(str(train_root / name) for name in empty)
        in_empty = {p for name in empty for p in splits["train"][1][name]}
        bad = sum(1 for p in in_empty if probes[p][0])
        others = Counter(probes[p][0] for p in everything if probes[p][0] and p not in in_empty)
        n_others = sum(others.values())
        also = (f" (also in the folder: {n_others:,} unusable file{'s' if n_others > 1 else ''}, "
                + ", ".join(f"{n:,} {reason}" for reason, n in others.most_common())
                + "; --skip-empty lists them)") if others else ""
        raise UserError(f"{folders}: class folder{'s hold' if len(empty) > 1 else ' holds'} no usable image"
                        f"{f' ({bad} skipped as broken)' if bad else ''}; an empty class would train as a class "
                        "nothing belongs to — add images, remove the folder, or pass --skip-empty "
                        f"(data.skip_empty: true) to leave it out{also}")
    classes = [c for c in classes if c not in empty]
    if len(classes) < 2:
        raise UserError(f"{train_root}: only {'one class' if classes else 'no class'} ({', '.join(classes)}) has images; "
                        "a classifier needs at least two")
    items = {split: [(p, i, probes[p][2:4], probes[p][4]) for i, name in enumerate(classes)
                     for p in kept[split].get(name, [])] for split in kept}
    counts = {split: [len(kept[split].get(name, [])) for name in classes] for split in kept}
    good = [it for split in items.values() for it in split]
    sizes = Counter(f"{w}x{h}" for _, _, (h, w), _ in good)
    report = IngestReport(str(root), classes, counts, skipped, ignored, empty,
                          dict(Counter(m for *_, m in good).most_common()), dict(sizes.most_common(10)))
    report.warnings = ([f"left out empty class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)}"]
                       if empty else []) + class_warnings(classes, counts["train"])
    return report, items


def strict_error(report: IngestReport) -> UserError:
    listing = "\n".join(f"  {reason}: {path}  ({detail})" for path, reason, detail in report.skipped)
    counts = ", ".join(f"{len(v)} {r}" for r, v in report.by_reason().items())
    return UserError(f"{report.root}: {len(report.skipped)} files cannot be used ({counts}), and strict is on "
                     f"(--strict / data.strict); fix or remove them, or train without --strict to skip them:\n"
                     f"{listing}")


_ROWS = 64  # images a decoding worker writes at once, from one buffer it keeps: fresh memory costs a page fault
_buffer: dict = {}  # per 4 KiB (~25 us each on the 2-core VM), which made the decode half as fast as a plain loop


def _decode_into(chunk: list[tuple[int, str]], file: str, offset: int, size, grayscale: bool) -> int:
    """Decode consecutive images (index, path) into a buffer the worker reuses and pwrite them at their place in
    the cache file being built: nothing travels back through a pipe, the parent never holds the whole set, and
    no page of the file is mapped."""
    shape = (_ROWS, 1 if grayscale else 3, *size)
    if _buffer.get("shape") != shape:
        _buffer.update(shape=shape, rows=np.empty(shape, np.uint8))
    rows = _buffer["rows"]
    fd = os.open(file, os.O_WRONLY)
    try:
        for first in range(0, len(chunk), _ROWS):
            part = chunk[first:first + _ROWS]
            for j, (_, path) in enumerate(part):
                rows[j] = decode_image(path, size, grayscale)
            data, at = memoryview(rows[:len(part)]).cast("B"), offset + part[0][0] * rows[0].nbytes
            while data:
                written = os.pwrite(fd, data, at)
                data, at = data[written:], at + written
    finally:
        os.close(fd)
    return len(chunk)


def decode_split(items, size: tuple[int, int], gray: bool, key_parts, cache_dir: Path | None, progress=None,
                 in_memory="auto"):
    """The images decoded at `size` into one uint8 (N, C, H, W) tensor, and their labels (int64 array). Cached
    as one .npy keyed on `key_parts` (the files, sizes and times), `size` and `gray`, built once by parallel
    workers (cnnlab/data/diskcache.py); read into memory or memory-mapped as `in_memory` says."""
    y = np.array([label for _, label, *_ in items], dtype=np.int64)
    shape = (len(items), 1 if gray else 3, *size)
    paths = [p for p, *_ in items]
    if cache_dir is None:  # nowhere to write: decoded into memory
        parts = parallel_chunks(partial(_decode_chunk, size=size, grayscale=gray), paths, progress, "decoding")
        return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(shape, np.uint8)), y
    split_key = _key(*key_parts[:2], size, gray)  # the folder and split at this size, whatever its files hold
    cache = cache_dir / "imagefolder" / f"{split_key}-{_key(key_parts, size, gray)}.npy"
    with diskcache.building(cache, shape) as tmp:
        if tmp is not None and paths:
            offset = np.load(tmp, mmap_mode="r").offset  # the .npy header's length
            parallel_chunks(partial(_decode_into, file=str(tmp), offset=offset, size=size, grayscale=gray),
                            list(enumerate(paths)), progress, "decoding")
        built = tmp is not None
    if built:
        diskcache.prune(cache.parent, split_key, KEEP_BUILDS)
    return diskcache.open_images(cache, diskcache.keep_in_memory(in_memory, int(np.prod(shape)))), y


def read_imagefolder(root: Path, image_size: int | list | None = None, cache_dir: Path | None = None,
                     strict: bool = False, skip_empty: bool = False, max_pixels: int = MAX_PIXELS, progress=None,
                     val_split: float | None = None, seed: int = 0, in_memory="auto"):
    """ROOT/<class>/*, or ROOT/train/<class>/ and ROOT/test/<class>/. Returns the splits {"train", "test" and,
    with `val_split`, "val": (uint8 tensor (N, C, H, W), int64 labels)}, the classes, the IngestReport, and each
    split's file paths in the order of its images. Broken files are skipped and reported (`strict`: refused).
    Without ROOT/test a fixed 20% of every class is the test set (seed 0); `val_split` holds out that share of
    the rest (seeded by `seed`). The splits are made on the file list, before decoding: each is one cache file,
    which stays on disk as it is when it does not fit in memory."""
    root = Path(root)
    report, items = scan_folder(root, cache_dir, max_pixels, skip_empty, progress)
    if strict and report.skipped:
        raise strict_error(report)
    train_items = items["train"]
    size = Counter(hw for _, _, hw, _ in train_items).most_common(1)[0][0]
    gray = all(mode in GRAY_MODES for _, _, _, mode in train_items)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    def labels(split_items):
        return np.array([y for _, y, *_ in split_items], dtype=np.int64)
    parts = {"train": train_items, "test": items.get("test") or []}
    if not parts["test"]:
        keep, held = stratified_split(labels(train_items), 0.2, seed=0)
        parts = {"train": [train_items[i] for i in keep], "test": [train_items[i] for i in held]}
    if val_split:
        keep, held = stratified_split(labels(parts["train"]), float(val_split), seed)
        parts["train"], parts["val"] = [parts["train"][i] for i in keep], [parts["train"][i] for i in held]
    splits = {}
    for split, split_items in parts.items():
        key = (str(root.resolve()), split, report.classes, _stat_key([p for p, *_ in split_items]),
               labels(split_items).tolist())
        splits[split] = decode_split(split_items, size, gray, key, cache_dir, progress, in_memory)
    files = {split: [p for p, *_ in split_items] for split, split_items in parts.items()}
    return splits, report.classes, report, files
