"""The data doctor: each check on planted problems, then `cnnlab data doctor` on a folder that leaks."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

pytest.importorskip("imagehash", reason="the data doctor's extras: pip install -e '.[doctor]'")
pytest.importorskip("cleanlab", reason="the data doctor's extras: pip install -e '.[doctor]'")

from cnnlab.cli import main  # noqa: E402
from cnnlab.diagnose.data_doctor import (exact_duplicates, imbalance, label_suspects, near_duplicates,  # noqa: E402
                                         perceptual_hashes, pixel_hashes, sizes_and_modes)
from conftest import pattern_images  # noqa: E402


def photos(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """Smooth random pictures (blobs of colour), unlike each other as photos are: uint8 (N, 3, size, size)."""
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return (F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1) * 255).byte().numpy()


def resized_jpeg(img: np.ndarray) -> np.ndarray:
    """The image upscaled 1.5x, saved as JPEG and read back at its size: a near duplicate."""
    from PIL import Image
    size = img.shape[1]
    buffer = io.BytesIO()
    Image.fromarray(img.transpose(1, 2, 0)).resize((size * 3 // 2,) * 2, Image.BICUBIC).save(buffer, "JPEG", quality=90)
    back = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(back).transpose(2, 0, 1)


def test_exact_duplicates_within_and_across():
    x = photos(6)
    train = np.concatenate([x[:4], x[1:2]])  # image 1 twice
    test = np.concatenate([x[4:], x[3:4]])   # image 3 leaks into test
    assert exact_duplicates(pixel_hashes(train)) == [(1, 4)]
    assert exact_duplicates(pixel_hashes(train), pixel_hashes(test)) == [(3, 2)]


def test_near_duplicates_find_a_resized_reencoded_copy_and_nothing_else():
    x = photos(200, seed=1)
    copies = np.stack([resized_jpeg(x[i]) for i in (5, 50, 150)])
    pairs = near_duplicates(perceptual_hashes(x), perceptual_hashes(copies))
    assert sorted((i, j) for i, j, _ in pairs) == [(5, 0), (50, 1), (150, 2)]
    assert near_duplicates(perceptual_hashes(x)) == []  # 200 distinct pictures: no pair


def test_label_suspects_rank_the_flipped_labels_first():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 400)
    probs = np.full((400, 4), 0.05) + np.eye(4)[truth] * 0.8  # a model that is right about every image
    probs += rng.uniform(0, 0.1, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(400, 12, replace=False)
    given[flipped] = (given[flipped] + 1) % 4
    suspects = set(label_suspects(given, probs).tolist())
    assert suspects <= set(flipped.tolist()) and len(suspects) >= 9  # no false alarm, three quarters found


def test_imbalance_sizes_and_modes_say_what_they_mean():
    assert imbalance(["a", "b"], [100, 90]) is None
    found = imbalance(["a", "b", "c"], [4000, 300, 12])
    assert "333:1" in found.message and "per-class accuracy" in found.meaning
    found = sizes_and_modes({"sizes": {"32x32": 90, "32x48": 10}, "modes": {"RGB": 95, "L": 5}})
    assert [f.check for f in found] == ["sizes", "modes"] and "stretched" in found[0].meaning


def _folder(tmp_path):
    """ROOT/train and ROOT/test of smooth pictures in two classes, 30 + 10 each."""
    from PIL import Image
    x = photos(80, seed=2)
    for k, img in enumerate(x):
        split, label = ("train" if k % 40 < 30 else "test"), ("a" if k < 40 else "b")
        (tmp_path / "set" / split / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(tmp_path / "set" / split / label / f"{k}.png")
    return tmp_path / "set"


def test_data_doctor_reports_an_empty_class_and_unusable_files_instead_of_stopping(tmp_path, capsys):
    root = _folder(tmp_path)
    (root / "train" / "empty").mkdir()
    (root / "train" / "a" / "zero.jpg").write_bytes(b"")
    assert main(["data", "doctor", str(root), "--no-labels"]) == 0
    out = capsys.readouterr().out
    assert "[problem] empty classes: 1 class folder with no usable image (empty)" in out
    assert "[warning] unusable files: 1 file cannot be used (1 empty)" in out and "a/zero.jpg  (empty)" in out


def test_data_doctor_names_a_leak_and_a_conflicting_label(tmp_path, capsys):
    root = _folder(tmp_path)
    shutil.copy(root / "test" / "a" / "35.png", root / "train" / "a" / "copy-of-35.png")   # a leak
    shutil.copy(root / "train" / "a" / "3.png", root / "train" / "b" / "also-3.png")       # one picture, two classes
    assert main(["data", "doctor", str(root), "--no-labels", "--json", str(tmp_path / "doc.json")]) == 0
    out = capsys.readouterr().out
    assert "[problem] leakage: 1 test image (5.0%) is in the training set too" in out and "test accuracy is optimistic" in out
    assert "copy-of-35.png (train)  ~  test/a/35.png (test)" in out.replace(str(root) + "/", "")
    assert "copy-of-35.png" in out and "[problem] conflicting labels" in out and "also-3.png" in out
    import json
    report = json.loads((tmp_path / "doc.json").read_text())
    assert report["leaky"] and {f["check"] for f in report["findings"]} >= {"leakage", "duplicates",
                                                                            "conflicting labels"}


def test_the_label_check_finds_flipped_labels_with_a_quick_model(tmp_path):
    from cnnlab.diagnose.quick_model import out_of_fold_probs
    x, y = pattern_images(240, 3, 16, 3, seed=4)  # a bright band whose row gives the class: easy to learn
    given = y.copy()
    flipped = np.arange(0, 240, 40)  # 6 labels moved to the next class
    given[flipped] = (given[flipped] + 1) % 3
    probs = out_of_fold_probs(x, given, 3, folds=3, epochs=4)
    assert (probs.argmax(1) == y).mean() > 0.9
    assert len(set(label_suspects(given, probs)[:6].tolist()) & set(flipped.tolist())) >= 5


def test_the_run_doctor_says_a_leaky_sets_test_accuracy_is_optimistic(tmp_path, capsys):
    from cnnlab.diagnose.doctor import diagnose
    rows = [{"epoch": e, "loss": 1 / e, "acc": 0.5 + e / 20, "test_loss": 1.1 / e, "test_acc": 0.5 + e / 21}
            for e in range(1, 6)]
    assert "optimistic" not in diagnose(rows, 2, {"test_in_train": 0}).render()
    verdict = diagnose(rows, 2, {"test_in_train": 3, "test_images": 20})
    assert "optimistic: 3 test images (15.0%)" in verdict.details[0] and "data doctor" in verdict.prescriptions[0]
    # a run on a folder whose training set holds a test image says so, and so does `cnnlab doctor` later
    root = _folder(tmp_path)
    shutil.copy(root / "test" / "b" / "75.png", root / "train" / "b" / "copy.png")
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--set", "model=tutorial", "--batch-size", "16", "--epochs", "1",
                 "--run-dir", str(run), "--no-store"]) == 0
    assert "the test accuracy is optimistic: 1 test image (5.0%) is a training image too" in capsys.readouterr().out
    assert main(["doctor", str(run)]) == 0
    assert "optimistic" in capsys.readouterr().out


def test_the_quick_model_takes_enough_steps_on_a_small_set():
    from cnnlab.diagnose.quick_model import quick_config
    small = quick_config(4036)  # a fold of 5,045 images: short of steps at cifar10-90's batch, not of images
    assert small.batch_size == 63 and 4036 // small.batch_size >= 64 and small.epochs == 12
    large = quick_config(40_000)
    assert large.batch_size == 500 and large.epochs == 3  # a large set keeps the recipe's batch, and is not slower
    assert quick_config(200).batch_size == 32      # and a tiny one a batch worth a step
