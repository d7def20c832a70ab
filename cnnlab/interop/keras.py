"""Import the Keras model a user already has: Python code (read with `ast`, never executed), Keras's own JSON
(`model.to_json()`), or the config inside a `.keras` file. Out comes the model language, each layer with
the source line it came from, counting exactly the parameters Keras's `model.summary()` counts.

Keras 1, 2 and 3 spellings are all read (`Convolution2D(32, 3, 3, border_mode='same')`, `nb_filter`,
`W_constraint=maxnorm(3)`, `subsample`, `output_dim`, `Dropout(p=...)`). What cannot be evaluated without
running the script (`input_shape=x_train.shape[1:]`, `Dense(num_classes)` with `num_classes` read from
data) is taken from the data set, and a note names the line.
"""
from __future__ import annotations

import ast
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError


@dataclass
class Unknown:
    """A value only known when the script runs (`num_classes`, `x_train.shape[1:]`)."""
    text: str


@dataclass
class Layer:
    entry: object          # a layer in the model language, or None when the Keras layer has no counterpart
    line: int | None       # source line (None for JSON)
    source: str            # the Keras call as written
    notes: list[str] = field(default_factory=list)


@dataclass
class Imported:
    name: str
    layers: list[Layer]
    notes: list[str]
    input_shape: tuple | None  # (C, H, W) when the source says it

    @property
    def spec(self) -> dict:
        return {"name": self.name, "layers": [layer.entry for layer in self.layers if layer.entry is not None]}


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


# ------------------------------------------------------------------ Python source

class _Evaluator:
    """Values of call arguments without running anything: literals, simple arithmetic, names assigned a
    literal earlier in the file, and constraint calls like maxnorm(3)."""

    def __init__(self, tree: ast.AST, text: str):
        self.text = text
        self.names: dict[str, object] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = self(node.value)
                if not isinstance(value, Unknown):
                    self.names[node.targets[0].id] = value

    def __call__(self, node: ast.AST):
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError):
            pass
        if isinstance(node, ast.Name):
            return self.names.get(node.id, Unknown(node.id))
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self(e) for e in node.elts)
        if isinstance(node, ast.BinOp):
            left, right = self(node.left), self(node.right)
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                       ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b}
                if type(node.op) in ops:
                    return ops[type(node.op)](left, right)
        if isinstance(node, ast.Call) and _call_name(node).lower().replace("_", "") in ("maxnorm",):
            value = self(node.args[0]) if node.args else self(node.keywords[0].value) if node.keywords else 2.0
            return ("max_norm", value)
        return Unknown(ast.get_source_segment(self.text, node) or ast.dump(node)[:40])


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _layer_calls(tree: ast.AST) -> tuple[list[ast.Call], str | None]:
    """The layer calls of the first Sequential model in the file: its list, or its `.add(...)` calls."""
    sequentials = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == "Sequential"),
                         key=lambda n: n.lineno)
    for seq in sequentials:
        name = next((k.value.value for k in seq.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)),
                    None)
        listed = seq.args[0] if seq.args else next((k.value for k in seq.keywords if k.arg == "layers"), None)
        if isinstance(listed, (ast.List, ast.Tuple)) and listed.elts:
            return [e for e in listed.elts if isinstance(e, ast.Call)], name
        target = _assigned_name(tree, seq)
        if target:
            adds = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                           and n.func.attr == "add" and isinstance(n.func.value, ast.Name)
                           and n.func.value.id == target and n.lineno > seq.lineno and n.args
                           and isinstance(n.args[0], ast.Call)), key=lambda n: (n.lineno, n.col_offset))
            if adds:
                return [a.args[0] for a in adds], name
    return [], None


def _assigned_name(tree: ast.AST, call: ast.Call) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.value is call and isinstance(node.targets[0], ast.Name):
            return node.targets[0].id
    return None


def from_python(text: str, source: str) -> Imported:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise UserError(f"{source} line {exc.lineno}: not valid Python ({exc.msg})") from None
    calls, name = _layer_calls(tree)
    if not calls:
        raise UserError(f"{source}: no Keras Sequential model found (cnnlab reads `model = Sequential()` with "
                        "`model.add(...)` calls, or `Sequential([...])`); the functional API is not supported")
    evaluate = _Evaluator(tree, text)
    layers, notes, input_shape = [], [], None
    dense_calls = [i for i, c in enumerate(calls) if ALIASES.get(_call_name(c), _call_name(c)) == "Dense"]
    for i, call in enumerate(calls):
        kind = _call_name(call)
        code = (ast.get_source_segment(text, call) or kind).replace("\n", " ")
        where = f"{source} line {call.lineno}: {' '.join(code.split())[:80]}"
        positional = [evaluate(a) for a in call.args]
        kw = {k.arg: evaluate(k.value) for k in call.keywords if k.arg}
        canonical = ALIASES.get(kind, kind)
        if canonical == "Conv2D" and (kind == "Convolution2D" and len(positional) >= 3 or "nb_row" in kw):
            kw.setdefault("filters", positional[0])  # Keras 1: Convolution2D(32, 3, 3) is 32 filters of 3x3
            if len(positional) >= 3:
                kw.setdefault("kernel_size", (positional[1], positional[2]))
            positional = []
        for key, value in zip(POSITIONAL.get(canonical, ()), positional):
            kw.setdefault(key, value)
        shape = _input_shape(kw)
        if shape and input_shape is None:
            input_shape = shape
            if kw.get("input_shape") and tuple(kw["input_shape"]) == shape and shape[0] <= 4:
                notes.append(f"line {call.lineno}: input_shape={tuple(kw['input_shape'])} is channels-first "
                             "(the Theano ordering): read as such")
        unknown = [k for k in ("input_shape", "batch_input_shape") if isinstance(kw.get(k), Unknown)]
        if unknown:
            notes.append(f"line {call.lineno}: {unknown[0]}={kw[unknown[0]].text} is taken from the data set")
        entry, layer_notes = convert(kind, kw, where, last_dense=bool(dense_calls) and i == dense_calls[-1])
        layers.append(Layer(entry, call.lineno, " ".join(code.split()), [f"line {call.lineno}: {n}"
                                                                           for n in layer_notes]))
    return Imported(name or Path(source).stem, layers, notes, input_shape)


# ------------------------------------------------------------------ Keras JSON and .keras files

def from_json(config: dict, source: str) -> Imported:
    if config.get("class_name") != "Sequential":
        raise UserError(f"{source}: a {config.get('class_name', 'non-Keras')} model; cnnlab imports Keras "
                        "Sequential models (the functional API is not supported)")
    inner = config.get("config", {})
    entries = inner if isinstance(inner, list) else inner.get("layers", [])
    layers, notes, input_shape = [], [], None
    denses = [i for i, e in enumerate(entries) if ALIASES.get(e.get("class_name"), e.get("class_name")) == "Dense"]
    for i, item in enumerate(entries):
        kind, kw = item.get("class_name", "?"), dict(item.get("config", {}))
        where = f"{source}: layer {i + 1} ({kind} '{kw.get('name', '')}')"
        shape = _input_shape(kw)
        if shape and input_shape is None:
            input_shape = shape
        entry, layer_notes = convert(kind, kw, where, last_dense=bool(denses) and i == denses[-1])
        layers.append(Layer(entry, None, f"{kind} '{kw.get('name', '')}'", [f"layer {i + 1}: {n}" for n in layer_notes]))
    return Imported(inner.get("name", Path(source).stem) if isinstance(inner, dict) else Path(source).stem,
                    layers, notes, input_shape)


def import_keras(path: str, text: str | None = None) -> Imported:
    """Read a Keras model from `path` (.py, .json, .keras; '-' with `text` for standard input)."""
    source = "<stdin>" if path == "-" else path
    if path != "-" and path.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a readable .keras file ({exc})") from None
        imported = from_json(config, source)
        imported.notes.append("weights are not imported: the model trains from scratch")
        return imported
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if text.lstrip().startswith("{"):
        try:
            return from_json(json.loads(text), source)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    return from_python(text, source)


def to_yaml(imported: Imported, source: str) -> str:
    """The model file, one layer a line, each with a comment naming where it came from."""
    lines = [f"# Imported by `cnnlab import` from {source} (Keras). Weights are not imported; cnnlab",
             "# initialises as PyTorch does. Train it with: cnnlab train THIS_FILE --data NAME"]
    lines += [f"# note: {n}" for n in imported.notes + [n for layer in imported.layers for n in layer.notes]]
    lines += [f"name: {yaml.safe_dump(imported.name, default_style=None).splitlines()[0]}", "layers:"]
    for layer in imported.layers:
        if layer.entry is None:
            continue
        entry = layer.entry
        if isinstance(entry, dict):
            (kind, args), = entry.items()
            entry = f"{kind}: " + yaml.safe_dump(args, default_flow_style=True, width=1000, sort_keys=False).replace("\n...", "").strip()
        where = f"line {layer.line}: " if layer.line else ""
        lines.append(f"  - {entry:44s} # {where}{layer.source[:90]}")
    return "\n".join(lines) + "\n"
