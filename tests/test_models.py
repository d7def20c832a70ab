import textwrap

import pytest
import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models import build_model, list_models
from cnnlab.models.summary import render, summarize

KERAS_CIFAR = """\
name: keras-cifar
layers:
  - conv: {filters: 32, kernel: 3, padding: same, activation: relu}
  - conv: {filters: 32, kernel: 3, padding: same, activation: relu}
  - maxpool: 2
  - dropout: 0.2
  - batchnorm
  - flatten
  - dense: {units: 1024, activation: relu, max_norm: 3}
  - dense: 10
"""


def write(tmp_path, text, name="model.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_contract_example_builds_and_runs(tmp_path):
    model = build_model(write(tmp_path, KERAS_CIFAR), (3, 32, 32), 10)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert [i.kind for i in model.infos] == ["conv", "conv", "maxpool", "dropout", "batchnorm", "flatten", "dense", "dense"]
    assert model.infos[6].module[0].max_norm == 3


def test_totals_match_keras_model_summary():
    # Keras counts: conv k*k*in*out+out, dense in*out+out, BatchNorm 4*C of which 2*C (moving stats) non-trainable
    import yaml
    spec = yaml.safe_load(KERAS_CIFAR)
    s = summarize(build_model(spec, (3, 32, 32), 10))
    keras_trainable = (3 * 9 * 32 + 32) + (32 * 9 * 32 + 32) + 2 * 32 + (8192 * 1024 + 1024) + (1024 * 10 + 10)
    assert s.trainable == keras_trainable
    assert s.non_trainable == 2 * 32
    assert s.total == keras_trainable + 64
    assert s.macs == 32 * 32 * 32 * 3 * 9 + 32 * 32 * 32 * 32 * 9 + 8192 * 1024 + 1024 * 10
    text = render(s)
    assert "Total params: 8,410,154" in text and "Trainable params: 8,410,090" in text
    assert "Non-trainable params: 64" in text and "Multiply-accumulates per image: 18,720,768" in text


def test_shorthands_and_bare_names_mean_the_defaults():
    a = build_model([{"conv": 8}, "relu", {"maxpool": 2}, "flatten", {"dense": 10}], (1, 8, 8), 10)
    b = build_model([{"conv": {"filters": 8, "kernel": 3}}, {"relu": None}, {"maxpool": {"size": 2, "stride": 2}},
                     {"flatten": {}}, {"dense": {"units": 10}}], (1, 8, 8), 10)
    assert str(a.layers) == str(b.layers)


def test_same_padding_matches_keras_output_size_for_strides():
    model = build_model([{"conv": {"filters": 4, "kernel": 3, "stride": 2, "padding": "same"}},
                         {"conv": {"filters": 4, "kernel": 4, "padding": "same"}},
                         {"maxpool": {"size": 3, "stride": 2, "padding": "same"}}, "global_avgpool", {"dense": 3}],
                        (3, 15, 15), 3)
    assert [i.out_shape for i in model.infos[:3]] == [(4, 8, 8), (4, 8, 8), (4, 4, 4)]
    assert model(torch.zeros(1, 3, 15, 15)).shape == (1, 3)


def test_every_layer_type_builds():
    layers = [{"pad": {"size": 2, "mode": "reflect"}}, {"conv": {"filters": 8, "kernel": [3, 5], "dilation": 1,
              "groups": 1, "bias": False}}, {"batchnorm": {"momentum": 0.99, "eps": 1e-3}}, {"leaky_relu": 0.2},
              {"conv": {"filters": 8, "kernel": 3, "padding": 1, "groups": 2, "activation": "gelu"}}, "elu", "silu",
              "mish", {"spatial_dropout": 0.1}, {"avgpool": 2},
              {"residual": {"layers": [{"conv": {"filters": 16, "kernel": 3, "padding": "same", "stride": 2}}, "tanh"],
                            "activation": "relu"}},
              "sigmoid", {"dense": 6}, "global_maxpool", {"dropout": 0.3}, {"dense": {"units": 5, "activation": "softmax"}}]
    model = build_model(layers, (3, 16, 16), 5)
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 5) and torch.allclose(out.sum(1), torch.ones(2))
    assert model.outputs_probabilities
    # Keras's momentum 0.99 means PyTorch's 0.01
    assert model.infos[2].module.momentum == pytest.approx(0.01)


def test_residual_adds_a_projection_only_when_shapes_differ():
    same = build_model([{"residual": [{"conv": {"filters": 3, "padding": "same"}}]}, "flatten", {"dense": 2}], (3, 8, 8), 2)
    assert isinstance(same.infos[0].module.projection, nn.Identity)
    diff = build_model([{"residual": {"layers": [{"conv": {"filters": 6, "stride": 2, "padding": "same"}}]}},
                        "flatten", {"dense": 2}], (3, 8, 8), 2)
    assert isinstance(diff.infos[0].module.projection, nn.Conv2d) and diff.infos[0].out_shape == (6, 4, 4)


def test_residual_shortcut_is_the_path_as_written():
    # body conv 3*9*8 = 216 (no bias), BN 4*8 = 32 (16 trainable); the shortcut as a Keras ResNet writes it:
    # conv 1x1 3*8+8 = 32 with its bias and no BN; dense 8*10+10 = 90: 370 in all, 354 trainable
    layers = [{"residual": {"layers": [{"conv": {"filters": 8, "stride": 2, "padding": "same", "bias": False}},
                                       "batchnorm"],
                            "shortcut": [{"conv": {"filters": 8, "kernel": 1, "stride": 2}}], "activation": "relu"}},
              "global_avgpool", {"dense": 10}]
    model = build_model(layers, (3, 16, 16), 10)
    summary = summarize(model)
    assert (summary.total, summary.trainable) == (370, 354)
    assert isinstance(model.infos[0].module.projection[0], nn.Conv2d) and model.infos[0].out_shape == (8, 8, 8)
    assert [r.index for r in summary.rows][:5] == ["1", "1.1", "1.2", "1.shortcut", "1.shortcut.1"]
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
    layers[0]["residual"]["shortcut"] = [{"conv": {"filters": 8, "kernel": 1}}]
    with pytest.raises(UserError, match=r"model: layer 1: residual: the shortcut turns 3x16x16 into 8x16x16 but "
                                        r"the block's layers give 8x8x8"):
        build_model(layers, (3, 16, 16), 10)


def test_concat_joins_branches_along_the_channels(tmp_path):
    path = write(tmp_path, """\
        layers:
          - conv: {filters: 8, padding: same}
          - concat:
              branches:
                - - conv: {filters: 4, kernel: 1}
                - []
                - - maxpool: {size: 3, stride: 1, padding: same}
                  - conv: {filters: 2, kernel: 1}
              activation: relu
          - global_avgpool
          - dense: 10
        """)
    model = build_model(path, (3, 16, 16), 10)
    block = model.infos[1]
    assert block.out_shape == (14, 16, 16) and [b.out_shape[0] for b in block.children] == [4, 8, 2]
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
    summary = summarize(model)
    # conv 3*9*8+8 = 224; branch 1: 8*4+4 = 36; branch 3: 8*2+2 = 18; dense (4+8+2)*10+10 = 150
    assert summary.total == 428
    text = render(summary)
    assert "concat 3 branches relu" in text and "branch 2 (the input)" in text and "2.3.2" in text
    bad = write(tmp_path, """\
        layers:
          - concat:
              branches:
                - [{conv: {filters: 4, kernel: 1}}]
                - [{conv: {filters: 4, kernel: 3, stride: 2, padding: same}}]
          - flatten
          - dense: 10
        """, "bad.yaml")
    with pytest.raises(UserError, match=r"bad.yaml line 2: layer 1: concat: branch 2 gives 4x8x8 but branch 1 gives "
                                        r"4x16x16; .* agree in height and width"):
        build_model(bad, (3, 16, 16), 10)
    inner = write(tmp_path, """\
        layers:
          - concat:
              branches:
                - [relu]
                - - conv: {filters: 4}
                  - maxpol: 2
          - flatten
          - dense: 10
        """, "inner.yaml")
    with pytest.raises(UserError, match=r"inner.yaml line 6: layer 1.2.2: unknown layer 'maxpol'"):
        build_model(inner, (3, 16, 16), 10)
    with pytest.raises(UserError, match=r"layer 1: concat branches: must be a list of 2 to 64 branches"):
        build_model([{"concat": [["relu"]]}, "flatten", {"dense": 10}], (3, 16, 16), 10)


def test_blocks_branches_count_toward_the_layer_limit_and_are_in_the_json_schema():
    from cnnlab.schema.layers import layer_json_schema
    from cnnlab.schema.limits import MAX_LAYERS, check_model_size
    blocks = [{"concat": {"branches": [["relu"] * 5, ["relu"] * 5]}}] * (MAX_LAYERS // 10)  # 100 * 11 layers
    with pytest.raises(UserError, match=rf"the model has at least .* layers .*at most {MAX_LAYERS:,}"):
        check_model_size(blocks)
    shortcuts = [{"residual": {"layers": ["relu"], "shortcut": ["relu"] * 9}}] * (MAX_LAYERS // 10)
    with pytest.raises(UserError, match="counting those inside blocks"):
        check_model_size(shortcuts)
    layer = {"$ref": "#/$defs/Layer"}
    options = {next(iter(o["properties"])): o["properties"] for o in layer_json_schema()["$defs"]["Layer"]["oneOf"]}
    assert options["concat"]["concat"]["properties"]["branches"]["items"]["items"] == layer
    assert options["residual"]["residual"]["properties"]["shortcut"]["anyOf"][0]["items"] == layer


def test_kernel_larger_than_input_names_layer_type_shape_and_reason():
    layers = [{"conv": 8}, {"maxpool": 2}, {"conv": 8}, {"maxpool": 2}, {"conv": {"filters": 8, "kernel": 5}},
              "flatten", {"dense": 10}]
    with pytest.raises(UserError, match=r"model: layer 5: conv 5x5 valid: input 4x4 is smaller than the kernel"):
        build_model(layers, (3, 22, 22), 10)


def test_errors_in_a_file_name_the_file_and_line(tmp_path):
    path = write(tmp_path, """\
        layers:
          - conv: {filters: 32, kernel: 3}
          - maxpol: 2
          - flatten
          - dense: 10
        """)
    with pytest.raises(UserError, match=r"model.yaml line 3: layer 2: unknown layer 'maxpol' \(did you mean 'maxpool'\?\)"):
        build_model(path, (3, 32, 32), 10)
    path = write(tmp_path, "layers:\n  - conv: {filter: 32}\n  - flatten\n  - dense: 10\n")
    with pytest.raises(UserError, match=r"line 2: layer 1: conv: unknown key 'filter' \(did you mean 'filters'\?\)"):
        build_model(path, (3, 32, 32), 10)


def test_invalid_yaml_reports_its_line(tmp_path):
    path = write(tmp_path, "layers:\n  - conv: {filters: 32\n  - flatten\n")
    with pytest.raises(UserError, match=r"model.yaml line \d+: invalid YAML"):
        build_model(path, (3, 32, 32), 10)


def test_output_must_match_the_classes():
    with pytest.raises(UserError, match="outputs 7 values per image but the data set has 10 classes; end with `dense: 10`"):
        build_model([{"conv": 4}, "flatten", {"dense": 7}], (3, 8, 8), 10)
    with pytest.raises(UserError, match="ends with a 4x6x6 feature map; add `flatten`"):
        build_model([{"conv": 4}], (3, 8, 8), 10)


def test_bad_values_are_explained():
    with pytest.raises(UserError, match="dropout rate: must be a number in \\[0, 1\\), got 1.5"):
        build_model([{"dropout": 1.5}, "flatten", {"dense": 2}], (1, 4, 4), 2)
    with pytest.raises(UserError, match="unknown activation 'rleu' \\(did you mean 'relu'\\?\\)"):
        build_model([{"conv": {"filters": 2, "activation": "rleu"}}, "flatten", {"dense": 2}], (1, 4, 4), 2)
    with pytest.raises(UserError, match="needs a feature map"):
        build_model(["flatten", {"conv": 2}, {"dense": 2}], (1, 4, 4), 2)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("shape,classes", [((3, 32, 32), 10), ((1, 28, 28), 10), ((3, 32, 32), 100)])
def test_registry_models_adapt_to_the_data(name, shape, classes):
    model = build_model(name, shape, classes)
    model.eval()
    assert model(torch.zeros(1, *shape)).shape == (1, classes)


def test_registry_reference_sizes():
    assert summarize(build_model("tutorial", (3, 32, 32), 10)).trainable == 62006  # the PyTorch tutorial's count
    assert summarize(build_model("resnet18", (3, 32, 32), 10)).trainable == 11173962  # kuangliu/pytorch-cifar
    assert summarize(build_model({"name": "resnet18", "width": 0.5}, (3, 32, 32), 10)).trainable < 3_000_000


def test_registry_errors_suggest():
    with pytest.raises(UserError, match="unknown model 'resnet-18' \\(did you mean 'resnet18'\\?\\)"):
        build_model("resnet-18", (3, 32, 32), 10)
    with pytest.raises(UserError, match="unknown option 'widht' \\(did you mean 'width'\\?\\)"):
        build_model({"name": "vgg11-bn", "widht": 2}, (3, 32, 32), 10)


class TinyNet(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def test_a_users_own_module(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "my_models", sys.modules[__name__])
    model = build_model({"module": "my_models:TinyNet"}, (1, 28, 28), 10)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    rows = summarize(model).rows
    assert [r.layer for r in rows] == ["features (Sequential)", "head (Linear)"]
    with pytest.raises(UserError, match="cannot import 'no_such_pkg'"):
        build_model({"module": "no_such_pkg:Net"}, (1, 28, 28), 10)


def test_dense_classes_adapts_to_the_data_set():
    spec = [{"conv": 4}, "global_avgpool", {"dense": "classes"}]
    assert build_model(spec, (3, 8, 8), 7)(torch.zeros(1, 3, 8, 8)).shape == (1, 7)
    assert build_model(spec, (1, 8, 8), 100)(torch.zeros(1, 1, 8, 8)).shape == (1, 100)
