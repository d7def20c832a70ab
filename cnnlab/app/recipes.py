"""The shipped recipes (cnnlab/recipes/*.yaml) and what each costs: FLOPs computed from its network."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import resolve
from ..data import SOURCES
from ..recipes import list_recipes, load_recipe, recipe_path
from ..train.flops import training_flop

def budget(name: str, overrides: list[str] | None = None) -> dict:
    """What a recipe costs (with `overrides`, `--set` texts such as "epochs=8"): MACs per image, training FLOPs
    per image at full size (2 per MAC forward, twice that backward) and in all, epoch by epoch (lower
    resolution and data filtering make epochs cheaper: cnnlab/train/flops.py), computed from its network, not
    measured."""
    cfg, _ = resolve({"recipe": name}, overrides)
    source = SOURCES[cfg.data.name]
    images = cfg.data.limit or source.train_images
    flop = training_flop(cfg, source.input_shape, source.num_classes, images)
    return {"macs": flop.macs, "flop_per_image": flop.flop_per_image, "images": images, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "pflop": flop.pflop, "epoch_pflop": [f / 1e15 for f in flop.epochs],
            "config": cfg}


@dataclass
class RecipeInfo:
    name: str
    description: str
    budget: dict
    measured: list[str]

    def render(self) -> str:
        import json
        b, model = self.budget, self.budget["config"].model
        model = model if isinstance(model, str) else json.dumps(model)
        cfg = b["config"]
        res = cfg.resolution
        small = res.small_epochs(cfg.epochs) if res is not None else 0
        side = SOURCES[cfg.data.name].input_shape[1]
        phase = f" ({small} at {res.pixels(side)}x{res.pixels(side)})" if small else ""
        lines = [f"{self.name}: {self.description}",
                 f"    model {model}, {b['epochs']} epochs{phase} of batch {b['batch_size']}; "
                 f"{b['flop_per_image'] / 1e9:.3f} GFLOP per training image (full size), {b['pflop']:.3f} PFLOP in all"]
        lines += [f"    measured: {line}" for line in self.measured]
        lines.append(f"    cnnlab train --recipe {self.name}")
        return "\n".join(lines)


def recipes() -> list[RecipeInfo]:
    out = []
    for name in list_recipes():
        _, about = load_recipe(name)
        out.append(RecipeInfo(name, about.get("description", ""), budget(name), list(about.get("measured", []))))
    return out


def recipe_text(name: str) -> str:
    """A recipe's YAML, to copy and change."""
    return recipe_path(name).read_text()
