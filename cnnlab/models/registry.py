"""Named architectures. Each entry is a small function that writes the model in the model language for the
data set at hand (channels, size, classes), so `summary`, `lint` and the web builder treat it like a user's
own layer list. Register with `@register`; list with `list_models()`.
"""
from __future__ import annotations

import fnmatch
import inspect
from pathlib import Path

from ..errors import UserError, closest
from ..schema.limits import MAX_LAYERS

_REGISTRY: dict[str, callable] = {}


def register(fn):
    _REGISTRY[fn.__name__.replace("_", "-")] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def describe(name: str) -> str:
    """The docstring's first paragraph, on one line."""
    return " ".join((inspect.getdoc(_REGISTRY[name]) or "").split("\n\n")[0].split())


def options(name: str) -> list[str]:
    return [p for p in inspect.signature(_REGISTRY[name]).parameters if p not in ("input_shape", "num_classes")]


def _as_a_file(name: str) -> str:
    """' (a model file: examples/NAME.yaml)' where cnnlab's examples folder, or ./examples, has one by that name:
    examples are layer lists in files, not registered names."""
    for folder in (Path("examples"), Path(__file__).resolve().parents[2] / "examples"):
        found = folder / f"{name}.yaml"
        if found.is_file():
            return f" (a model file: --model {found})"
    return ""


def model_spec(name: str, input_shape, num_classes: int, **opts) -> dict:
    """The layer list of a registered architecture for this input and class count."""
    if name not in _REGISTRY and str(name).replace("_", "-") in _REGISTRY:
        name = name.replace("_", "-")  # resnet18_imagenet as Python and torchvision spell it
    if name not in _REGISTRY:
        raise UserError(f"unknown model '{name}'{_as_a_file(name) or closest(name, _REGISTRY)}; registered: "
                        f"{', '.join(list_models())}")
    valid = options(name)
    for key in opts:
        if key not in valid:
            raise UserError(f"model '{name}': unknown option '{key}'{closest(key, valid)}; valid: {', '.join(valid)}")
    for key in ("width", "depth"):
        if key in opts and (isinstance(opts[key], bool) or not isinstance(opts[key], (int, float)) or opts[key] <= 0):
            raise UserError(f"model '{name}': {key} must be a positive number, got {opts[key]!r}")
    if opts.get("depth", 0) > MAX_LAYERS:  # each unit of depth adds layers: refuse before writing millions
        raise UserError(f"model '{name}': depth {opts['depth']:,} cannot fit in the {MAX_LAYERS:,} layers cnnlab "
                        "builds")
    written = _REGISTRY[name](input_shape, num_classes, **opts)
    # a builder returns its layers, or {layers, weights_names} where published weights name tensors their way
    return {"name": name, **written} if isinstance(written, dict) else {"name": name, "layers": written}


def _w(filters: int, width: float) -> int:
    return max(1, int(round(filters * width)))


def _conv_bn(filters, stride=1, act="relu"):
    return [{"conv": {"filters": filters, "kernel": 3, "padding": "same", "stride": stride, "bias": False}},
            "batchnorm", act]


@register
def tutorial(input_shape, num_classes, width: float = 1.0):
    """The PyTorch 'Training a classifier' tutorial net: two 5x5 convs and three dense layers (LeNet-like)."""
    return [{"conv": {"filters": _w(6, width), "kernel": 5, "activation": "relu"}}, {"maxpool": 2},
            {"conv": {"filters": _w(16, width), "kernel": 5, "activation": "relu"}}, {"maxpool": 2},
            "flatten", {"dense": {"units": _w(120, width), "activation": "relu"}},
            {"dense": {"units": _w(84, width), "activation": "relu"}}, {"dense": num_classes}]


def _vgg(plan, input_shape, num_classes, width):
    layers, size = [], min(input_shape[1:])
    for item in plan:
        if item == "M":
            if size >= 2:  # small inputs (28x28) run out of resolution: skip pools that would reach 0x0
                layers.append({"maxpool": 2})
                size //= 2
        else:
            layers += _conv_bn(_w(item, width))
    return layers + ["global_avgpool", {"dense": num_classes}]


@register
def vgg11_bn(input_shape, num_classes, width: float = 1.0):
    """VGG-11 with BatchNorm for small images (Simonyan & Zisserman 2014; CIFAR variant, 9.2M params)."""
    return _vgg([64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], input_shape, num_classes, width)


@register
def vgg16_bn(input_shape, num_classes, width: float = 1.0):
    """VGG-16 with BatchNorm for small images (CIFAR variant, 14.7M params)."""
    return _vgg([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
                input_shape, num_classes, width)


def _basic_block(filters, stride):
    return {"residual": {"layers": _conv_bn(filters, stride) + [
        {"conv": {"filters": filters, "kernel": 3, "padding": "same", "bias": False}}, "batchnorm"],
        "activation": "relu"}}


@register
def resnet18(input_shape, num_classes, width: float = 1.0, depth: int = 2):
    """ResNet-18 for 32x32 inputs (He et al. 2015; 3x3 stem, no stem pooling; depth = blocks per stage)."""
    layers = _conv_bn(_w(64, width))
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(int(depth)):
            layers.append(_basic_block(_w(filters, width), 2 if stage > 0 and block == 0 else 1))
    return layers + ["global_avgpool", {"dense": num_classes}]


@register
def resnet9(input_shape, num_classes, width: float = 1.0):
    """ResNet-9 from Page's DAWNBench entry ('How to train your ResNet', 2018): 94% on CIFAR-10 in 24 epochs."""
    w = lambda f: _w(f, width)  # noqa: E731
    res = lambda f: {"residual": {"layers": _conv_bn(f) + _conv_bn(f)}}  # noqa: E731
    return (_conv_bn(w(64)) + _conv_bn(w(128)) + [{"maxpool": 2}, res(w(128))]
            + _conv_bn(w(256)) + [{"maxpool": 2}]
            + _conv_bn(w(512)) + [{"maxpool": 2}, res(w(512))]
            + ["global_maxpool", {"dense": {"units": num_classes, "bias": False}}, {"scale": 0.125}])


@register
def allconv(input_shape, num_classes, width: float = 1.0):
    """All-CNN-C (Springenberg et al. 2014): strided convolutions instead of pooling, global average at the end."""
    c = lambda f, k=3, s=1, p="same": {"conv": {"filters": _w(f, width), "kernel": k, "stride": s,  # noqa: E731
                                                "padding": p, "activation": "relu"}}
    return [{"dropout": 0.2}, c(96), c(96), c(96, s=2), {"dropout": 0.5}, c(192), c(192), c(192, s=2),
            {"dropout": 0.5}, c(192, p="valid"), c(192, k=1), {"conv": {"filters": num_classes, "kernel": 1}},
            "global_avgpool"]


@register
def airbench(input_shape, num_classes, width: float = 1.0, widths: list | None = None, depth: int = 2,
             whiten_bias_decay: bool = False):
    """The airbench94 net (Jordan 2024): patch whitening, three conv-pool-BN-GELU groups; recipe cifar10-fast."""
    # Written from the paper ("94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498): a frozen
    # 2x2 whitening conv whose bias trains 3 epochs, identity-initialised 3x3 convs, BatchNorm with a short
    # memory (momentum 0.6), no learned scale and tiny eps, max-pooled to 1x1 and a 1/width-scaled classifier.
    # depth 3 is airbench96's group: a third conv, its two last convs around a residual connection.
    # whiten_bias_decay: the whitening bias's rate falls to zero over its 3 epochs (airbench94_muon).
    if widths is None:
        widths = [64, 256, 256]
    if (not isinstance(widths, (list, tuple)) or len(widths) != 3
            or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in widths)):
        raise UserError(f"model 'airbench': widths must be three integers from 1 to 4096 (one per group), "
                        f"got {widths!r}")
    if depth not in (2, 3):
        raise UserError(f"model 'airbench': depth must be 2 (airbench94/95) or 3 (airbench96), got {depth!r}")
    if not isinstance(whiten_bias_decay, bool):
        raise UserError(f"model 'airbench': whiten_bias_decay must be true or false, got {whiten_bias_decay!r}")
    widths = [_w(w, width) for w in widths]
    bn = {"batchnorm": {"momentum": 0.6, "eps": 1e-12, "scale": False}}
    conv = lambda f: {"conv": {"filters": f, "kernel": 3, "padding": "same", "bias": False,  # noqa: E731
                               "init": "dirac"}}
    whiten = {"kernel": 2, "bias_epochs": 3}
    if whiten_bias_decay:
        whiten["bias_decay"] = True
    layers = [{"whiten": whiten}, "gelu"]
    for filters in widths:
        layers += [conv(filters), {"maxpool": 2}, bn, "gelu"]
        if depth == 2:
            layers += [conv(filters), bn, "gelu"]
        else:
            layers.append({"residual": {"layers": [conv(filters), bn, "gelu", conv(filters), bn],
                                        "activation": "gelu"}})
    return layers + ["global_maxpool", {"dense": {"units": num_classes, "bias": False, "init_std": 1.0}},
                     {"scale": round(1 / widths[-1], 8)}]
