"""torchvision's ImageNet architectures as named cnnlab models: torchvision's tensors load into them key for
key, and they compute torchvision's logits (fixtures from scripts/imagenet_fixtures.py, torchvision 0.29.1)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.models import build_model
from cnnlab.models.summary import summarize
from cnnlab.models.weights import load_weights
from imagenet_fill import filled

FIXTURES = Path(__file__).parent / "fixtures" / "imagenet"
ARCHS = {"resnet18-imagenet": ("resnet18", 11_689_512), "resnet34-imagenet": ("resnet34", 21_797_672),
         "resnet50-imagenet": ("resnet50", 25_557_032)}


def _fixture(arch: str):
    data = np.load(FIXTURES / f"{arch}.npz")
    return data["input"], data["logits"], json.loads(str(data["meta"]))


@pytest.mark.parametrize("name", ARCHS)
def test_torchvision_weights_load_key_for_key_and_give_torchvisions_logits(name, tmp_path):
    arch, params = ARCHS[name]
    x, logits, meta = _fixture(arch)
    model = build_model(name, (3, 224, 224), 1000)
    assert summarize(model).trainable == params == meta["params"]
    # torchvision's state dict, filled from its own names and shapes as the fixture script filled it
    theirs = {k: torch.from_numpy(v) for k, v in filled(meta["shapes"]).items()}
    torch.save(theirs, tmp_path / f"{arch}.pth")
    report = load_weights(model, tmp_path / f"{arch}.pth", model.spec["weights_names"])
    assert report.new == [] and report.unused == [] and report.replaced == []
    assert len(report.loaded) == len(theirs)
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(x))
    torch.testing.assert_close(ours, torch.from_numpy(logits), rtol=1e-5, atol=1e-5)


def test_a_tensor_the_map_does_not_name_is_reported_not_used(tmp_path):
    model = build_model("resnet18-imagenet", (3, 64, 64), 1000)
    theirs = {k: torch.from_numpy(v) for k, v in filled(_fixture("resnet18")[2]["shapes"]).items()}
    theirs["extra.weight"] = torch.zeros(3)
    del theirs["layer4.1.bn2.running_mean"]
    torch.save(theirs, tmp_path / "w.pth")
    report = load_weights(model, tmp_path / "w.pth", model.spec["weights_names"])
    assert report.unused == ["extra.weight"]
    assert report.new == ["layers.11.body.4.running_mean"]
