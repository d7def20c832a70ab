"""Readers for the official file layouts. Each returns uint8 arrays (N, C, H, W) and int64 labels, after a
structural check that names the file at fault."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import UserError

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


# ---------------------------------------------------------------- image folders (ingest.py)

from .ingest import IMAGE_SUFFIXES, decode_image, read_imagefolder  # noqa: E402,F401 — where callers found them
