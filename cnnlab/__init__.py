"""cnnlab: describe, train, understand and compare convolutional image classifiers."""
__version__ = "0.1.0"

from .data import load_dataset  # noqa: E402
from .errors import UserError  # noqa: E402
from .models import build_model, list_models  # noqa: E402
from .events import Event  # noqa: E402
from .train import Job, Run, resume, start, train  # noqa: E402

__all__ = ["__version__", "load_dataset", "UserError", "build_model", "list_models", "Event", "Job", "Run", "resume",
           "start", "train"]
