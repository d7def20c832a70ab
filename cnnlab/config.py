"""The one configuration schema, for config files, `--set` overrides, the Python API and the web page.

`resolve(...)` merges the defaults, a YAML file and overrides, rejects unknown keys (naming the file line
and the closest valid key) and returns the validated `TrainConfig` (cnnlab/schema/config.py), which travels
from there to the trainer; cnnlab/train/session.py `prepare` completes it as a run records it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from .errors import UserError, closest
from .yamlio import Located, load_yaml, parse_yaml, safe_load

from .schema.config import AUGMENT_KEYS, AugmentConfig, TrainConfig, defaults, section_of
from .schema.errors import first_error

# Every key and its default; the schema (cnnlab/schema/config.py) says what each means and its range.
DEFAULTS: dict = defaults()

# Per data set: flips only where the world is left-right symmetric (not digits).
AUGMENT_DEFAULTS = {
    "cifar10": {"crop": 4, "flip": "horizontal"},
    "cifar100": {"crop": 4, "flip": "horizontal"},
    "mnist": {"crop": 2, "crop_mode": "constant"},
    "fashion-mnist": {"crop": 2, "crop_mode": "constant", "flip": "horizontal"},
    "imagefolder": {"crop": 4, "flip": "horizontal"},
}


@dataclass(frozen=True)
class Override:
    """One key set over the config file: its dotted path ('optimizer.lr'), the value, and what an error calls
    it — the `--set` text, or whatever gave it (the CLI names its own flags: `--lr 0.1`)."""
    key: str
    value: object
    label: str


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


def parse_override(text: str) -> Override:
    """'optimizer.lr=0.05' -> Override('optimizer.lr', 0.05, '--set optimizer.lr=0.05'); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set '{text}': expected KEY=VALUE, e.g. --set optimizer.lr=0.05")
    key, _, raw = text.partition("=")
    try:
        value = safe_load(raw, f"--set {text}") if raw.strip() else None  # a self-referencing alias is refused
    except yaml.YAMLError:
        value = raw
    return Override(key.strip(), value, f"--set {text}")


def _apply_override(config: dict, keys: list[str], value, label: str) -> None:
    if keys[0] == "augment" and len(keys) == 2:
        if config["augment"] is False:
            config["augment"] = "none"
        if keys[1] not in AUGMENT_KEYS:
            raise UserError(f"{label}: unknown key 'augment.{keys[1]}'{closest(keys[1], AUGMENT_KEYS)}; "
                            f"valid: {', '.join(AUGMENT_KEYS)}")
        if not isinstance(config["augment"], dict):
            config["augment"] = {}
        config["augment"][keys[1]] = value
        return
    node, schema, owner = config, DEFAULTS, TrainConfig
    for depth, key in enumerate(keys):
        dotted = ".".join(keys[:depth + 1])
        if key not in schema:
            raise UserError(f"{label}: unknown key '{dotted}'{closest(key, schema)}; valid: {', '.join(schema)}")
        section = section_of(owner, key) if owner is not None else None
        if depth == len(keys) - 1:
            node[key] = value
        elif isinstance(schema[key], dict):
            node, schema, owner = node[key], schema[key], section
        elif section is not None:  # a section whose default is None (resolution: a recipe's, or made here)
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node, schema, owner = node[key], dict.fromkeys(section.model_fields), section
        else:
            raise UserError(f"{label}: '{dotted}' is a value, not a section; write --set {dotted}=VALUE")


def resolve(config=None, overrides: list[str | Override] | None = None) -> tuple[TrainConfig, Located]:
    """Defaults (or a recipe) <- config (file path, YAML text, or dict) <- overrides, in their order: each a
    `key=value` text as `--set` takes it, or an Override that says what gave it (or its key, value and label
    as a plain tuple: how the CLI hands over its typed flags without importing this module)."""
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
    if "layers" in located.data and set(located.data) <= {"name", "layers"}:
        # a model file given where a config goes: train that model with the defaults (Keras's model.fit)
        model = located.source if Path(located.source).is_file() else located.data
        located = Located({"model": model}, located.source)
    model = located.data.get("model")
    if isinstance(model, str) and model.endswith((".yaml", ".yml")) and Path(located.source).is_file():
        # a model file named in a config: from the working directory, as always, else beside the config
        beside = Path(located.source).parent / model
        if beside.is_file() and not Path(model).is_file():
            located.data = {**located.data, "model": str(beside)}
    changes = [o if isinstance(o, Override) else Override(*o) if isinstance(o, tuple) else parse_override(o)
               for o in overrides or []]
    recipe, label = located.data.get("recipe"), located.where(("recipe",))
    for change in changes:  # the last recipe named wins
        if change.key == "recipe":
            recipe, label = change.value, change.label
    base = DEFAULTS
    if recipe is not None:  # a shipped recipe replaces the defaults as the base the config overrides
        from .recipes import load_recipe
        try:
            recipe_config, _ = load_recipe(recipe)
        except UserError as exc:
            raise UserError(f"{label}: {exc}") from None
        base = _merge(DEFAULTS, recipe_config, Located(recipe_config, f"recipe {recipe}"))
        base["recipe"] = recipe
    resolved = _merge(base, {k: v for k, v in located.data.items() if k != "recipe"}, located)
    given: dict[tuple, str] = {}  # key path -> what set it, for errors
    for change in changes:
        keys = change.key.split(".")
        _apply_override(resolved, keys, change.value, change.label)
        given[tuple(keys)] = change.label
    return validate(resolved, located, given), located


def validate(config: dict, located: Located | None = None, given: dict | None = None) -> TrainConfig:
    """Check a merged config against the schema and return it as the schema's model. Errors name the file
    line (or the override) of the bad key, what is valid and what was found."""
    if config.get("augment") is False:
        config["augment"] = "none"
    try:
        checked = TrainConfig.model_validate(config)
    except ValidationError as exc:
        loc, message = first_error(exc, TrainConfig)
        source = next((label for keys, label in (given or {}).items() if tuple(loc[:len(keys)]) == keys), None)
        where = source or (located.where(loc) if located else "config")
        dotted = ".".join(str(k) for k in loc)
        raise UserError(f"{where}: {message}" if message.startswith("unknown") else
                        f"{where}: {dotted} {message}") from None
    _check(checked, located or Located(config, "config"))
    return checked


def load(path: Path) -> TrainConfig:
    """A run's config.yaml, validated as it was when the run started."""
    located = load_yaml(path)
    if not isinstance(located.data, dict):
        raise UserError(f"{path}: not a cnnlab run config (a mapping of keys was expected)")
    return validate(located.data, located)


def _check(c: TrainConfig, located: Located) -> None:
    """What one key alone cannot say: keys that only make sense together."""
    if c.schedule.name == "plateau" and not c.data.val_split:
        raise UserError(f"{located.where(('schedule', 'name'))}: schedule 'plateau' watches the validation loss; "
                        "set data.val_split (e.g. 0.1) — the test set is never used to choose anything")
    if c.early_stopping.patience and not c.data.val_split:
        raise UserError(f"{located.where(('early_stopping', 'patience'))}: early stopping needs data.val_split; "
                        "the test set is never used to choose anything")


# Augmentation regularises, which pays once a network starts to memorise its images; in a run this short
# it only slows learning. Measured with the tutorial net (bench/first_minute.py, docs/first-minute.md):
# Fashion-MNIST after 1 epoch 0.842 plain against 0.797 with crop + flip, after 3 epochs 0.883 against 0.864.
SHORT_RUN_EPOCHS = 5
# Short runs need optimizer steps more than large batches: `batch_size` left out is 128, halved (down to 32)
# until the run makes this many steps (Fashion-MNIST, 1 epoch: 0.842 at 128, 0.876 at 32; bench/first_minute.py).
MIN_STEPS, LARGEST_AUTO_BATCH, SMALLEST_AUTO_BATCH = 1000, 128, 32


def augment_settings(config: TrainConfig, dataset_name: str, flips_keep_labels: bool = True) -> AugmentConfig:
    """The augmentation actually used, every key set: defaults for the data set, overridden by the config's
    keys. Built without validating again: each value is the config's (validated already) or one of the tables
    above, kept as the tables write it (rotate: 0, not 0.0), so a run's config.yaml reads as it always has.

    `auto` means no augmentation in a run shorter than SHORT_RUN_EPOCHS; `flips_keep_labels` False (an image
    folder of digits or text: cnnlab.data.mirror) drops the table's flip, never one the config asks for."""
    choice = config.augment
    if choice in ("none", None) or (choice == "auto" and config.epochs < SHORT_RUN_EPOCHS):
        return AugmentConfig.model_construct(**AUGMENT_KEYS)
    table = dict(AUGMENT_DEFAULTS.get(dataset_name, {}))
    if not flips_keep_labels:
        table.pop("flip", None)
    settings = {**AUGMENT_KEYS, **table}
    if isinstance(choice, AugmentConfig):
        settings.update(choice.model_dump(exclude_none=True))
    return AugmentConfig.model_construct(**settings)


def auto_batch_size(train_images: int, epochs: int) -> int:
    """The batch size a config that leaves it out trains with (see MIN_STEPS)."""
    batch = LARGEST_AUTO_BATCH
    while batch > SMALLEST_AUTO_BATCH and epochs * -(-train_images // batch) < MIN_STEPS:
        batch //= 2
    return batch


def dump(config: TrainConfig | dict) -> str:
    """A config as config.yaml holds it: the schema's key order, short sections on one line."""
    data = config.model_dump() if isinstance(config, TrainConfig) else config
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
