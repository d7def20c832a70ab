"""The model language's schema: each layer type, its arguments, their types, ranges and defaults.

One pydantic model per layer type. The YAML loader, the summary, lint, the training engine and the web
builder all validate through these; `layer_json_schema()` is what the browser's forms are made from.

Key names and shorthands are a contract (docs/model-language.md): `conv: 32` means
`conv: {filters: 32}` because `conv`'s main argument is `filters`. Every number has a range, so nothing
absurd (a stride of 10^9, a NaN scale) gets past the schema into torch.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..errors import closest

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish", "tanh", "sigmoid", "softmax", "hardswish",
               "hardsigmoid")  # the hard ones: MobileNetV3's piecewise-linear swish and sigmoid
NO_ACTIVATION = ("linear", "none", "identity")
ACTIVATION_ALIASES = {"swish": "silu"}
# Spellings from Keras and PyTorch that mean one of our layers.
ALIASES = {"conv2d": "conv", "linear": "dense", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
           "batchnorm2d": "batchnorm", "bn": "batchnorm", "swish": "silu", "globalavgpool": "global_avgpool",
           "global_average_pooling": "global_avgpool", "concatenate": "concat", "se": "squeeze_excite",
           "hard_swish": "hardswish", "hard_sigmoid": "hardsigmoid"}
# Arguments that hold layers: a list of them (1) or a list of such lists (2). Blocks are the layers that have one.
BLOCK_FIELDS = {"layers": 1, "shortcut": 1, "branches": 2}

# Ranges. Wide enough for any CNN a person writes (VGG's 25088x4096 dense, 7x7 stems, 2048 filters),
# narrow enough that a typo cannot ask torch for 2**63 of anything.
MAX_CHANNELS = 65_536
MAX_UNITS = 1_000_000
MAX_SPATIAL = 1024           # kernel, stride, dilation, pooling window, padding (pixels)
MAX_FACTOR = 1e6             # scale factors, pad values, max_norm
MAX_LAYER_PARAMS = 2 ** 28   # 268M weights (1 GiB in fp32) in one layer; VGG-16's largest has 103M
MAX_MODEL_PARAMS = 2 ** 30   # 4 GiB of fp32 weights in all


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _typed(check, schema: dict):
    """A field checked by `check` (which returns the value or raises ValueError saying what is valid)."""
    return Annotated[Any, BeforeValidator(check), WithJsonSchema(schema)]


def _int_or_pair(lo: int, hi: int, what: str, extra: tuple = ()):
    """An integer in [lo, hi] or a pair [h, w] of them (or one of `extra`, e.g. 'same' or None)."""
    def check(v):
        if (v is None or isinstance(v, str)) and v in extra:
            return v
        if _is_int(v) and lo <= v <= hi:
            return v
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and lo <= x <= hi for x in v):
            return list(v)
        words = "".join(f"{e!r}, " if e is not None else "null, " for e in extra)
        raise ValueError(f"must be {words}{what}: an integer from {lo} to {hi} or a pair [h, w] of them")
    item = {"type": "integer", "minimum": lo, "maximum": hi}
    options = [item, {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]
    options += [{"type": "null"} if e is None else {"const": e} for e in extra]
    return _typed(check, {"anyOf": options})


def _activation(v):
    if v is None:
        return None
    if isinstance(v, str):
        name = ACTIVATION_ALIASES.get(v.lower(), v.lower())
        if name in ACTIVATIONS or name in NO_ACTIVATION:
            return name
    if isinstance(v, str):
        raise ValueError(f"unknown activation '{v:.40}'{closest(v, ACTIVATIONS)}; valid: {', '.join(ACTIVATIONS)}, "
                         "linear (or leave it out)")
    raise ValueError(f"must be one of {', '.join(ACTIVATIONS)}, linear (or left out)")


Activation = _typed(_activation, {"anyOf": [{"enum": list(ACTIVATIONS) + ["linear"]}, {"type": "null"}]})
Kernel = _int_or_pair(1, MAX_SPATIAL, "a kernel size")
Stride = _int_or_pair(1, MAX_SPATIAL, "a stride")
Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS)]
Rate = Annotated[float, Field(ge=0, lt=1)]
Finite = Annotated[float, Field(ge=-MAX_FACTOR, le=MAX_FACTOR)]


def _units(v):
    if v in ("classes", "num_classes"):
        return "classes"
    if _is_int(v) and 1 <= v <= MAX_UNITS:
        return v
    raise ValueError(f"must be an integer from 1 to {MAX_UNITS:,} or 'classes' (the data set's class count)")


def _layer_list(v):
    if isinstance(v, list) and v:
        return v
    raise ValueError("must be a non-empty list of layers")


def _shortcut(v):
    if v is None or isinstance(v, list) and v:
        return v
    raise ValueError("must be a non-empty list of layers (or left out: the input itself, projected when the "
                     "shapes differ)")


MAX_BRANCHES = 64  # an Inception module joins 4 branches; 64 is far above any network written by hand


def _branches(v):
    if isinstance(v, list) and 2 <= len(v) <= MAX_BRANCHES and all(isinstance(b, list) for b in v):
        return v
    raise ValueError(f"must be a list of 2 to {MAX_BRANCHES} branches, each a list of layers ([] passes the "
                     "input through)")


class LayerArgs(BaseModel):
    """Arguments of one layer type. `main` is the argument a shorthand value sets (`conv: 32`)."""
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    main: ClassVar[str | None] = None
    doc: ClassVar[str] = ""


class Conv(LayerArgs):
    main: ClassVar = "filters"
    doc: ClassVar = "2-D convolution"
    filters: Channels
    kernel: Kernel = 3
    stride: Stride = 1
    padding: _int_or_pair(0, MAX_SPATIAL, "pixels", ("same", "valid")) = "valid"
    dilation: _int_or_pair(1, 64, "a dilation") = 1
    groups: Channels = 1
    bias: bool = True
    activation: Activation = None
    # dirac: the first `input channels` filters start as the identity (Jordan 2024), the rest as usual
    init: Literal["default", "dirac"] = "default"


class Whiten(LayerArgs):
    main: ClassVar = "kernel"
    doc: ClassVar = ("patch-whitening conv, set from the training images' patch covariance and frozen "
                     "(2 x channels x kernel^2 filters: each eigenvector and its negative)")
    kernel: Annotated[int, Field(ge=1, le=8)] = 2
    eps: Annotated[float, Field(gt=0, le=1)] = 5e-4
    bias_epochs: Annotated[int, Field(ge=0, le=100_000)] | None = None  # train the bias this many epochs only
    # the bias's rate falls linearly to zero over those epochs (airbench94_muon) instead of following the
    # main schedule until it is frozen
    bias_decay: bool = False


class Pool(LayerArgs):
    main: ClassVar = "size"
    doc: ClassVar = "pooling over a window; stride defaults to the window size"
    size: Kernel = 2
    stride: _int_or_pair(1, MAX_SPATIAL, "a stride", (None,)) = None
    padding: _int_or_pair(0, MAX_SPATIAL // 2, "pixels", ("same", "valid")) = "valid"


class NoArgs(LayerArgs):
    pass


class BatchNorm(LayerArgs):
    main: ClassVar = "momentum"
    doc: ClassVar = "batch normalisation; momentum >= 0.5 is read the Keras way (0.99 = PyTorch 0.01)"
    momentum: Annotated[float, Field(gt=0, lt=1)] = 0.1
    eps: Annotated[float, Field(gt=0, le=1)] = 1e-5
    scale: bool = True                    # learn a per-channel scale (Keras's `scale`); false holds it at 1


class Dropout(LayerArgs):
    main: ClassVar = "rate"
    rate: Rate = 0.5


class Dense(LayerArgs):
    main: ClassVar = "units"
    doc: ClassVar = "fully connected; on a feature map it acts on each position's channels (as Keras's Dense)"
    units: _typed(_units, {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_UNITS},
                                     {"const": "classes"}]})
    activation: Activation = None
    bias: bool = True
    max_norm: Annotated[float, Field(gt=0, le=MAX_FACTOR)] | None = None
    init_std: Annotated[float, Field(gt=0, le=MAX_FACTOR)] | None = None  # start weights at this std (else torch's)


class Pad(LayerArgs):
    main: ClassVar = "size"
    size: _int_or_pair(0, MAX_SPATIAL, "pixels") = 1
    mode: Literal["constant", "reflect", "replicate", "edge"] = "constant"
    value: Finite = 0.0


class Scale(LayerArgs):
    main: ClassVar = "factor"
    doc: ClassVar = "multiplies its input (ResNet-9's 0.125 before the classifier)"
    factor: Finite


class Residual(LayerArgs):
    main: ClassVar = "layers"
    doc: ClassVar = ("adds the block's input to its output (through a strided 1x1 conv when the shapes differ, or "
                     "through the `shortcut` layers when given)")
    layers: _typed(_layer_list, {"type": "array", "minItems": 1})  # items: any layer (set in layer_json_schema)
    # the path the input takes to the sum, as a Keras or PyTorch ResNet writes its projection (1x1 conv + BN)
    shortcut: _typed(_shortcut, {"anyOf": [{"type": "array", "minItems": 1}, {"type": "null"}]}) = None
    activation: Activation = None


class Concat(LayerArgs):
    main: ClassVar = "branches"
    doc: ClassVar = ("runs each branch on the block's input and joins their outputs along the channels (Keras's "
                     "Concatenate, torch.cat(dim=1)); an empty branch passes the input itself")
    branches: _typed(_branches, {"type": "array", "minItems": 2, "maxItems": MAX_BRANCHES,
                                 "items": {"type": "array"}})  # items' items: any layer (set in layer_json_schema)
    activation: Activation = None


class SqueezeExcite(LayerArgs):
    main: ClassVar = "squeeze"
    doc: ClassVar = ("squeeze-and-excitation (Hu et al. 2018): each channel scaled by a gate from all channels' "
                     "means, through a 1x1 conv to `squeeze` channels, the activation, a 1x1 conv back and the gate")
    squeeze: Channels
    activation: Activation = "relu"
    gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid"


class LeakyRelu(LayerArgs):
    main: ClassVar = "slope"
    slope: Annotated[float, Field(ge=0, le=1)] = 0.01


class Elu(LayerArgs):
    main: ClassVar = "alpha"
    alpha: Annotated[float, Field(ge=0, le=10)] = 1.0


LAYERS: dict[str, type[LayerArgs]] = {
    "conv": Conv, "whiten": Whiten, "maxpool": Pool, "avgpool": Pool, "global_avgpool": NoArgs, "global_maxpool": NoArgs,
    "batchnorm": BatchNorm, "dropout": Dropout, "spatial_dropout": Dropout, "flatten": NoArgs, "dense": Dense,
    "pad": Pad, "scale": Scale, "residual": Residual, "concat": Concat, "squeeze_excite": SqueezeExcite,
    "relu": NoArgs, "leaky_relu": LeakyRelu, "elu": Elu, "gelu": NoArgs, "silu": NoArgs, "mish": NoArgs,
    "tanh": NoArgs, "sigmoid": NoArgs, "softmax": NoArgs, "hardswish": NoArgs, "hardsigmoid": NoArgs,
}


def defaults(kind: str) -> dict:
    """{argument: default} for a layer type; required arguments are left out."""
    return {name: f.default for name, f in LAYERS[kind].model_fields.items() if not f.is_required()}


def layer_json_schema() -> dict:
    """JSON Schema of one layer entry in its full form (`{conv: {filters: 32, ...}}`), for forms and tools.
    Each layer type also says which argument its shorthand sets (`x-main`)."""
    defs, options = {}, []
    for kind, cls in LAYERS.items():
        args = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(args.pop("$defs", {}))
        args["title"] = kind
        layer = {"$ref": "#/$defs/Layer"}
        if kind == "residual":
            args["properties"]["layers"]["items"] = layer
            args["properties"]["shortcut"]["anyOf"][0]["items"] = layer
        if kind == "concat":
            args["properties"]["branches"]["items"]["items"] = layer
        args["x-main"] = cls.main
        if cls.doc:
            args["description"] = cls.doc
        options.append({"type": "object", "properties": {kind: args}, "required": [kind],
                        "additionalProperties": False})
    defs["Layer"] = {"oneOf": options}
    return {"$defs": defs, "type": "object", "properties": {
        "name": {"type": "string"}, "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Layer"}},
        "weights_names": {"type": "object", "additionalProperties": {"type": "string"}}},
        "required": ["layers"], "additionalProperties": False}
