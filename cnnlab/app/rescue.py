"""`cnnlab rescue MODEL --data NAME --budget 15`: bring a stuck model in any form and let the doctor act.

MODEL is a training config (the user's own settings come with it), a model file, a finished run, a named
architecture, or a Keras / PyTorch source as `cnnlab import` reads it. Lint's mechanical fixes go first,
each shown as a diff; then cnnlab.rescue.loop searches within the budget and trains the final model.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UserError
from ..fsutil import write_text
from ..rescue.budget import Meter, parse_budget
from ..rescue.loop import Rescue, Step
from ..yamlio import load_yaml
from .datasets import config_input
from .models import apply_fix, import_model, lint_model

SOURCE_SUFFIXES = (".py", ".json", ".keras", ".h5")


@dataclass
class Rescued:
    folder: Path
    final: Step
    table: str


def load_start(model: str) -> tuple[dict, str]:
    """(the config to start from, a name for the rescue) for any form MODEL takes."""
    path = Path(model)
    if path.is_dir() and not (path / "config.yaml").exists():
        raise UserError(f"{model}: a folder, but not a run (no config.yaml); MODEL is a run, a config, a model "
                        "file, a named architecture or a Keras/PyTorch source")
    if path.is_dir():  # a run: its config, settings and all
        config = load_yaml(path / "config.yaml").data
        for key in ("name", "parent"):
            config.pop(key, None)
        return config, path.name
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = load_yaml(path).data
        if isinstance(data, dict) and "layers" not in data and "model" in data:
            config = dict(data)  # a training config: the user's settings are the starting point
            given = config["model"]
            if isinstance(given, str) and (given.endswith(SOURCE_SUFFIXES + (".yaml", ".yml")) or ":" in given):
                file, _, cls = given.partition(":")
                beside = path.parent / file  # as `cnnlab train` finds it: from here, else beside the config
                file = file if Path(file).exists() or not beside.exists() else str(beside)
                if given.endswith((".yaml", ".yml")):
                    config["model"] = load_yaml(file).data
                else:
                    config["model"] = {"source": f"{file}:{cls}" if cls else file}
            config.pop("name", None)
            return config, path.stem
        return {"model": data}, path.stem
    if path.suffix in SOURCE_SUFFIXES or re.fullmatch(r"[\w./-]+:\w+", model):
        return {"model": {"source": model}}, re.sub(r"[^A-Za-z0-9]+", "-", path.stem.split(":")[0]).strip("-")
    return {"model": model}, model  # a named architecture


def _imported(source: str, folder: Path, data: str, data_dir, root) -> tuple[dict, list[str]]:
    report = import_model(source, str(folder / "imported.yaml"), data, data_dir, root, overwrite=True)
    return load_yaml(report.out).data, report.notes


# lint fixes that correct what the loss or the optimizer sees and leave the network's structure as it is;
# the others (global pooling for a flatten, a relu, batchnorm, wider or strided layers) change the
# architecture and wait for --change-architecture
CORRECTIONS = ("softmax-output", "squashed-output", "bias-before-batchnorm")


def _lint_fixes(model, data: str, data_dir, allow_architecture: bool) -> tuple[object, list[str], list[str]]:
    """Lint's mechanical fixes applied one after another, each as a unified diff of the layer list; and the
    findings whose fix would change the architecture, left as written unless `allow_architecture`."""
    diffs, left = [], []
    for _ in range(50):  # each fix removes its finding; 50 is far beyond any real model's findings
        if not isinstance(model, dict) or not isinstance(model.get("layers"), list):
            break
        report = lint_model(model, data, data_dir)
        fixable = [f for f in report.findings if f.edit]
        finding = next((f for f in fixable if allow_architecture or f.rule in CORRECTIONS), None)
        left = [f"{f.rule} at layer {', '.join(f.layers)}" for f in fixable if f is not finding]
        if finding is None:
            break
        fixed = apply_fix(model, finding.rule, finding.layers, data, data_dir)
        before = yaml.safe_dump(model["layers"], sort_keys=False, default_flow_style=None).splitlines()
        after = yaml.safe_dump(fixed["layers"], sort_keys=False, default_flow_style=None).splitlines()
        diff = "\n".join(difflib.unified_diff(before, after, "layers (as given)", "layers (fixed)", lineterm="", n=1))
        diffs.append(f"lint fix [{finding.rule}]: {fixed['description']}\n{diff}")
        model = {**model, "layers": fixed["layers"]}
    return model, diffs, left


def rescue(model: str, data: str | None = None, budget: str = "15", *, name: str | None = None,
           data_dir: str | None = None, root: str | None = None, allow_architecture: bool = False, seed: int = 0,
           runs_root: str | None = None, store: bool = True, log=print, final_listeners=()) -> Rescued:
    import torch
    from ..data import load_dataset
    from ..models import build_model
    from ..models.summary import summarize
    from ..train.session import prepare_config
    from .job import Job
    runs_root = Path(runs_root or "runs")
    config, stem = load_start(model)
    config = json.loads(json.dumps(config))
    if not isinstance(config.get("data"), dict):  # `data: mnist` (a name), or `data:` left empty
        config["data"] = {"name": config.get("data") or "cifar10"}
    data_section = config["data"]
    if data:
        data_section["name"] = data
    data_section.setdefault("name", "cifar10")
    if data_dir:
        data_section["dir"] = data_dir
    if root:
        data_section["root"] = root
    for key in ("val_split", "subset"):  # the rescue chooses its own splits; `limit` (the user's set) stays
        data_section.pop(key, None)
    data = data_section["name"]
    name = name or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{Path(data).name}").strip("-.")[:61]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,60}", name):
        raise UserError(f"--name {name}: letters, digits, '.', '_' or '-' (at most 61)")
    folder = runs_root / "rescues" / name
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if isinstance(config["model"], dict) and "source" in config["model"]:
        config["model"], notes = _imported(config["model"]["source"], folder, data, data_section.get("dir"),
                                           data_section.get("root"))
    for note in notes:
        log(f"note: {note}")
    config["model"], fixes, left = _lint_fixes(config["model"], data, data_section.get("dir"), allow_architecture)
    for fix in fixes:
        log(fix)
    if left:
        log(f"lint: left as written (fixes that change the architecture; --change-architecture applies them): "
            f"{'; '.join(left)}")
    budget_ = parse_budget(budget)
    cfg = prepare_config(config)  # every error in the config or model now, before anything trains
    shape, classes = config_input(cfg)
    with torch.device("meta"):
        macs = summarize(build_model(cfg.model, shape, classes)).macs
    d = cfg.data
    full = load_dataset(d.name, d.dir, None, 0, d.root, d.image_size, d.download)  # the images there really are
    meter = Meter(min(len(full.train_x), d.limit or len(full.train_x)), 6 * macs)
    store_path = runs_root / "cnnlab.db" if store else None
    loop = Rescue(config, budget_, folder, meter, Job, name=name, allow_architecture=allow_architecture, seed=seed,
                  store=store_path, log=log, final_listeners=final_listeners)
    if fixes:
        rules = [f.split("]", 1)[0].removeprefix("lint fix [") for f in fixes]
        loop.add_step(Step("lint", "; ".join(f.splitlines()[0].removeprefix("lint fix ") for f in fixes),
                           any(r not in CORRECTIONS for r in rules), None, None, kept=True))
    final = loop.run()
    table = loop.table()
    write_text(folder / "rescue.md", f"# rescue {name}\n\n{table}\n")
    return Rescued(folder, final, table)
