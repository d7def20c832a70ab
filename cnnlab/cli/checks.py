"""`cnnlab lr-find | sanity | doctor`: is a model learning? Before a long run, the learning-rate range test
and the one-batch sanity check try a config; after one, the doctor reads the run's curves."""
from __future__ import annotations

import json

from ..app import checks, runs
from .overrides import config_overrides, flag_overrides


def register(sub) -> None:
    p = sub.add_parser("doctor", help="diagnose a run from its curves and prescribe the next experiment")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("lr-find", help="learning-rate range test: plot and suggestion")
    _add_config_options(p, steps=100)
    p.add_argument("--start-lr", type=float, default=1e-6)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--out", help="PNG path (default lr-find.png)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("sanity", help="can the model memorise one small batch? (bugs, not tuning)")
    _add_config_options(p, steps=300)
    p.add_argument("--batch", type=int, default=64, help="images in the batch to memorise")
    p.set_defaults(func=cmd_sanity)


def _add_config_options(p, steps: int) -> None:
    """The config to try, given as `cnnlab train` takes it, and how many optimizer steps the check takes."""
    p.add_argument("config", nargs="?", help="config YAML (optional: the defaults apply)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--model")
    p.add_argument("--data")
    p.add_argument("--data-dir")
    p.add_argument("--steps", type=int, default=steps)


def cmd_doctor(args) -> int:
    verdict = runs.diagnose(runs.open_run(args.run_dir))
    print(json.dumps(verdict.as_dict(), indent=2) if args.json else verdict.render())
    return 0


def cmd_lr_find(args) -> int:
    finding = checks.lr_find(args.config, config_overrides(args) + flag_overrides(args, ["batch_size"]),
                             args.start_lr, args.end_lr, args.steps, args.out or "lr-find.png")
    print(finding.render())
    print(f"wrote {args.out or 'lr-find.png'}")
    return 0


def cmd_sanity(args) -> int:
    report = checks.sanity(args.config, config_overrides(args), args.batch, args.steps)
    print(report.render())
    return 0 if report.passed else 1
