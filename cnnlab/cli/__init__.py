"""The `cnnlab` command: a thin layer over the Python API. Bad input prints one sentence and exits with 2."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UserError
from . import catalog, checks, data, interop, models, rescue, runs, serve, store, style, sweep, train

# Each module declares its commands' arguments beside their handlers; `cnnlab --help` lists the commands in
# this order.
COMMAND_MODULES = (models, checks, store, interop, rescue, sweep, style, serve, catalog, data, train, runs)


def build_parser() -> argparse.ArgumentParser:
    """The whole `cnnlab` command line: every command, its arguments, and its handler (`func`)."""
    parser = argparse.ArgumentParser(prog="cnnlab", description="Describe, train and understand CNN image classifiers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
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
