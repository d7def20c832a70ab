"""A sweep file: a base config, a search space over any config key (model keys included), how to search.

    name: lr-and-width
    base: examples/fashion-mnist-tutorial.yaml   # any training config or model file (or a mapping)
    set: [epochs=6, data.val_split=0.1]           # overrides, as with --set
    objective: val_acc                           # val_acc (maximised) or val_loss (minimised), final epoch
    sampler: tpe                                 # tpe | random | grid
    pruner: median                               # median | hyperband | none
    trials: 30
    space:
      optimizer.lr: {type: float, low: 0.001, high: 0.3, log: true}
      model.layers.0.conv.filters: {type: int, low: 8, high: 64, step: 8}
      augment.cutout: {type: categorical, choices: [0, 8, 12]}
      model: {type: categorical, choices: [a.yaml, b.yaml]}
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import UserError
from ..schema.config import TrainConfig
from ..schema.errors import first_error
from ..yamlio import Located, load_yaml


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None
    choices: Annotated[list, Field(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _complete(self):
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices: [...]`")
        else:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"a {self.type} parameter needs `low` < `high`")
            if self.log and self.low <= 0:
                raise ValueError("`log: true` needs low > 0")
            if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError("an int parameter needs whole-number `low` and `high`")
        return self


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")]
    base: Any = None
    set: list[str] = []
    objective: Literal["val_acc", "val_loss"] = "val_acc"
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    trials: Annotated[int, Field(ge=1, le=100_000)] = 20
    seed: Annotated[int, Field(ge=0, le=2 ** 32 - 1)] = 0
    space: Annotated[dict[str, Param], Field(min_length=1)]

    @property
    def direction(self) -> str:
        return "maximize" if self.objective == "val_acc" else "minimize"


def load_spec(path: str | Path) -> tuple[SweepSpec, Located]:
    located = load_yaml(path)
    if not isinstance(located.data, dict):
        raise UserError(f"{path}: a sweep file is a mapping (name, base, space, ...)")
    try:
        spec = SweepSpec.model_validate(located.data)
    except ValidationError as exc:
        loc, message = first_error(exc, SweepSpec)
        key = "" if message.startswith("unknown") else f"{'.'.join(map(str, loc))} "
        raise UserError(f"{located.where(loc)}: {key}{message}") from None
    if isinstance(spec.base, str) and not Path(spec.base).is_absolute():
        relative = Path(path).parent / spec.base
        if relative.exists():
            spec.base = str(relative)
    for key, param in spec.space.items():
        if key == "model" and param.type == "categorical":
            param.choices = [str(Path(path).parent / c) if isinstance(c, str) and not Path(c).is_absolute()
                             and (Path(path).parent / c).exists() else c for c in param.choices]
    return spec, located


def base_config(spec: SweepSpec) -> TrainConfig:
    """The resolved base config every trial starts from; a sweep is honest only on a validation split."""
    from ..train.session import prepare_config
    cfg = prepare_config(spec.base, spec.set)
    if not cfg.data.val_split:
        raise UserError(f"sweep {spec.name}: the objective is {spec.objective} on a validation split, and the base "
                        "config has none; add `set: [data.val_split=0.1]` (the test set never chooses anything)")
    if isinstance(cfg.model, str) and any(k.startswith("model.") for k in spec.space):
        cfg.model = _expand(cfg)  # a named architecture, written out so its layers can be searched
    return cfg


def _expand(cfg: TrainConfig) -> dict:
    from ..data import input_spec
    from ..models import model_spec
    d = cfg.data
    return model_spec(cfg.model, *input_spec(d.name, d.dir, d.root, d.image_size))


def apply_params(cfg: TrainConfig, params: dict) -> dict:
    """The config with each `a.b.3.c` key set: dotted into mappings, list positions and layer shorthands. A
    plain config mapping, which a Job resolves as it resolves any config."""
    out = cfg.model_dump()
    for key, value in params.items():
        if key == "model":
            from ..models import resolve_spec
            out["model"] = resolve_spec(value, (1, 1, 1), 1).data if isinstance(value, str) and \
                value.endswith((".yaml", ".yml")) else value
            continue
        _set(out, key.split("."), value, key)
    return out


def _set(node, keys: list[str], value, key: str) -> None:
    from ..schema.layers import LAYERS
    for depth, part in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"space key '{key}': '{part}' is not a position in a list of {len(node)}")
            part = int(part)
            if not last and isinstance(node[part], str):
                node[part] = {node[part]: {}}  # `relu` -> {relu: {}}, so an argument can be set
        elif not isinstance(node, dict):
            raise UserError(f"space key '{key}': '{'.'.join(keys[:depth])}' holds a value, not a section")
        if last:
            node[part] = value
            return
        child = node[part] if isinstance(node, list) else node.get(part)
        if isinstance(node, dict) and part in LAYERS and child is not None and not isinstance(child, dict):
            child = node[part] = {LAYERS[part].main: child}  # the shorthand `dropout: 0.2` -> {rate: 0.2}
        elif child is None:
            child = node[part] = {}
        node = child
