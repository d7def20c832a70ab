"""Averaged weights: airbench94's lookahead and an exponential moving average (config key `average`).

Every `every` steps the average moves toward the model's weights and BatchNorm's running statistics by
(1 - d), where d = decay x progress^ramp grows from 0 (the average follows the weights) to `decay` at the end
of training. lookahead writes the average back into the model at each update (Zhang et al. 2019, as airbench94
uses it); ema keeps it apart and hands it to the model when training ends.
"""
from __future__ import annotations

import torch

from ..schema.config import AverageConfig


class WeightAverage:
    def __init__(self, model: torch.nn.Module, cfg: AverageConfig):
        self.model, self.cfg = model, cfg
        # floating-point weights and buffers only: num_batches_tracked is a count
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, progress: float) -> float:
        return self.cfg.decay * min(max(progress, 0.0), 1.0) ** self.cfg.ramp

    @torch.no_grad()
    def update(self, step: int, progress: float, last: bool = False) -> None:
        """After optimizer step number `step` (from 1), `progress` the fraction of training done; `last`: the
        run's final step, always an update so the end of training is not left out of the average."""
        if step % self.cfg.every and not last:
            return
        d = self.decay(progress)
        state = self.model.state_dict()
        for name, avg in self.average.items():
            avg.lerp_(state[name], 1 - d)
            if self.cfg.mode == "lookahead":
                state[name].copy_(avg)

    @torch.no_grad()
    def finish(self) -> None:
        """The model takes the average (ema; lookahead's model already holds it)."""
        state = self.model.state_dict()
        for name, avg in self.average.items():
            state[name].copy_(avg)

    def state_dict(self) -> dict:
        return {k: v.clone() for k, v in self.average.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            self.average[name].copy_(value)
