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
