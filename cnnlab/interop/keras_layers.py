"""One Keras layer -> the model language: the layer tables (what is supported, skipped, aliased; Keras 1
argument names), `convert` for one layer's arguments, and the helpers both readers of Keras code share
(keras.py for Sequential models, keras_functional.py for the functional API)."""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from ..errors import UserError


@dataclass
class Unknown:
    """A value only known when the script runs (`num_classes`, `x_train.shape[1:]`)."""
    text: str


MERGE_LAYERS = {"Add": "add", "Concatenate": "concat"}  # functional API only: they join branches
SUPPORTED = ("Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
             "BatchNormalization", "Dropout", "SpatialDropout2D", "Flatten", "Activation", "ReLU", "LeakyReLU", "ELU",
             "Softmax", "ZeroPadding2D")
SKIPPED = {  # Keras layers with no weights whose job cnnlab does elsewhere
    "InputLayer": "the input shape comes from the data set",
    "Input": "the input shape comes from the data set",
    "Rescaling": "cnnlab scales and normalises images itself (per-channel mean and std of the training set)",
    "Normalization": "cnnlab scales and normalises images itself (per-channel mean and std of the training set)",
    "RandomFlip": "cnnlab augments on the device: set `augment:` in the training config",
    "RandomRotation": "cnnlab augments on the device: set `augment:` in the training config",
    "RandomZoom": "cnnlab augments on the device: set `augment:` in the training config",
    "RandomTranslation": "cnnlab augments on the device: set `augment:` in the training config",
    "RandomCrop": "cnnlab augments on the device: set `augment:` in the training config",
    "RandomContrast": "cnnlab augments on the device: set `augment:` in the training config",
}
ALIASES = {"Convolution2D": "Conv2D", "Conv2d": "Conv2D", "MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
           "AveragePooling2D": "AveragePooling2D", "GlobalAvgPool2D": "GlobalAveragePooling2D",
           "GlobalMaxPool2D": "GlobalMaxPooling2D", "BatchNorm": "BatchNormalization", "experimental.RandomFlip":
           "RandomFlip"}
ACTIVATIONS = {"relu": "relu", "softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh", "elu": "elu",
               "gelu": "gelu", "swish": "silu", "silu": "silu", "mish": "mish", "leaky_relu": "leaky_relu",
               "linear": None, None: None}
# Keras 1 argument names -> Keras 2/3
KERAS1 = {"nb_filter": "filters", "border_mode": "padding", "subsample": "strides", "W_constraint": "kernel_constraint",
          "bias": "use_bias", "output_dim": "units", "p": "rate", "W_regularizer": "kernel_regularizer",
          "dim_ordering": "data_format", "init": "kernel_initializer"}
# positional arguments of the Keras 2/3 signatures
POSITIONAL = {"Conv2D": ("filters", "kernel_size", "strides", "padding"), "Dense": ("units", "activation"),
              "MaxPooling2D": ("pool_size", "strides", "padding"), "AveragePooling2D": ("pool_size", "strides", "padding"),
              "Dropout": ("rate",), "SpatialDropout2D": ("rate",), "Activation": ("activation",),
              "LeakyReLU": ("negative_slope",), "ELU": ("alpha",), "ZeroPadding2D": ("padding",),
              "BatchNormalization": ("axis", "momentum", "epsilon")}


# ------------------------------------------------------------------ values

def _pair_or_int(value, what: str, where: str):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0] if value[0] == value[1] else list(value)
    raise UserError(f"{where}: {what} {value!r} cannot be read statically; write it as a number or a pair")


def _max_norm(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, tuple) and value and value[0] == "max_norm":
        return float(value[1])
    if isinstance(value, dict) and value.get("class_name") in ("MaxNorm", "max_norm"):
        return float(value.get("config", {}).get("max_value", 2.0))
    return None


def _activation(name, where: str):
    if isinstance(name, Unknown):  # activation=tf.nn.relu, keras.activations.softmax, or a bare imported name
        leaf = name.text.rsplit(".", 1)[-1].lower()
        if leaf not in ACTIVATIONS:
            raise UserError(f"{where}: the activation {name.text} cannot be read without running the script; "
                            f"write its name (supported: {', '.join(k for k in ACTIVATIONS if k)})")
        name = leaf
    if isinstance(name, dict):  # Keras JSON may carry a serialised activation
        name = name.get("config", {}).get("name") or name.get("class_name")
    key = name.lower() if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise UserError(f"{where}: activation '{name}' has no counterpart in cnnlab; supported: "
                        f"{', '.join(k for k in ACTIVATIONS if k)}")
    return ACTIVATIONS[key]


# ------------------------------------------------------------------ one Keras layer -> the model language

def convert(kind: str, kw: dict, where: str, last_dense: bool = False) -> tuple[object, list[str]]:
    """(model-language entry or None, notes) for one Keras layer given its keyword arguments."""
    kind = ALIASES.get(kind, kind)
    kw = {KERAS1.get(k, k): v for k, v in kw.items()}
    notes = []
    if kw.get("kernel_regularizer") is not None:
        notes.append("kernel_regularizer not imported: use optimizer.weight_decay (cnnlab decays conv and dense "
                     "weights by default)")
    if kind in SKIPPED:
        return None, [f"{kind} skipped: {SKIPPED[kind]}"]
    if kind == "Conv2D":
        if kw.get("nb_row") is not None:
            kw["kernel_size"] = (kw.pop("nb_row"), kw.pop("nb_col", None) or kw.get("nb_row"))
        args = {"filters": kw.get("filters"), "kernel": _pair_or_int(kw.get("kernel_size", 3), "kernel_size", where)}
        if isinstance(args["filters"], Unknown):
            raise UserError(f"{where}: filters={args['filters'].text} cannot be read without running the script")
        strides = _pair_or_int(kw.get("strides", 1), "strides", where)
        if strides != 1:
            args["stride"] = strides
        padding = kw.get("padding", "valid")
        if isinstance(padding, str) and padding.lower() != "valid":
            args["padding"] = padding.lower()  # Keras accepts 'SAME' too
        dilation = _pair_or_int(kw.get("dilation_rate", 1), "dilation_rate", where)
        if dilation != 1:
            args["dilation"] = dilation
        if kw.get("groups", 1) != 1:
            args["groups"] = kw["groups"]
        if kw.get("use_bias", True) is False:
            args["bias"] = False
        act = _activation(kw.get("activation"), where)
        if act:
            args["activation"] = act
        if _max_norm(kw.get("kernel_constraint")):
            notes.append("kernel_constraint on a conv not imported: cnnlab has max_norm on dense layers only")
        return {"conv": args}, notes
    if kind == "Dense":
        units = kw.get("units")
        if isinstance(units, Unknown) or units is None:
            if not last_dense:
                raise UserError(f"{where}: Dense({units.text if units else ''}) cannot be read without running the "
                                "script; write the number of units")
            notes.append(f"units {units.text if units else '?'} taken from the data set's class count")
            units = "classes"
        args = {"units": units}
        act = _activation(kw.get("activation"), where)
        if act:
            args["activation"] = act
        if kw.get("use_bias", True) is False:
            args["bias"] = False
        norm = _max_norm(kw.get("kernel_constraint"))
        if norm:
            args["max_norm"] = norm
        return {"dense": args}, notes
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        size = _pair_or_int(kw.get("pool_size", 2), "pool_size", where)
        args = {"size": size}
        if kw.get("strides") is not None and _pair_or_int(kw["strides"], "strides", where) != size:
            args["stride"] = _pair_or_int(kw["strides"], "strides", where)
        padding = kw.get("padding", "valid")
        if isinstance(padding, str) and padding.lower() != "valid":
            args["padding"] = padding.lower()
        name = "maxpool" if kind == "MaxPooling2D" else "avgpool"
        return ({name: args} if len(args) > 1 else {name: size}), notes
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return ("global_avgpool" if kind == "GlobalAveragePooling2D" else "global_maxpool"), notes
    if kind == "BatchNormalization":
        return {"batchnorm": {"momentum": float(kw.get("momentum", 0.99)),
                              "eps": float(kw.get("epsilon", 1e-3))}}, notes  # Keras's defaults, not torch's
    if kind in ("Dropout", "SpatialDropout2D"):
        rate = kw.get("rate")
        if not isinstance(rate, (int, float)):
            raise UserError(f"{where}: {kind} rate {rate!r} cannot be read statically; write it as a number")
        return {("dropout" if kind == "Dropout" else "spatial_dropout"): float(rate)}, notes
    if kind == "Flatten":
        return "flatten", notes
    if kind == "Activation":
        act = _activation(kw.get("activation"), where)
        return (act if act else None), notes + ([] if act else ["Activation('linear') skipped: it does nothing"])
    if kind == "ReLU":
        if kw.get("max_value") is not None:
            raise UserError(f"{where}: ReLU(max_value=...) has no counterpart in cnnlab; use a plain relu")
        return "relu", notes
    if kind == "LeakyReLU":  # Keras 2 calls the slope alpha (default 0.3); Keras 3 negative_slope (0.3)
        return {"leaky_relu": float(kw.get("negative_slope", kw.get("alpha", 0.3)))}, notes
    if kind == "ELU":
        return {"elu": float(kw.get("alpha", 1.0))}, notes
    if kind == "Softmax":
        return "softmax", notes
    if kind == "ZeroPadding2D":
        pad = kw.get("padding", 1)
        if isinstance(pad, (list, tuple)) and pad and isinstance(pad[0], (list, tuple)):
            (top, bottom), (left, right) = pad
            if top != bottom or left != right:
                raise UserError(f"{where}: ZeroPadding2D with unequal sides has no counterpart; pad both sides "
                                "alike")
            pad = [top, left]
        return {"pad": _pair_or_int(pad, "padding", where)}, notes
    raise UserError(f"{where}: Keras layer '{kind}' has no counterpart in cnnlab's model language; supported: "
                    f"{', '.join(SUPPORTED)} (and {', '.join(sorted(set(SKIPPED)))}, which are skipped); "
                    "nothing was written")


def _input_shape(kw: dict) -> tuple | None:
    """(C, H, W) from input_shape / batch_input_shape / batch_shape, in either channel order."""
    shape = kw.get("input_shape") or kw.get("shape")
    batch = kw.get("batch_input_shape") or kw.get("batch_shape")
    if shape is None and isinstance(batch, (list, tuple)):
        shape = tuple(batch[1:])
    if isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(s, int) for s in shape):
        return (1, *shape)  # Flatten(input_shape=(28, 28)): grayscale images without a channel axis
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(s, int) for s in shape)):
        return None
    first_channels = kw.get("data_format") in ("channels_first", "th") or (shape[0] <= 4 < shape[2])
    return tuple(shape) if first_channels else (shape[2], shape[0], shape[1])


# ------------------------------------------------------------------ reading calls

def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_layer(name: str) -> bool:
    return ALIASES.get(name, name) in SUPPORTED or name in SKIPPED or name in MERGE_LAYERS


def parse(text: str, source: str) -> ast.Module:
    """The code's syntax tree; code pasted from inside a function (indented) is read as if it were not."""
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        try:
            return ast.parse(textwrap.dedent(text))
        except SyntaxError:
            raise UserError(f"{source} line {exc.lineno}: not valid Python ({exc.msg})") from None


def layer_args(kind: str, positional: list, kw: dict) -> dict:
    """A layer call's arguments by their Keras 2/3 names: positional ones named, Keras 1's
    `Convolution2D(32, 3, 3)` read as 32 filters of 3x3."""
    canonical = ALIASES.get(kind, kind)
    kw = dict(kw)
    if canonical == "Conv2D" and (kind == "Convolution2D" and len(positional) >= 3 or "nb_row" in kw):
        kw.setdefault("filters", positional[0] if positional else None)
        if len(positional) >= 3:
            kw.setdefault("kernel_size", (positional[1], positional[2]))
        positional = []
    for key, value in zip(POSITIONAL.get(canonical, ()), positional):
        kw.setdefault(key, value)
    return kw
