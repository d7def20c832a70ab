"""What the loggers share: the files of a run worth keeping, numeric metrics out of an epoch row, the
run's status in each tool's words, and a clear error for a library that is not installed."""
from __future__ import annotations

import importlib
from pathlib import Path

from ...errors import UserError
from ..compare import flatten

# What a finished run's directory holds that a tracking server should keep beside the metrics.
ARTIFACTS = ("config.yaml", "summary.txt", "data.json", "metrics.csv", "result.json", "curves.png",
             "report.html", "model.safetensors")


def need(module: str, extra: str, logger: str):
    """Import an optional library, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"the {logger} logger needs the {module} package: pip install 'cnnlab[{extra}]' "
                        f"(or leave {logger} out of `loggers`)") from None


def numbers(row: dict, skip=("epoch",)) -> dict[str, float]:
    """The numeric fields of a metrics row or result (bools and missing values left out)."""
    return {k: float(v) for k, v in row.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_scores(result: dict) -> dict[str, float]:
    """The scores of a run's ending (test, val, best val, final accuracy; with and without TTA)."""
    return {k: v for k, v in numbers(result).items() if k.startswith(("test_", "val_", "best_", "final_"))}


def params(config: dict) -> dict[str, str]:
    """The resolved config flattened to dotted keys (`optimizer.lr`), each value as text; the model as its
    JSON (it is one parameter: the layers are in config.yaml and the summary)."""
    return {k: str(v) for k, v in flatten(config).items()}


def artifacts(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir)
    return [root / name for name in ARTIFACTS if (root / name).is_file()]


def final_status(status: str) -> str:
    """A run's ending in MLflow's words (W&B says the same with an exit code)."""
    return {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
