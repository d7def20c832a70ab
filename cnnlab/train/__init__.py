"""Training: the loop, augmentation, optimizers and schedules, assembling a run, the job that runs it,
evaluating and predicting."""
from ..rundir import Run
from .finish import evaluate_run
from .job import Job, resume, start, train

__all__ = ["Job", "Run", "evaluate_run", "resume", "start", "train"]
