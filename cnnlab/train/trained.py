"""A finished run as one object that predicts: the model with everything it needs to be used (its
normalisation, classes, input shape, whether it ends in softmax, its test-time augmentation), so that the
final evaluation in training, `cnnlab eval`, predict, the report, the See view and export all compute the same
way (timm's data config: a model carries its input size and normalisation).

    trained = TrainedModel.load("runs/20261123-151654-keras-cifar10")
    trained.probabilities(images)        # uint8 (N, C, H, W) -> (N, classes): what predict and See show
    trained.evaluate(x, y, "test")       # {test_acc, test_loss, test_acc_tta, ...}: what result.json holds
    trained.deployable(uint8=True)       # an nn.Module with the normalisation built in: what export writes
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..device import Placement, choose_placement
from ..errors import UserError
from ..rundir import Run
from ..schema.config import TrainConfig
from .augment import Augmenter
from .engine import eval_batch_size, evaluate, view_count


def tta_label(tta) -> str:
    """How result.json and `cnnlab eval` name the test-time augmentation."""
    return "flip" if tta is True else f"{view_count(tta)}-view"


class Deployable(nn.Module):
    """The model with its input scaling and normalisation built in: it takes images as they come (float in
    [0, 1], or uint8 0..255), so a user never needs the training set's mean and std."""

    def __init__(self, model: nn.Module, mean, std, uint8: bool = False):
        super().__init__()
        self.model = model
        self.uint8 = uint8
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float() / 255.0 if self.uint8 else image
        return self.model((x - self.mean) / self.std)


class TrainedModel:
    """A trained model and how to use it. `placement` decides where `evaluate` runs and at which precision
    and layout; `probabilities` and `deployable` always compute in float32 on its device."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, classes: list[str], input_shape, mean, std,
                 placement: Placement, augmenter: Augmenter | None = None):
        self.model, self.cfg, self.placement = model, cfg, placement
        self.classes, self.input_shape = list(classes), tuple(input_shape)
        self.mean, self.std = list(mean), list(std)
        # evaluation normalises as training did: the same augmenter (its eval_batch, never its augmentations)
        self.augmenter = augmenter if augmenter is not None else Augmenter(
            cfg.augment, self.mean, self.std, placement.device, placement.channels_last)
        self.outputs_probabilities = bool(getattr(model, "outputs_probabilities", False))
        # flip TTA only where training flipped: a model that never saw mirrored digits is not asked about them
        self.tta = cfg.tta if cfg.tta and self.augmenter.flips_horizontally else False
        self.batch_size = eval_batch_size(cfg, placement)

    @classmethod
    def load(cls, run: Run | str | os.PathLike, device: str | None = None) -> "TrainedModel":
        """A finished run (its directory or a Run) with its final weights. `device` None: the run's own
        placement (config device, precision and layout), so `evaluate` scores exactly as the final evaluation
        of training did; a device name: there in float32 and the plain layout, as an exported model runs."""
        run = run if isinstance(run, Run) else Run(run)
        cfg, info = run.config, run.data_info
        placement = (choose_placement(cfg.device, cfg.precision, cfg.channels_last) if device is None
                     else choose_placement(device, "fp32", False))
        model = run.model.to(placement.device)
        if placement.channels_last:  # as the session holds it while training
            model.to(memory_format=torch.channels_last)
        return cls(model, cfg, info["classes"], info["input_shape"], info["mean"], info["std"], placement)

    @classmethod
    def from_session(cls, session) -> "TrainedModel":
        """The model a training session holds in memory (cnnlab/train/session.py), for its final evaluation."""
        return cls(session.model, session.cfg, session.data.classes, session.data.input_shape, session.mean,
                   session.std, session.placement, session.augmenter)

    # ------------------------------------------------------------------ using it
    def deployable(self, uint8: bool = False) -> Deployable:
        """The model with normalisation built in (float input in [0, 1], or uint8 with `uint8`), in eval mode."""
        return Deployable(self.model, self.mean, self.std, uint8).eval()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes), float32 on the CPU, of uint8 images (N, C, H, W) of the input
        shape: the plain view, no test-time augmentation, in float32 (what predict and See show)."""
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != self.input_shape:
            c, h, w = self.input_shape
            raise UserError(f"images of {images.dtype} {tuple(images.shape)}: the model takes uint8 "
                            f"N x {c} x {h} x {w} (batch, channels, height, width)")
        was_training = self.model.training
        net = self.deployable(uint8=True)
        out = []
        try:
            for start in range(0, len(images), self.batch_size):
                logits = net(images[start:start + self.batch_size].to(self.placement.device)).float()
                out.append((logits if self.outputs_probabilities else logits.softmax(1)).cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(out) if out else torch.empty(0, len(self.classes))

    def look_inside(self, image: torch.Tensor, modules: list[nn.Module]) -> tuple[torch.Tensor, list]:
        """One uint8 image (C, H, W) through the model: its class probabilities (as `probabilities` gives
        them) and [(module, its output for the image)] for each of `modules` that ran, in the order they ran
        (See's maps and the report's feature maps both look through here)."""
        captured = []
        hooks = [m.register_forward_hook(lambda mod, i, o: captured.append((mod, o[0].detach().float().cpu())))
                 for m in modules]
        try:
            probs = self.probabilities(image[None])[0]
        finally:
            for h in hooks:
                h.remove()
        return probs, captured

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, split: str = "test", known: dict | None = None) -> dict:
        """Loss and accuracy over (x, y) under result.json's keys: {split}_loss and {split}_acc, and where
        test-time augmentation applies {split}_loss_tta, {split}_acc_tta and tta. `known`: what an evaluation
        of these same weights on (x, y) already found — {"loss", "acc"} and/or "probs" (the engine's
        `evaluate`) — so that training's final evaluation computes nothing twice."""
        known = known or {}
        args = (self.model, x, y, self.augmenter, self.placement, self.batch_size)
        plain = known if "acc" in known else evaluate(*args, probabilities=self.outputs_probabilities)
        scores = {f"{split}_loss": plain["loss"], f"{split}_acc": plain["acc"]}
        if self.tta:
            views = evaluate(*args, tta=self.tta, probabilities=self.outputs_probabilities,
                             plain=plain.get("probs"))
            scores.update({f"{split}_acc_tta": views["acc"], f"{split}_loss_tta": views["loss"],
                           "tta": tta_label(self.tta)})
        return scores
