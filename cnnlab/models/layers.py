"""The model language: a list of layers, each validated and shape-checked as it is added (as Keras's
Sequential does), built into torch modules with the numbers a summary needs.

A layer is written `name`, `{name: value}` (shorthand for the layer's main argument) or `{name: {key: value}}`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn
from pydantic import ValidationError

from ..errors import UserError, closest
from .modules import AsymmetricPad, ChannelDense, Concat, PatchWhitening, Residual, Scale, SqueezeExcite
from ..schema.errors import first_error
from ..schema.layers import (ACTIVATION_ALIASES, ACTIVATIONS, ALIASES, LAYERS, MAX_LAYER_PARAMS, MAX_MODEL_PARAMS,
                             NO_ACTIVATION)

Shape = tuple  # (C, H, W) for feature maps, (F,) for vectors


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


class LayerError(UserError):
    """A layer that cannot be built; `partial` holds the top-level layers built before it."""
    partial: list = []


@dataclass
class LayerInfo:
    """One built layer: where it sits, what it is, what it outputs and costs. Blocks have children: a residual
    block its layers (and a `shortcut` entry holding the shortcut's layers), a concat block one `branch` entry
    per branch holding that branch's layers."""
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
    params: list = field(default_factory=lambda: [0])  # weights so far, shared with residual blocks' contexts

    def claim(self, count: int, where: str, desc: str) -> None:
        """Refuse a layer (or model) too large to allocate, before torch tries."""
        self.params[0] += count
        if count > MAX_LAYER_PARAMS or self.params[0] > MAX_MODEL_PARAMS:
            raise LayerError(f"{where}: {desc}: {count:,} weights in this layer ({self.params[0]:,} so far) is "
                             f"more than cnnlab builds (at most {MAX_LAYER_PARAMS:,} in a layer, "
                             f"{MAX_MODEL_PARAMS:,} in a model); use fewer filters or units, or pool before it")


def activation_module(name: str | None, where: str, slope: float = 0.01, alpha: float = 1.0) -> nn.Module | None:
    if name is None or name in NO_ACTIVATION:
        return None
    name = ACTIVATION_ALIASES.get(name, name)
    makers = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(slope), "elu": lambda: nn.ELU(alpha),
              "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
              "softmax": lambda: nn.Softmax(dim=1), "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid}
    if name not in makers:
        raise LayerError(f"{where}: unknown activation '{name}'{closest(name, makers)}; "
                         f"valid: {', '.join(makers)}, linear")
    return makers[name]()


# ------------------------------------------------------------------ parsing one entry

def written_args(entry) -> tuple[str, dict]:
    """`conv`, `{conv: 32}` or `{conv: {filters: 32}}` -> ('conv', the arguments as written, unchecked): what an
    edit changes, so the model keeps the form its author gave it."""
    if isinstance(entry, str):
        return entry, {}
    (kind, value), = entry.items()
    if value is None:
        return kind, {}
    if isinstance(value, dict):
        return kind, dict(value)
    return kind, {LAYERS[kind].main: value}


def normalise_entry(entry, where: str) -> tuple[str, dict]:
    """`conv`, `{conv: 32}` or `{conv: {filters: 32}}` -> ('conv', {all arguments, checked, with defaults})."""
    if isinstance(entry, str):
        name, value = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        (name, value), = entry.items()
    elif isinstance(entry, dict) and "type" in entry:
        name, value = entry["type"], {k: v for k, v in entry.items() if k != "type"}
    else:
        raise LayerError(f"{where}: a layer is a name or a one-key mapping like `conv: {{filters: 32}}`, "
                         f"got {entry!r:.80}")
    name = str(name).lower()
    name = ALIASES.get(name, name)
    if name not in LAYERS:
        raise LayerError(f"{where}: unknown layer '{name:.40}'{closest(name, LAYERS)}; valid: {', '.join(LAYERS)}")
    schema = LAYERS[name]
    if value is None:
        args = {}
    elif isinstance(value, dict):
        args = dict(value)
    elif schema.main is not None:
        args = {schema.main: value}
    else:
        raise LayerError(f"{where}: layer '{name}' takes no arguments, got {value!r:.80}")
    try:
        return name, schema.model_validate(args).model_dump()
    except ValidationError as exc:
        loc, message = first_error(exc, schema)
        if message == "is required":
            raise LayerError(f"{where}: {name} needs '{loc[0]}' (e.g. `{name}: {{{loc[0]}: ...}}`)") from None
        key = f" {loc[0]}" if loc and message[:7] != "unknown" else ""
        raise LayerError(f"{where}: {name}{key}: {message}") from None


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding giving Keras's 'same' output ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _out_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + pad_total - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def _padding(padding, shape, kernel, stride, dilation):
    """Resolve a (schema-checked) `padding` to ((top, bottom), (left, right)) for a conv or pool."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(_same_padding(s, k, st, d) for s, k, st, d in zip(shape[1:], kernel, stride, dilation))
    h, w = _pair(padding)
    return (h, h), (w, w)


def _need_map(shape: Shape, where: str, desc: str) -> None:
    if len(shape) != 3:
        raise LayerError(f"{where}: {desc}: input {fmt_shape(shape)} is a vector; this layer needs a feature map "
                         "(C x H x W), so place it before flatten / global pooling")


# ------------------------------------------------------------------ one builder per layer

def _conv(a, shape, ctx, where):
    filters, groups = a["filters"], a["groups"]
    kernel, stride, dilation = _pair(a["kernel"]), _pair(a["stride"]), _pair(a["dilation"])
    pad_name = a["padding"] if isinstance(a["padding"], str) else f"pad {a['padding']}"
    desc = f"conv {kernel[0]}x{kernel[1]} {pad_name}" + (f" stride {stride[0]}" if stride != (1, 1) else "")
    _need_map(shape, where, desc)
    if shape[0] % groups or filters % groups:
        raise LayerError(f"{where}: {desc}: groups={groups} must divide both the input channels ({shape[0]}) "
                         f"and filters ({filters})")
    (pt, pb), (pl, pr) = _padding(a["padding"], shape, kernel, stride, dilation)
    for size, total, k, d in ((shape[1], pt + pb, kernel[0], dilation[0]), (shape[2], pl + pr, kernel[1], dilation[1])):
        if size + total < d * (k - 1) + 1:
            raise LayerError(f"{where}: {desc}: input {shape[1]}x{shape[2]} is smaller than the kernel"
                             f"{' (with its dilation)' if d > 1 else ''}; use padding: same, a smaller kernel, "
                             "or fewer pooling layers before it")
    out = (filters, _out_size(shape[1], kernel[0], stride[0], pt + pb, dilation[0]),
           _out_size(shape[2], kernel[1], stride[1], pl + pr, dilation[1]))
    ctx.claim(filters * (shape[0] // groups) * kernel[0] * kernel[1], where, desc)
    symmetric = pt == pb and pl == pr
    conv = nn.Conv2d(shape[0], filters, kernel, stride, (pt, pl) if symmetric else 0, dilation, groups,
                     bias=bool(a["bias"]))
    if a["init"] == "dirac" and not conv.weight.is_meta:
        # identity for the first in-channels filters: the layer starts by passing its input through
        if groups == 1:
            nn.init.dirac_(conv.weight.data[:min(filters, shape[0])])
        else:
            nn.init.dirac_(conv.weight.data, groups)
        desc += " dirac"
    modules = [conv] if symmetric else [AsymmetricPad((pl, pr, pt, pb)), conv]
    act = activation_module(a["activation"], where)
    if act is not None:
        modules.append(act)
        desc += f" {a['activation']}"
    macs = out[0] * out[1] * out[2] * (shape[0] // groups) * kernel[0] * kernel[1]
    return modules, out, desc.replace("conv", f"conv {filters}", 1), macs


def _whiten(a, shape, ctx, where):
    k = a["kernel"]
    desc = f"whiten {k}x{k}"
    _need_map(shape, where, desc)
    if shape[1] < k or shape[2] < k:
        raise LayerError(f"{where}: {desc}: input {shape[1]}x{shape[2]} is smaller than the kernel")
    if a.get("bias_decay") and not a["bias_epochs"]:
        raise LayerError(f"{where}: {desc}: bias_decay lets the bias's rate fall to zero over bias_epochs; "
                         "give bias_epochs (e.g. 3) or leave bias_decay out")
    module = PatchWhitening(shape[0], k, float(a["eps"]), a["bias_epochs"], a.get("bias_decay", False))
    out = (module.out_channels, shape[1] - k + 1, shape[2] - k + 1)
    ctx.claim(module.weight.numel(), where, desc)
    return [module], out, desc, out[0] * out[1] * out[2] * shape[0] * k * k


def _pool(a, shape, ctx, where, kind):
    size = _pair(a["size"])
    stride = _pair(a["stride"]) if a["stride"] is not None else size
    desc = f"{kind} {size[0]}x{size[1]}" + (f" stride {stride[0]}" if stride != size else "")
    _need_map(shape, where, desc)
    (pt, pb), (pl, pr) = _padding(a["padding"], shape, size, stride, (1, 1))
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
    # PyTorch's momentum weighs the new batch (0.1); Keras's weighs the running average (0.99). Read values
    # >= 0.5 the Keras way so a number copied from either framework means what its author meant.
    torch_momentum = 1 - momentum if momentum >= 0.5 else momentum
    bn = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[0], eps=float(a["eps"]), momentum=torch_momentum)
    if not a["scale"]:
        bn.weight.requires_grad_(False)  # stays 1: the following layer's weights can do its job
    return [bn], shape, "batchnorm" + ("" if a["scale"] else " no-scale"), 0


def _dropout(a, shape, ctx, where, kind):
    rate = a["rate"]
    if kind == "spatial_dropout":
        _need_map(shape, where, "spatial_dropout")
        return [nn.Dropout2d(rate)], shape, f"spatial_dropout {rate:g}", 0
    return [nn.Dropout(rate)], shape, f"dropout {rate:g}", 0


def _flatten(a, shape, ctx, where):
    return [nn.Flatten()], (math.prod(shape),), "flatten", 0


def _dense(a, shape, ctx, where):
    # `dense: classes` is the data set's class count, so one model file fits any data set
    units = ctx.num_classes if a["units"] in ("classes", "num_classes") and ctx.num_classes else a["units"]
    if not isinstance(units, int):
        raise LayerError(f"{where}: dense: units 'classes' needs a data set (its class count), and none is known here")
    a["units"] = units  # what lint, the doctor and the summary read: the number, not 'classes'
    max_norm = a["max_norm"]
    ctx.claim(shape[0] * units, where, f"dense {units}")
    cls = ChannelDense if len(shape) == 3 else nn.Linear
    linear = cls(shape[0], units, bias=bool(a["bias"]))
    linear.max_norm = max_norm  # applied after every optimizer step (Keras's kernel_constraint=MaxNorm)
    if a["init_std"] and not linear.weight.is_meta:
        nn.init.normal_(linear.weight, std=float(a["init_std"]))
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
    h, w = _pair(a["size"])
    pads = (w, w, h, h)  # (left, right, top, bottom) as torch takes them
    mode = "replicate" if a["mode"] == "edge" else a["mode"]
    if mode == "reflect" and (w >= shape[2] or h >= shape[1]):
        raise LayerError(f"{where}: pad reflect {h}: input {shape[1]}x{shape[2]} must be larger than the padding")
    if mode == "constant":
        module = nn.ConstantPad2d(pads, float(a["value"]))
    else:
        module = nn.ReflectionPad2d(pads) if mode == "reflect" else nn.ReplicationPad2d(pads)
    out = (shape[0], shape[1] + 2 * h, shape[2] + 2 * w)
    return [module], out, f"pad {h} {a['mode']}", 0


def _squeeze_excite(a, shape, ctx, where):
    desc = f"squeeze_excite {a['squeeze']} {a['gate']}"
    _need_map(shape, where, desc)
    ctx.claim(2 * shape[0] * a["squeeze"] + shape[0] + a["squeeze"], where, desc)
    module = SqueezeExcite(shape[0], a["squeeze"], activation_module(a["activation"], where) or nn.Identity(),
                           activation_module(a["gate"], where))
    # the two 1x1 convs act once per image; the gate multiplies every value of the map
    return [module], shape, desc, 2 * shape[0] * a["squeeze"] + math.prod(shape)


def _scale(a, shape, ctx, where):
    return [Scale(float(a["factor"]))], shape, f"scale {a['factor']:g}", 0


def _activation(a, shape, ctx, where, kind):
    module = activation_module(kind, where, slope=float(a.get("slope", 0.01)), alpha=float(a.get("alpha", 1.0)))
    return [module], shape, kind, 0


def _residual(a, shape, ctx, where, index):
    inner = a["layers"]
    sub = BuildContext(ctx.where, ctx.path + ("layers",), ctx.num_classes, ctx.params)
    children, out = build_layers(inner, shape, sub, prefix=f"{index}.")
    body = nn.Sequential(*[c.module for c in children])
    projection, proj_macs = None, 0
    if a["shortcut"] is not None:  # the shortcut as written (Keras's and PyTorch's ResNets write their own)
        sub = BuildContext(ctx.where, ctx.path + ("shortcut",), ctx.num_classes, ctx.params)
        parts, side = build_layers(a["shortcut"], shape, sub, prefix=f"{index}.shortcut.")
        if side != out:
            raise LayerError(f"{where}: residual: the shortcut turns {fmt_shape(shape)} into {fmt_shape(side)} but "
                             f"the block's layers give {fmt_shape(out)}; both must end in the same shape to be added")
        projection = nn.Sequential(*[c.module for c in parts])
        children = children + [LayerInfo(f"{index}.shortcut", "shortcut", "shortcut", {}, shape, side, projection,
                                         0, parts)]
    elif out != shape:
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
    kind = " +shortcut" if a["shortcut"] is not None else " +projection" if projection is not None else ""
    desc = "residual" + kind + (f" {a['activation']}" if act else "")
    return module, out, desc, proj_macs, children


def _concat(a, shape, ctx, where, index):
    branches, outs = [], []
    for b, layers in enumerate(a["branches"], start=1):
        if layers:
            sub = BuildContext(ctx.where, ctx.path + ("branches", b - 1), ctx.num_classes, ctx.params)
            infos, out = build_layers(layers, shape, sub, prefix=f"{index}.{b}.")
            module, desc = nn.Sequential(*[i.module for i in infos]), f"branch {b}"
        else:
            infos, out, module, desc = [], shape, nn.Identity(), f"branch {b} (the input)"
        branches.append(LayerInfo(f"{index}.{b}", "branch", desc, {}, shape, out, module, 0, infos))
        outs.append(out)
    first = outs[0]
    for b, out in enumerate(outs[1:], start=2):
        if len(out) != len(first) or out[1:] != first[1:]:
            raise LayerError(f"{where}: concat: branch {b} gives {fmt_shape(out)} but branch 1 gives "
                             f"{fmt_shape(first)}; branches are joined along the channels, so they must agree in "
                             "height and width (or all end as vectors)")
    out = (sum(o[0] for o in outs),) + tuple(first[1:])
    act = activation_module(a["activation"], where)
    module = Concat([i.module for i in branches], act)
    desc = f"concat {len(outs)} branches" + (f" {a['activation']}" if act else "")
    return module, out, desc, 0, branches


def build_layers(entries: list, shape: Shape, ctx: BuildContext, prefix: str = "") -> tuple[list[LayerInfo], Shape]:
    """Build `entries` from input `shape`; every layer is checked against the shape it receives."""
    infos: list[LayerInfo] = []
    try:
        return _build_each(entries, shape, ctx, prefix, infos)
    except LayerError as exc:
        if not prefix:  # what was built before the bad layer, so lint can still read the model up to it
            exc.partial = infos
        raise


def _build_each(entries, shape, ctx, prefix, infos) -> tuple[list[LayerInfo], Shape]:
    for position, entry in enumerate(entries, start=1):
        path = ctx.path + (position - 1,)
        index = f"{prefix}{position}"
        where = f"{ctx.where(path)}: layer {index}"
        kind, args = normalise_entry(entry, where)
        children: list[LayerInfo] = []
        if kind in ("residual", "concat"):
            block = _residual if kind == "residual" else _concat
            module, out, desc, macs, children = block(args, shape, BuildContext(
                ctx.where, path + (kind,), ctx.num_classes, ctx.params), where, index)
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
            builder = {"conv": _conv, "whiten": _whiten, "batchnorm": _batchnorm, "flatten": _flatten, "dense": _dense,
                       "pad": _pad, "scale": _scale, "squeeze_excite": _squeeze_excite}[kind]
            modules, out, desc, macs = builder(args, shape, ctx, where)
        if min(out) < 1:
            raise LayerError(f"{where} {desc}: input {fmt_shape(shape)} gives an empty output {fmt_shape(out)}")
        module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
        infos.append(LayerInfo(index, kind, desc, args, shape, out, module, macs, children))
        shape = out
    return infos, shape
