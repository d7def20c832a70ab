"""Bring a model in (Keras code of several eras and forms, Keras JSON, .keras files, PyTorch modules) and take it
out (ONNX, TorchScript, safetensors). The totals are worked out by hand here, layer by layer, as Keras's
model.summary() counts them (BatchNorm: 4 per channel, 2 of them non-trainable) and as PyTorch's
sum(p.numel()) counts them (BatchNorm: 2 per channel; the running statistics are buffers)."""
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
from cnnlab.errors import UserError
from cnnlab.interop.keras import import_keras
from cnnlab.models import build_model
from cnnlab.models.summary import summarize

KERAS = Path(__file__).parent / "keras"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


def _tensor(name):  # how Keras 3 writes a layer's input in its JSON
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 32, 32, 16], "keras_history": [name, 0, 0]}}


def _k3(kind, name, config, *inputs):
    args = [[_tensor(i) for i in inputs]] if len(inputs) > 1 else [_tensor(i) for i in inputs]
    return {"module": "keras.layers", "class_name": kind, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [{"args": args, "kwargs": {}}] if inputs else []}


def test_functional_models_in_keras_json_and_dot_keras_files(tmp_path):
    residual = {"module": "keras.src.models.functional", "class_name": "Functional", "config": {
        "name": "tiny_resnet", "layers": [
            _k3("InputLayer", "input_layer", {"batch_shape": [None, 32, 32, 3]}),
            _k3("Conv2D", "conv2d", {"filters": 16, "kernel_size": [3, 3], "padding": "same",
                                     "activation": "relu"}, "input_layer"),
            _k3("Conv2D", "conv2d_1", {"filters": 16, "kernel_size": [3, 3], "padding": "same",
                                       "activation": "linear"}, "conv2d"),
            _k3("Add", "add", {}, "conv2d_1", "conv2d"),
            _k3("Activation", "activation", {"activation": "relu"}, "add"),
            _k3("GlobalAveragePooling2D", "gap", {}, "activation"),
            _k3("Dense", "dense", {"units": 10}, "gap")],
        "input_layers": [["input_layer", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    archive = tmp_path / "tiny.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", json.dumps(residual))
    imported = import_keras(str(archive))
    assert imported.input_shape == (3, 32, 32) and imported.name == "tiny_resnet"
    assert imported.spec["layers"][1] == {"residual": {"layers": [{"conv": {"filters": 16, "kernel": 3,
                                                                            "padding": "same"}}],
                                                       "activation": "relu"}}
    # conv 3*9*16+16 = 448; conv 16*9*16+16 = 2,320; dense 16*10+10 = 170
    assert counts(imported.spec, (3, 32, 32)) == (2_938, 2_938, 0)
    keras2 = {"class_name": "Functional", "config": {"name": "branches", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "config": {"batch_input_shape": [None, 28, 28, 1]},
         "inbound_nodes": []},
        {"class_name": "Conv2D", "name": "conv2d", "config": {"filters": 8, "kernel_size": [1, 1]},
         "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Conv2D", "name": "conv2d_1", "config": {"filters": 8, "kernel_size": [3, 3], "padding": "same"},
         "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Concatenate", "name": "concatenate", "config": {"axis": -1},
         "inbound_nodes": [[["conv2d", 0, 0, {}], ["conv2d_1", 0, 0, {}]]]},
        {"class_name": "Flatten", "name": "flatten", "config": {}, "inbound_nodes": [[["concatenate", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "dense", "config": {"units": 10}, "inbound_nodes": [[["flatten", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    path = tmp_path / "branches.json"
    path.write_text(json.dumps(keras2))
    imported = import_keras(str(path))
    assert imported.input_shape == (1, 28, 28) and "concat" in imported.spec["layers"][0]
    # conv 1*1*8+8 = 16; conv 1*9*8+8 = 80; flatten 28*28*16 = 12,544; dense 12,544*10+10 = 125,450
    assert counts(imported.spec, (1, 28, 28)) == (125_546, 125_546, 0)
    keras2["config"]["layers"][2]["inbound_nodes"].append([["conv2d", 0, 0, {}]])  # the layer called twice
    path.write_text(json.dumps(keras2))
    with pytest.raises(UserError, match=r"branches.json: layer 3 \(Conv2D 'conv2d_1'\): is called 2 times"):
        import_keras(str(path))


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
    subclassed = tmp_path / "subclassed.py"
    subclassed.write_text("class Net(keras.Model):\n    def __init__(self):\n        super().__init__()\n"
                          "        self.conv = layers.Conv2D(8, 3)\n    def call(self, x):\n        return self.conv(x)\n")
    assert main(["import", str(subclassed)]) == 2
    err = capsys.readouterr().err
    assert "subclassed.py: no Keras model found" in err and "the `model.add(...)` lines alone" in err


def test_import_from_standard_input(tmp_path, capsys, monkeypatch):
    import io
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO((KERAS / "mnist_convnet_keras3.py").read_text()))
    assert main(["import", "-", "-o", "pasted.yaml"]) == 0
    assert "Total params: 34,826" in capsys.readouterr().out and (tmp_path / "pasted.yaml").exists()


# ------------------------------------------------------------------ what people paste: fragments, the functional API

def import_and_summarise(capsys, source, *flags) -> tuple[str, str]:
    """`cnnlab import SOURCE`, then `cnnlab summary` on the file it wrote: (import's output, summary's)."""
    assert main(["import", str(source), "-o", "imported.yaml", *flags]) == 0
    imported = capsys.readouterr().out
    assert main(["summary", "imported.yaml", *flags]) == 0
    return imported, capsys.readouterr().out


def test_model_add_lines_alone_import_with_the_input_shape_from_the_data_set(tmp_path, capsys, monkeypatch):
    # The TensorFlow CNN tutorial's model.add lines, pasted without `model = models.Sequential()`, on cifar10:
    # conv 3*9*32+32 = 896 (32 -> 30, pool -> 15); conv 32*9*64+64 = 18,496 (15 -> 13, pool -> 6);
    # conv 64*9*64+64 = 36,928 (6 -> 4); flatten 4*4*64 = 1,024; dense 1,024*64+64 = 65,600; dense 64*10+10 = 650:
    # 122,570, the tutorial's own model.summary()
    monkeypatch.chdir(tmp_path)
    imported, summary = import_and_summarise(capsys, EXAMPLES / "keras-fragment.py")
    assert "no `Sequential()` line: the 8 `.add(...)` lines" in imported
    assert "no input shape is written: it comes from the data set" in imported
    assert "Total params: 122,570" in summary and "Non-trainable params: 0" in summary
    # pasted from inside a function (indented), with `input_shape` on the first line: mnist's 1x28x28
    pasted = tmp_path / "pasted.py"
    pasted.write_text("    model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))\n"
                      "    model.add(MaxPooling2D((2, 2)))\n    model.add(Flatten())\n"
                      "    model.add(Dense(10, activation='softmax'))\n")
    # conv 1*9*32+32 = 320 (28 -> 26, pool -> 13); dense 13*13*32*10+10 = 54,090
    assert counts(import_keras(str(pasted)).spec, (1, 28, 28)) == (54_410, 54_410, 0)
    assert main(["import", str(pasted), "-o", "pasted.yaml"]) == 0
    assert "checked against mnist" in capsys.readouterr().out


def test_functional_resnet_becomes_residual_blocks_with_keras_counts(tmp_path, capsys, monkeypatch):
    # Keras counts BatchNorm as 4 per channel (2 trainable, 2 non-trainable):
    # stem conv 3*9*16 = 432, BN 64                                                              =     496
    # stage 1, 2 blocks: conv 16*9*16 = 2,304 + BN 64, twice                 = 4,736 a block   =   9,472
    # stage 2 block 1: conv 16*9*32 = 4,608, BN 128, conv 32*9*32 = 9,216, BN 128,
    #                  shortcut conv 1x1 16*32 = 512, BN 128                 = 14,720
    #         block 2: (9,216 + 128) * 2                                     = 18,688          =  33,408
    # stage 3 block 1: 32*9*64 = 18,432, 256, 64*9*64 = 36,864, 256, 32*64 = 2,048, 256 = 58,112
    #         block 2: (36,864 + 256) * 2                                    = 74,240          = 132,352
    # dense 64*10+10                                                                           =     650
    # total 176,378; non-trainable 2 * (16 + 4*16 + 5*32 + 5*64) = 2 * 560 = 1,120
    monkeypatch.chdir(tmp_path)
    imported, summary = import_and_summarise(capsys, EXAMPLES / "keras-functional-resnet.py")
    assert "Total params: 176,378" in summary and "Trainable params: 175,258" in summary
    assert "Non-trainable params: 1,120" in summary
    layers = yaml.safe_load((tmp_path / "imported.yaml").read_text())["layers"]
    blocks = [entry["residual"] for entry in layers if isinstance(entry, dict) and "residual" in entry]
    assert len(blocks) == 6 and all(b["activation"] == "relu" for b in blocks)
    assert [("shortcut" in b) for b in blocks] == [False, False, True, False, True, False]
    assert blocks[2]["shortcut"] == [{"conv": {"filters": 32, "kernel": 1, "stride": 2, "bias": False}},
                                     {"batchnorm": {"momentum": 0.99, "eps": 0.001}}]
    text = (tmp_path / "imported.yaml").read_text()
    assert "  - residual:" in text and "# line 22: y = layers.Add()([shortcut, y])" in text
    assert "checked against cifar10" in imported


def test_functional_inception_becomes_concat_blocks(tmp_path, capsys, monkeypatch):
    # stem conv 3*9*64+64 = 1,792; 32 -> maxpool -> 16
    # module 1 on 64 channels: 1x1 64*32+32 = 2,080 | 1x1 64*48+48 = 3,120, 3x3 48*9*64+64 = 27,712 |
    #   1x1 64*8+8 = 520, 5x5 8*25*16+16 = 3,216 | pool, 1x1 64*16+16 = 1,040              = 37,688 (128 channels)
    # module 2 on 128: 128*64+64 = 8,256 | 128*64+64 = 8,256, 64*9*96+96 = 55,392 |
    #   128*16+16 = 2,064, 16*25*48+48 = 19,248 | 128*32+32 = 4,128                        = 97,344 (240 channels)
    # dense 240*10+10 = 2,410; total 1,792 + 37,688 + 97,344 + 2,410 = 139,234
    monkeypatch.chdir(tmp_path)
    imported, summary = import_and_summarise(capsys, EXAMPLES / "keras-functional-inception.py")
    assert "Total params: 139,234" in summary
    assert "concat 4 branches" in summary and "128x16x16" in summary and "240x16x16" in summary
    layers = yaml.safe_load((tmp_path / "imported.yaml").read_text())["layers"]
    branches = layers[2]["concat"]["branches"]
    assert [len(b) for b in branches] == [1, 2, 2, 2]
    assert branches[3][0] == {"maxpool": {"size": 3, "stride": 1, "padding": "same"}}
    assert "pool-stride-1" not in summary  # Inception's pooling branch keeps the size on purpose


def test_keras_resnet20_example_counts_what_its_summary_printed():
    # keras/examples/cifar10_resnet.py: helper functions, loops, `if activation is not None`, keras.layers.add.
    # stem conv 3*9*16+16 = 448, BN 64; stack 1, 3 blocks of (2,320 + 64) * 2 = 4,768: 14,304;
    # stack 2: 16*9*32+32 = 4,640, 128, 32*9*32+32 = 9,248, 128, shortcut 1x1 16*32+32 = 544 (no BN) = 14,688,
    #   then 2 blocks of (9,248 + 128) * 2 = 18,752: 52,192;
    # stack 3: 32*9*64+64 = 18,496, 256, 64*9*64+64 = 36,928, 256, shortcut 32*64+64 = 2,112 = 58,048,
    #   then 2 blocks of (36,928 + 256) * 2 = 74,368: 206,784; avgpool 8 -> 64; dense 64*10+10 = 650
    # = 274,442; non-trainable 2 * (16 + 6*16 + 6*32 + 6*64) = 1,376 (what the example's summary printed)
    imported = import_keras(str(KERAS / "cifar10_resnet_keras2.py"))
    assert counts(imported.spec, (3, 32, 32)) == (274_442, 273_066, 1_376)
    blocks = [e["residual"] for e in imported.spec["layers"] if isinstance(e, dict) and "residual" in e]
    assert len(blocks) == 9 and [len(b.get("shortcut", [])) for b in blocks] == [0, 0, 0, 1, 0, 0, 1, 0, 0]
    assert imported.all_notes().count("line 66: kernel_regularizer not imported: use optimizer.weight_decay "
                                      "(cnnlab decays conv and dense weights by default)") == 1


def test_a_feature_extractor_around_a_sequential_model_reads_the_sequential_one(tmp_path):
    source = tmp_path / "features.py"
    source.write_text("model = Sequential()\nmodel.add(Conv2D(8, 3, input_shape=(28, 28, 1), activation='relu'))\n"
                      "model.add(Flatten())\nmodel.add(Dense(10))\n"
                      "features = Model(inputs=model.input, outputs=model.layers[0].output)\n")
    # conv 1*9*8+8 = 80 (28 -> 26); dense 26*26*8*10+10 = 54,090
    assert counts(import_keras(str(source)).spec, (1, 28, 28)) == (54_170, 54_170, 0)


def test_a_functional_graph_that_is_not_blocks_names_the_use_that_does_not_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "tangled.py"
    source.write_text("inputs = keras.Input((32, 32, 3))\n"
                      "t = layers.Conv2D(8, 3, padding='same')(inputs)\n"
                      "a = layers.Conv2D(8, 3, padding='same')(t)\n"
                      "b = layers.Conv2D(8, 3, padding='same')(t)\n"
                      "c = layers.Add()([a, b])\n"
                      "d = layers.Add()([c, a])\n"  # `a` again, after it was joined with `b`
                      "x = layers.GlobalAveragePooling2D()(d)\n"
                      "model = keras.Model(inputs, layers.Dense(10)(x))\n")
    assert main(["import", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and len(err.strip().splitlines()) == 1
    assert "tangled.py line 6: d = layers.Add()([c, a]): does not fit cnnlab's model language" in err
    assert "the output of line 3 (`a = layers.Conv2D(8, 3, padding='same')(t)`)" in err and "line 5" in err
    assert "`residual` block" in err and "`concat` block" in err and not (tmp_path / "tangled.yaml").exists()
    shared = tmp_path / "shared.py"
    shared.write_text("inputs = keras.Input((32, 32, 3))\nconv = layers.Conv2D(3, 3, padding='same')\n"
                      "x = conv(conv(inputs))\nmodel = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(x)))\n")
    assert main(["import", str(shared)]) == 2
    assert "shared.py line 3: x = conv(conv(inputs)): the Conv2D made on line 2 is applied a second time" in \
        capsys.readouterr().err
    unknown_depth = tmp_path / "depth.py"
    unknown_depth.write_text("import sys\ndepth = int(sys.argv[1])\nx = inputs = keras.Input((32, 32, 3))\n"
                             "for i in range(depth):\n    x = layers.Conv2D(8, 3)(x)\n"
                             "model = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(x)))\n")
    assert main(["import", str(unknown_depth)]) == 2
    assert "depth.py line 4: `for i in range(depth)` cannot be decided without running the script" in \
        capsys.readouterr().err


# ------------------------------------------------------------------ PyTorch modules

def test_pytorch_tutorial_net_imports_with_its_own_count(tmp_path, capsys, monkeypatch):
    # conv1 3*5*5*6+6 = 456 (32 -> 28, pool -> 14); conv2 6*5*5*16+16 = 2,416 (14 -> 10, pool -> 5);
    # flatten 16*5*5 = 400 (channels first, as PyTorch's); fc1 400*120+120 = 48,120; fc2 120*84+84 = 10,164;
    # fc3 84*10+10 = 850: 62,006, what sum(p.numel() for p in Net().parameters()) gives
    monkeypatch.chdir(tmp_path)
    imported, summary = import_and_summarise(capsys, f"{EXAMPLES / 'pytorch-tutorial-net.py'}:Net")
    assert "PyTorch counts 62,006 parameters" in imported and "No module named 'torchvision'" in imported
    assert "Total params: 62,006" in summary and "Non-trainable params: 0" in summary
    assert not (tmp_path / "data").exists()  # the script's CIFAR-10 download and training loop did not run
    infos = build_model(tmp_path / "imported.yaml", (3, 32, 32), 10).infos
    flatten, fc1 = infos[6], infos[7]  # channels-first, as PyTorch flattens: fc1 takes the same 400 inputs
    assert flatten.out_shape == (400,) and fc1.module.in_features == 400
    assert sum(p.numel() for p in fc1.module.parameters()) == 48_120
    layers = yaml.safe_load((tmp_path / "imported.yaml").read_text())["layers"]
    assert layers[:3] == [{"conv": {"filters": 6, "kernel": 5}}, "relu", {"maxpool": 2}]
    assert "# line 39: self.conv1 (Conv2d): x = self.pool(F.relu(self.conv1(x)))" in \
        (tmp_path / "imported.yaml").read_text()


def _load_example(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_resnet_imports_as_the_keras_one_does(tmp_path, capsys, monkeypatch):
    # PyTorch counts BatchNorm as 2 per channel: the Keras example's 176,378 less 2 per BN channel (560):
    # stem 432 + 32; stage 1: (2,304 + 32) * 2 * 2 = 9,344; stage 2: 4,608 + 64 + 9,216 + 64 + 512 + 64 = 14,528
    # and (9,216 + 64) * 2 = 18,560; stage 3: 18,432 + 128 + 36,864 + 128 + 2,048 + 128 = 57,728 and
    # (36,864 + 128) * 2 = 73,984; linear 650: 175,258
    assert sum(p.numel() for p in _load_example("pytorch-resnet-net").ResNet().parameters()) == 175_258
    monkeypatch.chdir(tmp_path)
    imported, summary = import_and_summarise(capsys, EXAMPLES / "pytorch-resnet-net.py")  # the one top class
    assert "imported class ResNet" in imported and "PyTorch counts 175,258 parameters" in imported
    assert "Trainable params: 175,258" in summary and "Non-trainable params: 1,120" in summary
    keras = import_keras(str(EXAMPLES / "keras-functional-resnet.py")).spec
    torch_spec = yaml.safe_load((tmp_path / "imported.yaml").read_text())
    assert counts(torch_spec, (3, 32, 32)) == counts(keras, (3, 32, 32)) == (176_378, 175_258, 1_120)
    blocks = [e["residual"] for e in torch_spec["layers"] if isinstance(e, dict) and "residual" in e]
    assert [("shortcut" in b) for b in blocks] == [False, False, True, False, True, False]
    assert torch_spec["layers"][-2:] == ["global_avgpool", {"dense": {"units": 10}}]


NETS = """\
import torch
from torch import nn
import torch.nn.functional as F


class Branchy(nn.Module):
    \"\"\"Two branches concatenated, a DenseNet-style concat with the input, dropout and x.view.\"\"\"
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.grow = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = torch.cat((x, F.relu(self.grow(x))), 1)
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.fc(self.drop(x)), dim=1)


class Upsampling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(4 * 56 * 56, 10)

    def forward(self, x):
        x = self.up(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


class Sized(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3)


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        if x.mean() > 0:
            x = self.conv(x)
        return x
"""


def test_pytorch_package_module_with_concat_and_what_is_refused(tmp_path, capsys, monkeypatch):
    package = tmp_path / "theirnets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from theirnets.small import Branchy
    # stem conv 1*9*8+8 = 80, BN 2*8 = 16; left 8*4+4 = 36 | right 8*4+4 = 36, 4*9*4+4 = 148 (8 channels);
    # grow 8*9*8 = 576 (8 + 8 = 16 channels); pool; fc 16*10+10 = 170: 1,062
    assert sum(p.numel() for p in Branchy().parameters()) == 1_062
    imported, summary = import_and_summarise(capsys, "theirnets.small:Branchy", "--data", "mnist")
    assert "PyTorch counts 1,062 parameters" in imported and "the final log_softmax is left out" in imported
    assert "Trainable params: 1,062" in summary and "Non-trainable params: 16" in summary
    layers = yaml.safe_load((tmp_path / "imported.yaml").read_text())["layers"]
    assert layers[3] == {"concat": {"branches": [[{"conv": {"filters": 4, "kernel": 1}}],
                                                 [{"conv": {"filters": 4, "kernel": 1}}, "relu",
                                                  {"conv": {"filters": 4, "kernel": 3, "padding": 1}}]]}}
    assert layers[4] == {"concat": {"branches": [[], [{"conv": {"filters": 8, "kernel": 3, "padding": 1,
                                                                "bias": False}}, "relu"]]}}
    assert layers[5:] == ["global_avgpool", {"dropout": 0.25}, {"dense": {"units": 10}}]  # no flatten after it
    refused = {
        "Upsampling": "theirnets.small:Upsampling: fx node `up` (call_module Upsample) at line 35 "
                      "(`x = self.up(torch.relu(self.conv(x)))`): Upsample has no counterpart",
        "Sized": "theirnets.small:Sized: Sized() fails (Sized.__init__() missing 1 required positional argument: "
                 "'width'); give its arguments in the reference, as theirnets.small:Sized(width=...)",
        "Gated": "theirnets.small:Gated: torch.fx cannot trace forward",
        "Missing": "theirnets.small:Missing: theirnets.small has no 'Missing'; its nn.Module classes: Branchy",
    }
    for name, message in refused.items():
        assert main(["import", f"theirnets.small:{name}", "-o", f"{name}.yaml"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / f"{name}.yaml").exists()
    flat = tmp_path / "flat_linear.py"
    flat.write_text("from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    "        self.conv = nn.Conv2d(1, 8, 3)\n        self.fc = nn.Linear(26, 10)\n"
                    "    def forward(self, x):\n        return self.fc(self.conv(x)).mean((1, 2))\n")
    assert main(["import", f"{flat}:Net"]) == 2
    assert "flat_linear.py:Net: fx node `fc` (call_module Linear) at line 8" in capsys.readouterr().err
    two = tmp_path / "two.py"
    two.write_text("from torch import nn\nclass A(nn.Module):\n    pass\nclass B(nn.Module):\n    pass\n")
    assert main(["import", str(two)]) == 2
    assert f"two.py: more than one nn.Module class to import; name it: {two}:A, {two}:B" in capsys.readouterr().err


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
