"""`cnnlab runs | compare | report`: the run store and what is read from it."""
from __future__ import annotations

from ..app import runs, store as app_store
from ..errors import UserError


def register(sub) -> None:
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
