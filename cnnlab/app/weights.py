"""Where a run from the network starts: the `weights` a request may name, and what may start a given model.

A config file on the server's machine may name any weights file (`weights: FILE|RUN|imagenet`); a request
from a browser may not, since a path would let it read the server's files. It names one of two things, and
this module decides which it is before anything reads a file:

- `imagenet`: torchvision's published file for one of the *-imagenet architectures (cnnlab/models/
  pretrained.py), fetched by the server into its own cache; the model must be that architecture as published,
  on colour images.
- a run id: a finished run in this server's runs folder (`runs.run_in`: a plain name; a path is refused), whose
  model fits the request's: every tensor but the classifier's of the same shape (the classifier is made new
  for another class count, as `load_weights` does). It becomes the run directory's path, so the run records
  it as its parent.

`sources` is what the Build page offers for a model: ImageNet where it is published, the finished runs that
fit (those that do not, with the reason), and the fine-tune schedule's defaults."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import NotFound, UserError
from ..models import build_model, model_spec
from ..models.pretrained import IMAGENET, PUBLISHED, model_name
from ..models.weights import classifier_names, layer_name
from ..rundir import Run
from ..schema.config import FinetuneConfig
from .datasets import input_for
from .runs import run_in

WEIGHTS = "config.weights"   # where a bad choice is reported: the key a request sent


def requested(config: dict) -> str | None:
    """The weights a request names, from `weights` or `model.weights` (given twice differently: refused)."""
    top = config.get("weights")
    inner = config["model"].get("weights") if isinstance(config.get("model"), dict) else None
    if top is not None and inner is not None and top != inner:
        raise UserError(f"{WEIGHTS}: given twice, {str(top)[:80]!r} and model.weights {str(inner)[:80]!r}; keep one")
    chosen = top if top is not None else inner
    if chosen is not None and (not isinstance(chosen, str) or not chosen):
        raise UserError(f"{WEIGHTS}: `imagenet` or the id of a finished run on this server, got {str(chosen)[:80]!r}")
    if chosen is not None and ("/" in chosen or "\\" in chosen or chosen.startswith(".")):
        raise UserError(f"{WEIGHTS}: {chosen[:80]!r}: a file on the server is refused over the network; name "
                        "`imagenet` or the id of a finished run on this server (the Build page lists them)")
    return chosen


def resolve(config: dict, runs_root: str | os.PathLike, data_dir: str | None = None) -> dict:
    """`config` with its weights made what the run loads: `imagenet` kept (for a published architecture, sent
    as its name), a run id made that run's directory. A file path, an unknown run or one whose model does not
    fit is a UserError (400) or NotFound (404) naming the run and what differs."""
    chosen = requested(config)
    if chosen is None:
        return config
    config = dict(config)
    if isinstance(config.get("model"), dict):
        config["model"] = {k: v for k, v in config["model"].items() if k != "weights"}
    config.pop("weights", None)
    if chosen == IMAGENET:
        config["model"] = _published_model(config.get("model"), config, data_dir)
        return {**config, "weights": IMAGENET}
    try:
        run = _finished(run_in(Path(runs_root), chosen))
    except NotFound:
        raise NotFound(f"{WEIGHTS}: no finished run '{chosen[:80]}' on this server") from None
    model, _ = _built(config.get("model", "tutorial"), config, data_dir)
    problem = misfit(model, run)
    if problem:
        raise UserError(f"{WEIGHTS}: run '{run.dir.name}' does not fit this model: {problem}")
    return {**config, "weights": str(run.dir.resolve())}


def sources(model, data: str, runs_root: str | os.PathLike, data_dir: str | None = None) -> dict:
    """What may start `model` on `data`: {imagenet: bool (and imagenet_why where a published net's data does not
    suit its weights), runs: [{id, name, test_acc, fits, why}], finetune: the schedule's defaults}. Runs newest
    first; a model that cannot be built fits none."""
    built, error, shape = None, None, None
    try:
        built, (shape, _) = _built(model, {"data": {"name": data, "skip_empty": True}}, data_dir)  # as the pages train
    except UserError as exc:
        error = str(exc).splitlines()[0]
    runs = []
    for run in finished_runs(runs_root):
        why = error or misfit(built, run)
        runs.append({"id": run.dir.name, "name": run.config.name, "test_acc": run.result.get("test_acc"),
                     "fits": not why, "why": why or None})
    published_net = model_name(model) in PUBLISHED
    grey = published_net and shape is not None and shape[0] != 3
    why = f"ImageNet's weights take colour images; this data has {shape[0]} channel(s)" if grey else None
    return {"imagenet": published_net and shape is not None and not grey, "imagenet_why": why,
            "published": list(PUBLISHED), "runs": runs, "finetune": FinetuneConfig().model_dump()}


def finished_runs(runs_root: str | os.PathLike) -> list[Run]:
    """The runs directly in the runs folder that finished and wrote their final weights, newest first."""
    root = Path(runs_root)
    found = []
    for weights in root.glob("*/model.safetensors"):
        try:
            status = json.loads((weights.parent / "result.json").read_text()).get("status")
        except (OSError, ValueError):
            continue
        if status == "finished" and (weights.parent / "config.yaml").is_file():
            found.append((weights.stat().st_mtime, weights.parent))
    return [Run(path) for _, path in sorted(found, reverse=True)]


def misfit(model, run: Run) -> str | None:
    """Why the final weights of `run` cannot start `model` (None: they fit): a body tensor of another shape,
    or no tensor in common. Read from the file's header only (safetensors), no tensor loaded."""
    from safetensors import safe_open
    with safe_open(str(run.dir / "model.safetensors"), framework="pt") as f:
        theirs = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    ours = {key: tuple(t.shape) for key, t in model.state_dict().items() if not key.endswith("num_batches_tracked")}
    head = classifier_names(model)
    for key, shape in ours.items():
        if key in theirs and theirs[key] != shape and key not in head:
            return (f"{layer_name(model, key)} is {theirs[key]} in {run.dir.name} ({run.config.name}) and {shape} "
                    "here: another architecture, or another size of it")
    if not any(key in theirs for key in ours):
        return f"none of its tensors is in this model ({run.config.name} is another architecture)"
    return None


def start_line(cfg) -> str:
    """Where a resolved config's run starts and how it is fine-tuned, in a line for the Train page's plan."""
    if not cfg.weights:
        return "random weights"
    start = "ImageNet's weights" if cfg.weights == IMAGENET else f"the final weights of run {Path(cfg.weights).name}"
    f = cfg.finetune
    if f is None:
        return f"{start}; every layer trains from the first epoch"
    frozen = "the body" if f.freeze == "body" else f"the first {f.freeze} layers"
    if f.head_epochs == "all":
        return f"{start}; {frozen} frozen for the whole run"
    if f.head_epochs >= cfg.epochs:
        return (f"{start}; {frozen} frozen for the whole run ({f.head_epochs} head epoch(s) of {cfg.epochs}: give "
                "more epochs for every layer to train)")
    rates = f"{f.rates} rates" + (f" (lr/{f.spread:g} at the first layer to lr at the head)"
                                  if f.rates == "discriminative" else "")
    return f"{start}; {frozen} frozen for {f.head_epochs} epoch(s), then every layer at {rates}"


def _finished(run: Run) -> Run:
    status = run.result.get("status")
    if status != "finished" or not (run.dir / "model.safetensors").is_file():
        raise UserError(f"{WEIGHTS}: run '{run.dir.name}' is {status or 'not finished'}; a run starts from the final "
                        "weights of a finished one")
    return run


def _built(model, config: dict, data_dir: str | None):
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    shape, classes = input_for(data.get("name", "cifar10"), data.get("dir") or data_dir, data.get("root"),
                               data.get("image_size"))
    return build_model(model, shape, classes), (shape, classes)


def _published_model(model, config: dict, data_dir: str | None):
    """The model `imagenet` starts: a *-imagenet name, or its layers exactly as the Build page wrote them out
    (sent back as the name, which carries the map to torchvision's tensor names)."""
    name = model_name(model)
    if name not in PUBLISHED:
        raise UserError(f"{WEIGHTS}: imagenet: model '{name[:80]}' has no published ImageNet weights; those that "
                        f"have: {', '.join(PUBLISHED)}")
    _, (shape, classes) = _built(name, config, data_dir)
    if shape[0] != 3:  # the first conv's filters are 3-channel: a grey image set fails to load them in the run
        raise UserError(f"{WEIGHTS}: imagenet: ImageNet's weights take colour (3-channel) images, and this data "
                        f"has {shape[0]} channel(s); start from random weights or a past run")
    if isinstance(model, str):
        return model
    written = json.loads(json.dumps(model_spec(name, shape, classes)["layers"]))
    layers = model.get("layers") if isinstance(model, dict) and set(model) <= {"name", "layers"} else None
    if isinstance(layers, list) and layers[:-1] == written[:-1]:  # the classifier is made new for the classes
        return name
    raise UserError(f"{WEIGHTS}: imagenet: the layers differ from {name} as published; ImageNet's weights fit "
                    f"the architecture unchanged (start from a past run of the changed one, or from random weights)")
