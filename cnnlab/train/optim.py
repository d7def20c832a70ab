"""Optimizers and learning-rate schedules. Schedules are pure functions of training progress, so they are
tested (and plotted) without training anything."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError, closest
from ..schema.config import GroupConfig, OptimizerConfig, ScheduleConfig

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta", "muon")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "warmup_linear", "warmup_cosine", "plateau")


def parameter_kind(p: torch.Tensor) -> str:
    return "conv" if p.ndim == 4 else "dense" if p.ndim >= 2 else "bias"


def param_groups(model: nn.Module, cfg: OptimizerConfig, scales: dict[int, float] | None = None) -> list[dict]:
    """One group per kind of parameter (conv filters, dense weights, biases and BatchNorm), each with the
    optimizer's settings unless `optimizer.groups.<kind>` overrides them. By default only conv and dense
    weights decay: decaying BatchNorm scales and biases hurts and gains nothing. `lr_scale` is the group's
    rate relative to the main one, so the schedule moves them all together. `scales`: a further rate per
    parameter (by id; fine-tuning's discriminative rates), each scale a group of its own."""
    lr = cfg.lr
    scales = scales or {}
    by_kind: dict[tuple, list] = {("conv", None, 1.0): [], ("dense", None, 1.0): [], ("bias", None, 1.0): []}
    for p in model.parameters():
        if p.requires_grad:  # a parameter with `decay_epochs` (a whitening bias) gets a group of its own
            key = (parameter_kind(p), getattr(p, "decay_epochs", None), scales.get(id(p), 1.0))
            by_kind.setdefault(key, []).append(p)
    groups = []
    for (kind, decay_epochs, scale), params in by_kind.items():
        if not params:
            continue
        o = getattr(cfg.groups, kind) or GroupConfig()  # a kind not named follows the optimizer
        group = {"params": params, "kind": kind,
                 "weight_decay": o.weight_decay if o.weight_decay is not None
                 else (cfg.weight_decay if kind != "bias" else 0.0),
                 "lr_scale": ((o.lr / lr) if o.lr is not None else 1.0) * scale}
        if o.momentum is not None:
            group["momentum"] = o.momentum
        if decay_epochs:
            group["decay_epochs"] = decay_epochs
        groups.append(group)
    return groups


def group_lr(group: dict, lr: float, base_lr: float, progress: float) -> float:
    """A group's rate at `progress` epochs: the schedule's `lr` times its scale; a group with `decay_epochs`
    instead falls linearly from its peak to zero over those epochs, whatever the main schedule does."""
    scale = group.get("lr_scale", 1.0)
    if group.get("decay_epochs"):
        return base_lr * scale * max(0.0, 1 - progress / group["decay_epochs"])
    return lr * scale


class Optimizers:
    """Several optimizers stepped as one (Muon for filters + SGD for the rest), so the loop, the grad scaler
    and checkpoints see one object. `param_groups` lists all their groups."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = list(optimizers)

    @property
    def param_groups(self):
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self, closure=None):
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state):
        for opt, s in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(s)


def make_optimizer(model: nn.Module, cfg: OptimizerConfig, scales: dict[int, float] | None = None):
    name = cfg.name
    groups = param_groups(model, cfg, scales)
    lr = cfg.lr
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    nesterov = cfg.nesterov and cfg.momentum > 0
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=nesterov)
    if name == "muon":
        from .muon import Muon
        filters = [g for g in groups if g["kind"] == "conv"]
        rest = [g for g in groups if g["kind"] != "conv"]
        for g in filters:
            g.pop("weight_decay")  # Muon's steps have a fixed size; filters feeding BatchNorm need no decay
        opts = [Muon(filters, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                     normalize=cfg.normalize_filters)] if filters else []
        if rest:
            opts.append(torch.optim.SGD(rest, lr=lr, momentum=cfg.momentum, nesterov=nesterov))
        return Optimizers(*opts)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)
    if name == "adadelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=cfg.rho, eps=cfg.eps)
    raise UserError(f"optimizer.name: unknown optimizer '{name}'{closest(name, OPTIMIZERS)}; valid: {', '.join(OPTIMIZERS)}")


def lr_factor(cfg: ScheduleConfig, epoch_progress: float, total_epochs: int) -> float:
    """Multiplier of the peak learning rate after `epoch_progress` epochs (a float) of `total_epochs`."""
    name = cfg.name
    floor = cfg.min_lr
    t = min(max(epoch_progress / total_epochs, 0.0), 1.0)
    warmup = cfg.warmup
    warm = warmup / total_epochs if warmup >= 1 else warmup  # as a fraction of training
    if name in ("constant", "plateau"):
        return 1.0
    if name == "step":
        return max(cfg.gamma ** int(epoch_progress // cfg.step_size), floor)
    if name == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if name in ("onecycle", "warmup_linear", "warmup_cosine"):
        start = 0.04 if name == "onecycle" else 0.0  # one-cycle starts at peak/25 (Smith 2018; torch's OneCycleLR)
        if t < warm:
            return start + (1 - start) * t / warm
        rest = (t - warm) / max(1 - warm, 1e-12)
        if name == "warmup_cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * rest))
        return floor + (1 - floor) * (1 - rest)
    raise UserError(f"schedule.name: unknown schedule '{name}'{closest(name, SCHEDULES)}; valid: {', '.join(SCHEDULES)}")


class Plateau:
    """Reduce-on-plateau state: cut the learning rate by `factor` after `patience` epochs without a better
    validation loss. Its state is a small dict saved in the checkpoint."""

    def __init__(self, patience: int, factor: float):
        self.patience, self.factor = patience, factor
        self.state = {"best": math.inf, "bad_epochs": 0, "scale": 1.0}

    def update(self, val_loss: float) -> float:
        if val_loss < self.state["best"] - 1e-4:
            self.state.update(best=val_loss, bad_epochs=0)
        else:
            self.state["bad_epochs"] += 1
            if self.state["bad_epochs"] > self.patience:
                self.state.update(scale=self.state["scale"] * self.factor, bad_epochs=0)
        return self.state["scale"]


def apply_constraints(model: nn.Module) -> None:
    """Keras-style MaxNorm: rescale each unit's incoming weight vector to norm <= max_norm after a step."""
    for module in model.modules():
        limit = getattr(module, "max_norm", None)
        if limit:
            with torch.no_grad():
                module.weight.copy_(torch.renorm(module.weight, p=2, dim=0, maxnorm=limit))
