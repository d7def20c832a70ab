"""`cnnlab runs | compare | report`: the run store and what is read from it."""
from __future__ import annotations

from ..app import runs, store as app_store
from ..errors import UserError


def cmd_runs(args) -> int:
    action = args.runs_command or "list"
    if action == "list":
        sort = f"-{args.sort.lstrip('-')}" if args.sort and args.desc else args.sort
        print(app_store.listing(args.store, args.filter, sort))
    elif action == "show":
        print(app_store.show(args.store, args.run))
    elif action == "reindex":
        count, root, path = app_store.reindex(args.store, args.root)
        print(f"indexed {count} runs from {root} into {path}")
    elif action == "tag":
        run_id, tags = app_store.tag(args.store, args.run, args.tags, args.remove or [])
        print(f"{run_id}: tags {', '.join(tags) or '(none)'}")
    elif action == "note":
        print(f"{app_store.note(args.store, args.run, ' '.join(args.text))}: note saved")
    elif action == "export":
        print(f"wrote {app_store.export_csv(args.store, args.out)} runs to {args.out}")
    return 0


def cmd_compare(args) -> int:
    if len(args.runs) < 2:
        raise UserError("compare needs at least two runs")
    config_table, result_table, out = app_store.compare(args.store, args.runs, args.out or "compare.png")
    print("Config keys that differ:")
    print(config_table)
    print()
    print("Results:")
    print(result_table)
    print(f"\nwrote {out}")
    return 0


def cmd_report(args) -> int:
    path = runs.report(runs.open_run(args.run, args.store), args.image, args.format)
    print(f"wrote {path}")
    return 0
