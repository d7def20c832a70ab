"""Bring a model in (Keras code of several eras, Keras JSON, .keras files) and take it out (ONNX,
TorchScript, safetensors). The Keras totals are worked out by hand here, layer by layer, as Keras's
model.summary() counts them."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import cnnlab
from cnnlab.cli import main
from cnnlab.interop.keras import import_keras
from cnnlab.models import build_model
from cnnlab.models.summary import summarize

KERAS = Path(__file__).parent / "keras"


def counts(path_or_spec, shape, classes=10):
    spec = path_or_spec if isinstance(path_or_spec, dict) else import_keras(str(path_or_spec)).spec
    s = summarize(build_model(spec, shape, classes))
    return s.total, s.trainable, s.non_trainable


def test_keras2_cifar10_example_counts_what_keras_counts():
    # conv 3*9*32+32=896, 32*9*32+32=9,248, 32*9*64+64=18,496, 64*9*64+64=36,928; 32->32->30->15->15->13->6:
    # dense 6*6*64*512+512=1,180,160, 512*10+10=5,130
    assert counts(KERAS / "cifar10_cnn_keras2.py", (3, 32, 32)) == (1_250_858, 1_250_858, 0)


def test_keras1_channels_first_forum_code():
    imported = import_keras(str(KERAS / "cifar10_keras1_forum.py"))
    assert imported.input_shape == (3, 32, 32)
    assert any("channels-first" in n for n in imported.notes)
    first = imported.spec["layers"][0]
    assert first == {"conv": {"filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}}
    assert imported.spec["layers"][-1] == {"dense": {"units": "classes", "activation": "softmax"}}
    assert {"dense": {"units": 512, "activation": "relu", "max_norm": 3.0}} in imported.spec["layers"]
    # 896 + 9,248 + (16*16*32)*512+512 = 4,194,816 + 512*10+10 = 5,130
    assert counts(imported.spec, (3, 32, 32)) == (4_210_090, 4_210_090, 0)


def test_keras3_mnist_example():
    # 1*9*32+32=320; 28->26->13; 32*9*64+64=18,496; 13->11->5; 5*5*64*10+10=16,010
    assert counts(KERAS / "mnist_convnet_keras3.py", (1, 28, 28)) == (34_826, 34_826, 0)


def test_batchnorm_counts_moving_statistics_as_non_trainable():
    # conv without bias 3*9*32=864; BN 4*32=128 (64 non-trainable); conv 32*9*64+64=18,496; BN 4*64=256 (128);
    # dense 64*10+10=650
    assert counts(KERAS / "batchnorm_tf2.py", (3, 32, 32)) == (20_394, 20_202, 192)
    layers = import_keras(str(KERAS / "batchnorm_tf2.py")).spec["layers"]
    assert {"leaky_relu": 0.1} in layers and {"batchnorm": {"momentum": 0.9, "eps": 0.001}} in layers
    assert {"conv": {"filters": 64, "kernel": 3, "stride": 2, "padding": "same"}} in layers


def test_tf2_tutorial_and_tf_keras_spellings():
    # 28*28*128+128=100,480; 128*10+10=1,290 (the TensorFlow beginner tutorial's own summary: 101,770)
    assert counts(KERAS / "mnist_tf2_tutorial.py", (1, 28, 28)) == (101_770, 101_770, 0)
    assert import_keras(str(KERAS / "mnist_tf2_tutorial.py")).input_shape == (1, 28, 28)
    # conv 3*9*32+32=896 ('SAME'); conv 32*9*64+64=18,496; BN 4*64=256 (128 non-trainable); dense 64*10+10=650
    assert counts(KERAS / "mixed_tf_keras.py", (3, 32, 32)) == (20_298, 20_170, 128)
    layers = import_keras(str(KERAS / "mixed_tf_keras.py")).spec["layers"]
    assert layers[-1] == {"dense": {"units": 10, "activation": "softmax"}} and {"leaky_relu": 0.2} in layers


KERAS3_JSON = {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": [
    {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1],
                                                                     "name": "input_layer"}},
    {"module": "keras.layers", "class_name": "Conv2D", "config": {
        "name": "conv2d", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
        "use_bias": True, "kernel_constraint": None}},
    {"module": "keras.layers", "class_name": "MaxPooling2D", "config": {
        "name": "max_pooling2d", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2]}},
    {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flatten"}},
    {"module": "keras.layers", "class_name": "Dense", "config": {
        "name": "dense", "units": 10, "activation": "softmax", "use_bias": True,
        "kernel_constraint": {"module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 3}}}},
]}}


def test_keras_json_and_dot_keras_files(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(KERAS3_JSON))
    imported = import_keras(str(path))
    assert imported.input_shape == (1, 28, 28)
    assert imported.spec["layers"][-1] == {"dense": {"units": 10, "activation": "softmax", "max_norm": 3.0}}
    # 320; 26 -> 13; 13*13*32*10 + 10 = 54,090
    assert counts(imported.spec, (1, 28, 28)) == (54_410, 54_410, 0)
    archive = tmp_path / "model.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", json.dumps(KERAS3_JSON))
        z.writestr("metadata.json", "{}")
    assert import_keras(str(archive)).spec == imported.spec


def test_cnnlab_import_writes_a_commented_model_file_and_prints_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["import", str(KERAS / "cifar10_cnn_keras2.py")]) == 0
    out = capsys.readouterr().out
    assert "Total params: 1,250,858" in out and "softmax-output" in out
    assert "input_shape=x_train.shape[1:] is taken from the data set" in out
    text = (tmp_path / "cifar10_cnn_keras2.yaml").read_text()
    assert "# line 25: Conv2D(32, (3, 3), padding='same', input_shape=x_train.shape[1:])" in text
    assert yaml.safe_load(text)["layers"][0] == {"conv": {"filters": 32, "kernel": 3, "padding": "same"}}
    assert main(["import", str(KERAS / "cifar10_cnn_keras2.py")]) == 2  # never overwritten silently
    assert "already exists" in capsys.readouterr().err


def test_a_model_that_cannot_be_imported_names_the_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "rnn.py"
    source.write_text("from keras.models import Sequential\nfrom keras.layers import *\nmodel = Sequential()\n"
                      "model.add(Conv2D(8, 3, input_shape=(32, 32, 3)))\nmodel.add(Reshape((30, 240)))\n"
                      "model.add(LSTM(32))\nmodel.add(Dense(10))\n")
    assert main(["import", str(source)]) == 2
    err = capsys.readouterr().err
    assert "rnn.py line 5: Reshape((30, 240)): Keras layer 'Reshape' has no counterpart" in err
    assert "supported: Conv2D, Dense" in err and not (tmp_path / "rnn.yaml").exists()
    functional = tmp_path / "functional.py"
    functional.write_text("inputs = keras.Input((32, 32, 3))\nx = layers.Conv2D(8, 3)(inputs)\n")
    assert main(["import", str(functional)]) == 2
    assert "no Keras Sequential model found" in capsys.readouterr().err


def test_import_from_standard_input(tmp_path, capsys, monkeypatch):
    import io
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO((KERAS / "mnist_convnet_keras3.py").read_text()))
    assert main(["import", "-", "-o", "pasted.yaml"]) == 0
    assert "Total params: 34,826" in capsys.readouterr().out and (tmp_path / "pasted.yaml").exists()


# ------------------------------------------------------------------ export

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_cifar10
    root = tmp_path_factory.mktemp("export")
    data = root / "data"
    write_cifar10(data / "cifar-10-batches-py", per_batch=200)  # 1,000 training and 200 test images
    model = [{"conv": {"filters": 8, "padding": "same", "activation": "relu"}}, "batchnorm", {"maxpool": 2},
             {"conv": {"filters": 16, "padding": "same", "activation": "relu"}}, "global_avgpool", {"dense": 10}]
    run = cnnlab.train({"model": model, "data": {"name": "cifar10", "dir": str(data)}, "epochs": 1,
                        "batch_size": 64, "precision": "fp32"}, run_dir=root / "run", quiet=True, store=False)
    return run, data


def test_onnx_export_agrees_with_pytorch_on_1000_images(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnx
    run, _ = trained
    out = tmp_path / "model.onnx"
    assert main(["export", str(run.dir), "--format", "onnx", "-o", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"])[0] == "airplane" and "float32 in [0, 1]" in meta["input"]
    from cnnlab.interop.export import check_onnx
    images = torch.rand(1000, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    agreement = check_onnx(out, run.dir, images)
    assert agreement["same_top1"] == 1.0 and agreement["max_abs_diff"] < 1e-4
    import onnxruntime  # the batch axis is dynamic: one image works as well as a thousand
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": images[:1].numpy()})[0].shape == (1, 10)


def test_uint8_onnx_export_takes_raw_pixels(trained, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    run, _ = trained
    from cnnlab.interop.export import export
    from cnnlab.train import TrainedModel
    path = export(run.dir, "onnx", tmp_path / "u8.onnx", "uint8")
    pixels = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    ours = onnxruntime.InferenceSession(str(path)).run(None, {"image": pixels.numpy()})[0]
    wrapped = TrainedModel.load(run, device="cpu").deployable()
    with torch.no_grad():
        theirs = wrapped(pixels.float() / 255).numpy()
    assert np.abs(ours - theirs).max() < 1e-4


def test_torchscript_export_loads_without_cnnlab(trained, tmp_path):
    run, _ = trained
    from cnnlab.interop.export import export
    from cnnlab.train import TrainedModel
    path = export(run.dir, "torchscript", tmp_path / "model.pt")
    images = torch.rand(4, 3, 32, 32)
    torch.save(images, tmp_path / "images.pt")
    script = ("import sys; sys.modules['cnnlab'] = None  # any import of cnnlab would now fail\n"
              "import torch\n"
              f"m = torch.jit.load({str(path)!r})\n"
              f"out = m(torch.load({str(tmp_path / 'images.pt')!r}))\n"
              f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    wrapped = TrainedModel.load(run, device="cpu").deployable()
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "out.pt"), wrapped(images), atol=1e-5)


def test_safetensors_export_carries_what_rebuilds_it(trained, tmp_path):
    from safetensors import safe_open
    run, _ = trained
    path = tmp_path / "model.safetensors"
    assert main(["export", str(run.dir), "--format", "safetensors", "-o", str(path)]) == 0
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    model = build_model(json.loads(meta["model"]), json.loads(meta["input_shape"]), len(json.loads(meta["classes"])))
    model.load_state_dict(state)
    assert json.loads(meta["mean"]) == run.data_info["mean"]
