"""`cnnlab train | resume | stop | eval | predict | doctor | lr-find | sanity`: runs and what they tell. Each
command parses its flags, calls cnnlab.app, and prints what comes back."""
from __future__ import annotations

import json

from ..app import checks, lifecycle, runs
from ..app.config import Override

# The short flags of `cnnlab train` and the config key each sets. They come after every --set, and an error
# names the flag: `--epochs 0: epochs must be an integer from 1 to 100,000, got 0`.
SHORT_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "optimizer.lr", "device": "device",
               "seed": "seed", "precision": "precision", "recipe": "recipe"}


def _overrides(args) -> list[str]:
    """--set pairs plus the shortcut flags (--data, --data-dir, --model) as overrides, shortcuts last."""
    overrides = list(args.set or [])
    for flag, key in (("data", "data.name"), ("data_dir", "data.dir"), ("model", "model")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return overrides


def _flag_overrides(args, flags=tuple(SHORT_FLAGS)) -> list:
    """The short flags given, as overrides holding the flag's value as argparse typed it (an --lr of 1e-05
    stays a number; as `--set` text YAML would read it as a string)."""
    return [Override(SHORT_FLAGS[flag], getattr(args, flag), f"--{flag.replace('_', '-')} {getattr(args, flag)}")
            for flag in flags if getattr(args, flag, None) is not None]


def cmd_train(args) -> int:
    launched = _launched(args)
    if launched is not None:
        return launched
    overrides = _overrides(args)
    if args.tensorboard:
        overrides.append("tensorboard=true")
    overrides += _flag_overrides(args)
    if args.dry_run:
        print(checks.dry_run(args.config, overrides).render())
        return 0
    job = lifecycle.Job(args.config, overrides, run_dir=args.run_dir, runs_root=args.runs_root,
                   overwrite=args.overwrite, listeners=[lifecycle.Progress(quiet=args.quiet)],
                   store=False if args.no_store else (args.store or True))
    return _run_job(job)


def _run_job(job) -> int:
    lifecycle.run_here(job)
    return 0


def _launched(args) -> int | None:
    """`--nproc N` (N > 1) outside torchrun: start N ranks of this same command and wait for them."""
    if not getattr(args, "nproc", None) or args.nproc <= 1 or lifecycle.is_rank():
        return None
    argv, skip = [], False
    for item in args.argv:
        if skip:
            skip = False
            continue
        if item == "--nproc":
            skip = True
            continue
        if not item.startswith("--nproc="):
            argv.append(item)
    return lifecycle.launch(args.nproc, argv)


def cmd_resume(args) -> int:
    launched = _launched(args)
    if launched is not None:
        return launched
    return _run_job(lifecycle.Job.resume(args.run_dir, listeners=[lifecycle.Progress(quiet=args.quiet)]))


def cmd_stop(args) -> int:
    path = lifecycle.stop(runs.open_run(args.run, args.store))
    print(f"asked {path.parent} to stop after its current batch (wrote {path.name}); "
          f"`cnnlab resume {path.parent}` continues it")
    return 0


def cmd_eval(args) -> int:
    result = runs.evaluate(runs.open_run(args.run_dir), args.data, args.data_dir, args.split)
    split = result["split"]
    line = f"{args.run_dir}: {split} accuracy {result[f'{split}_acc']:.4f}  loss {result[f'{split}_loss']:.4f}  " \
           f"({result['images']:,} images)"
    if f"{split}_acc_tta" in result:
        line += f"  with {result['tta']} TTA {result[f'{split}_acc_tta']:.4f}"
    print(json.dumps(result) if args.json else line)
    return 0


def cmd_predict(args) -> int:
    results = runs.predict(runs.open_run(args.run_dir), args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        print(item["file"])
        for rank, (name, p) in enumerate(item["top"], 1):
            print(f"  {rank}. {name:16s} {p:.3f}")
    return 0


def cmd_doctor(args) -> int:
    verdict = runs.diagnose(runs.open_run(args.run_dir))
    print(json.dumps(verdict.as_dict(), indent=2) if args.json else verdict.render())
    return 0


def cmd_lr_find(args) -> int:
    finding = checks.lr_find(args.config, _overrides(args) + _flag_overrides(args, ["batch_size"]), args.start_lr,
                             args.end_lr, args.steps, args.out or "lr-find.png")
    print(finding.render())
    print(f"wrote {args.out or 'lr-find.png'}")
    return 0


def cmd_sanity(args) -> int:
    report = checks.sanity(args.config, _overrides(args), args.batch, args.steps)
    print(report.render())
    return 0 if report.passed else 1
