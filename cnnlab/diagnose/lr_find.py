"""The learning-rate range test (Smith 2015, fastai's `lr_find`): train briefly while the learning rate grows
exponentially, plot loss against learning rate, and suggest a value with the rule used."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..train.engine import classification_loss
from ..train.optim import make_optimizer


@dataclass
class LRFinding:
    lrs: list[float]
    losses: list[float]      # smoothed
    suggestion: float
    rule: str
    steepest: float
    minimum: float

    def render(self) -> str:
        return (f"Suggested learning rate: {self.suggestion:.3g}  ({self.rule})\n"
                f"  loss lowest at lr {self.minimum:.3g}; steepest descent at lr {self.steepest:.3g}\n"
                f"  swept {self.lrs[0]:.1e} .. {self.lrs[-1]:.1e} in {len(self.lrs)} steps")


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, str, float, float]:
    """(suggested, rule, steepest, lr at minimum). Pure: tested on made-up curves."""
    best = min(range(len(smoothed)), key=lambda i: smoothed[i])
    minimum = lrs[best]
    # steepest negative slope of loss against log(lr), before the minimum
    slopes = [(smoothed[i + 1] - smoothed[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(best)]
    steepest = lrs[min(range(len(slopes)), key=lambda i: slopes[i])] if slopes else minimum
    return minimum / 10, "one tenth of the learning rate at the lowest loss (fastai's rule)", steepest, minimum


def lr_find(session, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100, beta: float = 0.9,
            plot: str | Path | None = None) -> LRFinding:
    """`session` supplies model, data, augmenter, placement and config (see cnnlab.train.session.Session)."""
    model, cfg, placement = session.model, session.cfg, session.placement
    optimizer = make_optimizer(model, cfg.optimizer.model_copy(update={"lr": start_lr}))
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all, y_all = session.data.train_x, session.data.train_y
    batch = cfg.batch_size
    factor = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    lrs, smoothed, avg, best = [], [], 0.0, math.inf
    model.train()
    order = torch.randperm(len(x_all), generator=gen)
    for step in range(steps):
        lr = start_lr * factor ** step
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        start = (step * batch) % max(len(x_all) - batch + 1, 1)
        idx = order[start:start + batch]
        xb = session.augmenter.train_batch(x_all[idx], gen)
        yb = y_all[idx].to(placement.device)
        with placement.autocast():
            out = model(xb)
        loss = classification_loss(out, yb, cfg.loss.label_smoothing, getattr(model, "outputs_probabilities", False),
                                   cfg.loss.reduction)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            break
        avg = beta * avg + (1 - beta) * value
        s = avg / (1 - beta ** (step + 1))
        lrs.append(lr)
        smoothed.append(s)
        best = min(best, s)
        if step > 10 and s > 4 * best:  # the loss has clearly blown up: the rest of the sweep tells nothing
            break
    suggestion, rule, steepest, minimum = suggest(lrs, smoothed)
    finding = LRFinding(lrs, smoothed, suggestion, rule, steepest, minimum)
    if plot:
        _plot(finding, plot)
    return finding


def _plot(f: LRFinding, path) -> None:
    from ..mplbackend import headless
    headless()
    import matplotlib.pyplot as plt
    from ..fsutil import atomic_path
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f.lrs, f.losses)
    ax.set_xscale("log")
    ax.axvline(f.suggestion, color="red", ls="--", label=f"suggested {f.suggestion:.2g}")
    ax.axvline(f.steepest, color="gray", ls=":", label=f"steepest {f.steepest:.2g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
