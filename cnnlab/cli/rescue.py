"""`cnnlab rescue MODEL --data NAME [--budget 15]`: fix, try, keep what helps, and train the final model."""
from __future__ import annotations

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
                   help="also try batchnorm, padding and wider convs (each listed); the layers are kept otherwise")
    p.add_argument("--name", help="the rescue's folder under RUNS/rescues/ (default MODEL-DATA); the same name "
                   "continues a stopped rescue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-root", help="where runs go (default runs/)")
    add_data_options(p)
    p.set_defaults(func=cmd_rescue)


def cmd_rescue(args) -> int:
    done = rescue.rescue(args.model, args.data, args.budget, name=args.name, data_dir=args.data_dir, root=args.root,
                         allow_architecture=args.change_architecture, seed=args.seed, runs_root=args.runs_root,
                         log=lambda text: print(text, flush=True), final_listeners=[lifecycle.Progress()])
    print("\nWhat each change gave (validation accuracy of the trials; the test set is read once, by the final run):")
    print(done.table)
    print(f"\nfinal model: {done.final.run}  test accuracy {done.final.test_acc:.4f}\n"
          f"the table: {done.folder / 'rescue.md'}; stopped part-way, the same command continues")
    return 0
