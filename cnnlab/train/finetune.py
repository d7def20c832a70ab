"""Fine-tuning as a schedule, not a special trainer (fastai's `fine_tune`): the first `head_epochs` train the
classifier alone (or all but the first N layers), the frozen part's BatchNorm statistics kept as the weights
brought them; then every layer trains, at `discriminative` rates that rise geometrically from lr/spread at
the first layer to lr at the head. A frozen layer's parameters get no gradient: with nothing before it
trainable, backward stops at the first trainable layer, so a frozen body costs only its forward pass."""
from __future__ import annotations

from torch import nn

from ..errors import UserError
from ..schema.config import FinetuneConfig


def layers_of(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order, as the summary numbers them: a built model's written layers, else the
    modules that hold parameters themselves."""
    if hasattr(model, "layers") and getattr(model, "infos", None):
        return list(model.layers)
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def _with_parameters(layers: list[nn.Module]) -> list[nn.Module]:
    return [m for m in layers if any(True for _ in m.parameters())]


def frozen_layers(model: nn.Module, cfg: FinetuneConfig) -> list[nn.Module]:
    """What `freeze` names: every layer with parameters but the last (`body`), or the first N layers."""
    layers = layers_of(model)
    if cfg.freeze == "body":
        return _with_parameters(layers)[:-1]
    if cfg.freeze >= len(layers):
        raise UserError(f"finetune.freeze: {cfg.freeze} layers would freeze the whole model ({len(layers)} layers); "
                        "freeze fewer, or `body` (all but the classifier)")
    return layers[:cfg.freeze]


def rate_scales(model: nn.Module, cfg: FinetuneConfig) -> dict[int, float]:
    """Each parameter's rate relative to the run's (by id): lr/spread at the first layer with parameters, rising
    geometrically to 1 at the last; all 1 with `uniform` rates."""
    layers = _with_parameters(layers_of(model))
    scales = {}
    for i, layer in enumerate(layers):
        depth = i / (len(layers) - 1) if len(layers) > 1 else 1.0
        scale = 1.0 if cfg.rates == "uniform" else cfg.spread ** (depth - 1)
        for p in layer.parameters():
            scales.setdefault(id(p), scale)
    return scales


class Finetune:
    """Freezes and unfreezes at each epoch's start (`apply`), so a resumed run is where it was."""

    def __init__(self, model: nn.Module, cfg: FinetuneConfig, epochs: int):
        self.cfg, self.model, self.epochs = cfg, model, epochs
        self.until = epochs if cfg.head_epochs == "all" else cfg.head_epochs
        self.leave_trainable([])

    def leave_trainable(self, new_names: list[str]) -> None:
        """Keep out of the frozen part every layer holding a parameter in `new_names`: the weights did not bring
        it (a shape that differed), so it starts random and must train from the first epoch."""
        self.new_names = list(new_names)
        new = {id(p) for name, p in self.model.named_parameters() if name in set(new_names)}
        chosen = frozen_layers(self.model, self.cfg)
        self.frozen = [m for m in chosen if not any(id(p) in new for p in m.parameters())]
        self.left_new = len(chosen) - len(self.frozen)
        for m in chosen:
            if m not in self.frozen:
                m.requires_grad_(True)  # in case an earlier `apply` froze it
        self.params = [p for m in self.frozen for p in m.parameters()]
        self.norms = [m for layer in self.frozen for m in layer.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def is_frozen(self, epoch: int) -> bool:
        return epoch < self.until

    def apply(self, epoch: int) -> None:
        """Set the frozen part for `epoch` (0-based); call after model.train(), which BatchNorm eval undoes."""
        frozen = self.is_frozen(epoch)
        for p in self.params:
            p.requires_grad_(not frozen)
        if frozen:
            for bn in self.norms:
                bn.eval()

    def describe(self) -> str:
        what = "the body" if self.cfg.freeze == "body" else f"the first {self.cfg.freeze} layers"
        whole = self.cfg.head_epochs == "all" or self.until >= self.epochs
        when = "the whole run" if whole else f"the first {self.until} epoch(s)"
        after = "" if whole else (
            f", then every layer at {self.cfg.rates} rates" +
            (f" (lr/{self.cfg.spread:g} at the first layer to lr at the head)" if self.cfg.rates == "discriminative" else ""))
        new = (f"; {self.left_new} layer{'s' if self.left_new > 1 else ''} whose weights were left new "
               "train from the start" if self.left_new else "")
        return f"fine-tuning: {what} frozen for {when}{after}{new}"
