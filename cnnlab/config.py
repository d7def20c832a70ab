"""The one configuration schema, for config files, `--set` overrides, the Python API and the web page.

`resolve(...)` merges the defaults, a YAML file and overrides, rejects unknown keys (naming the file line
and the closest valid key) and returns a plain dict that is saved with the run.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from .errors import UserError, closest
from .yamlio import Located, load_yaml, parse_yaml

# Defaults are what a strong practitioner would pick for a small CNN on a CPU; see docs/defaults.md.
DEFAULTS: dict = {
    "name": None,                 # run name; defaults to the model's name
    "model": "tutorial",          # layer list, model YAML file, registry name, or {module: pkg.mod:Class}
    "data": {
        "name": "cifar10",        # cifar10 | cifar100 | mnist | fashion-mnist | imagefolder (or a folder path)
        "dir": None,              # folder holding <set>/ sub-folders; else CNNLAB_DATA_DIR, cache, download
        "root": None,             # imagefolder: ROOT/<class>/*.png or ROOT/train, ROOT/test
        "image_size": None,       # imagefolder: resize to this (int or [h, w]); default the most common size
        "val_split": 0.0,         # fraction of training images held out (stratified, seeded) for validation
        "download": True,
        "limit": None,            # use only the first N training images (quick experiments, tests)
    },
    "augment": "auto",            # auto (per data set) | none | {key: value} over the data set's defaults
    "optimizer": {
        "name": "sgd",            # sgd | adam | adamw | rmsprop | adadelta
        "lr": 0.05,               # peak learning rate (per batch of `batch_size`)
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,     # on conv/dense weights only: BatchNorm and biases are not decayed
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "alpha": 0.99,            # rmsprop smoothing
        "rho": 0.9,               # adadelta
    },
    "schedule": {
        "name": "onecycle",       # constant | step | cosine | onecycle | warmup_linear | warmup_cosine | plateau
        "warmup": 0.2,            # warm-up length: a fraction of all epochs when < 1, else epochs
        "step_size": 10,          # step: epochs between decays
        "gamma": 0.1,             # step: decay factor
        "min_lr": 0.0,            # floor, as a fraction of the peak
        "patience": 3,            # plateau: epochs without val_loss improvement before cutting
        "factor": 0.2,            # plateau: cut factor
    },
    "loss": {"label_smoothing": 0.1},
    "grad_clip": None,            # max global gradient norm, or None
    "epochs": 10,
    "batch_size": 128,
    "eval_batch_size": 1000,
    "seed": 0,
    "precision": "auto",          # auto | fp32 | bf16 | fp16 — auto: bf16 where the CPU/GPU has it
    "device": "auto",             # auto | cpu | cuda | cuda:N | mps
    "channels_last": "auto",
    "tta": True,                  # test-time flip averaging when training uses horizontal flips
    "early_stopping": {"patience": None, "monitor": "val_loss"},  # only with a validation split
    "threads": None,              # torch CPU threads; default: what torch picks
    "tensorboard": False,         # also log scalars to <run>/tensorboard (needs `pip install tensorboard`)
}

AUGMENT_KEYS = {
    "crop": 0,              # random crop after padding by this many pixels (0 = off)
    "crop_mode": "reflect", # reflect | constant | edge
    "translate": 0,         # random shift of up to this many pixels, filled by `fill`
    "flip": "none",         # none | horizontal | vertical | both
    "rotate": 0,            # random rotation of up to +-degrees
    "scale": 0.0,           # random zoom by a factor in [1 - scale, 1 + scale]
    "fill": "reflect",      # reflect | constant | edge — what rotation/translate/scale bring in (no black corners)
    "brightness": 0.0,      # random brightness shift of up to +- this (0..1 units)
    "channel_shift": 0.0,   # random per-channel shift of up to +- this
    "cutout": 0,            # zero a random square of this many pixels
}

# Per data set: flips only where the world is left-right symmetric (not digits).
AUGMENT_DEFAULTS = {
    "cifar10": {"crop": 4, "flip": "horizontal"},
    "cifar100": {"crop": 4, "flip": "horizontal"},
    "mnist": {"crop": 2, "crop_mode": "constant"},
    "fashion-mnist": {"crop": 2, "crop_mode": "constant", "flip": "horizontal"},
    "imagefolder": {"crop": 4, "flip": "horizontal"},
}

SHORT_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "optimizer.lr", "device": "device",
               "seed": "seed", "precision": "precision"}


def _merge(base: dict, update: dict, located: Located, path: tuple = ()) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        full = path + (key,)
        if key not in base:
            dotted = ".".join(str(p) for p in full)
            if key == "layers" and not path:  # a model file passed where a config goes
                raise UserError(f"{located.where(full)}: this is a model file (it has 'layers'), not a training "
                                f"config; pass it with --model {located.source}, or put it under `model:` in a "
                                "config file")
            raise UserError(f"{located.where(full)}: unknown key '{dotted}'{closest(key, base)}; "
                            f"valid{' under ' + '.'.join(path) if path else ''}: {', '.join(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key not in ("model",):
            out[key] = _merge(base[key], value, located, full)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], object]:
    """'optimizer.lr=0.05' -> (['optimizer', 'lr'], 0.05); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set '{text}': expected KEY=VALUE, e.g. --set optimizer.lr=0.05")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _apply_override(config: dict, keys: list[str], value, label: str) -> None:
    if keys[0] == "augment" and len(keys) == 2:
        if keys[1] not in AUGMENT_KEYS:
            raise UserError(f"{label}: unknown key 'augment.{keys[1]}'{closest(keys[1], AUGMENT_KEYS)}; "
                            f"valid: {', '.join(AUGMENT_KEYS)}")
        if not isinstance(config["augment"], dict):
            config["augment"] = {}
        config["augment"][keys[1]] = value
        return
    node, schema = config, DEFAULTS
    for depth, key in enumerate(keys):
        dotted = ".".join(keys[:depth + 1])
        if key not in schema:
            raise UserError(f"{label}: unknown key '{dotted}'{closest(key, schema)}; valid: {', '.join(schema)}")
        if depth == len(keys) - 1:
            node[key] = value
        elif not isinstance(schema[key], dict):
            raise UserError(f"{label}: '{dotted}' is a value, not a section; write --set {dotted}=VALUE")
        else:
            node, schema = node[key], schema[key]


def resolve(config=None, overrides: list[str] | None = None, flags: dict | None = None) -> tuple[dict, Located]:
    """Defaults <- config (file path, YAML text, or dict) <- --set overrides <- short flags."""
    if config is None:
        located = Located({}, "<defaults>")
    elif isinstance(config, dict):
        located = Located(config, "<config>")
    elif isinstance(config, (str, Path)) and Path(config).exists():
        located = load_yaml(config)
    elif isinstance(config, str) and ("\n" in config or ":" in config):
        located = parse_yaml(config, "<config>")
    else:
        raise UserError(f"{config}: no such config file")
    if located.data is None:
        located.data = {}
    if not isinstance(located.data, dict):
        raise UserError(f"{located.source}: a config is a mapping of keys (model, data, epochs, ...), "
                        f"got {type(located.data).__name__}")
    resolved = _merge(DEFAULTS, located.data, located)
    for text in overrides or []:
        keys, value = parse_override(text)
        _apply_override(resolved, keys, value, f"--set {text}")
    for flag, value in (flags or {}).items():
        if value is not None:
            _apply_override(resolved, SHORT_FLAGS[flag].split("."), value, f"--{flag.replace('_', '-')}")
    _check(resolved, located)
    return resolved, located


def _check(c: dict, located: Located) -> None:
    def need(ok: bool, path: tuple, message: str):
        if not ok:
            raise UserError(f"{located.where(path)}: {'.'.join(path)} {message}")

    def positive_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    need(positive_int(c["epochs"]), ("epochs",), f"must be a positive integer, got {c['epochs']!r}")
    need(positive_int(c["batch_size"]), ("batch_size",), f"must be a positive integer, got {c['batch_size']!r}")
    need(positive_int(c["eval_batch_size"]), ("eval_batch_size",), "must be a positive integer")
    need(isinstance(c["seed"], int), ("seed",), f"must be an integer, got {c['seed']!r}")
    lr = c["optimizer"]["lr"]
    need(isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0, ("optimizer", "lr"),
         f"must be a positive number, got {lr!r}")
    vs = c["data"]["val_split"]
    need(vs is None or (isinstance(vs, (int, float)) and 0 <= vs < 1), ("data", "val_split"),
         f"must be a fraction in [0, 1), got {vs!r}")
    gc = c["grad_clip"]
    need(gc is None or (isinstance(gc, (int, float)) and gc > 0), ("grad_clip",), f"must be a positive number, got {gc!r}")
    ls = c["loss"]["label_smoothing"]
    need(isinstance(ls, (int, float)) and 0 <= ls < 1, ("loss", "label_smoothing"), f"must be in [0, 1), got {ls!r}")
    if c["schedule"]["name"] == "plateau" and not c["data"]["val_split"]:
        raise UserError(f"{located.where(('schedule', 'name'))}: schedule 'plateau' watches the validation loss; "
                        "set data.val_split (e.g. 0.1) — the test set is never used to choose anything")
    if c["early_stopping"]["patience"] and not c["data"]["val_split"]:
        raise UserError(f"{located.where(('early_stopping', 'patience'))}: early stopping needs data.val_split; "
                        "the test set is never used to choose anything")
    if isinstance(c["augment"], dict):
        for key in c["augment"]:
            if key not in AUGMENT_KEYS:
                raise UserError(f"{located.where(('augment', key))}: unknown key 'augment.{key}'"
                                f"{closest(key, AUGMENT_KEYS)}; valid: {', '.join(AUGMENT_KEYS)}")
    elif c["augment"] not in ("auto", "none", None, False):
        raise UserError(f"{located.where(('augment',))}: augment must be auto, none or a mapping of "
                        f"{', '.join(AUGMENT_KEYS)}; got {c['augment']!r}")


def augment_settings(config: dict, dataset_name: str) -> dict:
    """The augmentation actually used: defaults for the data set, overridden by the config's keys."""
    choice = config["augment"]
    if choice in ("none", None, False):
        return dict(AUGMENT_KEYS)
    settings = {**AUGMENT_KEYS, **AUGMENT_DEFAULTS.get(dataset_name, {})}
    if isinstance(choice, dict):
        settings.update(choice)
    return settings


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
