"""The schemas a front end validates against: the model language and the training config, as JSON Schema,
and every config key's default."""
from __future__ import annotations

from ..schema.config import TrainConfig, defaults
from ..schema.layers import layer_json_schema


def schema(what: str) -> dict:
    """The JSON Schema of `model` (the layer language) or `config` (a training config)."""
    if what not in ("model", "config"):
        from ..errors import UserError
        raise UserError(f"schema '{what[:40]}': valid: model, config")
    return layer_json_schema() if what == "model" else TrainConfig.model_json_schema()


def layer_schema() -> dict:
    return layer_json_schema()


def config_defaults() -> dict:
    return defaults()
