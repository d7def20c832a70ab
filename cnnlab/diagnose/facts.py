"""What the doctor needs to know about a run besides its curves: the model's regularisers and the recipe.

`run_facts(model, config)` reduces a built model and a resolved config to a small plain dict,
so the doctor stays a pure function (of the metrics table and these facts) and can be tested on made-up
facts. With the facts it prescribes for *this* model ("lower dropout 0.5 at layers 21, 23"), not in general.
"""
from __future__ import annotations

from torch import nn

from ..schema.config import TrainConfig
from .lint import _walk, dense_head  # the same residual flattening and head test that lint uses


def run_facts(model: nn.Module, config: TrainConfig) -> dict:
    """`config`: resolved as a run records it (cnnlab/train/session.py prepare), its augmentation written out."""
    facts = {"dropout": [], "batchnorm": False, "conv_filters": [], "dense_head": None,
             "weight_decay": config.optimizer.weight_decay, "label_smoothing": config.loss.label_smoothing,
             "augment": [k for k, v in config.augment.model_dump().items() if v not in (0, 0.0, "none")
                         and k not in ("crop_mode", "fill")]}
    infos = getattr(model, "infos", None)
    if infos:
        layers = [(i.index, i.kind, i.args) for i in _walk(infos)]
    else:  # a user's own nn.Module: read its modules
        layers = []
        for name, m in model.named_modules():
            if isinstance(m, (nn.Dropout, nn.Dropout2d)):
                layers.append((name, "dropout", {"rate": m.p}))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                layers.append((name, "batchnorm", {}))
            elif isinstance(m, nn.Conv2d):
                layers.append((name, "conv", {"filters": m.out_channels}))
    for index, kind, args in layers:
        if kind in ("dropout", "spatial_dropout") and args.get("rate", 0) > 0:
            facts["dropout"].append({"layer": str(index), "rate": float(args["rate"])})
        elif kind == "batchnorm":
            facts["batchnorm"] = True
        elif kind == "conv":
            facts["conv_filters"].append(int(args["filters"]))
    facts["recipe"] = recipe_facts(config)
    facts["pretrained"] = None if not config.weights else {
        "weights": config.weights,
        "finetune": config.finetune.model_dump() if config.finetune else None}
    head = dense_head(model) if infos else None  # (a user's own module has no layer table to point into)
    if head:
        top, share = head[0], head[1]
        facts["dense_head"] = {"layer": str(top.index), "units": int(top.args["units"]), "share": round(share, 3)}
    return facts


def recipe_facts(config: TrainConfig) -> dict | None:
    """The shipped recipe the run started from (`--recipe`): what it is for, and the recipes that aim higher on
    the same data set. None for a run that names no recipe."""
    from ..config import resolve
    from ..errors import UserError
    from ..recipes import list_recipes, load_recipe
    name = config.recipe
    if not name:
        return None
    try:
        _, about = load_recipe(name)
    except UserError:  # a recipe this version does not ship
        return {"name": name, "description": "", "target": None, "stronger": []}
    target, data = about.get("target"), config.data.name
    stronger = []
    for other in list_recipes():
        _, other_about = load_recipe(other)
        # the other recipe's data set as it trains (resolved: one that names none trains on the default)
        if (other != name and target is not None and (other_about.get("target") or 0) > target
                and resolve({"recipe": other})[0].data.name == data):
            stronger.append({"name": other, "description": other_about.get("description", ""),
                             "target": other_about["target"]})
    stronger.sort(key=lambda r: r.pop("target"))  # the nearest step up first
    return {"name": name, "description": about.get("description", ""), "target": target, "stronger": stronger}


def facts_for_run(run) -> dict | None:
    """The facts of a recorded run (a `cnnlab.Run`), rebuilt from its config; None if the model cannot be
    rebuilt here (a user's module that no longer imports): the doctor then prescribes in general terms."""
    from ..errors import UserError
    from ..models import build_model
    config, info = run.config, run.data_info
    try:
        model = build_model(config.model, info["input_shape"], len(info["classes"]))
    except (UserError, ImportError):
        return None
    facts = run_facts(model, config)
    facts["test_in_train"], facts["test_images"] = info.get("test_in_train", 0), info.get("test", 0)
    return facts


def diagnose_run(run):
    """The doctor's verdict on a recorded run from what it wrote (metrics.csv, config, data.json), with its
    facts (the `no-data` verdict before its first epoch). `cnnlab doctor`, the report and the web page all
    read this one."""
    from .doctor import diagnose
    return diagnose(run.metrics, len(run.data_info["classes"]), facts_for_run(run))
