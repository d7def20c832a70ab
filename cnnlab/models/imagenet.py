"""torchvision's ImageNet architectures written in the model language, so summary, lint, Grad-CAM and the web
builder read them layer by layer like any other named model, and torchvision's published weights load into them.

The layer list cannot produce torchvision's dotted names (`layer1.0.conv1.weight`): a list names its tensors
by position (`layers.4.body.0.weight`). So each builder returns, beside its layers, `weights_names`: this
model's tensor names -> torchvision's, written out as the list is written (the same map `cnnlab import` makes
for an imported module). The weights loader applies it when a file does not hold cnnlab's own names, so a
torchvision state dict (`resnet18-f37072fd.pth`) loads with every key used and none missing. A map written
beside the layers, rather than a second naming scheme in the builder, keeps one model language; the map is
checked key for key and shape for shape against torchvision in tests/test_imagenet_archs.py.

Training-only details that change no tensor and no output in eval mode are left out: torchvision's
EfficientNet drops whole residual branches at random while training (stochastic depth); here they are kept.
"""
from __future__ import annotations

from .registry import register

CONV = ("weight",)
CONV_BIAS = ("weight", "bias")
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class _Names:
    """Pairs each tensor-holding layer's cnnlab name with torchvision's, as the list is written."""

    def __init__(self):
        self.map: dict[str, str] = {}

    def add(self, ours: str, theirs: str, keys: tuple[str, ...]) -> None:
        self.map.update({f"{ours}.{k}": f"{theirs}.{k}" for k in keys})


def _conv(filters: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> dict:
    # torchvision pads (kernel - 1) // 2 on every side; 'same' would pad a stride-2 conv on one side only
    return {"conv": {"filters": filters, "kernel": kernel, "stride": stride, "padding": (kernel - 1) // 2,
                     "groups": groups, "bias": bias}}


# ------------------------------------------------------------------ ResNet (He et al. 2015; torchvision v1.5)

def _resnet(bottleneck: bool, counts: tuple[int, ...], num_classes: int) -> dict:
    names = _Names()
    layers = [_conv(64, 7, 2), "batchnorm", "relu", {"maxpool": {"size": 3, "stride": 2, "padding": 1}}]
    names.add("layers.0", "conv1", CONV)
    names.add("layers.1", "bn1", BN)
    channels = 64
    for stage, (filters, count) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for block in range(count):
            stride = 2 if stage > 1 and block == 0 else 1
            if bottleneck:  # the stride on the 3x3 conv (torchvision's "v1.5"), 4x wider output
                out = 4 * filters
                body = [_conv(filters, 1), "batchnorm", "relu", _conv(filters, 3, stride), "batchnorm", "relu",
                        _conv(out, 1), "batchnorm"]
                theirs = ("conv1", "bn1", None, "conv2", "bn2", None, "conv3", "bn3")
            else:
                out = filters
                body = [_conv(filters, 3, stride), "batchnorm", "relu", _conv(filters, 3), "batchnorm"]
                theirs = ("conv1", "bn1", None, "conv2", "bn2")
            ours, prefix = f"layers.{len(layers)}", f"layer{stage}.{block}"
            for position, name in enumerate(theirs):
                if name:
                    names.add(f"{ours}.body.{position}", f"{prefix}.{name}", BN if name.startswith("bn") else CONV)
            if stride != 1 or channels != out:
                # the residual block's own projection (strided 1x1 conv without bias, then BN) is
                # torchvision's `downsample`, built under the same condition
                names.add(f"{ours}.projection.0", f"{prefix}.downsample.0", CONV)
                names.add(f"{ours}.projection.1", f"{prefix}.downsample.1", BN)
            layers.append({"residual": {"layers": body, "activation": "relu"}})
            channels = out
    names.add(f"layers.{len(layers) + 1}", "fc", CONV_BIAS)
    return {"layers": layers + ["global_avgpool", {"dense": num_classes}], "weights_names": names.map}


@register
def resnet18_imagenet(input_shape, num_classes):
    """ResNet-18 for ImageNet-size images, torchvision's layout and tensor names (11,689,512 params at 1000)."""
    return _resnet(False, (2, 2, 2, 2), num_classes)


@register
def resnet34_imagenet(input_shape, num_classes):
    """ResNet-34 for ImageNet-size images, torchvision's layout and tensor names (21,797,672 params at 1000)."""
    return _resnet(False, (3, 4, 6, 3), num_classes)


@register
def resnet50_imagenet(input_shape, num_classes):
    """ResNet-50 (bottleneck, torchvision v1.5) for ImageNet-size images (25,557,032 params at 1000)."""
    return _resnet(True, (3, 4, 6, 3), num_classes)


# ------------------------------------------------------------------ inverted residuals (MobileNetV3, EfficientNet)

SE = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never more than 10% down (torchvision's, from TF's MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(layers: list, names: _Names, theirs: str, conv: dict, bn, act: str | None) -> None:
    """torchvision's Conv2dNormActivation (theirs.0 conv, theirs.1 BN) as two or three top-level layers."""
    names.add(f"layers.{len(layers)}", f"{theirs}.0", CONV)
    names.add(f"layers.{len(layers) + 1}", f"{theirs}.1", BN)
    layers += [conv, bn] + ([act] if act else [])


def _inverted(layers: list, names: _Names, theirs: str, channels: int, expanded: int, out: int, kernel: int,
              stride: int, act: str, bn, squeeze: int | None, se_act: str, gate: str) -> None:
    """An inverted-residual block: 1x1 expand, depthwise kxk, squeeze-excite, 1x1 project; around a residual
    connection only where input and output shapes agree (as torchvision's `use_res_connect`), else its layers
    go straight into the list."""
    body, pairs = [], []  # pairs: (position in body, torchvision's name, tensor keys)
    part = 0
    if expanded != channels:
        pairs += [(len(body), f"{theirs}.block.{part}.0", CONV), (len(body) + 1, f"{theirs}.block.{part}.1", BN)]
        body += [_conv(expanded, 1), bn, act]
        part += 1
    pairs += [(len(body), f"{theirs}.block.{part}.0", CONV), (len(body) + 1, f"{theirs}.block.{part}.1", BN)]
    body += [_conv(expanded, kernel, stride, groups=expanded), bn, act]
    part += 1
    if squeeze:
        pairs.append((len(body), f"{theirs}.block.{part}", SE))
        body.append({"squeeze_excite": {"squeeze": squeeze, "activation": se_act, "gate": gate}})
        part += 1
    pairs += [(len(body), f"{theirs}.block.{part}.0", CONV), (len(body) + 1, f"{theirs}.block.{part}.1", BN)]
    body += [_conv(out, 1), bn]
    if stride == 1 and channels == out:
        for position, name, keys in pairs:
            names.add(f"layers.{len(layers)}.body.{position}", name, keys)
        layers.append({"residual": {"layers": body}})
    else:
        for position, name, keys in pairs:
            names.add(f"layers.{len(layers) + position}", name, keys)
        layers += body


# (input, kernel, expanded, output, squeeze-excite, activation, stride): torchvision's _mobilenet_v3_conf
_MOBILENET_V3_LARGE = (
    (16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2), (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2), (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hardswish", 2), (80, 3, 200, 80, False, "hardswish", 1),
    (80, 3, 184, 80, False, "hardswish", 1), (80, 3, 184, 80, False, "hardswish", 1),
    (80, 3, 480, 112, True, "hardswish", 1), (112, 3, 672, 112, True, "hardswish", 1),
    (112, 5, 672, 160, True, "hardswish", 2), (160, 5, 960, 160, True, "hardswish", 1),
    (160, 5, 960, 160, True, "hardswish", 1))


@register
def mobilenet_v3_large_imagenet(input_shape, num_classes):
    """MobileNetV3-Large (Howard et al. 2019), torchvision's layout and tensor names (5,483,032 params at 1000)."""
    bn = {"batchnorm": {"momentum": 0.99, "eps": 0.001}}  # torchvision's momentum 0.01, eps 1e-3 (Keras-style 0.99)
    layers, names = [], _Names()
    _conv_bn_act(layers, names, "features.0", _conv(16, 3, 2), bn, "hardswish")
    for block, (channels, kernel, expanded, out, se, act, stride) in enumerate(_MOBILENET_V3_LARGE, start=1):
        _inverted(layers, names, f"features.{block}", channels, expanded, out, kernel, stride, act, bn,
                  _make_divisible(expanded // 4) if se else None, "relu", "hardsigmoid")
    _conv_bn_act(layers, names, f"features.{len(_MOBILENET_V3_LARGE) + 1}", _conv(960, 1), bn, "hardswish")
    names.add(f"layers.{len(layers) + 1}", "classifier.0", CONV_BIAS)
    names.add(f"layers.{len(layers) + 4}", "classifier.3", CONV_BIAS)
    layers += ["global_avgpool", {"dense": 1280}, "hardswish", {"dropout": 0.2}, {"dense": num_classes}]
    return {"layers": layers, "weights_names": names.map}


# (expand ratio, kernel, stride, input, output, blocks): torchvision's _efficientnet_conf for B0 (width and depth 1)
_EFFICIENTNET_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                    (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


@register
def efficientnet_b0_imagenet(input_shape, num_classes):
    """EfficientNet-B0 (Tan & Le 2019), torchvision's layout and tensor names (5,288,548 params at 1000; no
    stochastic depth)."""
    bn = "batchnorm"  # torchvision's B0 keeps BatchNorm's defaults (eps 1e-5, momentum 0.1)
    layers, names = [], _Names()
    _conv_bn_act(layers, names, "features.0", _conv(32, 3, 2), bn, "silu")
    for stage, (ratio, kernel, stride, channels, out, count) in enumerate(_EFFICIENTNET_B0, start=1):
        for block in range(count):
            if block:  # the stage's later blocks take its output and keep the size
                channels, stride = out, 1
            _inverted(layers, names, f"features.{stage}.{block}", channels, _make_divisible(channels * ratio), out,
                      kernel, stride, "silu", bn, max(1, channels // 4), "silu", "sigmoid")
    _conv_bn_act(layers, names, f"features.{len(_EFFICIENTNET_B0) + 1}", _conv(1280, 1), bn, "silu")
    names.add(f"layers.{len(layers) + 2}", "classifier.1", CONV_BIAS)
    layers += ["global_avgpool", {"dropout": 0.2}, {"dense": num_classes}]
    return {"layers": layers, "weights_names": names.map}
