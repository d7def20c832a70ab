"""What the doctor knows before anything trains, as the candidates of a rescue's race.

The floor is the user's layers (after lint's corrections) with cnnlab's training settings: what
`cnnlab train` gives them at the full budget. The doctor then reads the layer list for what stalls a net of
that shape and prescribes all of its fixes at once, where they do not conflict (a net without normalisation,
heavy dropout and saturating activations needs every one fixed, not one per trial):

- dropout of 0.3 or more -> halved (with cnnlab's augmentation it over-regularises a small net), or removed where
  batchnorm goes in (the measurement is beside DEEP below);
- hidden sigmoid/tanh layers -> Adam (per-weight steps), or relu (and batchnorm, if deep) with --change-architecture;
- a plain net of 6+ weighted layers without normalisation -> the learning rate /3 (cnnlab's 0.05 is tuned for
  normalised nets), or batchnorm with --change-architecture (a shallower one is left as it is: DEEP below);
- 4+ unpadded 3x3 convs -> padding same, with --change-architecture;
- a net that starts from trained weights (`weights:`) -> fastai's fine-tune schedule (the head alone first,
  then discriminative rates), its layers never changed.

Architecture fixes the user did not allow are still measured, cheaply: a `forecast` entrant races on half the
images and is never continued; its lead at the rung is what the table reports.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from ..models.layers import written_args
from .changes import CHANGES, DROPOUT, SATURATING

# the settings `cnnlab train` would choose itself: the floor drops what the user wrote for these. The model,
# the data (`limit` included), the weights, how often to evaluate and the machine's settings (device,
# precision, threads) stay.
TRAINING_KEYS = ("recipe", "augment", "optimizer", "schedule", "loss", "grad_clip", "epochs", "batch_size",
                 "early_stopping", "average", "resolution", "select", "micro_batch")

# A plain net this deep (conv and dense layers) is prescribed normalisation. Shallower nets train as well without
# it on cnnlab's schedule, and an early rung cannot tell: on the benchmark's lr-too-high net (3 convs, 2 dense;
# CIFAR-10, 2,000 images, 15 epochs, 2 seeds) batchnorm led the floor by 9-14 points at epoch 1 and ended 0.4
# points under it (1.1 with it before the relu), and the rescue that chose it 1.9 under (docs/rescue.md).
DEEP = 6

# Where batchnorm goes in, dropout comes out rather than being halved. The Keras cifar10_cnn net with batchnorm on
# all of CIFAR-10, rescued at budget 15: dropout halved 0.846 (seed 0), removed 0.874 (seeds 0-2; docs/rescue.md). The forecast of an
# architecture fix not allowed is measured the same way, as --change-architecture would make it.


@dataclass
class Candidate:
    name: str                   # floor | prescribed | forecast (and NAME-lr3 for a diverged one's retry)
    label: str
    config: dict
    architecture: bool = False
    promotable: bool = True     # a forecast is measured, never continued
    changes: list[str] = field(default_factory=list)


def floor(config: dict) -> dict:
    config = copy.deepcopy(config)
    for key in TRAINING_KEYS:
        config.pop(key, None)
    return config


def _layers(config: dict) -> list:
    model = config.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    return layers if isinstance(layers, list) else []


def read_layers(config: dict) -> dict:
    """The facts the prescriptions hang on, from the layer list as written (a named architecture or an
    imported module has none: nothing is prescribed for it)."""
    layers = _layers(config)
    entries = [written_args(e) for e in layers]
    hidden = entries[:-1]
    return {
        "normalised": "batchnorm" in json.dumps(layers),
        "weighted": sum(kind in ("conv", "dense") for kind, _ in entries),
        "dropout": any(kind in DROPOUT for kind, _ in entries),
        "heavy_dropout": any(kind in DROPOUT and isinstance(a.get("rate"), (int, float))
                             and a["rate"] >= 0.3 for kind, a in entries),
        "saturating": sum(kind in SATURATING or a.get("activation") in SATURATING for kind, a in hidden),
        "unpadded": sum(kind == "conv" and a.get("padding", "valid") in ("valid", 0) and a.get("kernel", 3) != 1
                        and a.get("stride", 1) == 1 for kind, a in entries),
    }


def pretrained(config: dict) -> bool:
    model = config.get("model")
    return bool(config.get("weights") or (isinstance(model, dict) and model.get("weights")))


def prescriptions(config: dict) -> tuple[list[str], list[str]]:
    """(training-setting changes, architecture changes) the doctor prescribes for this layer list. A net that
    starts from trained weights keeps its layers (a layer added would leave the weights behind it unloaded):
    its prescription is the fine-tune schedule, and lighter dropout."""
    facts = read_layers(config)
    if pretrained(config):
        return ["finetune"] + (["less-dropout"] if facts["heavy_dropout"] else []), []
    if not facts["weighted"]:
        return [], []
    training, architecture = [], []
    if facts["heavy_dropout"]:
        training.append("less-dropout")
    if facts["saturating"] >= 2 and not facts["normalised"]:
        training.append("adam")
        architecture.append("relu")
    if not facts["normalised"] and facts["weighted"] >= DEEP:
        architecture.append("batchnorm")
        if "adam" not in training:
            training.append("lr-div3")
    if facts["unpadded"] >= 4:
        architecture.append("pad-same")
    return training, architecture


def _apply(config: dict, names: list[str]) -> tuple[dict, list[str]]:
    applied = []
    for name in names:
        changed = CHANGES[name].apply(config)
        if changed is not None:
            config, applied = changed, applied + [name]
    return config, applied


# A bundle may cost at most this much more per image than the floor: beyond it, the race would compare
# candidates at very different compute, and the budget would leave the winner few epochs. Padding keeps the
# maps at full size (4.4x the compute on the deep unpadded net): it is left out first, and the table says so.
MAX_COST = 1.5
COSTLY = ("pad-same",)


def _bundle(source: dict, names: list[str], flop_of, limit: float | None) -> tuple[dict, list[str], list[str]]:
    """(config, changes applied, changes left out for their cost)."""
    config, applied = _apply(source, names)
    left_out = []
    for name in COSTLY:
        if limit is None or name not in applied or flop_of(config) <= limit:
            continue
        names = [n for n in names if n != name]
        config, applied = _apply(source, names)
        left_out.append(name)
    return config, applied, left_out


def _with_architecture(config: dict, training: list[str], architecture: list[str]) -> list[str]:
    """The changes together once the architecture ones are in: where batchnorm goes in, dropout comes out."""
    if "batchnorm" in architecture and read_layers(config)["dropout"]:
        training = [t for t in training if t != "less-dropout"] + ["no-dropout"]
    return training + architecture


def candidates(config: dict, allow_architecture: bool, flop_of=None) -> list[Candidate]:
    """The race's entrants: the floor first; the floor with every prescription that applies (architecture ones
    only when allowed); and, where architecture fixes were prescribed but not allowed, a forecast of them.
    `config`: with lint's corrections. `flop_of(config)`: the cost per image, to keep a bundle within
    MAX_COST of the floor.

    Lint's architecture fixes (a global pool for a flatten into a big dense layer) are not raced: they trade
    the layout a dense head reads for fewer weights, a trade an early rung cannot judge. In the benchmark
    (docs/rescue.md) the bundle with them led at epoch 1 and ended 1.3-2.2 points below the floor on two of
    the nets they applied to."""
    base = floor(config)
    out = [Candidate("floor", "the floor: your layers (lint-corrected) with cnnlab's training settings", base)]
    limit = MAX_COST * flop_of(base) if flop_of else None
    training, architecture = prescriptions(base)
    if allow_architecture:  # batchnorm makes the lower rate unnecessary; relu and batchnorm, Adam's help
        training = [t for t in training if not (t == "lr-div3" and "batchnorm" in architecture)
                    and not (t == "adam" and "relu" in architecture)]
    names = _with_architecture(base, training, architecture) if allow_architecture else training
    prescribed, applied, left_out = _bundle(base, names, flop_of, limit)
    if applied:
        what = [CHANGES[n].label for n in applied] + \
            [f"({CHANGES[n].label.split(': ')[-1]} left out: over {MAX_COST}x the compute)" for n in left_out]
        out.append(Candidate("prescribed", "the doctor's prescriptions together: " + "; ".join(what), prescribed,
                             any(CHANGES[n].architecture for n in applied), changes=applied))
    if architecture and not allow_architecture:
        fixes = _with_architecture(base, [n for n in training if n != "lr-div3"], architecture)
        forecast, applied, _ = _bundle(base, fixes, flop_of, limit)
        if any(CHANGES[n].architecture for n in applied):
            out.append(Candidate("forecast", "; ".join(CHANGES[n].label for n in applied), forecast, True,
                                 promotable=False, changes=applied))
    return out
