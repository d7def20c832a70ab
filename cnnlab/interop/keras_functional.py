"""Read a Keras functional model, without running it: from Python code (the script read by
keras_interpret.py, shapes worked out by keras_shapes.py) or from its JSON (keras_json.py).

`from_functional` takes the graph the script's code made, checks that it has one input and one output, and
converts each layer the output depends on (keras_layers.py), naming the line of the first that has no
counterpart in cnnlab's model language.
"""
from __future__ import annotations

import ast
from pathlib import Path

from ..errors import UserError
from .graph import ancestors, to_layers
from .imported import Imported, Layer
from .keras_interpret import Reader, Tensor
from .keras_json import from_functional_json
from .keras_layers import ALIASES, _input_shape, convert

__all__ = ["NoTensors", "from_functional", "from_functional_json"]


class NoTensors(UserError):
    """`Model(...)` calls whose inputs are not tensors made here (`Model(model.input, model.layers[3].output)`
    around a Sequential model): the Sequential model is the one to read."""


def _one(value, what: str, where: str) -> Tensor:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (list, tuple)):
        raise UserError(f"{where}: the model has {len(value)} {what}s; cnnlab's models take one image and give "
                        "one prediction")
    if not isinstance(value, Tensor):
        raise NoTensors(f"{where}: its {what} cannot be read without running the script; pass the tensors "
                        "made with Input(...) and the layers")
    return value


def from_functional(tree: ast.Module, text: str, source: str) -> Imported:
    reader = Reader(text, source)
    model, notes = reader.read(tree)
    if model is not None:
        where = f"{source} line {model.line}: {model.code}"
        inputs, output = _one(model.inputs, "input", where), _one(model.outputs, "output", where).node
        name = model.name if isinstance(model.name, str) else Path(source).stem
    elif len(reader.inputs) == 1 and len(reader.nodes) > 1:  # pasted without its Model(...) line
        inputs, output = reader.inputs[0][0], max(reader.nodes)
        notes.append(f"no `Model(inputs, outputs)` line: the model ends at {reader.nodes[output].ref}, the last "
                     "layer made")
        name = Path(source).stem
    else:
        raise UserError(f"{source}: no Keras model found: {len(reader.inputs)} Input(...) calls and no "
                        "`Model(inputs, outputs)`; cnnlab reads the functional API from one Input to the tensor "
                        "Model(...) is given")
    keep = ancestors(reader.nodes, output)
    if inputs.node not in keep:
        raise UserError(f"{reader.nodes[output].where}: the model's output does not depend on its input")
    kinds = {n: ALIASES.get(task[0], task[0]) for n, task in reader.pending.items() if n in keep}
    denses = [n for n in sorted(kinds) if kinds[n] == "Dense"]
    for n in sorted(kinds):  # in the order the script made them: the first that has no counterpart is named
        node, task = reader.nodes[n], reader.pending[n]
        if task[0] == "":
            raise UserError(f"{node.where}: {task[1]}; nothing was written")
        kind, kw, line, code = task
        if "__scale__" in kw:
            entry, layer_notes = {"scale": float(kw["__scale__"])}, []
        else:
            entry, layer_notes = convert(kind, kw, node.where, last_dense=bool(denses) and n == denses[-1])
        node.layer = Layer(entry, line, code, [f"line {line}: {note}" for note in layer_notes])
    layers = to_layers(reader.nodes, output)
    declared = next((shape for tensor, shape in reader.inputs if tensor is inputs), None)
    input_shape = _input_shape({"shape": declared}) if isinstance(declared, (list, tuple)) else None
    if input_shape is None:
        notes.append("the input shape is not written as numbers: it comes from the data set (--data, else cifar10)")
    return Imported(name, layers, notes, input_shape)

