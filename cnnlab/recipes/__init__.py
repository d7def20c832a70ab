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
