"""Training: the loop, augmentation, optimizers and schedules, assembling a run in memory, its end, and a
finished run as a model that predicts. The job that runs a training (events, stop, resume, the store) is the
application layer's: cnnlab/app/job.py."""
from ..rundir import Run
from .finish import evaluate_run
from .trained import TrainedModel

__all__ = ["Run", "TrainedModel", "evaluate_run"]
