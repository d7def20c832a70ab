"""What Start's Data panel costs: one thumbnail (a 12-megapixel JPEG and a 32-pixel PNG, median of 20), and
reading a small folder with and without the label check (the quick model trained 5 times), as the page asks.

    python bench/data_panel.py

Prints the machine, then the figures (docs/data.md#the-data-panel-on-start)."""
from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.app.datasets import own_photos
from cnnlab.app.thumbnails import thumbnail


def median_ms(fn, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def band_folder(root: Path, per_class: int = 20, classes: int = 3, side: int = 16) -> list[str]:
    """train/ and test/ folders of noise with a bright band whose row gives the class (easy to learn); the
    first training image of each class filed under the next class. Returns those relabelled files."""
    rng = np.random.default_rng(0)
    relabelled = []
    for split, n in (("train", per_class), ("test", 3)):
        for c in range(classes):
            for i in range(n):
                img = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
                img[c * side // classes:(c + 1) * side // classes] = 220
                label = (c + 1) % classes if split == "train" and i == 0 else c
                (root / split / f"c{label}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / split / f"c{label}" / f"{c}-{i}.png")
                if label != c:
                    relabelled.append(f"{split}/c{label}/{c}-{i}.png")
    return relabelled


def main() -> None:
    model = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(" \t:")
    print(model, platform.machine(), "load average", " ".join(open("/proc/loadavg").read().split()[:3]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(tmp / "photo.jpg", quality=90)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp / "small.png")
        for name in ("photo.jpg", "small.png"):
            print(f"thumbnail of {name}: {median_ms(lambda: thumbnail(str(tmp), name, [tmp])):.1f} ms (median of 20)")
        relabelled = band_folder(tmp / "bands")
        print("relabelled:", relabelled)
        for labels in (False, True):
            start = time.perf_counter()
            found = own_photos(str(tmp / "bands"), labels=labels)
            print(f"own_photos, {found['train']} training images, labels={labels}: "
                  f"{time.perf_counter() - start:.1f} s" + (f"; {found['label_check']}" if labels else ""))
        suspects = next((s["suspects"] for s in found["panel"] if s["check"] == "label suspects"), [])
        print("suspects:", [s["file"] for s in suspects])


if __name__ == "__main__":
    main()
