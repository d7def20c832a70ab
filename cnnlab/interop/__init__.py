"""Models in and out: Keras code, JSON and .keras files and PyTorch modules read into the model language
(keras.py, keras_functional.py, pytorch.py; keras_functional.py reads code with keras_interpret.py and
keras_shapes.py, JSON with keras_json.py; graph.py turns branching graphs into blocks), trained runs
written as ONNX, TorchScript or safetensors (export.py)."""
from __future__ import annotations

from pathlib import Path


def read_model(source: str, text: str | None = None, input_shape: tuple | None = None):
    """An Imported model from any form `cnnlab import` takes: `file.py:Class` or `package.module:Class` (a
    PyTorch nn.Module), a .py file (Keras code; or PyTorch code defining one top-level nn.Module), Keras JSON,
    a .keras file, or '-' with `text` (Keras code or JSON from standard input). `input_shape` (C, H, W) is
    where a PyTorch module is traced (else the size its first layer implies)."""
    from ..errors import UserError
    from . import keras, pytorch
    if source != "-" and pytorch.is_target(source):
        return pytorch.import_pytorch(source, input_shape)
    code = text if source == "-" else None
    if source != "-" and source.endswith(".py"):
        try:
            code = Path(source).read_text()
        except OSError:
            code = None  # import_keras says why it cannot read it
    if code is not None and not code.lstrip().startswith("{"):
        tree = keras.parse(code, "<stdin>" if source == "-" else source)
        if pytorch.module_classes(tree) and not keras.finds_model(tree):
            if source == "-":
                raise UserError("<stdin>: PyTorch code is imported from its file (it is run to build the model): "
                                "save it and run `cnnlab import FILE.py:Class`")
            return pytorch.import_pytorch(source, input_shape)
    return keras.import_keras(source, text)
