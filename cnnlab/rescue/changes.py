"""The changes a rescue makes to a written config, each a pure edit (cnnlab/rescue/prior.py picks them).

A change edits a written config (a plain dict: what a config file holds) and says in one line what it did.
Training-setting changes are always allowed; a change to the layer list (normalisation layers,
activations, padding) only with `--change-architecture`, and each is listed as such. Dropout rates are regularisation
settings that live in the layer list: they count as training settings here, and the table says so.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from ..models.layers import written_args
from ..schema.config import TrainConfig


@dataclass(frozen=True)
class Change:
    name: str                                   # short id, used in run names: "sgd-onecycle", "batchnorm"
    label: str                                  # what it does, for the table
    architecture: bool
    edit: Callable[[dict], dict | None]         # config -> changed config, or None where it does not apply

    def apply(self, config: dict) -> dict | None:
        changed = self.edit(copy.deepcopy(config))
        return None if changed is None or changed == config else changed


def get(config: dict, dotted: str, default=None):
    for key in dotted.split("."):
        if not isinstance(config, dict) or key not in config:
            return default
        config = config[key]
    return config


def put(config: dict, dotted: str, value) -> dict:
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return config


def setting(config: dict, dotted: str):
    """The value a run would use: written, else the schema's default."""
    value = get(config, dotted)
    return value if value is not None else get(TrainConfig().model_dump(), dotted)


def _layers(config: dict) -> list | None:
    model = config.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    return layers if isinstance(layers, list) else None


def _edit_layers(config: dict, step: Callable[[list], list | None]) -> dict | None:
    layers = _layers(config)
    if layers is None:
        return None  # a named architecture or a PyTorch module: nothing to edit in place
    new = step(copy.deepcopy(layers))
    if new is None:
        return None
    config["model"]["layers"] = new
    return config


# ---------------------------------------------------------------- training settings

def _scale_lr(factor: float):
    def edit(config):
        return put(config, "optimizer.lr", float(f"{setting(config, 'optimizer.lr') * factor:.3g}"))
    return edit


def _adam(config: dict) -> dict | None:
    """Adam at its from-scratch rate (lint's FROM_SCRATCH_LR), on cnnlab's one-cycle schedule: per-weight step
    sizes keep a sigmoid or tanh stack's small gradients moving where one SGD rate is too small for the first
    layers and too large for the last."""
    if setting(config, "optimizer.name") in ("adam", "adamw"):
        return None
    return put(config, "optimizer", {"name": "adam", "lr": 1e-3})


def _finetune(config: dict) -> dict | None:
    """fastai's fine_tune for a net that starts from trained weights: the new head alone for an epoch (the
    body's BatchNorm statistics kept), then every layer, at rates rising from the body to the head."""
    if config.get("finetune"):
        return None  # the user's own schedule
    config["finetune"] = {"freeze": "body", "head_epochs": 1, "rates": "discriminative"}
    return config


DROPOUT = ("dropout", "spatial_dropout")


def _halve_dropout(config: dict) -> dict | None:
    def step(layers):
        changed = False
        for n, entry in enumerate(layers):
            kind, args = written_args(entry)
            rate = args.get("rate")
            if kind in DROPOUT and isinstance(rate, (int, float)) and rate >= 0.3:
                layers[n] = {kind: {**args, "rate": round(rate / 2, 3)}}
                changed = True
        return layers if changed else None
    return _edit_layers(config, step)


def _remove_dropout(config: dict) -> dict | None:
    """Every dropout layer removed: where batchnorm goes in, it regularises in dropout's place, and the two
    together fight (dropout shifts the variance batchnorm's statistics were taken at: Li et al., 2019)."""
    def step(layers):
        kept = [e for e in layers if written_args(e)[0] not in DROPOUT]
        return kept if len(kept) < len(layers) else None
    return _edit_layers(config, step)


# ---------------------------------------------------------------- architecture

def _is_conv(entry) -> bool:
    return written_args(entry)[0] == "conv"


def _batchnorm(config: dict) -> dict | None:
    """`batchnorm` after every conv (after its activation where the conv carries one, before the next
    activation layer otherwise), where the model has none."""
    def step(layers):
        if any(written_args(e)[0] == "batchnorm" for e in layers) or not any(_is_conv(e) for e in layers):
            return None
        out = []
        for entry in layers:
            out.append(entry)
            if _is_conv(entry):
                out.append("batchnorm")
        return out
    return _edit_layers(config, step)


def _pad_same(config: dict) -> dict | None:
    """`padding: same` on unpadded stride-1 convs: the maps keep their size, so a deep stack keeps its edges."""
    def step(layers):
        out, changed = [], False
        for entry in layers:
            kind, args = written_args(entry)
            if kind == "conv" and args.get("padding", "valid") in ("valid", 0) and args.get("stride", 1) == 1 \
                    and args.get("kernel", 3) != 1:
                entry, changed = {kind: {**args, "padding": "same"}}, True
            out.append(entry)
        return out if changed else None
    return _edit_layers(config, step)


SATURATING = ("sigmoid", "tanh")


def _relu(config: dict) -> dict | None:
    """relu for every hidden sigmoid or tanh (as a layer or a conv/dense `activation`): their gradients shrink
    by 4x or more at each layer, so a deep stack of them barely trains its first layers."""
    def step(layers):
        out, changed = [], False
        for n, entry in enumerate(layers):
            kind, args = written_args(entry)
            last = n == len(layers) - 1
            if kind in SATURATING and not last:
                entry, changed = "relu", True
            elif kind in ("conv", "dense") and args.get("activation") in SATURATING and not last:
                entry, changed = {kind: {**args, "activation": "relu"}}, True
            out.append(entry)
        return out if changed else None
    return _edit_layers(config, step)


CHANGES = {c.name: c for c in [
    Change("lr-div3", "learning rate /3", False, _scale_lr(1 / 3)),
    Change("adam", "Adam at lr 0.001 on the one-cycle schedule", False, _adam),
    Change("finetune", "fine-tuned as fastai does: the head alone for an epoch, then all layers at rates rising "
           "to the head", False, _finetune),
    Change("less-dropout", "dropout of 0.3 or more halved (a regularisation setting in the layer list)", False,
           _halve_dropout),
    Change("no-dropout", "dropout removed, batchnorm regularising in its place (a regularisation setting in the "
           "layer list)", False, _remove_dropout),
    Change("batchnorm", "architecture: batchnorm after every conv", True, _batchnorm),
    Change("pad-same", "architecture: padding same on unpadded convs", True, _pad_same),
    Change("relu", "architecture: relu for the hidden sigmoid/tanh activations", True, _relu),
]}
