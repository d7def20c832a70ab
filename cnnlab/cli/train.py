"""`cnnlab train | resume | stop`: a training run started, continued, or asked to stop."""
from __future__ import annotations

from ..app import checks, lifecycle, runs
from .options import add_folder_options
from .overrides import config_overrides, flag_overrides


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory")
    p.add_argument("config", nargs="?", help="config YAML (optional: the defaults apply)")
    p.add_argument("--recipe", help="start from a shipped recipe instead of the defaults (`cnnlab recipes`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. optimizer.lr=0.05")
    p.add_argument("--model", help="shortcut for --set model=...")
    p.add_argument("--data", help="shortcut for --set data.name=...")
    p.add_argument("--data-dir", help="shortcut for --set data.dir=...")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--run-dir", help="where to write the run (default runs/<date>-<time>-<name>)")
    p.add_argument("--runs-root", help="parent of new run directories (default runs/, or CNNLAB_RUNS)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --run-dir")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument("--store", help="record the run in this SQLite store (default runs/cnnlab.db, or CNNLAB_STORE)")
    p.add_argument("--no-store", action="store_true", help="do not record the run in the store")
    p.add_argument("--tensorboard", action="store_true", help="also log to <run>/tensorboard")
    p.add_argument("--weights", help="start from trained weights: a .safetensors or .pt/.pth file, a training "
                                     "script's checkpoint, or a run directory (classifier made new for the classes)")
    p.add_argument("--logger", action="append", metavar="NAME",
                   help="log the run to NAME: mlflow, wandb, tensorboard or csv (repeat for several; replaces the "
                        "config's `loggers`; docs/loggers.md)")
    p.add_argument("--nproc", type=int, help="data-parallel ranks on this machine (DDP; gloo on CPU, NCCL on CUDA)")
    add_folder_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and model against the data set, print summary and lint, train nothing")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--nproc", type=int, help="data-parallel ranks on this machine")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("stop", help="ask a running training (from any process) to stop after its current batch")
    p.add_argument("run", help="run directory or run name")
    p.add_argument("--store")
    p.set_defaults(func=cmd_stop)


def cmd_train(args) -> int:
    """The flags become overrides here, and go to cnnlab.app in one call: the trainer is reached from there,
    each module passing them on once (docs/app-layer.md)."""
    overrides = config_overrides(args) + (["tensorboard=true"] if args.tensorboard else []) + flag_overrides(args)
    overrides += [f"data.{key}=true" for key in ("strict", "skip_empty") if getattr(args, key)]
    if args.logger:
        overrides.append(("loggers", list(args.logger), f"--logger {' --logger '.join(args.logger)}"))
    if args.dry_run and not lifecycle.spreads(args.nproc):  # with --nproc, each rank checks (as it always has)
        print(checks.dry_run(args.config, overrides).render())
        return 0
    return lifecycle.train_here(args.config, overrides, nproc=args.nproc, argv=_without_nproc(args.argv),
                                run_dir=args.run_dir, runs_root=args.runs_root, overwrite=args.overwrite,
                                quiet=args.quiet, store=False if args.no_store else (args.store or True))


def cmd_resume(args) -> int:
    return lifecycle.resume_here(args.run_dir, nproc=args.nproc, argv=_without_nproc(args.argv), quiet=args.quiet)


def _without_nproc(argv: list[str]) -> list[str]:
    """This command as typed, less its --nproc: what each data-parallel rank runs."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--nproc":
            skip = True
            continue
        if not item.startswith("--nproc="):
            kept.append(item)
    return kept


def cmd_stop(args) -> int:
    path = lifecycle.stop(runs.open_run(args.run, args.store))
    print(f"asked {path.parent} to stop after its current batch (wrote {path.name}); "
          f"`cnnlab resume {path.parent}` continues it")
    return 0
