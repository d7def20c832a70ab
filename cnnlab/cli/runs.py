"""`cnnlab train | resume | stop | eval | predict | doctor | lr-find | sanity`: runs and what they tell."""
from __future__ import annotations

import json
from pathlib import Path

from .store import _resolve_run_dir

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
    from ..config import Override
    return [Override(SHORT_FLAGS[flag], getattr(args, flag), f"--{flag.replace('_', '-')} {getattr(args, flag)}")
            for flag in flags if getattr(args, flag, None) is not None]


def cmd_train(args) -> int:
    launched = _launched(args)
    if launched is not None:
        return launched
    from ..train import Job
    from ..train.progress import Progress
    overrides = _overrides(args)
    if args.tensorboard:
        overrides.append("tensorboard=true")
    overrides += _flag_overrides(args)
    if args.dry_run:
        return _dry_run(args.config, overrides)
    job = Job(args.config, overrides, run_dir=args.run_dir, runs_root=args.runs_root,
              overwrite=args.overwrite, listeners=[Progress(quiet=args.quiet)],
              store=False if args.no_store else (args.store or True))
    return _run_job(job)


def _dry_run(config, overrides) -> int:
    """Check the config and the model against the data set, print the summary and lint; train nothing."""
    from ..diagnose.lint import lint, render as render_lint
    from ..data import SOURCES, load_dataset
    from ..models import build_model
    from ..models.summary import render, summarize
    from ..train.session import prepare
    cfg, spec = prepare(config, overrides)
    d = cfg.data
    if d.name in SOURCES:
        shape, classes = SOURCES[d.name].input_shape, SOURCES[d.name].num_classes
    else:
        ds = load_dataset(d.name, d.dir, root=d.root, image_size=d.image_size, download=d.download)
        shape, classes = ds.input_shape, ds.num_classes
    model = build_model(spec, shape, classes)
    print(render(summarize(model), cfg.batch_size))
    print(render_lint(lint(model)))
    print(f"config OK: {cfg.name} on {d.name}, {cfg.epochs} epochs of batch {cfg.batch_size} "
          "(--dry-run: nothing trained or written)")
    return 0


def _run_job(job) -> int:
    """Run a job in this thread; SIGTERM asks it to stop cleanly (marked interrupted, resumable)."""
    import signal
    from ..train import distributed
    previous = signal.signal(signal.SIGTERM, lambda *_: job.stop())
    try:
        job.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.finish()
    return 0


def _launched(args) -> int | None:
    """`--nproc N` (N > 1) outside torchrun: start N ranks of this same command and wait for them."""
    import os
    from ..train import distributed
    if not getattr(args, "nproc", None) or args.nproc <= 1 or "WORLD_SIZE" in os.environ:
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
    return distributed.launch(args.nproc, argv)


def cmd_resume(args) -> int:
    launched = _launched(args)
    if launched is not None:
        return launched
    from ..train import Job
    from ..train.progress import Progress
    return _run_job(Job.resume(args.run_dir, listeners=[Progress(quiet=args.quiet)]))


def cmd_stop(args) -> int:
    from ..rundir import request_stop
    path = request_stop(_resolve_run_dir(args.run, args.store))
    print(f"asked {path.parent} to stop after its current batch (wrote {path.name}); "
          f"`cnnlab resume {path.parent}` continues it")
    return 0


def cmd_eval(args) -> int:
    from ..train import evaluate_run
    result = evaluate_run(args.run_dir, args.data, args.data_dir, args.split)
    split = result["split"]
    line = f"{args.run_dir}: {split} accuracy {result[f'{split}_acc']:.4f}  loss {result[f'{split}_loss']:.4f}  " \
           f"({result['images']:,} images)"
    if f"{split}_acc_tta" in result:
        line += f"  with {result['tta']} TTA {result[f'{split}_acc_tta']:.4f}"
    print(json.dumps(result) if args.json else line)
    return 0


def cmd_predict(args) -> int:
    from ..train.predict import predict
    results = predict(args.run_dir, args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        print(item["file"])
        for rank, (name, p) in enumerate(item["top"], 1):
            print(f"  {rank}. {name:16s} {p:.3f}")
    return 0


def cmd_doctor(args) -> int:
    from ..diagnose.doctor import diagnose
    from ..train import Run
    from ..diagnose.facts import facts_for_run
    run = Run(args.run_dir)
    verdict = diagnose(run.metrics, len(run.data_info["classes"]), facts_for_run(run))
    print(json.dumps(verdict.as_dict(), indent=2) if args.json else verdict.render())
    return 0


def _session(args):
    from ..train.session import Session, prepare
    cfg, spec = prepare(args.config, _overrides(args) + _flag_overrides(args, ["batch_size"]))
    return Session(cfg, spec=spec)


def cmd_lr_find(args) -> int:
    from ..diagnose.lr_find import lr_find
    session = _session(args)
    out = Path(args.out or "lr-find.png")
    finding = lr_find(session, args.start_lr, args.end_lr, args.steps, plot=out)
    print(finding.render())
    print(f"wrote {out}")
    return 0


def cmd_sanity(args) -> int:
    from ..diagnose.sanity import sanity_check
    report = sanity_check(_session(args), args.batch, args.steps)
    print(report.render())
    return 0 if report.passed else 1
