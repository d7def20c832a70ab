"""What an import produces, whatever it read (Keras code or JSON, a PyTorch module): the model language's
layers, each with the source line and code it came from, nested in `residual` and `concat` blocks where the
source branches; and the model file written from them, one layer a line with a comment naming its origin.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml


@dataclass
class Layer:
    entry: object          # a layer in the model language, or None when the source layer has no counterpart
    line: int | None       # source line (None for JSON)
    source: str            # the source's code (or layer) as written
    notes: list[str] = field(default_factory=list)
    parts: dict | None = None        # a block's layers: {"layers": [...], "shortcut": [...]}, {"branches": [[...]]}
    activation: "Layer | None" = None  # the activation layer a block took in as its `activation`


@dataclass
class Imported:
    name: str
    layers: list[Layer]
    notes: list[str]
    input_shape: tuple | None  # (C, H, W) when the source says it
    framework: str = "Keras"
    params: int | None = None  # what the source framework counts, when it was counted (PyTorch: sum of numel)
    file: str | None = None    # the file it was read from (None: standard input, an installed package)
    # this model's tensor names -> the source module's, checked by equal outputs (cnnlab/models/weights.py):
    # a checkpoint of the source loads into the imported model
    weights_names: dict | None = None

    @property
    def spec(self) -> dict:
        spec = {"name": self.name, "layers": entries(self.layers)}
        return {**spec, "weights_names": self.weights_names} if self.weights_names else spec

    def all_notes(self) -> list[str]:
        """The import's notes, then every layer's, blocks' layers included, in order, each once (a helper
        function called 20 times makes its layer's note 20 times)."""
        return list(dict.fromkeys(list(self.notes) + _notes(self.layers)))


def _notes(layers: list[Layer]) -> list[str]:
    found = []
    for layer in layers:
        found += layer.notes
        for key, value in (layer.parts or {}).items():
            for part in (value if key == "branches" else [value]):
                found += _notes(part)
        if layer.activation is not None:
            found += layer.activation.notes
    return found


def entries(layers: list[Layer]) -> list:
    return [layer.entry for layer in layers if layer.entry is not None]


def block(kind: str, parts: dict, line: int | None, source: str, activation: Layer | None = None) -> Layer:
    """A `residual` or `concat` block over already converted layers (`parts` as in Layer.parts)."""
    args = {key: ([entries(branch) for branch in value] if key == "branches" else entries(value))
            for key, value in parts.items()}
    if activation is not None:
        args["activation"] = activation.entry
    return Layer({kind: args}, line, source, [], parts, activation)


# ------------------------------------------------------------------ the model file

def _flow(entry) -> str:
    if isinstance(entry, dict):
        (kind, args), = entry.items()
        return f"{kind}: " + yaml.safe_dump(args, default_flow_style=True, width=1000,
                                             sort_keys=False).replace("\n...", "").strip()
    return str(entry)


def _commented(text: str, comment: str | None) -> str:
    return f"{text:50s} # {comment}" if comment else text


def _origin(layer: Layer) -> str:
    return (f"line {layer.line}: " if layer.line else "") + layer.source[:90]


def _render(layers: list[Layer], indent: int) -> list[str]:
    pad, lines = " " * indent, []
    for layer in layers:
        if layer.entry is None:
            continue
        if layer.parts is None:
            lines.append(_commented(f"{pad}- {_flow(layer.entry)}", _origin(layer)))
            continue
        (kind, args), = layer.entry.items()
        lines.append(_commented(f"{pad}- {kind}:", _origin(layer)))
        for key, value in layer.parts.items():
            lines.append(f"{pad}    {key}:")
            if key != "branches":
                lines += _render(value, indent + 6)
                continue
            for b, branch in enumerate(value, start=1):
                if entries(branch):
                    lines.append(_commented(f"{pad}      -", f"branch {b}"))
                    lines += _render(branch, indent + 8)
                else:
                    lines.append(_commented(f"{pad}      - []", f"branch {b}: the block's input itself"))
        if layer.activation is not None:
            lines.append(_commented(f"{pad}    activation: {args['activation']}", _origin(layer.activation)))
    return lines


def to_yaml(imported: Imported, source: str) -> str:
    """The model file, one layer a line, each with a comment naming where it came from."""
    weights = ("a checkpoint of it loads with --weights CKPT (weights_names below maps the tensors)"
               if imported.weights_names else "weights are not imported")
    lines = [f"# Imported by `cnnlab import` from {source} ({imported.framework}); {weights}.",
             "# cnnlab initialises as PyTorch does. Train it with: cnnlab train THIS_FILE --data NAME"]
    lines += [f"# note: {n}" for n in imported.all_notes()]
    lines += [f"name: {yaml.safe_dump(imported.name, default_style=None).splitlines()[0]}", "layers:"]
    lines += _render(imported.layers, 2)
    if imported.weights_names:
        lines.append("weights_names:  # this model's tensors -> the source's, for its checkpoints")
        lines += [f"  {ours}: {theirs}" for ours, theirs in imported.weights_names.items()]
    return "\n".join(lines) + "\n"
