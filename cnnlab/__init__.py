"""cnnlab: describe, train, understand and compare convolutional image classifiers."""
from .version import __version__  # noqa: E402

from .data import load_dataset  # noqa: E402
from .errors import UserError  # noqa: E402
from .models import build_model, list_models  # noqa: E402
from .events import Event  # noqa: E402
from .app.job import Job, resume, start, train  # noqa: E402
from .app.runs import compare, diagnose as doctor  # noqa: E402 — doctor: `cnnlab doctor RUN`'s verdict
from .app.see import see_inline as see  # noqa: E402 — cnnlab.see(run, image): the layers, inline in a notebook
from .rundir import Run  # noqa: E402

__all__ = ["__version__", "load_dataset", "UserError", "build_model", "list_models", "Event", "Job", "Run", "compare",
           "doctor", "resume", "see", "start", "train"]
