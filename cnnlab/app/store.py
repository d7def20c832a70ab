"""The run store (cnnlab/track/store.py) as the `runs` and `compare` commands use it: list with filters,
show one, tag, note, rebuild from the directories, export as CSV, compare a few side by side."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import NotFound
from ..fsutil import write_text
from ..track.compare import LIST_COLUMNS, compare as compare_tables, select, table
from ..track.store import Store

METRIC_TABLE = ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds")


def listing(store: str | None, filters: list[str] | None = None, sort: str | None = None) -> str:
    db = Store(store)
    runs = select(db.runs(), filters, sort)
    return table(runs, LIST_COLUMNS) if runs else f"no runs recorded in {db.path}"


def show(store: str | None, ref: str) -> str:
    db = Store(store)
    run = db.find(ref)
    lines = [f"{key:17s} {value}" for key, value in run.items() if key not in ("config", "result")]
    rows = db.metrics(run["id"])
    if rows:
        lines += ["", table(rows, METRIC_TABLE)]
    return "\n".join(lines)


def reindex(store: str | None, root: str | None = None) -> tuple[int, Path, Path]:
    db = Store(store)
    root = Path(root) if root else db.path.parent
    return db.reindex(root), root, db.path


def tag(store: str | None, ref: str, add: list[str], remove: list[str]) -> tuple[str, list[str]]:
    db = Store(store)
    run = db.find(ref)
    tags = clean_tags((set(run["tags"]) | set(add)) - set(remove))
    db.set_tags(run["id"], tags)
    return run["id"], tags


def note(store: str | None, ref: str, text: str) -> str:
    db = Store(store)
    run = db.find(ref)
    db.set_note(run["id"], text)
    return run["id"]


def export_csv(store: str | None, out: str | Path) -> int:
    runs = Store(store).runs()
    columns = [c for c in (runs[0] if runs else {}) if c not in ("config", "result")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in runs:
        writer.writerow({**r, "tags": ",".join(r["tags"])})
    write_text(out, buffer.getvalue())
    return len(runs)


def compare(store: str | None, refs: list[str], out: str | Path) -> tuple[str, str, Path]:
    """(config keys that differ, results side by side, the overlaid curves' PNG)."""
    from ..viz.curves import plot_curves
    db = Store(store)
    runs = [db.find(ref) for ref in refs]
    config_table, result_table = compare_tables(runs)
    path = plot_curves({r["id"]: db.metrics(r["id"]) for r in runs}, Path(out), "compare")
    return config_table, result_table, path


def page_rows(store: str | Path, held: list[tuple] = ()) -> list[dict]:
    """The Runs page's rows: every recorded run, with the one-line message of how it ended (if it said one) and
    the run it was derived from (its config's `parent`, if any); and the runs a server's worker holds — (id,
    name, status): their status is the worker's, and one not yet started is not in the store yet."""
    import json
    rows = []
    for r in Store(store).runs():
        row = {k: v for k, v in r.items() if k not in ("config", "result")}
        row["message"] = json.loads(r["result"] or "{}").get("message")
        config = json.loads(r["config"] or "{}")
        row["parent"] = config.get("parent")
        row["imagenet"] = config.get("weights") == "imagenet"  # started from ImageNet's weights (no parent run)
        rows.append(row)
    by_id = {r["id"]: r for r in rows}
    for run_id, name, status in held:
        if run_id in by_id:
            by_id[run_id]["status"] = status
        else:
            rows.append({"id": run_id, "name": name, "status": status, "tags": []})
    return rows


def clean_tags(tags) -> list[str]:
    """Tags as stored: trimmed, at most 40 characters each, no empties or repeats, sorted."""
    return sorted({t.strip()[:40] for t in tags if t.strip()})


def set_tags(store: str | Path, run_id: str, tags: list[str]) -> list[str]:
    db = Store(store)
    if not db.has(run_id):
        raise NotFound(f"{run_id} is not in the run store yet (it has not started); tag it once it runs")
    clean = clean_tags(tags)
    db.set_tags(run_id, clean)
    return clean
