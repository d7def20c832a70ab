"""Optuna sweeps of ordinary runs (cnnlab/sweep/): run a sweep file, and report on a sweep."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import UserError


def runs_root(given: str | None = None) -> Path:
    return Path(given or os.environ.get("CNNLAB_RUNS") or "runs")


def _need_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("sweeps need Optuna: pip install 'cnnlab[sweep]'") from None


def run(path: str, trials: int | None = None, workers: int = 1, storage: str | None = None,
        root: str | None = None, store: str | None = None, log=print):
    """Run the sweep file's trials (`workers` local processes sharing the study, or machines sharing an RDB
    `storage`); returns (spec, study). Each trial is an ordinary run in the store, tagged sweep:NAME."""
    _need_optuna()
    from ..sweep.runner import run_sweep, sweep_dir
    from ..sweep.spec import load_spec
    spec, _ = load_spec(path)
    if trials:
        spec.trials = trials
    root = runs_root(root)
    folder = sweep_dir(root, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / "sweep.yaml")
    log(f"sweep {spec.name}: {spec.trials} trials, {spec.sampler} sampler, {spec.pruner} pruner, "
        f"{workers} worker(s); study in {storage or folder / 'journal.log'}")
    from .job import Job
    study = run_sweep(spec, root, Job, storage, workers, Path(store) if store else root / "cnnlab.db", log=log)
    return spec, study


def report(name: str, root: str | None = None, storage: str | None = None) -> tuple[Path, Path]:
    """The sweep's report page and its best trial's config file: (page, best)."""
    _need_optuna()
    from ..sweep.report import write_sweep_report
    from ..sweep.spec import load_spec
    root = runs_root(root)
    path = Path(name)
    if not path.exists():
        path = root / "sweeps" / name / "sweep.yaml"
        if not path.exists():
            raise UserError(f"no sweep '{name}': give its sweep file, or a name under {root / 'sweeps'}")
    spec, _ = load_spec(path)
    return write_sweep_report(spec, root, storage)
