"""The `cnnlab` command: a thin layer over the Python API. Bad input prints one sentence and exits with 2."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UserError
from .models import (cmd_recipes, cmd_data_info, cmd_data_show, cmd_export, cmd_import, cmd_lint, cmd_models, cmd_schema,
                     cmd_summary)
from .runs import cmd_doctor, cmd_eval, cmd_lr_find, cmd_predict, cmd_resume, cmd_sanity, cmd_stop, cmd_train
from .rescue import cmd_rescue
from .serve import cmd_serve
from .style import cmd_style
from .sweep import cmd_sweep
from .store import cmd_compare, cmd_report, cmd_runs


def _add_data_args(p):
    p.add_argument("--data-dir", help="folder holding <set>/ sub-folders (else CNNLAB_DATA_DIR, the cache, a download)")
    p.add_argument("--root", help="imagefolder: ROOT/<class>/*.png")


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

    p = sub.add_parser("import", help="read a Keras or PyTorch model into a cnnlab model file",
                       description="Read a model's architecture (not its weights) into a cnnlab model file with a "
                                   "comment per layer, then print its summary and lint. Keras code is read, never "
                                   "run: a Sequential model, its model.add(...) lines alone, or the functional API "
                                   "(Input, Add, Concatenate, Model(inputs, outputs)); also Keras JSON and .keras "
                                   "files. A PyTorch nn.Module is made with no arguments and traced with torch.fx "
                                   "(from a file, only its imports, definitions and constants run). Branches "
                                   "become residual and concat blocks.")
    p.add_argument("file", help="Keras code (.py), model.to_json() output, a .keras file, - for standard input, or "
                                "a PyTorch module: their_net.py:Net, package.module:Net, or their_net.py")
    p.add_argument("-o", "--out", help="model file to write (default: FILE's name with .yaml)")
    p.add_argument("--data", help="data set to check it against, and to trace a PyTorch module on (default: from "
                                  "its input shape, else cifar10)")
    p.add_argument("--overwrite", action="store_true")
    _add_data_args(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a trained run's model as ONNX, TorchScript or safetensors")
    p.add_argument("run", help="run directory")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"], default="onnx")
    p.add_argument("-o", "--out", help="file to write (default: model.onnx etc. in the run directory)")
    p.add_argument("--input", choices=["float", "uint8"], default="float",
                   help="what the exported model takes: float images in [0, 1] (default) or uint8 0..255")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("rescue", help="take a stuck model (config, model file, run, Keras or PyTorch source) and "
                       "let the doctor fix, try and keep what helps within a compute budget")
    p.add_argument("model", help="a training config, a model file, a run directory, a named architecture, or a "
                   "Keras/PyTorch source (file.py, file.py:Class, package.module:Class)")
    p.add_argument("--data", help="data set (default: the config's, else cifar10)")
    p.add_argument("--budget", default="15", help="compute for the search and the final run: epochs of the "
                   "training set (15, the default) or PFLOP (0.2pflop)")
    p.add_argument("--change-architecture", action="store_true",
                   help="also try batchnorm, padding and wider convs (each listed); the layers are kept otherwise")
    p.add_argument("--name", help="the rescue's folder under RUNS/rescues/ (default MODEL-DATA); the same name "
                   "continues a stopped rescue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-root", help="where runs go (default runs/)")
    _add_data_args(p)
    p.set_defaults(func=cmd_rescue)

    p = sub.add_parser("sweep", help="hyperparameter sweep with Optuna (or `cnnlab sweep report NAME`)")
    p.add_argument("target", help="a sweep file (SWEEP.yaml), or `report`")
    p.add_argument("name", nargs="?", help="with `report`: the sweep file or the sweep's name")
    p.add_argument("--trials", type=int, help="number of trials (overrides the file's `trials`)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study")
    p.add_argument("--storage", help="an RDB URL (postgresql://user@host/db) for workers on several machines")
    p.add_argument("--runs-root", help="where trial runs and runs/sweeps/NAME go (default runs/, or CNNLAB_RUNS)")
    p.add_argument("--store", help="the run store (default <runs-root>/cnnlab.db)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("style", help="style transfer: CONTENT STYLE (Gatys), `train STYLE --images DIR`, "
                                     "`apply NET PHOTO...` (fast feed-forward)")
    p.add_argument("args", nargs="+", metavar="ARG", help="CONTENT STYLE | train STYLE | apply NET PHOTO...")
    p.add_argument("-o", "--out", help="output image (Gatys), network file (train) or folder (apply)")
    p.add_argument("--size", type=int, default=256, help="longer side of the images, in pixels (default 256)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--style-weight", type=float, default=10.0, help="weight of the Gram-matrix (style) loss")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--tv-weight", type=float, default=1e-3)
    p.add_argument("--loss-net", default="random",
                   help="random (default), a cnnlab run directory, or a VGG-19/16 weights file")
    p.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                   help="adam (default: 2x faster a step here, and it never stalled) or lbfgs (Gatys's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["content", "noise"], default="content", help="start from the content image or noise")
    p.add_argument("--save-every", type=int, help="also write the image every N steps")
    p.add_argument("--images", help="train: a folder of photos to train the fast network on")
    p.add_argument("--batch", type=int, default=4, help="train: photos per step")
    p.set_defaults(func=cmd_style)

    p = sub.add_parser("serve", help="the web app: build a model, train it live, compare runs, see what it sees")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-remote", action="store_true", help="needed with a --host other than loopback")
    p.add_argument("--runs", default="runs", help="runs directory (its cnnlab.db is the store)")
    p.add_argument("--data-dir", help="folder holding the data sets (else CNNLAB_DATA_DIR, the cache)")
    p.add_argument("--threads", type=int, help="torch threads for the training worker")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("schema", help="print the JSON Schema of the model language or the training config")
    p.add_argument("what", choices=["model", "config"])
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("models", help="list the named architectures")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("recipes", help="list the shipped training recipes, their FLOP budgets and measured results")
    p.add_argument("--show", metavar="NAME", help="print a recipe's YAML (copy it to change it)")
    p.set_defaults(func=cmd_recipes)

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
    p.add_argument("--nproc", type=int, help="data-parallel ranks on this machine (DDP; gloo on CPU, NCCL on CUDA)")
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


def exit_now(code: int) -> None:
    """End the `cnnlab` process without Python's teardown of every module and object: 0.3 s for torch alone,
    0.9 s after a training run (2-core Xeon), 1% of cifar10-90's wall time. Everything cnnlab writes is written
    and closed by then; atexit handlers still run (logging, TensorBoard) and stdio is flushed. Where a thread
    is still at work or torch.distributed is up, the ordinary exit waits for them instead."""
    import atexit
    import threading
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    dist = sys.modules.get("torch.distributed")
    if busy or (dist is not None and dist.is_available() and dist.is_initialized()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or vanished reader: nothing left to say
            pass
    os._exit(code)


def entry() -> None:
    """The `cnnlab` command (and `python -m cnnlab`)."""
    exit_now(main())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
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
