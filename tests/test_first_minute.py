"""Defaults that learn in the first minute: short runs take smaller batches and no augmentation, and an image
folder's flips are decided by its content (cnnlab/config.py, cnnlab/data/mirror.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.config import auto_batch_size
from cnnlab.data.mirror import mirror_test
from cnnlab.train.session import prepare_config

from conftest import SHARED


def test_short_runs_take_smaller_batches_and_long_runs_keep_128():
    assert auto_batch_size(60_000, 1) == 32         # Fashion-MNIST, one epoch: 1,875 steps, not 469
    assert auto_batch_size(60_000, 2) == 64         # 1,876 steps
    assert auto_batch_size(60_000, 3) == 128        # 1,407 steps at 128
    assert auto_batch_size(50_000, 10) == 128       # the README's main job is unchanged
    assert auto_batch_size(8_004, 3) == 32          # the MNIST sample: as many steps as 32 allows


def _strokes(kind: str, n: int, seed: int) -> np.ndarray:
    """Left-right asymmetric classes (an L and its mirror image J) or symmetric ones (a bar, a cross)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(n, 1, 16, 16)).astype(np.uint8)
    for image in images:
        if kind == "L":
            image[0, 2:14, 3:5] = 250; image[0, 12:14, 3:12] = 250
        elif kind == "J":
            image[0, 2:14, 11:13] = 250; image[0, 12:14, 4:13] = 250
        elif kind == "bar":
            image[0, 2:14, 7:9] = 250
        else:
            image[0, 7:9, 2:14] = 250; image[0, 2:14, 7:9] = 250
    return images


def _folder(tmp_path, kinds) -> str:
    root = tmp_path / "-".join(kinds)
    for c, kind in enumerate(kinds):
        (root / kind).mkdir(parents=True)
        for i, img in enumerate(_strokes(kind, 40, c)):
            Image.fromarray(img[0]).save(root / kind / f"{i}.png")
    return str(root)


def test_the_mirror_test_tells_letters_from_symmetric_shapes():
    x = torch.from_numpy(np.concatenate([_strokes("L", 60, 0), _strokes("J", 60, 1)]))
    y = torch.tensor([0] * 60 + [1] * 60)
    letters = mirror_test(x, y)
    assert not letters.keeps_labels and letters.plain > 0.9 and letters.mirrored < 0.2
    x = torch.from_numpy(np.concatenate([_strokes("bar", 60, 0), _strokes("cross", 60, 1)]))
    shapes = mirror_test(x, y)
    assert shapes.keeps_labels and shapes.mirrored > 0.9


def test_an_image_folder_of_mirror_pairs_trains_without_flips_and_a_symmetric_one_with_them(tmp_path):
    letters = prepare_config({"data": {"name": _folder(tmp_path, ["L", "J"])}, "epochs": 5})
    shapes = prepare_config({"data": {"name": _folder(tmp_path, ["bar", "cross"])}, "epochs": 5})
    assert letters.augment.flip == "none" and letters.augment.crop == 4
    assert shapes.augment.flip == "horizontal"
    asked = prepare_config({"data": {"name": str(tmp_path / "L-J")}, "epochs": 5, "augment": {"flip": "horizontal"}})
    assert asked.augment.flip == "horizontal"  # what the config asks for is never overruled


def test_short_runs_skip_augmentation_unless_asked_and_recipes_are_untouched():
    assert prepare_config({"data": {"name": "cifar10"}, "epochs": 3}).augment.crop == 0
    assert prepare_config({"data": {"name": "cifar10"}, "epochs": 5}).augment.crop == 4
    assert prepare_config({"data": {"name": "cifar10"}, "epochs": 3, "augment": {"crop": 2}}).augment.crop == 2
    fast = prepare_config({"recipe": "cifar10-fast", "epochs": 2})
    assert fast.batch_size == 2000 and fast.augment.flip == "alternating"


@pytest.mark.skipif(not (SHARED / "fashion-mnist").exists(), reason="../shared/datasets/fashion-mnist is absent")
def test_one_epoch_of_the_tutorial_net_on_fashion_mnist_passes_085(tmp_path):
    from cnnlab.app.job import Job
    run = Job({"model": "tutorial", "epochs": 1, "data": {"name": "fashion-mnist", "dir": str(SHARED)},
               "threads": 1}, run_dir=tmp_path / "r", store=False).run()
    assert run.config.batch_size == 32 and run.config.augment.crop == 0
    assert run.result["test_acc"] >= 0.85   # 0.797 with the defaults before (batch 128, crop + flip)


@pytest.mark.skipif(not (SHARED / "mnist-sample").exists(), reason="../shared/datasets/mnist-sample is absent")
def test_the_mnist_sample_is_read_as_digits_that_must_not_be_flipped():
    from cnnlab.data import folder_facts
    facts = folder_facts(str(SHARED / "mnist-sample"))
    assert not facts.mirror.keeps_labels, facts.mirror.describe()
