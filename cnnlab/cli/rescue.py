"""`cnnlab rescue MODEL --data NAME [--budget 15]`: fix, try, keep what helps, and train the final model."""
from __future__ import annotations

from ..app import lifecycle, rescue


def cmd_rescue(args) -> int:
    done = rescue.rescue(args.model, args.data, args.budget, name=args.name, data_dir=args.data_dir, root=args.root,
                         allow_architecture=args.change_architecture, seed=args.seed, runs_root=args.runs_root,
                         log=lambda text: print(text, flush=True), final_listeners=[lifecycle.Progress()])
    print("\nWhat each change gave (validation accuracy of the trials; the test set is read once, by the final run):")
    print(done.table)
    print(f"\nfinal model: {done.final.run}  test accuracy {done.final.test_acc:.4f}\n"
          f"the table: {done.folder / 'rescue.md'}; stopped part-way, the same command continues")
    return 0
