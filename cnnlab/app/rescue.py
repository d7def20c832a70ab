"""`cnnlab rescue MODEL --data NAME --budget 15`: bring a stuck model in any form and let the doctor act.

MODEL is a training config (the user's own settings come with it), a model file, a finished run, a named
architecture, or a Keras / PyTorch source as `cnnlab import` reads it. Lint's mechanical fixes go first,
each shown as a diff; then cnnlab.rescue.loop races the doctor's candidates within the budget, and the winner
trains on as the final model. `read`, `request_stop` and `resume` are what a page needs to follow one.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import UserError
from ..fsutil import write_text
from ..rescue.budget import Meter, parse_budget
from ..rescue.loop import Journal, Rescue, RescueStopped, Step  # noqa: F401  (RescueStopped: the API callers catch)
from ..viz.rescue_table import render_table
from ..rescue.prior import candidates
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
    if path.is_file() and path.suffix not in (".yaml", ".yml") + SOURCE_SUFFIXES:
        raise UserError(f"{model}: not a file cnnlab reads as a model; MODEL is a run, a .yaml config or model "
                        "file, a named architecture or a Keras/PyTorch source (.py, .json, .keras, .h5)")
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
           runs_root: str | None = None, store: bool = True, log=print, final_listeners=(),
           stop: threading.Event | None = None) -> Rescued:
    """Rescue MODEL within `budget` (cnnlab.rescue.loop); raises RescueStopped when `stop` is set or
    `request_stop(folder)` is called, and the same call (or `resume(folder)`) continues it."""
    import torch
    from ..data import load_dataset
    from ..models import build_model
    from ..models.summary import summarize
    from ..train.session import prepare_config
    from .job import Job
    runs_root = Path(runs_root or "runs")
    invocation = {"model": str(Path(model).resolve()) if Path(model).exists() else model, "data": data,
                  "budget": str(budget), "name": name, "data_dir": data_dir and str(Path(data_dir).resolve()),
                  "root": root and str(Path(root).resolve()), "allow_architecture": allow_architecture, "seed": seed,
                  "runs_root": str(runs_root.resolve()), "store": store}
    config, stem = load_start(model)
    start = Path(model).name if Path(model).is_dir() else None  # a run rescued: the runs made from it say so
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
    for key in ("dir", "root"):  # absolute: a rescue continued from another folder (a web server) finds them
        if isinstance(data_section.get(key), str) and Path(data_section[key]).exists():
            data_section[key] = str(Path(data_section[key]).resolve())
    if Path(data_section["name"]).exists():  # a folder of images named by its path
        data_section["name"] = str(Path(data_section["name"]).resolve())
    data = data_section["name"]
    name = name or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{Path(data).name}").strip("-.")[:61]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,60}", name):
        raise UserError(f"--name {name}: letters, digits, '.', '_' or '-' (at most 61)")
    invocation["name"] = name
    folder = runs_root / "rescues" / name
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if isinstance(config["model"], dict) and "source" in config["model"]:
        config["model"], notes = _imported(config["model"]["source"], folder, data, data_section.get("dir"),
                                           data_section.get("root"))
    for note in notes:
        log(f"note: {note}")
    as_given = config["model"]
    # the floor gets lint's corrections only; its architecture fixes are listed, not raced (cnnlab/rescue/prior.py)
    config["model"], fixes, left = _lint_fixes(as_given, data, data_section.get("dir"), False)
    for fix in fixes:
        log(fix)
    if left:
        log(f"lint also suggests (architecture, not raced: `cnnlab lint` shows each with its fix): {'; '.join(left)}")
    budget_ = parse_budget(budget)
    macs = {}

    def flop_of(candidate_config: dict) -> float:
        key = json.dumps(candidate_config.get("model"), sort_keys=True)
        if key not in macs:
            cfg = prepare_config({**candidate_config, "epochs": 1})  # every error in a config before anything trains
            shape, classes = config_input(cfg)
            with torch.device("meta"):
                macs[key] = summarize(build_model(cfg.model, shape, classes)).macs
        return 6.0 * macs[key]

    entrants = candidates(config, allow_architecture, flop_of)
    for entrant in entrants:
        flop_of(entrant.config)
    d = prepare_config(config).data
    full = load_dataset(d.name, d.dir, None, 0, d.root, d.image_size, d.download)  # the images there really are
    meter = Meter(min(len(full.train_x), d.limit or len(full.train_x)), flop_of(entrants[0].config))
    write_text(folder / "floor.yaml", yaml.safe_dump(entrants[0].config, sort_keys=False))
    store_path = runs_root / "cnnlab.db" if store else None
    started = {"name": name, "budget": str(budget_), "seed": seed, "allow_architecture": allow_architecture,
               "config": config, "invocation": invocation, "start": start}
    loop = Rescue(entrants, budget_, folder, meter, Job, name=name, flop_of=flop_of, started=started, seed=seed,
                  store=store_path, start=start, log=log, final_listeners=final_listeners, stop=stop,
                  continue_command=continue_command(invocation))
    if fixes:
        loop.add_step(Step("lint", "; ".join(f.splitlines()[0].removeprefix("lint fix ") for f in fixes),
                           False, None, None, kept=True, status="applied"))
    final = loop.run()
    table = loop.table()
    write_text(folder / "rescue.md", f"# rescue {name}\n\n{table}\n\nthe floor as a config: "
               f"`cnnlab train {folder / 'floor.yaml'} --epochs N`\n")
    return Rescued(folder, final, table)


def continue_command(invocation: dict) -> str:
    """The command line that continues a stopped rescue (the same arguments)."""
    parts = ["cnnlab", "rescue", shlex.quote(invocation["model"]), "--budget", invocation["budget"], "--name",
             invocation["name"], "--runs-root", shlex.quote(invocation["runs_root"])]
    for key, flag in (("data", "--data"), ("data_dir", "--data-dir"), ("root", "--root")):
        if invocation.get(key):
            parts += [flag, shlex.quote(str(invocation[key]))]
    if invocation["seed"]:
        parts += ["--seed", str(invocation["seed"])]
    if invocation["allow_architecture"]:
        parts.append("--change-architecture")
    return " ".join(parts)


def resume(folder, *, log=print, final_listeners=(), stop: threading.Event | None = None) -> Rescued:
    """Continue a stopped or interrupted rescue from its journal, with the arguments it was started with."""
    journal = _journal(Path(folder))
    invocation = journal.get("started", {}).get("invocation")
    if invocation is None:
        raise UserError(f"{folder}: this rescue's journal does not say how it was started; run `cnnlab rescue` "
                        "again with its arguments")
    if journal.get("state") == "running" and _alive(journal.get("pid")):
        raise UserError(f"rescue {invocation['name']} is running (process {journal['pid']}); stop it first")
    return rescue(invocation["model"], invocation["data"], invocation["budget"], name=invocation["name"],
                  data_dir=invocation["data_dir"], root=invocation["root"],
                  allow_architecture=invocation["allow_architecture"], seed=invocation["seed"],
                  runs_root=invocation["runs_root"], store=invocation["store"], log=log,
                  final_listeners=final_listeners, stop=stop)


def request_stop(folder) -> None:
    """Ask the rescue in `folder` (in whatever process runs it) to stop after the current batch."""
    folder = Path(folder)
    if not (folder / "rescue.json").exists():
        raise UserError(f"{folder}: not a rescue (no rescue.json)")
    write_text(folder / "STOP", "stop\n")


def read(folder) -> dict:
    """A rescue as the pages show it: its state, steps (each with its run), the final step and the table."""
    folder = Path(folder)
    journal = _journal(folder)
    state = journal.get("state", "running")
    if state == "stopped" or (state == "running" and not _alive(journal.get("pid"))):
        state = "interrupted"  # stopped, or its process gone (a server restart): resumable
    per_epoch = journal["train_images"] * journal["flop_per_image"]
    steps = [{**{k: s.get(k) for k in ("name", "label", "architecture", "run", "parent", "val_acc", "test_acc",
                                       "kept", "verdict", "detail", "status", "epoch", "seconds")},
              "cost": s["flop"] / per_epoch} for s in journal["steps"]]
    final = next((s for s in steps if s["name"] in ("final", "alone")), None)
    total = journal.get("total_flop") or Meter(journal["train_images"], journal["flop_per_image"]).flop(
        parse_budget(journal["budget"]))
    return {"name": journal["started"].get("name", folder.name), "budget": journal["budget"], "state": state,
            "start": journal["started"].get("start"), "steps": steps, "final": final,
            "spent": sum(s["flop"] for s in journal["steps"]) / per_epoch, "budget_total": total / per_epoch,
            "unit": "epochs", "plan": journal.get("plan", {}), "table": render_table(journal),
            "message": journal.get("message", "")}


def _journal(folder: Path) -> dict:
    path = folder / "rescue.json"
    if not path.exists():
        raise UserError(f"{folder}: not a rescue (no rescue.json)")
    Journal.load(path)  # an earlier cnnlab's journal is refused with the reason
    return json.loads(path.read_text())


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
