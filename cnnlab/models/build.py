"""From a model description (layer list, YAML file, registry name, or a user's nn.Module) to a checked model.

Accepted forms of `spec`:
  - a list of layers, or {name:, layers: [...]}
  - a registry name 'resnet18', or {name: resnet18, width: 0.5} / {model: resnet18, ...}
  - a path to a YAML file holding either of the above
  - {module: 'package.module:ClassName', <keyword arguments>}
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..schema.limits import check_model_size
from ..yamlio import Located, load_yaml
from .layers import BuildContext, LayerError, LayerInfo, build_layers, fmt_shape
from .registry import list_models, model_spec


class SpecModel(nn.Module):
    """A model built from the layer language. `layers` is an nn.Sequential, one entry per written layer."""

    def __init__(self, infos: list[LayerInfo], input_shape, num_classes: int, spec: dict):
        super().__init__()
        self.layers = nn.Sequential(*[info.module for info in infos])
        self.infos = infos
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.spec = spec
        # A final softmax makes the output probabilities; the loss then takes their log, as Keras does with
        # from_logits=False. `cnnlab lint` still flags it: logits are more stable.
        last = infos[-1].module if infos else None
        if isinstance(last, nn.Sequential):
            last = last[-1]
        self.outputs_probabilities = isinstance(last, nn.Softmax)

    def forward(self, x):
        return self.layers(x)


class ModuleModel(nn.Module):
    """Wraps a user's own nn.Module so it trains, summarises and saves like a built-in one."""

    def __init__(self, inner: nn.Module, input_shape, num_classes: int, spec: dict):
        super().__init__()
        self.inner = inner
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.spec = spec
        self.infos = None
        self.outputs_probabilities = False

    def forward(self, x):
        return self.inner(x)


def _import_module_class(target: str, where: str):
    if ":" not in target:
        raise UserError(f"{where}: module must be written 'package.module:ClassName', got '{target}'")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"{where}: cannot import '{module_name}' ({exc}); is it on PYTHONPATH?") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"{where}: '{module_name}' has no attribute '{attr}'") from None


def _build_module(spec: dict, input_shape, num_classes: int, where: str) -> ModuleModel:
    cls = _import_module_class(spec["module"], where)
    kwargs = {k: v for k, v in spec.items() if k not in ("module", "name")}
    params = inspect.signature(cls).parameters
    offered = {"num_classes": num_classes, "in_channels": input_shape[0], "input_shape": tuple(input_shape)}
    for key, value in offered.items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    try:
        inner = cls(**kwargs)
    except TypeError as exc:
        raise UserError(f"{where}: {spec['module']}({', '.join(kwargs)}) failed: {exc}") from None
    if not isinstance(inner, nn.Module):
        raise UserError(f"{where}: {spec['module']} built a {type(inner).__name__}, not a torch.nn.Module")
    model = ModuleModel(inner, input_shape, num_classes, dict(spec))
    with torch.no_grad():
        try:
            out = inner.eval()(torch.zeros(2, *input_shape))
        except Exception as exc:  # noqa: BLE001 — any failure of the user's forward is reported as theirs
            raise UserError(f"{where}: {spec['module']} fails on input {fmt_shape(input_shape)}: {exc}") from None
    if tuple(out.shape[1:]) != (num_classes,):
        raise UserError(f"{where}: {spec['module']} outputs {fmt_shape(tuple(out.shape[1:]))} per image; "
                        f"the data set has {num_classes} classes")
    inner.train()
    return model


def _check_names(names, located: Located) -> None:
    """`weights_names` (written by `cnnlab import`): tensor names of this model -> the source module's."""
    if names is not None and not (isinstance(names, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                                  for k, v in names.items())):
        raise UserError(f"{located.where(('weights_names',))}: weights_names maps this model's tensor names to "
                        "the source's (name: name), as `cnnlab import` writes it")


def resolve_spec(spec, input_shape, num_classes: int) -> Located:
    """Turn any accepted form into Located({'name':..., 'layers': [...]} or {'module': ...}), refusing a
    layer list past the size limits (cnnlab/schema/limits.py) before anything reads it layer by layer.
    Every front-end (summary, lint, train, the web server, the Python API) comes through here."""
    located = _resolve(spec, input_shape, num_classes)
    layers = located.data.get("layers")
    if isinstance(layers, list):
        check_model_size(layers, located.where)
    return located


def _resolve(spec, input_shape, num_classes: int) -> Located:
    if isinstance(spec, Located):
        located = spec
    elif isinstance(spec, (str, Path)) and (str(spec).endswith((".yaml", ".yml")) or Path(spec).is_file()):
        located = load_yaml(spec)
    else:
        located = Located(spec, "model")
    data = located.data
    if isinstance(data, str):
        return Located(model_spec(data, input_shape, num_classes), located.source)
    if isinstance(data, list):
        return Located({"name": "model", "layers": data}, located.source,
                       {("layers",) + k: v for k, v in located.lines.items()})
    if isinstance(data, dict):
        if "module" in data:
            return located
        if "layers" in data:
            extra = set(data) - {"name", "layers", "weights_names"}
            if extra:
                raise UserError(f"{located.where((sorted(extra)[0],))}: unknown model key '{sorted(extra)[0]}'; "
                                "valid: name, layers, weights_names (or module, or a registered model name)")
            _check_names(data.get("weights_names"), located)
            return located
        name = data.get("model", data.get("name"))
        if isinstance(name, str):
            opts = {k: v for k, v in data.items() if k not in ("model", "name")}
            return Located(model_spec(name, input_shape, num_classes, **opts), located.source)
    raise UserError(f"{located.source}: a model is a layer list, {{layers: [...]}}, a registered name "
                    f"({', '.join(list_models())}) or {{module: 'package.module:Class'}}; got {data!r:.80}")


def build_model(spec, input_shape, num_classes: int) -> nn.Module:
    """Build and shape-check a model. Raises UserError naming the layer, its input shape and the reason."""
    input_shape = tuple(int(s) for s in input_shape)
    located = resolve_spec(spec, input_shape, num_classes)
    data = located.data
    if "module" in data:
        return _build_module(data, input_shape, num_classes, located.source)
    layers = data["layers"]
    if not isinstance(layers, list) or not layers:
        raise UserError(f"{located.where(('layers',))}: `layers` must be a non-empty list")
    infos, out = build_layers(layers, input_shape, BuildContext(located.where, ("layers",), num_classes))
    last = f"{located.where(('layers', len(layers) - 1))}: layer {len(layers)}"
    problem = None
    if len(out) != 1:
        problem = (f"{last}: the model ends with a {fmt_shape(out)} feature map; add `flatten` or "
                   f"`global_avgpool` and then `dense: {num_classes}`")
    elif out[0] != num_classes:
        problem = (f"{last}: the model outputs {out[0]} values per image but the data set has "
                   f"{num_classes} classes; end with `dense: {num_classes}`")
    if problem:
        error = LayerError(problem)
        error.partial = infos  # every layer built: lint can still read all of them
        raise error
    spec = {"name": data.get("name", "model"), "layers": layers}
    if data.get("weights_names"):
        spec["weights_names"] = data["weights_names"]
    return SpecModel(infos, input_shape, num_classes, spec)
