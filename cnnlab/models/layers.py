"""The model language: a list of layers, each validated and shape-checked as it is added (as Keras's
Sequential does), built into torch modules with the numbers a summary needs.

A layer is written `name`, `{name: value}` (shorthand for the layer's main argument) or `{name: {key: value}}`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import UserError, closest

REQUIRED = object()  # marks an argument with no default

# layer name -> (main argument for the shorthand, {argument: default})
SCHEMAS: dict[str, tuple[str | None, dict]] = {
    "conv": ("filters", {"filters": REQUIRED, "kernel": 3, "stride": 1, "padding": "valid", "dilation": 1,
                         "groups": 1, "bias": True, "activation": None}),
    "maxpool": ("size", {"size": 2, "stride": None, "padding": "valid"}),
    "avgpool": ("size", {"size": 2, "stride": None, "padding": "valid"}),
    "global_avgpool": (None, {}),
    "global_maxpool": (None, {}),
    "batchnorm": ("momentum", {"momentum": 0.1, "eps": 1e-5}),
    "dropout": ("rate", {"rate": 0.5}),
    "spatial_dropout": ("rate", {"rate": 0.5}),
    "flatten": (None, {}),
    "dense": ("units", {"units": REQUIRED, "activation": None, "bias": True, "max_norm": None}),
    "pad": ("size", {"size": 1, "mode": "constant", "value": 0.0}),
    "scale": ("factor", {"factor": REQUIRED}),
    "residual": ("layers", {"layers": REQUIRED, "activation": None}),
    "relu": (None, {}), "leaky_relu": ("slope", {"slope": 0.01}), "elu": ("alpha", {"alpha": 1.0}),
    "gelu": (None, {}), "silu": (None, {}), "mish": (None, {}), "tanh": (None, {}), "sigmoid": (None, {}),
    "softmax": (None, {}),
}
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish", "tanh", "sigmoid", "softmax")
ALIASES = {"conv2d": "conv", "dense": "dense", "linear": "dense", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
           "batchnorm2d": "batchnorm", "bn": "batchnorm", "swish": "silu", "globalavgpool": "global_avgpool",
           "global_average_pooling": "global_avgpool"}

Shape = tuple  # (C, H, W) for feature maps, (F,) for vectors


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


class LayerError(UserError):
    pass


@dataclass
class LayerInfo:
    """One built layer: where it sits, what it is, what it outputs and costs. Residual blocks have children."""
    index: str
    kind: str
    desc: str
    args: dict
    in_shape: Shape
    out_shape: Shape
    module: nn.Module
    macs: int = 0
    children: list["LayerInfo"] = field(default_factory=list)


@dataclass
class BuildContext:
    where: callable = lambda path: "model"  # (path tuple) -> "file line N"; set by the spec loader
    path: tuple = ("layers",)
    num_classes: int | None = None  # what `dense: classes` means


# ------------------------------------------------------------------ torch pieces the language needs

class ChannelDense(nn.Linear):
    """A dense layer on a feature map acts on each position's channels, as Keras's Dense does on the last axis."""
    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class Residual(nn.Module):
    """out = activation(body(x) + projection(x)); the projection is identity when the shapes already match."""
    def __init__(self, body: nn.Module, projection: nn.Module | None, activation: nn.Module | None):
        super().__init__()
        self.body = body
        self.projection = projection if projection is not None else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        return self.activation(self.body(x) + self.projection(x))


class AsymmetricPad(nn.Module):
    """TensorFlow-style 'same' padding when the total is odd: the extra row/column goes to the bottom/right."""
    def __init__(self, pads: tuple[int, int, int, int], value: float = 0.0):
        super().__init__()
        self.pads, self.value = pads, value  # (left, right, top, bottom) as F.pad takes them

    def forward(self, x):
        return F.pad(x, self.pads, value=self.value)


def activation_module(name: str | None, where: str, slope: float = 0.01, alpha: float = 1.0) -> nn.Module | None:
    if name in (None, "linear", "none", "identity"):
        return None
    name = ALIASES.get(name, name)
    makers = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(slope), "elu": lambda: nn.ELU(alpha),
              "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
              "softmax": lambda: nn.Softmax(dim=1)}
    if name not in makers:
        raise LayerError(f"{where}: unknown activation '{name}'{closest(name, makers)}; "
                         f"valid: {', '.join(makers)}, linear")
    return makers[name]()


# ------------------------------------------------------------------ parsing one entry

def normalise_entry(entry, where: str) -> tuple[str, dict]:
    """`conv`, `{conv: 32}` or `{conv: {filters: 32}}` -> ('conv', {all arguments with defaults})."""
    if isinstance(entry, str):
        name, value = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        (name, value), = entry.items()
    elif isinstance(entry, dict) and "type" in entry:
        name, value = entry["type"], {k: v for k, v in entry.items() if k != "type"}
    else:
        raise LayerError(f"{where}: a layer is a name or a one-key mapping like `conv: {{filters: 32}}`, "
                         f"got {entry!r}")
    name = str(name).lower()
    name = ALIASES.get(name, name)
    if name not in SCHEMAS:
        raise LayerError(f"{where}: unknown layer '{name}'{closest(name, SCHEMAS)}; valid: {', '.join(SCHEMAS)}")
    main, defaults = SCHEMAS[name]
    if value is None:
        args = {}
    elif isinstance(value, dict):
        args = dict(value)
    elif main is not None:
        args = {main: value}
    else:
        raise LayerError(f"{where}: layer '{name}' takes no arguments, got {value!r}")
    for key in args:
        if key not in defaults:
            valid = ", ".join(defaults) or "none"
            raise LayerError(f"{where}: {name}: unknown key '{key}'{closest(key, defaults)}; valid: {valid}")
    merged = {k: args.get(k, v) for k, v in defaults.items()}
    missing = [k for k, v in merged.items() if v is REQUIRED]
    if missing:
        raise LayerError(f"{where}: {name} needs '{missing[0]}' (e.g. `{name}: {{{missing[0]}: ...}}`)")
    return name, merged


def _pair(value, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        value = (value, value)
    if (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                       for v in value) and min(value) >= minimum):
        return tuple(value)
    raise LayerError(f"{where}: {name} must be an integer >= {minimum} or a pair [h, w], got {value!r}")


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayerError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def _rate(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise LayerError(f"{where}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding giving Keras's 'same' output ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + pad_total - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def _padding(padding, shape, kernel, stride, dilation, where, kind):
    """Resolve `padding` to ((top, bottom), (left, right)) for a conv or pool."""
    if padding == "valid" or padding == 0:
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(_same_padding(s, k, st, d) for s, k, st, d in zip(shape[1:], kernel, stride, dilation))
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return (padding, padding), (padding, padding)
    if isinstance(padding, (list, tuple)) and len(padding) == 2 and all(isinstance(p, int) and p >= 0 for p in padding):
        return (padding[0], padding[0]), (padding[1], padding[1])
    raise LayerError(f"{where}: {kind} padding must be 'same', 'valid', an integer or [h, w], got {padding!r}")


def _need_map(shape: Shape, where: str, desc: str) -> None:
    if len(shape) != 3:
        raise LayerError(f"{where}: {desc}: input {fmt_shape(shape)} is a vector; this layer needs a feature map "
                         "(C x H x W), so place it before flatten / global pooling")


# ------------------------------------------------------------------ one builder per layer

def _conv(a, shape, ctx, where):
    filters = _positive_int(a["filters"], "filters", where)
    kernel, stride = _pair(a["kernel"], "kernel", where), _pair(a["stride"], "stride", where)
    dilation, groups = _pair(a["dilation"], "dilation", where), _positive_int(a["groups"], "groups", where)
    pad_name = a["padding"] if isinstance(a["padding"], str) else f"pad {a['padding']}"
    desc = f"conv {kernel[0]}x{kernel[1]} {pad_name}" + (f" stride {stride[0]}" if stride != (1, 1) else "")
    _need_map(shape, where, desc)
    if shape[0] % groups or filters % groups:
        raise LayerError(f"{where}: {desc}: groups={groups} must divide both the input channels ({shape[0]}) "
                         f"and filters ({filters})")
    (pt, pb), (pl, pr) = _padding(a["padding"], shape, kernel, stride, dilation, where, "conv")
    for size, total, k, d in ((shape[1], pt + pb, kernel[0], dilation[0]), (shape[2], pl + pr, kernel[1], dilation[1])):
        if size + total < d * (k - 1) + 1:
            raise LayerError(f"{where}: {desc}: input {shape[1]}x{shape[2]} is smaller than the kernel"
                             f"{' (with its dilation)' if d > 1 else ''}; use padding: same, a smaller kernel, "
                             "or fewer pooling layers before it")
    out = (filters, _out_size(shape[1], kernel[0], stride[0], pt + pb, dilation[0]),
           _out_size(shape[2], kernel[1], stride[1], pl + pr, dilation[1]))
    symmetric = pt == pb and pl == pr
    conv = nn.Conv2d(shape[0], filters, kernel, stride, (pt, pl) if symmetric else 0, dilation, groups,
                     bias=bool(a["bias"]))
    modules = [conv] if symmetric else [AsymmetricPad((pl, pr, pt, pb)), conv]
    act = activation_module(a["activation"], where)
    if act is not None:
        modules.append(act)
        desc += f" {a['activation']}"
    macs = out[0] * out[1] * out[2] * (shape[0] // groups) * kernel[0] * kernel[1]
    return modules, out, desc.replace("conv", f"conv {filters}", 1), macs


def _pool(a, shape, ctx, where, kind):
    size = _pair(a["size"], "size", where)
    stride = _pair(a["stride"] if a["stride"] is not None else size, "stride", where)
    desc = f"{kind} {size[0]}x{size[1]}" + (f" stride {stride[0]}" if stride != size else "")
    _need_map(shape, where, desc)
    (pt, pb), (pl, pr) = _padding(a["padding"], shape, size, stride, (1, 1), where, kind)
    if shape[1] + pt + pb < size[0] or shape[2] + pl + pr < size[1]:
        raise LayerError(f"{where}: {desc}: input {shape[1]}x{shape[2]} is smaller than the pooling window; "
                         "remove this pooling layer or pool earlier with a smaller size")
    ceil = (pt != pb) or (pl != pr)  # odd 'same' total: pad the smaller half both sides, let ceil_mode add the rest
    pad = (pt, pl)
    if pad[0] * 2 > size[0] or pad[1] * 2 > size[1]:
        raise LayerError(f"{where}: {desc}: padding {pad} is more than half the window; valid: a padding of at "
                         f"most {size[0] // 2}")
    out = (shape[0], _out_size(shape[1], size[0], stride[0], 2 * pt, ceil=ceil),
           _out_size(shape[2], size[1], stride[1], 2 * pl, ceil=ceil))
    module = (nn.MaxPool2d(size, stride, pad, ceil_mode=ceil) if kind == "maxpool"
              else nn.AvgPool2d(size, stride, pad, ceil_mode=ceil, count_include_pad=False))
    return [module], out, desc, 0


def _global_pool(a, shape, ctx, where, kind):
    _need_map(shape, where, kind)
    pool = nn.AdaptiveAvgPool2d(1) if kind == "global_avgpool" else nn.AdaptiveMaxPool2d(1)
    return [pool, nn.Flatten()], (shape[0],), kind, 0


def _batchnorm(a, shape, ctx, where):
    momentum = a["momentum"]
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum < 1:
        raise LayerError(f"{where}: batchnorm momentum must be in (0, 1), got {momentum!r}")
    # PyTorch's momentum weighs the new batch (0.1); Keras's weighs the running average (0.99). Read values
    # >= 0.5 the Keras way so a number copied from either framework means what its author meant.
    torch_momentum = 1 - momentum if momentum >= 0.5 else momentum
    bn = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[0], eps=float(a["eps"]), momentum=torch_momentum)
    return [bn], shape, "batchnorm", 0


def _dropout(a, shape, ctx, where, kind):
    rate = _rate(a["rate"], "rate", where)
    if kind == "spatial_dropout":
        _need_map(shape, where, "spatial_dropout")
        return [nn.Dropout2d(rate)], shape, f"spatial_dropout {rate:g}", 0
    return [nn.Dropout(rate)], shape, f"dropout {rate:g}", 0


def _flatten(a, shape, ctx, where):
    return [nn.Flatten()], (math.prod(shape),), "flatten", 0


def _dense(a, shape, ctx, where):
    # `dense: classes` is the data set's class count, so one model file fits any data set
    units = ctx.num_classes if a["units"] in ("classes", "num_classes") and ctx.num_classes else a["units"]
    units = _positive_int(units, "units", where)
    max_norm = a["max_norm"]
    if max_norm is not None and (isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or max_norm <= 0):
        raise LayerError(f"{where}: dense max_norm must be a positive number, got {max_norm!r}")
    cls = ChannelDense if len(shape) == 3 else nn.Linear
    linear = cls(shape[0], units, bias=bool(a["bias"]))
    linear.max_norm = max_norm  # applied after every optimizer step (Keras's kernel_constraint=MaxNorm)
    modules, desc = [linear], f"dense {units}"
    act = activation_module(a["activation"], where)
    if act is not None:
        modules.append(act)
        desc += f" {a['activation']}"
    positions = shape[1] * shape[2] if len(shape) == 3 else 1
    out = (units,) + tuple(shape[1:])
    return modules, out, desc + (f" max_norm {max_norm:g}" if max_norm else ""), shape[0] * units * positions


def _pad(a, shape, ctx, where):
    _need_map(shape, where, "pad")
    size = a["size"]
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        pads = (size,) * 4
    elif isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s >= 0 for s in size):
        pads = (size[1], size[1], size[0], size[0])
    else:
        raise LayerError(f"{where}: pad size must be an integer or [h, w], got {size!r}")
    mode = a["mode"]
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "replicate", "edge": "replicate"}
    if mode not in modes:
        raise LayerError(f"{where}: pad mode '{mode}'{closest(mode, modes)} is not valid; valid: constant, reflect, replicate")
    if mode == "reflect" and (pads[0] >= shape[2] or pads[2] >= shape[1]):
        raise LayerError(f"{where}: pad reflect {pads[2]}: input {shape[1]}x{shape[2]} must be larger than the padding")
    if modes[mode] == "constant":
        module = nn.ConstantPad2d(pads, float(a["value"]))
    else:
        module = nn.ReflectionPad2d(pads) if mode == "reflect" else nn.ReplicationPad2d(pads)
    out = (shape[0], shape[1] + pads[2] + pads[3], shape[2] + pads[0] + pads[1])
    return [module], out, f"pad {pads[2]} {mode}", 0


def _scale(a, shape, ctx, where):
    if isinstance(a["factor"], bool) or not isinstance(a["factor"], (int, float)):
        raise LayerError(f"{where}: scale factor must be a number, got {a['factor']!r}")
    return [Scale(float(a["factor"]))], shape, f"scale {a['factor']:g}", 0


def _activation(a, shape, ctx, where, kind):
    module = activation_module(kind, where, slope=float(a.get("slope", 0.01)), alpha=float(a.get("alpha", 1.0)))
    return [module], shape, kind, 0


def _residual(a, shape, ctx, where, index):
    inner = a["layers"]
    if not isinstance(inner, list) or not inner:
        raise LayerError(f"{where}: residual needs `layers:` with a non-empty list of layers")
    sub = BuildContext(ctx.where, ctx.path + ("layers",), ctx.num_classes)
    children, out = build_layers(inner, shape, sub, prefix=f"{index}.")
    body = nn.Sequential(*[c.module for c in children])
    projection, proj_macs = None, 0
    if out != shape:
        if len(out) != len(shape):
            raise LayerError(f"{where}: residual: the block turns {fmt_shape(shape)} into {fmt_shape(out)}; "
                             "input and output must both be feature maps or both be vectors")
        if len(out) == 3:
            stride = (math.ceil(shape[1] / out[1]), math.ceil(shape[2] / out[2]))
            if (_out_size(shape[1], 1, stride[0], 0), _out_size(shape[2], 1, stride[1], 0)) != out[1:]:
                raise LayerError(f"{where}: residual: cannot project {fmt_shape(shape)} onto {fmt_shape(out)} "
                                 "with a strided 1x1 convolution; keep the block's output size a stride of its input")
            has_bn = any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
            conv = nn.Conv2d(shape[0], out[0], 1, stride, bias=not has_bn)
            projection = nn.Sequential(conv, nn.BatchNorm2d(out[0])) if has_bn else conv
            proj_macs = out[0] * out[1] * out[2] * shape[0]
        else:
            projection = nn.Linear(shape[0], out[0])
            proj_macs = shape[0] * out[0]
    act = activation_module(a["activation"], where)
    module = Residual(body, projection, act)
    desc = "residual" + (" +projection" if projection is not None else "") + (f" {a['activation']}" if act else "")
    return module, out, desc, proj_macs, children


def build_layers(entries: list, shape: Shape, ctx: BuildContext, prefix: str = "") -> tuple[list[LayerInfo], Shape]:
    """Build `entries` from input `shape`; every layer is checked against the shape it receives."""
    infos = []
    for position, entry in enumerate(entries, start=1):
        path = ctx.path + (position - 1,)
        index = f"{prefix}{position}"
        where = f"{ctx.where(path)}: layer {index}"
        kind, args = normalise_entry(entry, where)
        children: list[LayerInfo] = []
        if kind == "residual":
            module, out, desc, macs, children = _residual(args, shape, BuildContext(ctx.where, path + (kind,),
                                                                                   ctx.num_classes), where, index)
            modules = [module]
        elif kind in ("maxpool", "avgpool"):
            modules, out, desc, macs = _pool(args, shape, ctx, where, kind)
        elif kind in ("global_avgpool", "global_maxpool"):
            modules, out, desc, macs = _global_pool(args, shape, ctx, where, kind)
        elif kind in ("dropout", "spatial_dropout"):
            modules, out, desc, macs = _dropout(args, shape, ctx, where, kind)
        elif kind in ACTIVATIONS:
            modules, out, desc, macs = _activation(args, shape, ctx, where, kind)
        else:
            builder = {"conv": _conv, "batchnorm": _batchnorm, "flatten": _flatten, "dense": _dense,
                       "pad": _pad, "scale": _scale}[kind]
            modules, out, desc, macs = builder(args, shape, ctx, where)
        if min(out) < 1:
            raise LayerError(f"{where} {desc}: input {fmt_shape(shape)} gives an empty output {fmt_shape(out)}")
        module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
        infos.append(LayerInfo(index, kind, desc, args, shape, out, module, macs, children))
        shape = out
    return infos, shape
