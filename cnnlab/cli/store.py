"""`cnnlab runs | compare | report`: the run store and what is read from it."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def _store(args):
    from ..track.store import Store
    return Store(args.store)


def cmd_runs(args) -> int:
    from ..track.compare import LIST_COLUMNS, select, table
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
        from ..fsutil import write_text
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
    from ..track.compare import compare
    from ..viz.curves import plot_curves
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
    from ..viz.report import write_report
    path = write_report(_resolve_run_dir(args.run, args.store), args.image, args.format)
    print(f"wrote {path}")
    return 0


def _resolve_run_dir(ref: str, store_path) -> str:
    """A run directory path, or a run name from the store."""
    if Path(ref).is_dir():
        return ref
    from ..track.store import Store
    return Store(store_path).find(ref)["path"]
