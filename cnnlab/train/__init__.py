"""Training: the loop, augmentation, optimizers and schedules, the run directory, resume, evaluate, predict."""
from .run import Run, evaluate_run, resume, train

__all__ = ["Run", "evaluate_run", "resume", "train"]
