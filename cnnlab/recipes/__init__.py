"""Recipes: training configs shipped with cnnlab, each a YAML file of ordinary config keys plus an `about`
section (what it reaches, measured how). `cnnlab train --recipe NAME` (or `recipe: NAME` in a config file)
starts from the recipe instead of the defaults; anything else given overrides it."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import UserError, closest

HERE = Path(__file__).parent


def list_recipes() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    if not isinstance(name, str) or "/" in name or "\\" in name or not (HERE / f"{name}.yaml").is_file():
        raise UserError(f"unknown recipe '{name!s:.40}'{closest(str(name), list_recipes())}; "
                        f"valid: {', '.join(list_recipes())} (`cnnlab recipes` describes them)")
    return HERE / f"{name}.yaml"


def load_recipe(name: str) -> tuple[dict, dict]:
    """(the recipe's config keys, its `about` section)."""
    data = yaml.safe_load(recipe_path(name).read_text())
    about = data.pop("about", {}) or {}
    return data, about


TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "mnist": 60_000, "fashion-mnist": 60_000}


def budget(name: str, overrides: list[str] | None = None) -> dict:
    """What a recipe costs (with `overrides`, `--set` texts such as "epochs=8"): MACs per image, training FLOPs
    per image (2 per MAC forward, twice that backward) and in all (FLOP per image x training images x epochs),
    computed from its network, not measured."""
    from ..config import resolve
    from ..data import SOURCES
    from ..models import build_model
    from ..models.summary import summarize
    import torch
    cfg, _ = resolve({"recipe": name}, overrides)
    data = cfg.data.name
    source = SOURCES[data]
    with torch.device("meta"):
        macs = summarize(build_model(cfg.model, source.input_shape, source.num_classes)).macs
    images = cfg.data.limit or TRAIN_IMAGES[data]
    flop = 6 * macs
    return {"macs": macs, "flop_per_image": flop, "images": images, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "pflop": flop * images * cfg.epochs / 1e15, "config": cfg}
