"""Readers for the official file layouts. Each returns uint8 arrays (N, C, H, W) and int64 labels, after a
structural check that names the file at fault."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fsutil import atomic_path

Split = tuple[np.ndarray, np.ndarray]


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError) as exc:
        raise UserError(f"{path}: not a readable CIFAR batch ({exc.__class__.__name__}: {exc}); "
                        "the file is corrupt or truncated — delete it to download it again") from exc


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> Split:
    batch = _unpickle(path)
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise UserError(f"{path}: expected a dict with 'data' and '{label_key}', found "
                        f"{sorted(batch)[:5] if isinstance(batch, dict) else type(batch).__name__}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if len(labels) != len(data) or len(data) == 0:
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(f"{path}: labels range {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(folder: Path) -> tuple[Split, Split, list[str] | None]:
    parts = [_cifar_batch(folder / f"data_batch_{i}", "labels", 10) for i in range(1, 6)]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = _cifar_batch(folder / "test_batch", "labels", 10)
    meta = folder / "batches.meta"
    names = _unpickle(meta).get("label_names") if meta.exists() else None
    return train, test, names


def read_cifar100(folder: Path) -> tuple[Split, Split, list[str] | None]:
    train = _cifar_batch(folder / "train", "fine_labels", 100)
    test = _cifar_batch(folder / "test", "fine_labels", 100)
    meta = folder / "meta"
    names = _unpickle(meta).get("fine_label_names") if meta.exists() else None
    return train, test, names


def _open_idx(folder: Path, stem: str) -> tuple[Path, bytes]:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.exists():
            try:
                if path.suffix == ".gz":
                    with gzip.open(path, "rb") as f:
                        return path, f.read()
                return path, path.read_bytes()
            except (OSError, EOFError) as exc:
                raise UserError(f"{path}: cannot read ({exc}); the file is corrupt or truncated") from exc
    raise UserError(f"{folder}: missing {stem} (or {stem}.gz)")


def _idx_array(path: Path, raw: bytes, want_dims: int) -> np.ndarray:
    if len(raw) < 8:
        raise UserError(f"{path}: too short to be an idx file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != want_dims:
        raise UserError(f"{path}: not an idx file of uint8 with {want_dims} dimensions "
                        f"(header {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise UserError(f"{path}: header promises {dims} = {expected} bytes, file holds {len(body)}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_idx(folder: Path, num_classes: int = 10) -> tuple[Split, Split, None]:
    splits = []
    for prefix in ("train", "t10k"):
        img_path, img_raw = _open_idx(folder, f"{prefix}-images-idx3-ubyte")
        lab_path, lab_raw = _open_idx(folder, f"{prefix}-labels-idx1-ubyte")
        images = _idx_array(img_path, img_raw, 3)
        labels = _idx_array(lab_path, lab_raw, 1).astype(np.int64)
        if len(images) != len(labels) or len(images) == 0:
            raise UserError(f"{img_path}: {len(images)} images but {lab_path.name} has {len(labels)} labels")
        if labels.max() >= num_classes:
            raise UserError(f"{lab_path}: label {labels.max()} outside 0..{num_classes - 1}")
        splits.append((images[:, None, :, :].copy(), labels))
    return splits[0], splits[1], None


# ---------------------------------------------------------------- image folders

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _list_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = [(path, index) for index, name in enumerate(classes)
             for path in sorted((root / name).rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES]
    return classes, items


def decode_image(path: Path, size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
    """One image as uint8 (C, H, W), resized to `size` (H, W) when given."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img = img.convert("L" if grayscale else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: cannot decode the image ({exc}); valid: PNG, JPEG, BMP, GIF or WebP") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def _probe(items: list[tuple[Path, int]]) -> tuple[tuple[int, int], bool]:
    """The most common image size, and whether every image is grayscale."""
    from PIL import Image
    sizes, gray = Counter(), True
    for path, _ in items:
        try:
            with Image.open(path) as img:
                sizes[(img.height, img.width)] += 1
                gray = gray and img.mode in ("L", "1", "I;16", "I")
        except Exception as exc:  # noqa: BLE001 — any decoder failure is the user's file
            raise UserError(f"{path}: cannot decode the image ({exc}); valid: PNG, JPEG, BMP, GIF or WebP") from exc
    return sizes.most_common(1)[0][0], gray


def _decode_folder(root: Path, classes: list[str], items, size, gray, cache_dir: Path | None) -> Split:
    """Decode every image once; later loads read the cached arrays (keyed by file names, sizes and times)."""
    key = hashlib.sha1(repr((str(root.resolve()), size, gray, classes,
                             [(str(p), p.stat().st_size, p.stat().st_mtime_ns, y) for p, y in items])).encode())
    cache = cache_dir / "imagefolder" / f"{key.hexdigest()[:20]}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return stored["x"], stored["y"]
    x = np.stack([decode_image(p, size, gray) for p, _ in items]) if items else np.zeros((0, 1 if gray else 3, *size), np.uint8)
    y = np.array([label for _, label in items], dtype=np.int64)
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, x=x, y=y)
    return x, y


def read_imagefolder(root: Path, image_size: int | list | None = None, cache_dir: Path | None = None):
    """ROOT/<class>/*.png, or ROOT/train/<class>/ and ROOT/test/<class>/. Returns train, test (or None), classes."""
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; an image folder holds one sub-folder of images per class")
    split_layout = (root / "train").is_dir()
    train_root = root / "train" if split_layout else root
    classes, train_items = _list_images(train_root)
    test_items = []
    if split_layout and (root / "test").is_dir():
        test_classes, test_items = _list_images(root / "test")
        unknown_classes = set(test_classes) - set(classes)
        if unknown_classes:
            raise UserError(f"{root / 'test'}: classes {sorted(unknown_classes)} are not in {train_root}")
        test_items = [(p, classes.index(test_classes[i])) for p, i in test_items]
    if not train_items:
        raise UserError(f"{train_root}: no images found; expected {train_root}/<class name>/*.png or *.jpg")
    if len({y for _, y in train_items}) < 2:
        raise UserError(f"{train_root}: only one class ({classes[train_items[0][1]]}) has images; "
                        "a classifier needs at least two")
    size, gray = _probe(train_items)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    train = _decode_folder(train_root, classes, train_items, size, gray, cache_dir)
    test = _decode_folder(root / "test", classes, test_items, size, gray, cache_dir) if test_items else None
    return train, test, classes
