"""Import the Keras model a user already has: Python code (read with `ast`, never executed), Keras's own JSON
(`model.to_json()`), or the config inside a `.keras` file. Out comes the model language, each layer with
the source line it came from, counting exactly the parameters Keras's `model.summary()` counts.

Code comes in three forms: a Sequential model (`model = Sequential()` + `model.add(...)`, or
`Sequential([...])`); the `model.add(...)` lines alone, as they are pasted into questions; and the functional
API (`Input`, layers called on tensors, `Add`, `Concatenate`, `Model(inputs, outputs)`), read by
keras_functional.py into residual and concat blocks.

Keras 1, 2 and 3 spellings are all read (`Convolution2D(32, 3, 3, border_mode='same')`, `nb_filter`,
`W_constraint=maxnorm(3)`, `subsample`, `output_dim`, `Dropout(p=...)`). What cannot be evaluated without
running the script (`input_shape=x_train.shape[1:]`, `Dense(num_classes)` with `num_classes` read from
data) is taken from the data set, and a note names the line.
"""
from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

from ..errors import UserError
from .imported import Imported, Layer, to_yaml
from .keras_layers import ALIASES, Unknown, _call_name, _input_shape, _is_layer, convert, layer_args, parse

__all__ = ["Imported", "Layer", "Unknown", "convert", "finds_model", "from_json", "from_python", "import_keras",
           "to_yaml"]


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


def _fragment_calls(tree: ast.AST) -> list[ast.Call]:
    """The layer calls of `model.add(Conv2D(...))` lines pasted without the line that made `model`."""
    adds = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                   and n.func.attr == "add" and isinstance(n.func.value, ast.Name) and n.args
                   and isinstance(n.args[0], ast.Call) and _is_layer(_call_name(n.args[0]))),
                  key=lambda n: (n.lineno, n.col_offset))
    return [a.args[0] for a in adds if a.func.value.id == adds[0].func.value.id] if adds else []


def _is_functional(tree: ast.AST) -> bool:
    """A `Model(inputs, outputs)` call: the functional API (a Sequential inside it is one of its layers)."""
    return any(isinstance(n, ast.Call) and _call_name(n) in ("Model", "Functional") and (n.args or n.keywords)
               for n in ast.walk(tree))


def finds_model(tree: ast.AST) -> bool:
    """Whether the code holds a Keras model in one of the forms read here."""
    return (_is_functional(tree) or bool(_layer_calls(tree)[0]) or bool(_fragment_calls(tree))
            or any(isinstance(n, ast.Call) and _call_name(n) == "Input" for n in ast.walk(tree)))


def from_python(text: str, source: str) -> Imported:
    tree = parse(text, source)
    calls, name = _layer_calls(tree)
    if _is_functional(tree):
        from .keras_functional import NoTensors, from_functional
        try:
            return from_functional(tree, text, source)
        except NoTensors:
            if not calls:  # else a Model(...) around a Sequential model (a feature extractor): read that one
                raise
    notes = []
    if not calls:
        calls = _fragment_calls(tree)
        if calls:
            receiver = calls[0]
            notes.append(f"no `Sequential()` line: the {len(calls)} `.add(...)` lines from line {receiver.lineno} "
                         "on are read as one Sequential model")
    if not calls:
        if any(isinstance(n, ast.Call) and _call_name(n) == "Input" for n in ast.walk(tree)):
            from .keras_functional import from_functional  # the functional API without its Model(...) line
            return from_functional(tree, text, source)
        raise UserError(f"{source}: no Keras model found; cnnlab reads a Sequential model (`model = Sequential()` "
                        "with `model.add(...)` calls, or `Sequential([...])`), the `model.add(...)` lines alone, or "
                        "the functional API (`inputs = Input(...)`, layers called on tensors, `Model(inputs, "
                        "outputs)`); a subclassed keras.Model is not read")
    evaluate = _Evaluator(tree, text)
    layers, input_shape = [], None
    dense_calls = [i for i, c in enumerate(calls) if ALIASES.get(_call_name(c), _call_name(c)) == "Dense"]
    for i, call in enumerate(calls):
        kind = _call_name(call)
        code = (ast.get_source_segment(text, call) or kind).replace("\n", " ")
        where = f"{source} line {call.lineno}: {' '.join(code.split())[:80]}"
        kw = layer_args(kind, [evaluate(a) for a in call.args], {k.arg: evaluate(k.value) for k in call.keywords
                                                                  if k.arg})
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
    if input_shape is None and not any("taken from the data set" in n for n in notes):
        notes.append("no input shape is written: it comes from the data set (--data, else cifar10)")
    return Imported(name or Path(source).stem, layers, notes, input_shape)


# ------------------------------------------------------------------ Keras JSON and .keras files

def from_json(config: dict, source: str) -> Imported:
    if config.get("class_name") in ("Functional", "Model"):
        from .keras_functional import from_functional_json
        return from_functional_json(config, source)
    if config.get("class_name") != "Sequential":
        raise UserError(f"{source}: a {config.get('class_name', 'non-Keras')} model; cnnlab imports Keras "
                        "Sequential and functional models")
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
        imported.file = path
        return imported
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if text.lstrip().startswith("{"):
        try:
            imported = from_json(json.loads(text), source)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    else:
        imported = from_python(text, source)
    imported.file = None if path == "-" else path
    return imported
