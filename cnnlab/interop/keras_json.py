"""A Keras functional model read from its JSON: `model.to_json()` output or a .keras file's config (Keras 2
and 3), each layer's inbound nodes giving the graph (graph.py turns it into the model language)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .graph import Node, to_layers
from .imported import Imported, Layer
from .keras_layers import ALIASES, MERGE_LAYERS, _input_shape, convert

def _sources(inbound) -> list[str]:
    """The layer names a layer's one call reads: Keras 3 writes {"args": [tensor or [tensors]]} with each
    tensor's `keras_history`; Keras 2 a list of [name, node, tensor, kwargs]."""
    if isinstance(inbound, dict):
        found = []
        stack = list(inbound.get("args", []))
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack = item + stack
            elif isinstance(item, dict) and "keras_history" in item.get("config", {}):
                found.append(item["config"]["keras_history"][0])
        return found
    return [entry[0] for entry in inbound if isinstance(entry, list) and entry]


def from_functional_json(config: dict, source: str) -> Imported:
    """A functional model as `model.to_json()` or a .keras file holds it (Keras 2 and 3)."""
    inner = config.get("config", {})
    entries = inner.get("layers", [])
    ids = {(e.get("name") or e.get("config", {}).get("name")): i for i, e in enumerate(entries)}
    nodes: dict[int, Node] = {}
    input_shape = None
    denses = [i for i, e in enumerate(entries) if ALIASES.get(e.get("class_name"), e.get("class_name")) == "Dense"]
    for i, item in enumerate(entries):
        kind, kw = item.get("class_name", "?"), dict(item.get("config", {}))
        name = item.get("name") or kw.get("name", "")
        where = f"{source}: layer {i + 1} ({kind} '{name}')"
        inbound = item.get("inbound_nodes", [])
        if len(inbound) > 1:
            raise UserError(f"{where}: is called {len(inbound)} times, so the calls share its weights; cnnlab's model "
                            "language gives every layer its own weights")
        reads = [ids[n] for n in _sources(inbound[0])] if inbound else []
        if kind == "InputLayer" or not inbound:
            nodes[i] = Node(i, "input", [], Layer(None, None, f"{kind} '{name}'"), where, f"layer '{name}'")
            input_shape = input_shape or _input_shape(kw)
            continue
        merge = MERGE_LAYERS.get(ALIASES.get(kind, kind))
        if merge == "concat" and kw.get("axis", -1) not in (-1, 3):
            raise UserError(f"{where}: concatenates along axis {kw.get('axis')}; cnnlab's concat block joins the "
                            "channels (axis -1)")
        if merge:
            layer = Layer(None, None, f"{kind} '{name}'")
        else:
            entry, layer_notes = convert(kind, kw, where, last_dense=bool(denses) and i == denses[-1])
            layer = Layer(entry, None, f"{kind} '{name}'", [f"layer {i + 1}: {n}" for n in layer_notes])
        nodes[i] = Node(i, merge or "layer", reads, layer, where, f"layer '{name}'")
    ends = [ids[o[0]] for o in inner.get("output_layers", []) if isinstance(o, list) and o]
    if len(ends) != 1:
        raise UserError(f"{source}: the model has {len(ends)} outputs; cnnlab's models give one prediction")
    return Imported(inner.get("name") or Path(source).stem, to_layers(nodes, ends[0]), [], input_shape)
