"""`cnnlab sweep SWEEP.yaml` and `cnnlab sweep report NAME|SWEEP.yaml`: Optuna sweeps of normal runs."""
from __future__ import annotations

from ..app import sweep
from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("sweep", help="hyperparameter sweep with Optuna (or `cnnlab sweep report NAME`)")
    p.add_argument("target", help="a sweep file (SWEEP.yaml), or `report`")
    p.add_argument("name", nargs="?", help="with `report`: the sweep file or the sweep's name")
    p.add_argument("--trials", type=int, help="number of trials (overrides the file's `trials`)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study")
    p.add_argument("--storage", help="an RDB URL (postgresql://user@host/db) for workers on several machines")
    p.add_argument("--runs-root", help="where trial runs and runs/sweeps/NAME go (default runs/, or CNNLAB_RUNS)")
    p.add_argument("--store", help="the run store (default <runs-root>/cnnlab.db)")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    if args.target == "report":
        if not args.name:
            raise UserError("usage: cnnlab sweep report SWEEP.yaml (or the sweep's name)")
        page, best = sweep.report(args.name, args.runs_root, args.storage)
        print(f"wrote {page} and {best} (train it with: cnnlab train {best})")
        return 0
    spec, study = sweep.run(args.target, args.trials, args.workers, args.storage, args.runs_root, args.store,
                            log=lambda text: print(text, flush=True))
    if not any(t.value is not None for t in study.trials):
        raise UserError(f"sweep {spec.name}: no trial finished (each failed, diverged or was pruned: the lines above "
                        "say how); try another range for the parameters")
    best = study.best_trial
    print(f"best: trial {best.number}, {spec.objective} {best.value:.4f}, {best.params}")
    print(f"report: cnnlab sweep report {args.target}" + (f" --storage {args.storage}" if args.storage else ""))
    return 0
