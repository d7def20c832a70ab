"""torchvision's ImageNet architectures as named cnnlab models: torchvision's tensors load into them key for
key, and they compute torchvision's logits (fixtures from scripts/imagenet_fixtures.py, torchvision 0.29.1)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.device import choose_placement
from cnnlab.diagnose.lint import lint
from cnnlab.errors import UserError
from cnnlab.models import build_model
from cnnlab.models.pretrained import PUBLISHED, URL_ENV, Published
from cnnlab.models.summary import summarize
from cnnlab.models.weights import load_weights
from cnnlab.train.session import prepare
from cnnlab.train.trained import TrainedModel
from cnnlab.viz.evidence import receptive_field, saliency_and_cam
from imagenet_fill import filled

FIXTURES = Path(__file__).parent / "fixtures" / "imagenet"
ARCHS = {  # cnnlab's name: (torchvision's, its parameter count at 1000 classes)
    "resnet18-imagenet": ("resnet18", 11_689_512), "resnet34-imagenet": ("resnet34", 21_797_672),
    "resnet50-imagenet": ("resnet50", 25_557_032), "mobilenet-v3-large-imagenet": ("mobilenet_v3_large", 5_483_032),
    "efficientnet-b0-imagenet": ("efficientnet_b0", 5_288_548)}


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


def test_summary_shows_an_imagenet_architecture_at_imagenet_s_input_and_lint_passes(capsys):
    assert main(["summary", "resnet50_imagenet"]) == 0
    out = capsys.readouterr().out
    assert "Trainable params: 25,557,032" in out and "3x224x224" in out
    assert main(["lint", "resnet18-imagenet"]) == 0
    assert "lint: no findings" in capsys.readouterr().out
    assert main(["lint", "resnet18-imagenet", "--data", "cifar10"]) == 0  # built for 224: 32x32 is 1x1 by stage 4
    assert "early-collapse" in capsys.readouterr().out


# ------------------------------------------------------------------ weights: imagenet, from a local server

def _publish(root: Path, monkeypatch, base: str, prefix: str | None = None) -> str:
    """A torchvision-format ResNet-18 file on the local server, published under the name its SHA-256 gives
    (or `prefix`, a wrong one); cnnlab's cache and base URL pointed at the test's own."""
    path = root / "resnet18.pth"
    torch.save({k: torch.from_numpy(v) for k, v in filled(_fixture("resnet18")[2]["shapes"]).items()}, path)
    prefix = prefix or hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{prefix}.pth"
    path.rename(root / name)
    monkeypatch.setitem(PUBLISHED, "resnet18-imagenet", Published(name))
    monkeypatch.setenv(URL_ENV, base)
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(root.parent / "cache"))
    return name


def test_weights_imagenet_downloads_once_checks_and_loads_with_imagenet_s_normalisation(
        http_root, data_dir, tmp_path, monkeypatch):
    root, base = http_root
    name = _publish(root, monkeypatch, base)
    run = cnnlab.train({"model": {"name": "resnet18-imagenet", "weights": "imagenet"}, "epochs": 1, "threads": 1,
                        "batch_size": 20, "data": {"name": "cifar10", "dir": str(data_dir), "limit": 20}},
                       run_dir=str(tmp_path / "run"), quiet=True, store=False)
    assert run.result["weights"]["source"] == f"imagenet ({name})"
    assert run.result["weights"]["new"] == [] and run.result["weights"]["unused"] == []
    assert run.result["weights"]["replaced"] == ["layers.13.weight", "layers.13.bias"]  # 1000 classes -> 10
    assert (tmp_path / "cache" / "weights" / name).is_file()
    data = json.loads((run.dir / "data.json").read_text())
    assert data["mean"] == [0.485, 0.456, 0.406] and data["std"] == [0.229, 0.224, 0.225]
    assert data["normalized_by"] == "weights imagenet"
    (root / name).unlink()  # the second run reads the cache: no server file needed
    trained = TrainedModel.load(cnnlab.train(
        {"model": "resnet18-imagenet", "weights": "imagenet", "epochs": 1, "threads": 1, "batch_size": 20,
         "data": {"name": "cifar10", "dir": str(data_dir), "limit": 20, "normalize": "data"}},
        run_dir=str(tmp_path / "again"), quiet=True, store=False).dir)
    assert trained.mean != [0.485, 0.456, 0.406]  # data.normalize: data keeps the data's own statistics
    evidence = saliency_and_cam(trained, torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8), 3)
    assert evidence["cam"].shape == (32, 32)  # Grad-CAM reads the residual stages like any layer list


def test_an_image_folder_is_resized_to_the_weights_input_size_unless_the_config_says(image_folder):
    cfg, _ = prepare({"model": "resnet18-imagenet", "weights": "imagenet", "data": {"name": str(image_folder)}})
    assert cfg.data.image_size == 224
    cfg, _ = prepare({"model": "resnet18-imagenet", "weights": "imagenet",
                      "data": {"name": str(image_folder), "image_size": 64}})
    assert cfg.data.image_size == 64


def test_a_wrong_checksum_is_one_sentence_exit_2_and_nothing_kept(http_root, data_dir, tmp_path, monkeypatch,
                                                                   capsys):
    root, base = http_root
    name = _publish(root, monkeypatch, base, prefix="00000000")
    code = main(["train", "--data", "cifar10", "--data-dir", str(data_dir), "--epochs", "1", "--set", "threads=1",
                 "--set", "model=resnet18-imagenet", "--weights", "imagenet", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"weights: imagenet: {name} could not be fetched and checked" in err
    assert "SHA-256" in err and "expected 00000000..." in err
    assert not (tmp_path / "cache" / "weights" / name).exists()


def test_weights_imagenet_on_an_architecture_without_published_weights_names_those_with():
    with pytest.raises(UserError, match="model 'resnet18' has no published ImageNet weights in cnnlab; those that "
                                        "have: resnet18-imagenet"):
        load_weights(build_model("resnet18", (3, 32, 32), 10), "imagenet")


def test_squeeze_excite_is_a_layer_a_user_writes_and_a_linear_bottleneck_is_not_a_lint_finding():
    model = build_model([{"conv": {"filters": 32, "activation": "hardswish"}}, {"squeeze_excite": 8},
                         {"conv": 8}, "batchnorm", {"conv": {"filters": 32, "activation": "relu"}},
                         "global_avgpool", {"dense": 10}], (3, 16, 16), 10)
    rows = {row.index: row for row in model.infos}
    assert rows["2"].desc == "squeeze_excite 8 sigmoid"
    assert sum(p.numel() for p in model.layers[1].parameters()) == 32 * 8 + 8 + 8 * 32 + 32
    assert "linear-stack" not in [f.rule for f in lint(model)]  # 32 -> 8 -> 32: narrow on purpose
    with pytest.raises(UserError, match="layer 3: squeeze_excite 4 sigmoid: input 8 is a vector"):
        build_model(["flatten", {"dense": 8}, {"squeeze_excite": 4}, {"dense": 2}], (1, 4, 4), 2)


@pytest.mark.parametrize("name", ARCHS)
def test_grad_cam_reads_every_imagenet_architecture(name):
    cfg, _ = prepare({"model": name, "data": {"name": "cifar10"}, "threads": 1, "augment": False})
    model = build_model(name, (3, 64, 64), 10)
    trained = TrainedModel(model, cfg, [str(i) for i in range(10)], (3, 64, 64), [0.5] * 3, [0.25] * 3,
                           choose_placement("cpu", "fp32", False))
    evidence = saliency_and_cam(trained, torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8), 1)
    assert evidence["cam"].shape == (64, 64) and evidence["saliency"].shape == (64, 64)


def test_a_unit_after_squeeze_excite_sees_the_whole_image():
    model = build_model([{"conv": {"filters": 4, "padding": 1}}, {"squeeze_excite": 2}, {"conv": 4},
                         "global_avgpool", {"dense": 2}], (3, 16, 16), 2)
    seen = receptive_field(model.infos, "1", 5, 5)
    assert (seen["height"], seen["width"]) == (3, 3)
    seen = receptive_field(model.infos, "2", 5, 5)
    assert (seen["top"], seen["left"], seen["bottom"], seen["right"]) == (0, 0, 15, 15)


def test_normalising_by_the_weights_without_weights_that_carry_statistics_is_refused(data_dir, tmp_path):
    with pytest.raises(UserError, match="data.normalize: weights: the weights \\(none\\) carry no mean and std"):
        cnnlab.train({"model": "tutorial", "epochs": 1, "threads": 1,
                      "data": {"name": "mnist", "dir": str(data_dir), "normalize": "weights"}},
                     run_dir=str(tmp_path / "run"), quiet=True, store=False)
