"""Data sets as the front ends need them: a name (or image folder) -> input shape and class count, which
built-in sets are on this machine, per-class counts, and a grid of augmented training samples."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..data import SOURCES, input_spec, load_dataset
from ..errors import UserError


def names() -> list[str]:
    """The built-in data sets (any image folder works too)."""
    return list(SOURCES)


def input_for(name: str, data_dir: str | None = None, root: str | None = None,
              image_size=None, skip_empty: bool = False) -> tuple[tuple, int]:
    """(input shape, class count) of a data set (cnnlab.data.input_spec: an image folder is read once)."""
    return input_spec(name, data_dir, root, image_size, skip_empty)


def config_input(cfg) -> tuple[tuple, int]:
    """(input shape, class count) for a resolved training config's data section."""
    d = cfg.data
    return input_for(d.name, d.dir, d.root, d.image_size, d.skip_empty)


def data_for_shape(shape, spec: dict) -> str | None:
    """The built-in data set a model's declared input shape was written for (an imported Keras model's)."""
    last = spec["layers"][-1] if spec.get("layers") else None
    dense = last.get("dense") if isinstance(last, dict) else None
    units = dense.get("units") if isinstance(dense, dict) else dense
    if tuple(shape) == (3, 32, 32):
        return "cifar100" if units == 100 else "cifar10"
    if tuple(shape) == (1, 28, 28):
        return "mnist"
    return None


# names for people, not for config files: what a student picks from
LABELS = {"mnist": "MNIST digits (70,000)", "fashion-mnist": "Fashion-MNIST (clothes)", "cifar10": "CIFAR-10 (photos)",
          "cifar100": "CIFAR-100 (photos, 100 classes)"}
FOLDER_LABELS = {"mnist-sample": "Digit sample ({images:,} MNIST digits)"}


def label(name: str, root: str | None = None, images: int | None = None) -> str:
    """A data set's name as the pages show it: "CIFAR-10 (photos)", "Digit sample (10,000 MNIST digits)", or
    "your folder pets" for any other folder of images."""
    if name in LABELS:
        return LABELS[name]
    path = Path(root or name)
    folder = path.name
    if images is None and path.is_dir():
        images = count_images(path)
    if folder in FOLDER_LABELS and images:
        return FOLDER_LABELS[folder].format(images=images)
    return f"your folder {folder}" + (f" ({images:,} image files)" if images else "")  # broken ones too


def present(data_dir: str | None) -> list[str]:
    """The built-in sets already on this machine (what trains without a download)."""
    from ..data.dataset import default_cache_dir, locate
    found = []
    for name, source in SOURCES.items():
        try:
            if locate(source, data_dir, default_cache_dir(), download=False) is not None:
                found.append(name)
        except UserError:
            pass
    return found


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def folders(data_dir: str | None) -> list[dict]:
    """The image folders inside the data folder (`mnist-sample/`: real digits to draw on), offered beside the
    built-in sets: {name, path, classes, images (all of them), label} for each sub-folder laid out as <class>/ or train/<class>/ of images."""
    if not data_dir or not Path(data_dir).is_dir():
        return []
    official = {source.subdir for source in SOURCES.values()}
    found = []
    for folder in sorted(Path(data_dir).iterdir()):
        if not folder.is_dir() or folder.name in official:
            continue
        layout = folder / "train" if (folder / "train").is_dir() else folder
        classes = sorted(c for c in layout.iterdir() if c.is_dir())
        if len(classes) >= 2 and any(f.suffix.lower() in IMAGE_SUFFIXES for f in classes[0].iterdir()):
            images = count_images(folder)
            found.append({"name": folder.name, "path": str(folder.resolve()), "classes": len(classes),
                          "images": images, "label": label(folder.name, images=images)})
    return found


def count_images(folder: Path) -> int:
    """Images anywhere under `folder` (train/ and test/ both: the digit sample's 10,000)."""
    return sum(1 for f in Path(folder).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class DataInfo:
    name: str
    input_shape: tuple
    classes: list[str]
    train: int
    val: int
    test: int
    mean: list[float]
    std: list[float]
    train_counts: list[int]
    test_counts: list[int]
    ingest: dict | None = None  # an image folder's report (cnnlab.data.ingest.IngestReport.as_dict())
    ingest_text: str = ""

    def render(self) -> str:
        c, h, w = self.input_shape
        lines = [f"{self.name}: {self.train:,} training, {self.val:,} validation, {self.test:,} test images of "
                 f"{h}x{w}, {c} channel{'s' if c > 1 else ''}, {len(self.classes)} classes",
                 f"channel mean {', '.join(f'{m:.4f}' for m in self.mean)}   "
                 f"std {', '.join(f'{s:.4f}' for s in self.std)}"]
        width = max(len(n) for n in self.classes)
        lines.append(f"{'class':{width}s}  {'train':>7s}  {'test':>6s}")
        lines += [f"{name:{width}s}  {tr:7,d}  {te:6,d}"
                  for name, tr, te in zip(self.classes, self.train_counts, self.test_counts)]
        if self.ingest_text:
            lines.append(self.ingest_text)
        return "\n".join(lines)


def describe(name: str, data_dir: str | None = None, val_split: float | None = None,
             root: str | None = None, strict: bool = False, skip_empty: bool = False) -> DataInfo:
    """Counts per class, image size and channel statistics (`cnnlab data info`); for an image folder, its
    ingestion report too (files skipped by reason, empty and tiny classes, imbalance)."""
    ds = load_dataset(name, data_dir, val_split, root=root, strict=strict, skip_empty=skip_empty)
    mean, std = ds.channel_stats()
    train, test = Counter(ds.train_y.tolist()), Counter(ds.test_y.tolist())
    return DataInfo(ds.name, ds.input_shape, list(ds.classes), len(ds.train_x),
                    0 if ds.val_x is None else len(ds.val_x), len(ds.test_x), mean, std,
                    [train[i] for i in range(ds.num_classes)], [test[i] for i in range(ds.num_classes)],
                    ds.ingest.as_dict() if ds.ingest else None, ds.ingest.render() if ds.ingest else "")


def samples(name: str, out: str | Path | None = None, augment=None, data_dir: str | None = None, root: str | None = None,
            count: int = 32, seed: int = 0, columns: int = 8, repeat: int = 1, labelled: bool = True) -> Path:
    """A PNG grid of `count` random training images, augmented as `augment` says (a config file, auto, none,
    or a mapping of augment keys) — each image `repeat` times, so an augmentation's variety shows; `labelled`
    False: a bare strip (the web page's preview)."""
    import torch
    from .. import config as config_mod
    from ..train.augment import Augmenter
    from ..train.session import augmentation
    from ..viz.grid import image_grid
    ds = load_dataset(name, data_dir, root=root)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.train_x), generator=gen)[:count].repeat_interleave(repeat)
    images = ds.train_x[idx]
    title = f"{ds.name}: {count} training images"
    labels = [ds.classes[i] for i in ds.train_y[idx].tolist()]
    if augment is not None:
        given = augment if isinstance(augment, dict) and augment else "auto" if augment in ({}, None) else augment
        source = given if isinstance(given, str) and Path(given).exists() else \
            {"augment": given, "data": {"name": ds.name, "dir": data_dir} if ds.name in SOURCES else
             {"name": "imagefolder", "root": str(root or name)}}
        cfg, _ = config_mod.resolve(source)
        settings = augmentation(cfg)  # as a run of this config would: an image folder's flips by its content
        augmenter = Augmenter(settings, [0.0] * ds.input_shape[0], [1.0] * ds.input_shape[0], torch.device("cpu"))
        images = augmenter.augment(images, gen)
        title += ", augmented: " + ", ".join(f"{k}={v}" for k, v in settings.model_dump().items()
                                             if v not in (0, 0.0, "none") and k not in ("crop_mode", "fill"))
    if not labelled:
        labels, title = [""] * len(images), ""
    return image_grid(images, labels, out or f"{ds.name}-samples.png", columns=columns, title=title)


def doctor(name: str, data_dir: str | None = None, root: str | None = None, labels: bool = True,
           image_size=None, folds: int = 5, epochs: int | None = None, progress=None):
    """The data doctor (`cnnlab data doctor`): duplicates, train/test leakage, label suspects, imbalance, odd
    sizes and modes, each with what it means for training (cnnlab.diagnose.data_doctor)."""
    from ..diagnose.data_doctor import examine
    # an empty class folder is one of the doctor's findings, not a reason to look at nothing
    ds = load_dataset(name, data_dir, root=root, skip_empty=True, image_size=image_size)
    return examine(ds, labels=labels, folds=folds, epochs=epochs, progress=progress)


# The page's label check trains the quick model 5 times while the request waits: 64 s for 60 images of 16 px
# on the 2-core EPYC shared with other jobs (bench/data_panel.py), and the cost grows with the images (12
# epochs up to 2,000), so it stops at 200 (about 3.5 min there, the route's limit is 5); any number with
# `cnnlab data doctor` in a terminal.
LABEL_CHECK_MAX_IMAGES = 200


def own_photos(root: str, skip_empty: bool = False, labels: bool = False) -> dict:
    """What the Start page shows before a first run on the user's own photos: the ingestion report (files
    skipped by reason, empty and tiny classes, imbalance) and the data doctor's findings, as text and as the
    Data panel's sections (cnnlab.app.data_panel: what to draw, files relative to `root`). `labels`: the label
    check too (it trains a model: refused past LABEL_CHECK_MAX_IMAGES training images, where `cnnlab data
    doctor` runs it); `label_check` then says how the quick model did."""
    from ..data.ingest import scan_folder
    from ..diagnose.data_doctor import LABEL_CHECK_MIN_PER_CLASS, examine, needs_extras
    from .data_panel import panel
    from .limits import MAX_ZIP_FILES
    if not str(root).strip():
        raise UserError("no folder given: type the absolute path of a folder with one folder per class, or "
                        "upload a zip of such folders")
    if not Path(root).is_absolute() or not Path(root).is_dir():
        raise UserError(f"{root}: not a folder on this machine (give its absolute path)")
    # a huge tree refused while listed; the listing's sizes and modes give the Data panel its examples
    _, scanned = scan_folder(Path(root), skip_empty=skip_empty, max_files=MAX_ZIP_FILES)
    ds = load_dataset(root, skip_empty=skip_empty)
    found = {"root": root, "classes": ds.classes, "train": len(ds.train_x), "test": len(ds.test_x),
             "ingest": ds.ingest.as_dict(), "ingest_text": ds.ingest.render()}
    try:
        needs_extras()
    except UserError as exc:
        return {**found, "doctor": None, "doctor_text": str(exc), "panel": None, "label_check": None}
    train = found["train"] + (0 if ds.val_x is None else len(ds.val_x))  # the doctor counts validation as training
    if labels and train > LABEL_CHECK_MAX_IMAGES:
        raise UserError(f"the label check here stops at {LABEL_CHECK_MAX_IMAGES:,} training images and this folder "
                        f"has {train:,}: run `cnnlab data doctor {root}` in a terminal (it trains a quick model 5 "
                        "times)")
    if labels and train < LABEL_CHECK_MIN_PER_CLASS * len(ds.classes):
        raise UserError(f"too few images for the label check: it needs {LABEL_CHECK_MIN_PER_CLASS} training images a "
                        f"class ({LABEL_CHECK_MIN_PER_CLASS * len(ds.classes)} for {len(ds.classes)} classes) and this "
                        f"folder has {train}")
    report = examine(ds, labels=labels)
    check = None
    if labels:
        suspects = report.finding("label suspects")
        check = {"accuracy": float((report.pred_probs.argmax(1) == report.train_labels).mean()),
                 "suspects": len(suspects.items) if suspects else 0, "seconds": report.seconds.get("labels")}
    return {**found, "doctor": report.as_dict(), "doctor_text": report.render(),
            "panel": panel(report.as_dict(), root, scanned), "label_check": check}


def receive_zip(archive, uploads: str | Path, name: str = "photos", skip_empty: bool = False) -> dict:
    """A zip upload unpacked into a new folder under `uploads` (cnnlab.app.uploads.extract_zip: its limits and
    refusals), then `own_photos` on it."""
    import re
    import time
    from .uploads import extract_zip
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "photos"
    dest = Path(uploads) / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10 ** 6:06d}"
    unpacked = extract_zip(archive, dest)
    return {"unpacked": unpacked, **own_photos(unpacked["root"], skip_empty)}


def plan(cfg, asked="auto", data_dir: str | None = None, strip: bool = True) -> dict:
    """What a resolved training config will do, as the Train page states it before the run: the model's and
    the data's names, the augmentation this run will really apply (`auto` is none in a short run) and a strip
    of 16 training images as the run will see them (8, twice each, where it augments) (a PNG, or None where the data cannot be read:
    `strip_error` says why). `asked`: the config's `augment` as written."""
    import base64
    import tempfile
    from .. import config as config_mod
    d = cfg.data
    root = d.root if d.name == "imagefolder" else None
    name = d.name if d.name in SOURCES else (root or d.name)
    applied = {k: v for k, v in cfg.augment.model_dump().items()
               if v not in (0, 0.0, "none", None) and k not in ("crop_mode", "fill")}
    if applied:
        augment = ", ".join(f"{k} {v}" for k, v in applied.items())
    elif asked in ("auto", None):
        augment = (f"none: `auto` augments runs of {config_mod.SHORT_RUN_EPOCHS} epochs or more, "
                   f"and this one has {cfg.epochs}")
    else:
        augment = "none"
    out = {"model": cfg.name, "data": label(d.name, root), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
           "augment": augment, "strip": None, "strip_error": None}
    if strip:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = samples(name, Path(tmp) / "strip.png", cfg.augment.model_dump() if applied else None,
                               d.dir or data_dir, root=root, count=8 if applied else 16, repeat=2 if applied else 1,
                               columns=16, labelled=False)
                out["strip"] = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        except UserError as exc:
            out["strip_error"] = str(exc)
    return out

