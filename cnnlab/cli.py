"""The `cnnlab` command: a thin layer over the Python API. Bad input prints one sentence and exits with 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import UserError


def _add_data_args(p):
    p.add_argument("--data-dir", help="folder holding <set>/ sub-folders (else CNNLAB_DATA_DIR, the cache, a download)")
    p.add_argument("--root", help="imagefolder: ROOT/<class>/*.png")


def _input_for(args) -> tuple[tuple, int]:
    """Input shape and class count for a data set: known for the built-in sets, read for an image folder."""
    from .data import SOURCES, load_dataset
    name = args.data
    if name in SOURCES:
        return SOURCES[name].input_shape, SOURCES[name].num_classes
    ds = load_dataset(name, args.data_dir, root=args.root)
    return ds.input_shape, ds.num_classes


def cmd_summary(args) -> int:
    from .diagnose.lint import lint, render as render_lint
    from .models import build_model
    from .models.summary import render, summarize
    model = build_model(*_spec_and_data(args))
    print(render(summarize(model), args.batch_size))
    findings = lint(model)
    if findings:
        print(render_lint(findings))
    return 0


def _spec_and_data(args):
    """The model argument of summary/lint (a model YAML, a train config, or a registered name), with the input
    shape and class count of the data set it is for."""
    from .yamlio import load_yaml
    spec = args.model
    if spec.endswith((".yaml", ".yml")):
        located = load_yaml(spec)
        if isinstance(located.data, dict) and "model" in located.data and "layers" not in located.data:
            if args.data is None and isinstance(located.data.get("data"), dict):
                args.data = located.data["data"].get("name")
            spec = located.sub(("model",))
            if isinstance(spec.data, str) and spec.data.endswith((".yaml", ".yml")):
                spec = spec.data
        else:
            spec = located
    args.data = args.data or "cifar10"
    shape, classes = _input_for(args)
    return spec, shape, classes


def cmd_lint(args) -> int:
    """Findings for the model; one that cannot be built gets its error and every finding still possible."""
    from .diagnose.lint import lint_spec, render
    error, findings = lint_spec(*_spec_and_data(args))
    if error is not None:
        if findings:
            print(render(findings))
        raise error
    print(render(findings))
    return 1 if findings and args.strict else 0


def cmd_doctor(args) -> int:
    from .diagnose.doctor import diagnose
    from .train import Run
    from .diagnose.facts import facts_for_run
    run = Run(args.run_dir)
    verdict = diagnose(run.metrics, len(run.data_info["classes"]), facts_for_run(run))
    print(json.dumps(verdict.as_dict(), indent=2) if args.json else verdict.render())
    return 0


def _overrides(args) -> list[str]:
    """--set pairs plus the shortcut flags (--data, --data-dir, --model) as overrides, shortcuts last."""
    overrides = list(args.set or [])
    for flag, key in (("data", "data.name"), ("data_dir", "data.dir"), ("model", "model")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return overrides


def _session(args):
    from .train.session import Session, prepare
    cfg, spec = prepare(args.config, _overrides(args), {"batch_size": getattr(args, "batch_size", None)})
    return Session(cfg, spec=spec)


def cmd_lr_find(args) -> int:
    from .diagnose.lr_find import lr_find
    session = _session(args)
    out = Path(args.out or "lr-find.png")
    finding = lr_find(session, args.start_lr, args.end_lr, args.steps, plot=out)
    print(finding.render())
    print(f"wrote {out}")
    return 0


def cmd_sanity(args) -> int:
    from .diagnose.sanity import sanity_check
    report = sanity_check(_session(args), args.batch, args.steps)
    print(report.render())
    return 0 if report.passed else 1


def cmd_models(args) -> int:
    from .models.registry import describe, list_models, options
    for name in list_models(args.pattern):
        print(f"{name:10s} {describe(name)}  [options: {', '.join(options(name))}]")
    return 0


def cmd_data_info(args) -> int:
    from collections import Counter
    from .data import load_dataset
    ds = load_dataset(args.name, args.data_dir, args.val_split, root=args.root)
    c, h, w = ds.input_shape
    mean, std = ds.channel_stats()
    print(f"{ds.name}: {len(ds.train_x):,} training, {0 if ds.val_x is None else len(ds.val_x):,} validation, "
          f"{len(ds.test_x):,} test images of {h}x{w}, {c} channel{'s' if c > 1 else ''}, {ds.num_classes} classes")
    print(f"channel mean {', '.join(f'{m:.4f}' for m in mean)}   std {', '.join(f'{s:.4f}' for s in std)}")
    train, test = Counter(ds.train_y.tolist()), Counter(ds.test_y.tolist())
    width = max(len(n) for n in ds.classes)
    print(f"{'class':{width}s}  {'train':>7s}  {'test':>6s}")
    for i, name in enumerate(ds.classes):
        print(f"{name:{width}s}  {train[i]:7,d}  {test[i]:6,d}")
    return 0


def cmd_data_show(args) -> int:
    import torch
    from . import config as config_mod
    from .data import load_dataset
    from .train.augment import Augmenter
    from .viz.grid import image_grid
    ds = load_dataset(args.name, args.data_dir, root=args.root)
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(ds.train_x), generator=gen)[:args.count]
    images = ds.train_x[idx]
    title = f"{ds.name}: {args.count} training images"
    if args.augment:
        cfg, _ = config_mod.resolve(args.augment if Path(args.augment).exists() else {"augment": args.augment})
        settings = config_mod.augment_settings(cfg, ds.name if ds.name in config_mod.AUGMENT_DEFAULTS else "imagefolder")
        augmenter = Augmenter(settings, [0.0] * ds.input_shape[0], [1.0] * ds.input_shape[0], torch.device("cpu"))
        images = augmenter.augment(images, gen)
        title += ", augmented: " + ", ".join(f"{k}={v}" for k, v in settings.items()
                                             if v not in (0, 0.0, "none") and k not in ("crop_mode", "fill"))
    out = Path(args.out or f"{ds.name}-samples.png")
    image_grid(images, [ds.classes[i] for i in ds.train_y[idx].tolist()], out, title=title)
    print(f"wrote {out}")
    return 0


def cmd_train(args) -> int:
    from .train import Job
    from .train.progress import Progress
    overrides = _overrides(args)
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "device": args.device,
             "seed": args.seed, "precision": args.precision}
    if args.tensorboard:
        overrides.append("tensorboard=true")
    if args.dry_run:
        return _dry_run(args.config, overrides, flags)
    job = Job(args.config, overrides, flags, run_dir=args.run_dir, runs_root=args.runs_root,
              overwrite=args.overwrite, listeners=[Progress(quiet=args.quiet)],
              store=False if args.no_store else (args.store or True))
    return _run_job(job)


def _dry_run(config, overrides, flags) -> int:
    """Check the config and the model against the data set, print the summary and lint; train nothing."""
    from .diagnose.lint import lint, render as render_lint
    from .data import SOURCES, load_dataset
    from .models import build_model
    from .models.summary import render, summarize
    from .train.session import prepare
    cfg, spec = prepare(config, overrides, flags)
    d = cfg["data"]
    if d["name"] in SOURCES:
        shape, classes = SOURCES[d["name"]].input_shape, SOURCES[d["name"]].num_classes
    else:
        ds = load_dataset(d["name"], d["dir"], root=d["root"], image_size=d["image_size"], download=d["download"])
        shape, classes = ds.input_shape, ds.num_classes
    model = build_model(spec, shape, classes)
    print(render(summarize(model), cfg["batch_size"]))
    print(render_lint(lint(model)))
    print(f"config OK: {cfg['name']} on {d['name']}, {cfg['epochs']} epochs of batch {cfg['batch_size']} "
          "(--dry-run: nothing trained or written)")
    return 0


def _run_job(job) -> int:
    """Run a job in this thread; SIGTERM asks it to stop cleanly (marked interrupted, resumable)."""
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *_: job.stop())
    try:
        job.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def cmd_resume(args) -> int:
    from .train import Job
    from .train.progress import Progress
    return _run_job(Job.resume(args.run_dir, listeners=[Progress(quiet=args.quiet)]))


def cmd_stop(args) -> int:
    from .rundir import request_stop
    path = request_stop(_resolve_run_dir(args.run, args.store))
    print(f"asked {path.parent} to stop after its current batch (wrote {path.name}); "
          f"`cnnlab resume {path.parent}` continues it")
    return 0


def cmd_eval(args) -> int:
    from .train import evaluate_run
    result = evaluate_run(args.run_dir, args.data, args.data_dir, args.split)
    line = f"{args.run_dir}: {result['split']} accuracy {result['acc']:.4f}  loss {result['loss']:.4f}  " \
           f"({result['images']:,} images)"
    if "acc_tta" in result:
        line += f"  with flip TTA {result['acc_tta']:.4f}"
    print(json.dumps(result) if args.json else line)
    return 0


def cmd_predict(args) -> int:
    from .train.predict import predict
    results = predict(args.run_dir, args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        print(item["file"])
        for rank, (name, p) in enumerate(item["top"], 1):
            print(f"  {rank}. {name:16s} {p:.3f}")
    return 0


def _store(args):
    from .track.store import Store
    return Store(args.store)


def cmd_runs(args) -> int:
    from .track.compare import LIST_COLUMNS, select, table
    store = _store(args)
    action = args.runs_command or "list"
    if action == "list":
        sort = f"-{args.sort.lstrip('-')}" if args.sort and args.desc else args.sort
        runs = select(store.runs(), args.filter, sort)
        print(table(runs, LIST_COLUMNS) if runs else f"no runs recorded in {store.path}")
    elif action == "show":
        run = store.find(args.run)
        for key, value in run.items():
            if key not in ("config", "result"):
                print(f"{key:17s} {value}")
        rows = store.metrics(run["id"])
        if rows:
            print()
            print(table(rows, ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds")))
    elif action == "reindex":
        root = args.root or store.path.parent
        print(f"indexed {store.reindex(root)} runs from {root} into {store.path}")
    elif action == "tag":
        run = store.find(args.run)
        tags = set(run["tags"]) | set(args.tags)
        tags -= set(args.remove or [])
        store.set_tags(run["id"], sorted(tags))
        print(f"{run['id']}: tags {', '.join(sorted(tags)) or '(none)'}")
    elif action == "note":
        run = store.find(args.run)
        store.set_note(run["id"], " ".join(args.text))
        print(f"{run['id']}: note saved")
    elif action == "export":
        import csv
        import io
        from .fsutil import write_text
        runs = store.runs()
        columns = [c for c in (runs[0] if runs else {}) if c not in ("config", "result")]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in runs:
            writer.writerow({**r, "tags": ",".join(r["tags"])})
        write_text(args.out, buffer.getvalue())
        print(f"wrote {len(runs)} runs to {args.out}")
    return 0


def cmd_compare(args) -> int:
    from .track.compare import compare
    from .viz.curves import plot_curves
    store = _store(args)
    runs = [store.find(ref) for ref in args.runs]
    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    config_table, result_table = compare(runs)
    print("Config keys that differ:")
    print(config_table)
    print()
    print("Results:")
    print(result_table)
    out = Path(args.out or "compare.png")
    plot_curves({r["id"]: store.metrics(r["id"]) for r in runs}, out, "compare")
    print(f"\nwrote {out}")
    return 0


def cmd_report(args) -> int:
    from .viz.report import write_report
    path = write_report(_resolve_run_dir(args.run, args.store), args.image, args.format)
    print(f"wrote {path}")
    return 0


def _resolve_run_dir(ref: str, store_path) -> str:
    """A run directory path, or a run name from the store."""
    if Path(ref).is_dir():
        return ref
    from .track.store import Store
    return Store(store_path).find(ref)["path"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description="Describe, train and understand CNN image classifiers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("summary", help="layer table, parameters and MACs of a model")
    p.add_argument("model", help="model YAML, train config YAML, or a registered name (see `cnnlab models`)")
    p.add_argument("--data", help="data set giving the input shape and classes (default cifar10)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size for the activation-memory estimate")
    _add_data_args(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("lint", help="warnings about a model before training: what holds it back, and the fix")
    p.add_argument("model", help="model YAML, train config YAML, or a registered name")
    p.add_argument("--data", help="data set giving the input shape and classes (default cifar10)")
    p.add_argument("--strict", action="store_true", help="exit with 1 when there are findings")
    _add_data_args(p)
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("doctor", help="diagnose a run from its curves and prescribe the next experiment")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    for name, func, text in (("lr-find", cmd_lr_find, "learning-rate range test: plot and suggestion"),
                             ("sanity", cmd_sanity, "can the model memorise one small batch? (bugs, not tuning)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", nargs="?", help="config YAML (optional: the defaults apply)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE")
        p.add_argument("--model")
        p.add_argument("--data")
        p.add_argument("--data-dir")
        p.add_argument("--steps", type=int, default=100 if name == "lr-find" else 300)
        if name == "lr-find":
            p.add_argument("--start-lr", type=float, default=1e-6)
            p.add_argument("--end-lr", type=float, default=10.0)
            p.add_argument("--batch-size", type=int)
            p.add_argument("--out", help="PNG path (default lr-find.png)")
        else:
            p.add_argument("--batch", type=int, default=64, help="images in the batch to memorise")
        p.set_defaults(func=func)

    p = sub.add_parser("runs", help="the recorded runs: list, show, tag, note, reindex, export")
    p.add_argument("--store", help="the run store (default runs/cnnlab.db, or CNNLAB_STORE)")
    p.add_argument("--filter", action="append", metavar="EXPR", help="e.g. data=cifar10, test_acc>0.8, tag=x, model~res")
    p.add_argument("--sort", help="field to sort by (e.g. test_acc); --sort=-test_acc or --desc for descending")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.set_defaults(func=cmd_runs, runs_command=None)
    runs = p.add_subparsers(dest="runs_command")
    q = runs.add_parser("show", help="one run: its fields and per-epoch metrics")
    q.add_argument("run")
    q = runs.add_parser("reindex", help="rebuild the store from the run directories")
    q.add_argument("root", nargs="?", help="folder of run directories (default: the store's folder)")
    q = runs.add_parser("tag", help="add (or --remove) tags")
    q.add_argument("run")
    q.add_argument("tags", nargs="*")
    q.add_argument("--remove", action="append")
    q = runs.add_parser("note", help="attach a free-text note")
    q.add_argument("run")
    q.add_argument("text", nargs="+")
    q = runs.add_parser("export", help="write the store as CSV")
    q.add_argument("out")

    p = sub.add_parser("compare", help="config differences, results, and overlaid curves of several runs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--store")
    p.add_argument("--out", help="PNG path for the overlaid curves (default compare.png)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="write report.html (or --format png figures) into a run directory")
    p.add_argument("run", help="run directory or run name")
    p.add_argument("--image", type=int, default=0, help="test image index for the feature maps")
    p.add_argument("--format", choices=["html", "png"], default="html")
    p.add_argument("--store")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("models", help="list the named architectures")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_models)

    data = sub.add_parser("data", help="inspect data sets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("info", help="counts per class, image size, channel mean/std")
    p.add_argument("name")
    p.add_argument("--val-split", type=float)
    _add_data_args(p)
    p.set_defaults(func=cmd_data_info)
    p = data.add_parser("show", help="write a PNG grid of samples with labels")
    p.add_argument("name")
    p.add_argument("--augment", help="a config file (its augment section) or auto / none: show augmented samples")
    p.add_argument("--out", help="PNG path (default NAME-samples.png)")
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    _add_data_args(p)
    p.set_defaults(func=cmd_data_show)

    p = sub.add_parser("train", help="train a model and write a run directory")
    p.add_argument("config", nargs="?", help="config YAML (optional: the defaults apply)")
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
    p.add_argument("--dry-run", action="store_true",
                   help="check the config and model against the data set, print summary and lint, train nothing")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("stop", help="ask a running training (from any process) to stop after its current batch")
    p.add_argument("run", help="run directory or run name")
    p.add_argument("--store")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("eval", help="re-evaluate a run's final model")
    p.add_argument("run_dir")
    p.add_argument("--data", help="another data set with the same classes and image size")
    p.add_argument("--data-dir")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes for image files")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"cnnlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnlab runs | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
