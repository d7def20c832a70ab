"""`cnnlab rescue MODEL --data NAME [--budget 15]`: fix, try, keep what helps, and train the final model."""
from __future__ import annotations

import signal
import sys
import threading

from ..app import lifecycle, rescue
from .options import add_data_options


def register(sub) -> None:
    p = sub.add_parser("rescue", help="take a stuck model (config, model file, run, Keras or PyTorch source) and "
                       "let the doctor fix, try and keep what helps within a compute budget")
    p.add_argument("model", help="a training config, a model file, a run directory, a named architecture, or a "
                   "Keras/PyTorch source (file.py, file.py:Class, package.module:Class)")
    p.add_argument("--data", help="data set (default: the config's, else cifar10)")
    p.add_argument("--budget", default="15", help="compute for the search and the final run: epochs of the "
                   "training set (15, the default) or PFLOP (0.2pflop)")
    p.add_argument("--change-architecture", action="store_true",
                   help="let the doctor change the layers too (batchnorm, padding, relu, lint's architecture fixes; each "
                   "listed); otherwise the layers are kept and those fixes are only forecast")
    p.add_argument("--name", help="the rescue's folder under RUNS/rescues/ (default MODEL-DATA); the same name "
                   "continues a stopped rescue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-root", help="where runs go (default runs/)")
    add_data_options(p)
    p.set_defaults(func=cmd_rescue)


def cmd_rescue(args) -> int:
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, _asks(stop)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        done = rescue.rescue(args.model, args.data, args.budget, name=args.name, data_dir=args.data_dir,
                             root=args.root, allow_architecture=args.change_architecture, seed=args.seed,
                             runs_root=args.runs_root, log=lambda text: print(text, flush=True),
                             final_listeners=[lifecycle.Progress()], stop=stop)
    except rescue.RescueStopped as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 130  # what a shell reports for an interrupted command
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print("\nThe race (validation accuracy at the rung; the test set is read once, by the final run):")
    print(done.table)
    print(f"\nfinal model: {done.final.run}  test accuracy {done.final.test_acc:.4f}\n"
          f"the table: {done.folder / 'rescue.md'}; the floor as a config: {done.folder / 'floor.yaml'}")
    return 0


def _asks(stop: threading.Event):
    """Ctrl-C or SIGTERM: stop after the current batch (a second Ctrl-C ends the process at once)."""
    def handler(sig, frame):
        if stop.is_set() and sig == signal.SIGINT:
            raise KeyboardInterrupt
        print("\nstopping after the current batch...", file=sys.stderr, flush=True)
        stop.set()
    return handler
