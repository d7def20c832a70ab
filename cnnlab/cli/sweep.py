"""`cnnlab sweep SWEEP.yaml` and `cnnlab sweep report NAME|SWEEP.yaml`: Optuna sweeps of normal runs."""
from __future__ import annotations

from ..app import sweep
from ..errors import UserError


def cmd_sweep(args) -> int:
    if args.target == "report":
        if not args.name:
            raise UserError("usage: cnnlab sweep report SWEEP.yaml (or the sweep's name)")
        page, best = sweep.report(args.name, args.runs_root, args.storage)
        print(f"wrote {page} and {best} (train it with: cnnlab train {best})")
        return 0
    spec, study = sweep.run(args.target, args.trials, args.workers, args.storage, args.runs_root, args.store,
                            log=lambda text: print(text, flush=True))
    best = study.best_trial
    print(f"best: trial {best.number}, {spec.objective} {best.value:.4f}, {best.params}")
    print(f"report: cnnlab sweep report {args.target}" + (f" --storage {args.storage}" if args.storage else ""))
    return 0
