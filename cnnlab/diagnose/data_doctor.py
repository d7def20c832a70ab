"""The data doctor: named checks over a data set's images and labels, each a pure function of arrays, and
`examine` that runs them on a loaded data set and says what each finding means for training.

    exact_duplicates   the same decoded pixels twice (sha1 of the uint8 array at the training resolution)
    near_duplicates    perceptual hashes (imagehash's pHash, 64 bits) within a few bits: resized, re-encoded
    leakage            either of them across train and test: the test accuracy is optimistic
    conflicting labels a duplicate pair filed under two classes
    label_suspects     confident learning (cleanlab: how many labels are wrong, then the least self-confident
                       first) on out-of-fold probabilities of a quick model (quick_model.py): images whose label
                       the rest of the data contradicts
    imbalance, sizes, modes   from the counts and the ingestion report

Thresholds and their figures are measured by bench/data_doctor_planted.py (docs/data.md).
"""
from __future__ import annotations

from collections import Counter

import os
from dataclasses import dataclass, field

import numpy as np

from ..data.duplicates import exact_duplicates, pixel_hashes

# pHash distance (bits of 64) at or under which two images are near duplicates. On the planted CIFAR-10
# benchmark (bench/data_doctor_planted.py: 5,000 + 1,000 images, copies upscaled 1.5x and saved as JPEG q90)
# the 45 planted pairs lay at 0-2 bits; the pairs not planted at 2 (one) and 4 (four, several of them the same
# car or animal photographed twice: CIFAR's own near-duplicates).
NEAR_BITS = 3
SHOW = 10  # items listed per finding in the terminal (all of them in the JSON)
LABEL_CHECK_MIN_PER_CLASS = 10  # training images a class, on average, below which the label check is skipped


@dataclass
class Finding:
    check: str            # leakage | duplicates | conflicting labels | label suspects | imbalance | sizes | modes
    severity: str         # problem (fix before trusting a result) | warning | info
    message: str          # what was found, with the data set's own numbers
    meaning: str          # what it means for training, and what to do
    items: list[dict] = field(default_factory=list)  # the files or indices concerned

    def as_dict(self) -> dict:
        return {"check": self.check, "severity": self.severity, "message": self.message, "meaning": self.meaning,
                "items": self.items}


@dataclass
class DataReport:
    name: str
    classes: list[str]
    train: int
    test: int
    findings: list[Finding]
    ingest: dict | None = None  # an image folder's ingestion report (cnnlab.data.ingest)
    seconds: dict = field(default_factory=dict)  # per check
    pred_probs: np.ndarray | None = field(default=None, repr=False)  # the label check's out-of-fold probabilities
    train_files: list[str] | None = field(default=None, repr=False)  # their images (an image folder's)
    train_labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def leaky(self) -> bool:
        return any(f.check == "leakage" for f in self.findings)

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def render(self) -> str:
        lines = [f"Data doctor: {self.name}: {self.train:,} training, {self.test:,} test images, "
                 f"{len(self.classes)} classes"]
        if not self.findings:
            lines.append("  nothing found: no duplicates, no leaks, no label suspects, balanced classes")
        for f in self.findings:
            lines.append(f"[{f.severity}] {f.check}: {f.message}")
            lines.append(f"    {f.meaning}")
            root = (self.ingest or {}).get("root")
            for item in f.items[:SHOW]:
                lines.append("      " + _item_text(item, root))
            if len(f.items) > SHOW:
                lines.append(f"      ... and {len(f.items) - SHOW:,} more (--json lists all)")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"name": self.name, "classes": self.classes, "train": self.train, "test": self.test,
                "leaky": self.leaky, "findings": [f.as_dict() for f in self.findings], "ingest": self.ingest,
                "seconds": self.seconds}



def _count(n: int, one: str, many: str | None = None) -> str:
    """"1 test image", "2 test images"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"

def _item_text(item: dict, root: str | None = None) -> str:
    def short(path: str) -> str:  # inside the folder: from the folder (the JSON keeps every path whole)
        return os.path.relpath(path, root) if root and path.startswith(root.rstrip("/") + "/") else path
    if "a" in item:
        how = "identical" if item.get("bits", 0) == 0 and item.get("exact") else f"{item['bits']} bits apart"
        split_a, split_b = item.get("splits", ("", ""))
        side = (lambda split: f" ({split})") if split_a != split_b else (lambda split: "")
        return f"{short(item['a'])}{side(split_a)}  ~  {short(item['b'])}{side(split_b)}  ({how})"
    if "file" in item:
        extra = f"  labelled {item['label']}, looks like {item['suggested']} ({item['confidence']:.0%})" \
            if "suggested" in item else f"  ({item['reason']})" if "reason" in item else ""
        return f"{short(item['file'])}{extra}"
    return ", ".join(f"{k} {v}" for k, v in item.items())


# ---------------------------------------------------------------- pure checks

def perceptual_hashes(x: np.ndarray) -> np.ndarray:
    """pHash (imagehash.phash: DCT of the 32x32 grayscale image, 64 bits) of each uint8 (C, H, W) image, as
    uint64."""
    import imagehash
    from PIL import Image
    out = np.empty(len(x), dtype=np.uint64)
    weights = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64))
    for i, img in enumerate(x):
        picture = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        bits = imagehash.phash(picture).hash.reshape(-1).astype(np.uint64)
        out[i] = np.bitwise_or.reduce(bits * weights)
    return out


def near_duplicates(a: np.ndarray, b: np.ndarray | None = None, max_bits: int = NEAR_BITS,
                    block: int = 2048) -> list[tuple[int, int, int]]:
    """Pairs (i, j, bits) whose pHashes differ in at most `max_bits` bits: within `a` (i < j), or between a
    and b. Blockwise over all pairs: 60,000 images are 1.8e9 pairs, about 10 s."""
    within = b is None
    b = a if within else b
    pairs = []
    for start in range(0, len(a), block):
        rows = a[start:start + block]
        bits = np.bitwise_count(rows[:, None] ^ b[None, :])
        if within:  # only j > i
            bits[np.arange(len(rows))[:, None] + start >= np.arange(len(b))[None, :]] = 255
        i, j = np.nonzero(bits <= max_bits)
        pairs += [(int(p) + start, int(q), int(bits[p, q])) for p, q in zip(i, j)]
    return pairs


def label_suspects(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Indices of the images whose label is likely wrong, most likely first: as many as confident learning
    estimates are wrong (cleanlab's `num_label_issues`, calibrated off-diagonal count), taken in order of the
    label quality score (self-confidence: the probability the model, which never saw the image, gives its label).
    cleanlab recommends this pairing for a cutoff over a ranking; on the planted benchmark it put 63 of the 100
    flipped labels first where `find_label_issues` (whose pruning drops some of the least confident) put 58."""
    from cleanlab.count import num_label_issues
    from cleanlab.rank import get_label_quality_scores
    count = num_label_issues(labels, pred_probs, estimation_method="off_diagonal_calibrated")
    scores = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    return np.argsort(scores, kind="stable")[:count]


def imbalance(classes: list[str], counts: list[int], ratio: float = 10) -> Finding | None:
    present = [(n, c) for c, n in zip(classes, counts) if n > 0]
    if len(present) < 2:
        return None
    (most, big), (least, small) = max(present), min(present)
    if most / least < ratio:
        return None
    return Finding("imbalance", "warning", f"{most / least:.0f}:1 ({big} {most:,}, {small} {least:,} training images)",
                   f"a model that always answers {big} scores {most / sum(n for n, _ in present):.0%}; read "
                   "per-class accuracy, not the total, and weight the loss or collect more of the small classes",
                   [{"class": c, "train": n} for n, c in sorted(present)])


def folder_problems(ingest: dict) -> list[Finding]:
    """Empty class folders and files that cannot be used, from an image folder's ingestion report."""
    out = []
    empty = ingest.get("empty_classes") or []
    if empty:
        out.append(Finding("empty classes", "problem", f"{_count(len(empty), 'class folder')} with no usable image "
                           f"({', '.join(empty)}), left out here",
                           "training stops at an empty class (it would be a class nothing belongs to): add images, "
                           "remove the folder, or train with --skip-empty (data.skip_empty: true)",
                           [{"class": name} for name in empty]))
    skipped = ingest.get("skipped") or []
    if skipped:
        reasons = Counter(reason for _, reason, _ in skipped)
        out.append(Finding("unusable files", "warning", f"{_count(len(skipped), 'file')} cannot be used ("
                           + ", ".join(f"{n:,} {reason}" for reason, n in reasons.most_common()) + ")",
                           "they are left out of training, or fail it with --strict; `cnnlab data info FOLDER --skip-empty` "
                           "lists each with its reason",
                           [{"file": path, "reason": reason} for path, reason, _ in skipped]))
    return out


def sizes_and_modes(ingest: dict) -> list[Finding]:
    """Odd sizes, aspect ratios and colour modes in an image folder's ingestion report."""
    out = []
    sizes = {tuple(int(v) for v in k.split("x")): n for k, n in (ingest.get("sizes") or {}).items()}
    if len(sizes) > 1:
        (w, h), n = max(sizes.items(), key=lambda kv: kv[1])  # width x height, as a file browser shows them
        total = sum(sizes.values())
        aspects = {round(a / b, 2) for a, b in sizes}
        out.append(Finding("sizes", "info", f"{len(sizes)}{'+' if len(sizes) >= 10 else ''} image sizes; "
                           f"{n:,} of {total:,} images{' (of the sizes listed)' if len(sizes) >= 10 else ''} "
                           f"are {w}x{h} (width x height)",
                           "every image is resized to one size for training: "
                           + ("aspect ratios differ (" + ", ".join(f"{a:g}" for a in sorted(aspects)[:6])
                              + "), so some images are stretched — crop them to one shape if the stretch hides "
                              "what tells the classes apart" if len(aspects) > 1 else
                              "one aspect ratio, so only the scale changes"),
                           [{"size": f"{a}x{b}", "images": k} for (a, b), k in sizes.items()]))
    modes = ingest.get("modes") or {}
    gray = {m for m in modes if m in ("1", "L", "LA", "I", "I;16", "F")}
    if gray and len(gray) < len(modes):
        out.append(Finding("modes", "warning", "grayscale and colour images together: "
                           + ", ".join(f"{m} {n:,}" for m, n in modes.items()),
                           "the grayscale ones train as colour images with three equal channels; if one class "
                           "is mostly grayscale, the model can learn the colour instead of the content",
                           [{"mode": m, "images": n} for m, n in modes.items()]))
    return out


# ---------------------------------------------------------------- the examination

def needs_extras() -> None:
    import importlib.util
    from ..errors import UserError
    missing = [m for m in ("imagehash", "cleanlab", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"the data doctor needs {', '.join(missing)}: pip install 'cnnlab[doctor]'")


def _name(files: list[str] | None, split: str, i: int) -> str:
    return files[i] if files else f"{split}[{i}]"


def examine(ds, labels: bool = True, max_bits: int = NEAR_BITS, folds: int = 5, epochs: int | None = None,
            progress=None) -> DataReport:
    """Every check on a loaded ImageDataset (its validation split counts as training). `labels`: also look
    for label errors (trains a quick model `folds` times: a minute or two on 5,000 images on 2 cores)."""
    import time
    needs_extras()
    say = progress or (lambda text: None)
    train_x, train_y = ds.train_x.numpy(), ds.train_y.numpy()
    train_files = getattr(ds, "train_files", None)
    if ds.val_x is not None:
        train_x = np.concatenate([train_x, ds.val_x.numpy()])
        train_y = np.concatenate([train_y, ds.val_y.numpy()])
        train_files = train_files + ds.val_files if train_files and getattr(ds, "val_files", None) else None
    test_x, test_y = ds.test_x.numpy(), ds.test_y.numpy()
    test_files = getattr(ds, "test_files", None)
    classes = list(ds.classes)
    findings: list[Finding] = []
    seconds = {}
    probs = None

    start = time.perf_counter()
    say("hashing pixels")
    ha, hb = pixel_hashes(train_x), pixel_hashes(test_x)
    say("perceptual hashes")
    pa, pb = perceptual_hashes(train_x), perceptual_hashes(test_x)
    seconds["hashes"] = time.perf_counter() - start

    def pairs(exact, near, split_a, files_a, split_b, files_b, ya, yb):
        seen = {(i, j) for i, j in exact}
        items = [{"a": _name(files_a, split_a, i), "b": _name(files_b, split_b, j), "bits": 0, "exact": True,
                  "ia": i, "ib": j, "labels": [classes[ya[i]], classes[yb[j]]], "splits": [split_a, split_b]}
                 for i, j in exact]
        items += [{"a": _name(files_a, split_a, i), "b": _name(files_b, split_b, j), "bits": d, "exact": False,
                   "ia": i, "ib": j, "labels": [classes[ya[i]], classes[yb[j]]], "splits": [split_a, split_b]}
                  for i, j, d in near if (i, j) not in seen]
        return items

    start = time.perf_counter()
    say("duplicates")
    within = pairs(exact_duplicates(ha), near_duplicates(pa, max_bits=max_bits), "train", train_files, "train",
                   train_files, train_y, train_y)
    within += pairs(exact_duplicates(hb), near_duplicates(pb, max_bits=max_bits), "test", test_files, "test",
                    test_files, test_y, test_y)
    across = pairs(exact_duplicates(ha, hb), near_duplicates(pa, pb, max_bits=max_bits), "train", train_files,
                   "test", test_files, train_y, test_y)
    seconds["duplicates"] = time.perf_counter() - start
    if across:
        exact = sum(1 for p in across if p["exact"])
        tests = len({p["ib"] for p in across})
        findings.append(Finding(
            "leakage", "problem", f"{_count(tests, 'test image')} ({tests / max(len(test_x), 1):.1%}) "
            f"{'is' if tests == 1 else 'are'} in the training set too ({_count(exact, 'identical pair')}, "
            f"{_count(len(across) - exact, 'near copy', 'near copies')})",
            "the test accuracy is optimistic: the model is scored on images it trained on; keep one copy of each "
            "pair (delete the other file; where the test set is held out of one folder, either copy) before "
            "trusting a result", across))
    if within:
        exact = sum(1 for p in within if p["exact"])
        findings.append(Finding(
            "duplicates", "warning", f"{_count(len(within), 'duplicate pair')} within a split ({exact:,} identical, "
            f"{_count(len(within) - exact, 'near copy', 'near copies')}: resized or re-encoded)",
            "each copy counts twice in training and in the score; harmless in small numbers, but a held-out "
            "split can put the copies on both sides (leakage) — keep one of each", within))
    conflicts = [p for p in within + across if p["labels"][0] != p["labels"][1]]
    if conflicts:
        findings.append(Finding(
            "conflicting labels", "problem", f"{_count(len(conflicts), 'duplicate pair')} filed under two classes",
            "the same picture taught as two classes: at most one label is right; fix the wrong one", conflicts))

    if labels and len(train_x) >= LABEL_CHECK_MIN_PER_CLASS * len(classes):
        from .quick_model import out_of_fold_probs
        start = time.perf_counter()
        say("label suspects: a quick model, out of fold")
        probs = out_of_fold_probs(train_x, train_y, len(classes), folds=folds, epochs=epochs, progress=say)
        ranked = label_suspects(train_y, probs)
        seconds["labels"] = time.perf_counter() - start
        accuracy = float((probs.argmax(1) == train_y).mean())
        if len(ranked):
            items = [{"file": _name(train_files, "train", int(i)), "index": int(i),
                      "label": classes[train_y[i]], "suggested": classes[int(probs[i].argmax())],
                      "confidence": float(probs[i].max()), "label_probability": float(probs[i, train_y[i]])}
                     for i in ranked]
            findings.append(Finding(
                "label suspects", "warning", f"{len(ranked):,} images whose label the rest of the data "
                f"contradicts (a quick model, {accuracy:.0%} right out of fold, gives their label little "
                "probability; most likely first)",
                "a wrong label teaches the model the wrong thing and makes the score wrong; look at the first ones "
                "— a real error is moved to its class, an ambiguous image removed", items))
    counts = np.bincount(train_y, minlength=len(classes)).tolist()
    found = imbalance(classes, counts)
    if found:
        findings.append(found)
    ingest = ds.ingest.as_dict() if getattr(ds, "ingest", None) is not None else None
    if ingest:
        findings += folder_problems(ingest) + sizes_and_modes(ingest)
    return DataReport(ds.name, classes, len(train_x), len(test_x), findings, ingest, seconds,
                      probs, train_files, train_y)
