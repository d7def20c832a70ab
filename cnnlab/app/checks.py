"""Before a long run: check a config and its model against the data set (a dry run), find a learning rate
(the range test), and see whether the model can memorise one batch (the sanity check)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..diagnose.lint import lint, lint_training
from ..models import build_model
from ..models.summary import summarize
from ..train.session import Session, check_resolution, prepare
from .datasets import config_input
from .models import ModelReport


@dataclass
class DryRun:
    report: ModelReport
    name: str
    data: str
    epochs: int
    batch_size: int

    def render(self) -> str:
        return (f"{self.report.render(lint_always=True)}\nconfig OK: {self.name} on {self.data}, {self.epochs} epochs "
                f"of batch {self.batch_size} (--dry-run: nothing trained or written)")


def dry_run(config=None, overrides: list | None = None) -> DryRun:
    """The config resolved and its model built against the data set's shape: every error a run would meet
    before its first step, with nothing trained or written."""
    cfg, spec = prepare(config, overrides)
    shape, classes = config_input(cfg)
    model = build_model(spec, shape, classes)
    with torch.device("meta"):
        check_resolution(spec, cfg, shape, classes)
    return DryRun(ModelReport(summarize(model), lint(model) + lint_training(cfg), batch_size=cfg.batch_size),
                  cfg.name, cfg.data.name,
                  cfg.epochs, cfg.batch_size)


def _session(config, overrides) -> Session:
    cfg, spec = prepare(config, overrides)
    return Session(cfg, spec=spec)


def lr_find(config=None, overrides: list | None = None, start_lr: float = 1e-6, end_lr: float = 10.0,
            steps: int = 100, plot: str | Path = "lr-find.png"):
    """The learning-rate range test on the config's model and data; the finding has render()."""
    from ..diagnose.lr_find import lr_find as range_test
    return range_test(_session(config, overrides), start_lr, end_lr, steps, plot=Path(plot))


def sanity(config=None, overrides: list | None = None, batch: int = 64, steps: int = 300):
    """Can the model memorise one batch? (bugs, not tuning); the report has render() and passed."""
    from ..diagnose.sanity import sanity_check
    return sanity_check(_session(config, overrides), batch, steps)
