"""Training: the loop, augmentation, optimizers and schedules, assembling a run, the job that runs it,
evaluating and predicting."""
from ..rundir import Run
from .finish import evaluate_run
from .job import Job, resume, start, train
from .trained import TrainedModel

__all__ = ["Job", "Run", "TrainedModel", "evaluate_run", "resume", "start", "train"]
