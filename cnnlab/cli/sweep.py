"""`cnnlab sweep SWEEP.yaml` and `cnnlab sweep report NAME|SWEEP.yaml`: Optuna sweeps of normal runs."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def _runs_root(args) -> Path:
    return Path(args.runs_root or os.environ.get("CNNLAB_RUNS") or "runs")


def cmd_sweep(args) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("sweeps need Optuna: pip install 'cnnlab[sweep]'") from None
    from ..sweep.runner import run_sweep, sweep_dir
    from ..sweep.spec import load_spec
    if args.target == "report":
        return _report(args)
    spec, _ = load_spec(args.target)
    if args.trials:
        spec.trials = args.trials
    root = _runs_root(args)
    store = Path(args.store) if args.store else root / "cnnlab.db"
    folder = sweep_dir(root, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.yaml").write_text(Path(args.target).read_text())
    print(f"sweep {spec.name}: {spec.trials} trials, {spec.sampler} sampler, {spec.pruner} pruner, "
          f"{args.workers} worker(s); study in {args.storage or folder / 'journal.log'}")
    study = run_sweep(spec, root, args.storage, args.workers, store, log=lambda text: print(text, flush=True))
    best = study.best_trial
    print(f"best: trial {best.number}, {spec.objective} {best.value:.4f}, {best.params}")
    print(f"report: cnnlab sweep report {args.target}" + (f" --storage {args.storage}" if args.storage else ""))
    return 0


def _report(args) -> int:
    from ..sweep.report import write_sweep_report
    from ..sweep.spec import load_spec
    if not args.name:
        raise UserError("usage: cnnlab sweep report SWEEP.yaml (or the sweep's name)")
    root = _runs_root(args)
    path = Path(args.name)
    if not path.exists():
        path = root / "sweeps" / args.name / "sweep.yaml"
        if not path.exists():
            raise UserError(f"no sweep '{args.name}': give its sweep file, or a name under {root / 'sweeps'}")
    spec, _ = load_spec(path)
    page, best = write_sweep_report(spec, root, args.storage)
    print(f"wrote {page} and {best} (train it with: cnnlab train {best})")
    return 0
