"""The loggers a run can be sent to by name (`loggers: [mlflow, wandb, tensorboard, csv]`, `--logger`): each a
Listener of the run's events (cnnlab/events.py), registered here. Each imports its library only when made,
so a logger nobody asks for costs nothing, and one whose library is missing says how to install it.

Adding a logger: a Listener class in a module here, `@register("name", "what it does")` on it, the name in
cnnlab/schema/config.py LOGGERS, and the import below (docs/loggers.md walks it)."""
from . import csv, mlflow, tensorboard, wandb  # noqa: F401 — each registers itself
