"""The changes a rescue can try, and which to try for a doctor's verdict.

A change edits a written config (a plain dict: what a config file holds) and says in one line what it did.
Training-setting changes are always allowed; a change to the layer list (normalisation layers, widths,
padding) only with `--change-architecture`, and each is listed as such. Dropout rates are regularisation
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

def _cnnlab_settings(config: dict) -> dict | None:
    """SGD with Nesterov momentum and a one-cycle schedule, label smoothing, weight decay: what cnnlab's own
    defaults are, for a model trained with something else."""
    if (setting(config, "optimizer.name"), setting(config, "schedule.name")) == ("sgd", "onecycle") and \
            setting(config, "loss.label_smoothing") > 0:
        return None
    defaults = TrainConfig().model_dump()
    if (config.get("batch_size") or 128) < 32:
        config.pop("batch_size")  # a batch of a few images makes every step noisy (and slow): cnnlab's default
    config["optimizer"] = {"name": "sgd", "lr": defaults["optimizer"]["lr"], "momentum": 0.9, "nesterov": True,
                           "weight_decay": defaults["optimizer"]["weight_decay"]}
    config["schedule"] = {"name": "onecycle"}
    return put(config, "loss.label_smoothing", defaults["loss"]["label_smoothing"])


def _scale_lr(factor: float):
    def edit(config):
        return put(config, "optimizer.lr", float(f"{setting(config, 'optimizer.lr') * factor:.3g}"))
    return edit


def _augment(config: dict) -> dict | None:
    """The data set's augmentation (crop, and flips where they keep labels) where the config turned it off."""
    augment = config.get("augment", "auto")
    off = augment in ("none", None) or (isinstance(augment, dict) and not any(
        v not in (0, 0.0, "none", None) for k, v in augment.items() if k not in ("crop_mode", "fill")))
    if not off:
        return None
    config["augment"] = "auto"
    return config


def _cutout(config: dict) -> dict | None:
    augment = config.get("augment")
    if augment == "none" or (isinstance(augment, dict) and augment.get("cutout")):
        return None
    config["augment"] = {**(augment if isinstance(augment, dict) else {}), "cutout": 8}
    return config


def _scale_weight_decay(factor: float):
    def edit(config):
        now = setting(config, "optimizer.weight_decay")
        new = 5e-4 if now == 0 and factor > 1 else now * factor
        return None if new == now else put(config, "optimizer.weight_decay", float(f"{new:.3g}"))
    return edit


def _label_smoothing(config: dict) -> dict | None:
    return None if setting(config, "loss.label_smoothing") > 0 else put(config, "loss.label_smoothing", 0.1)


def _grad_clip(config: dict) -> dict | None:
    return None if config.get("grad_clip") else put(config, "grad_clip", 1.0)


def _halve_dropout(config: dict) -> dict | None:
    def step(layers):
        changed = False
        for n, entry in enumerate(layers):
            kind, args = written_args(entry)
            rate = args.get("rate")
            if kind in ("dropout", "spatial_dropout") and isinstance(rate, (int, float)) and rate >= 0.3:
                layers[n] = {kind: {**args, "rate": round(rate / 2, 3)}}
                changed = True
        return layers if changed else None
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


def _double_width(config: dict) -> dict | None:
    def step(layers):
        out = []
        for entry in layers:
            kind, args = written_args(entry)
            if kind == "conv" and isinstance(args.get("filters"), int):
                entry = {kind: {**args, "filters": 2 * args["filters"]}}
            out.append(entry)
        return out if out != layers else None
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


CHANGES = {c.name: c for c in [
    Change("sgd-onecycle", "cnnlab's training settings: SGD with Nesterov momentum, one-cycle schedule, "
           "label smoothing 0.1, weight decay 5e-4 (and batch 128 for one below 32)", False, _cnnlab_settings),
    Change("lr-x3", "learning rate x3", False, _scale_lr(3)),
    Change("lr-div3", "learning rate /3", False, _scale_lr(1 / 3)),
    Change("augment", "augmentation: the data set's (crop; flips where they keep labels)", False, _augment),
    Change("cutout", "augmentation: cutout 8 (with the data set's crop and flip)", False, _cutout),
    Change("more-decay", "weight decay x3 (5e-4 where there was none)", False, _scale_weight_decay(3)),
    Change("less-decay", "weight decay /3", False, _scale_weight_decay(1 / 3)),
    Change("label-smoothing", "label smoothing 0.1", False, _label_smoothing),
    Change("grad-clip", "gradient clipping at norm 1", False, _grad_clip),
    Change("less-dropout", "dropout of 0.3 or more halved (a regularisation setting in the layer list)", False,
           _halve_dropout),
    Change("batchnorm", "architecture: batchnorm after every conv", True, _batchnorm),
    Change("pad-same", "architecture: padding same on unpadded convs", True, _pad_same),
    Change("wider", "architecture: twice the filters in every conv (about 4x the compute)", True, _double_width),
]}

# What the doctor's verdict on the best trial so far calls for, most promising first (its own prescriptions,
# cnnlab/diagnose/doctor.py, made mechanical). The learning rate is searched before these (cnnlab/rescue/loop.py).
FOR_VERDICT = {
    "overfitting": ["augment", "cutout", "more-decay", "label-smoothing"],
    "underfitting": ["less-dropout", "less-decay", "batchnorm", "pad-same", "wider"],
    "still-improving": ["batchnorm", "pad-same", "lr-x3", "wider"],
    "good-fit": ["augment", "batchnorm", "pad-same", "wider", "cutout"],
    "too-short": ["batchnorm", "pad-same", "lr-x3"],
    "lr-too-high": ["lr-div3", "grad-clip", "batchnorm"],
    "diverged": ["lr-div3", "grad-clip", "batchnorm"],
    "lr-too-low": ["lr-x3", "batchnorm"],
    "chance": ["batchnorm", "pad-same", "lr-div3", "lr-x3"],
}
# what any verdict may try once its own list is done, while budget remains
FALLBACK = ["augment", "batchnorm", "pad-same", "less-dropout", "label-smoothing", "cutout", "wider"]


def candidates(regime: str, allow_architecture: bool, tried: set[str]) -> list[Change]:
    names = FOR_VERDICT.get(regime, []) + FALLBACK
    out = []
    for name in dict.fromkeys(names):
        change = CHANGES[name]
        if name in tried or (change.architecture and not allow_architecture):
            continue
        out.append(change)
    return out
