"""The run store: a SQLite index over run directories (which stay the source of truth for files).

Default location `<runs root>/cnnlab.db` (runs/ or CNNLAB_RUNS), or CNNLAB_STORE / --store.
Several `train` processes write at once: WAL mode, one short transaction per write, and a retry when the
database is busy. A writer killed mid-transaction leaves the store readable (SQLite rolls it back).
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..events import Listener
from ..process import alive

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,            -- the run directory's name
    path TEXT NOT NULL,
    name TEXT, model TEXT, data TEXT, status TEXT,
    created_at TEXT, finished_at TEXT,
    epochs INTEGER, epochs_completed INTEGER,
    params INTEGER, macs INTEGER,
    test_acc REAL, final_acc REAL, val_acc REAL, wall_time_s REAL, device TEXT,
    config TEXT, result TEXT,
    tags TEXT DEFAULT '[]', note TEXT DEFAULT '', pid INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL,
    lr REAL, loss REAL, acc REAL, val_loss REAL, val_acc REAL, test_loss REAL, test_acc REAL,
    seconds REAL, img_per_s REAL,
    PRIMARY KEY (run_id, epoch)
);
"""
METRIC_COLUMNS = ("lr", "loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds", "img_per_s")
RUN_COLUMNS = ("id", "path", "name", "model", "data", "status", "created_at", "finished_at", "epochs",
               "epochs_completed", "params", "macs", "test_acc", "final_acc", "val_acc", "wall_time_s", "device",
               "tags", "note")


def default_store_path() -> Path:
    if os.environ.get("CNNLAB_STORE"):
        return Path(os.environ["CNNLAB_STORE"])
    return Path(os.environ.get("CNNLAB_RUNS") or "runs") / "cnnlab.db"


class Store:
    def __init__(self, path: str | os.PathLike | None = None, retries: int = 50):
        self.path = Path(path) if path else default_store_path()
        self.retries = retries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(lambda db: [db.execute(stmt) for stmt in SCHEMA.split(";") if stmt.strip()])

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.row_factory = sqlite3.Row
        return db

    def _write(self, action) -> None:
        """Run `action(db)` in one short transaction, retrying while another writer holds the lock."""
        for attempt in range(self.retries):
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                action(db)
                db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise UserError(f"{self.path}: the run store cannot be written ({exc})") from None
                time.sleep(0.05 + random.random() * 0.1 * (attempt + 1))
            finally:
                db.close()
        raise UserError(f"{self.path}: the run store stayed locked; another process holds it")

    def _read(self, sql: str, args=()) -> list[dict]:
        db = self._connect()
        try:
            return [dict(row) for row in db.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: the run store cannot be read ({exc}); rebuild it with "
                            "`cnnlab runs reindex`") from None
        finally:
            db.close()

    # ------------------------------------------------------------------ writes from a training run
    def record_start(self, run_dir: Path, config: dict, summary: dict, data_name: str,
                     created_at: str | None = None) -> None:
        model = config["model"] if isinstance(config["model"], str) else summary.get("name")
        row = {"id": run_dir.name, "path": str(run_dir.resolve()), "name": config.get("name"), "model": model,
               "data": _data_name(data_name, config), "status": "running", "pid": os.getpid(),
               "created_at": created_at or time.strftime("%Y-%m-%dT%H:%M:%S"),
               "epochs": config["epochs"], "epochs_completed": 0, "params": summary.get("params_trainable"),
               "macs": summary.get("macs"), "config": json.dumps(config)}
        keys = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{k}=excluded.{k}" for k in row if k not in ("id", "created_at"))
        self._write(lambda db: db.execute(
            f"INSERT INTO runs ({keys}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}", tuple(row.values())))

    def record_epoch(self, run_id: str, row: dict) -> None:
        def action(db):
            db.execute(f"INSERT OR REPLACE INTO metrics (run_id, epoch, {', '.join(METRIC_COLUMNS)}) "
                       f"VALUES (?, ?, {', '.join('?' for _ in METRIC_COLUMNS)})",
                       (run_id, row["epoch"], *[row.get(c) for c in METRIC_COLUMNS]))
            db.execute("DELETE FROM metrics WHERE run_id=? AND epoch>?", (run_id, row["epoch"]))
            db.execute("UPDATE runs SET epochs_completed=?, status='running' WHERE id=?", (row["epoch"], run_id))
        self._write(action)

    def record_result(self, run_id: str, result: dict) -> None:
        self._write(lambda db: db.execute(
            "UPDATE runs SET status=?, finished_at=?, test_acc=?, final_acc=?, val_acc=?, wall_time_s=?, device=?, "
            "epochs_completed=?, result=? WHERE id=?",
            (result.get("status"), result.get("finished_at"), result.get("test_acc"), result.get("final_acc"),
             result.get("val_acc"), result.get("wall_time_s"), result.get("device"),
             result.get("epochs_completed"), json.dumps(result), run_id)))

    def set_tags(self, run_id: str, tags: list[str]) -> None:
        self._write(lambda db: db.execute("UPDATE runs SET tags=? WHERE id=?", (json.dumps(sorted(set(tags))), run_id)))

    def set_note(self, run_id: str, note: str) -> None:
        self._write(lambda db: db.execute("UPDATE runs SET note=? WHERE id=?", (note, run_id)))

    # ------------------------------------------------------------------ reads
    def runs(self) -> list[dict]:
        rows = self._read("SELECT * FROM runs ORDER BY created_at, id")
        for r in rows:
            r["tags"] = json.loads(r["tags"] or "[]")
            if r["status"] == "running" and not alive(r.get("pid")):
                r["status"] = "crashed"  # its process is gone without a result: `cnnlab resume` it
        return rows

    def has(self, run_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM runs WHERE id=?", (run_id,)))

    def metrics(self, run_id: str) -> list[dict]:
        return self._read("SELECT * FROM metrics WHERE run_id=? ORDER BY epoch", (run_id,))

    def find(self, ref: str) -> dict:
        """A run by directory path, id, or unique id prefix/suffix."""
        runs = self.runs()
        path = Path(ref)
        if path.exists():
            matches = [r for r in runs if Path(r["path"]) == path.resolve()]
        else:
            matches = [r for r in runs if r["id"] == ref] or [r for r in runs if ref in r["id"]]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UserError(f"no run '{ref}' in {self.path}; `cnnlab runs` lists them (or `cnnlab runs reindex`)")
        raise UserError(f"'{ref}' matches {len(matches)} runs ({', '.join(r['id'] for r in matches[:5])}); "
                        "give more of the name")

    # ------------------------------------------------------------------ rebuild from the directories
    def reindex(self, root: str | os.PathLike) -> int:
        """Scan `root` for run directories and (re)record each; tags and notes already stored are kept."""
        from ..rundir import Run, read_metrics
        count = 0
        for config_path in sorted(Path(root).glob("*/config.yaml")):
            run = Run(config_path.parent)
            try:
                info = run.data_info
            except (OSError, ValueError):
                continue
            result = run.result
            summary = {"name": result.get("model"), "params_trainable": result.get("params_trainable"),
                       "macs": result.get("macs")}
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(config_path.stat().st_mtime))
            self.record_start(run.dir, run.config.model_dump(), summary, info["name"], created)
            rows = read_metrics(run.dir / "metrics.csv")
            for row in rows:
                self.record_epoch(run.dir.name, row)
            if "status" in result and result["status"] != "running or crashed":
                self.record_result(run.dir.name, result)
            else:
                self.record_result(run.dir.name, {"status": "crashed", "epochs_completed": len(rows)})
            count += 1
        return count


class StoreListener(Listener):
    """Indexes a run in the store as its events arrive. The store is an index: if it cannot be written, the
    run carries on (its directory holds everything) and `cnnlab runs reindex` recovers it."""

    def __init__(self, store: Store):
        self.store = store
        self.warnings: list[str] = []

    def _safely(self, action) -> None:
        try:
            action()
        except UserError as exc:
            if not self.warnings:  # once: the run goes on, and `cnnlab runs reindex` catches the store up
                print(f"warning: {exc}; the run carries on (`cnnlab runs reindex` recovers the store)",
                      file=sys.stderr)
            self.warnings.append(str(exc))

    def on_fit_start(self, d, event) -> None:
        run_dir = Path(d["run_dir"])
        self._safely(lambda: self.store.record_start(run_dir, d["config"], d["summary"], d["data"]["name"]))
        for row in d["history"]:  # a resumed run re-records its epochs (and drops any after the checkpoint)
            self._safely(lambda row=row: self.store.record_epoch(run_dir.name, row))

    def on_epoch_end(self, d, event) -> None:
        self._safely(lambda: self.store.record_epoch(Path(event.run).name, d["row"]))

    def on_result(self, result, event) -> None:
        self._safely(lambda: self.store.record_result(Path(event.run).name, result))


def _data_name(data_name: str, config: dict) -> str:
    """An image folder's run shows its folder's name (mnist-sample), not "imagefolder" nor the whole path."""
    data = config.get("data") or {}
    if data_name == "imagefolder" or "/" in str(data_name) or "\\" in str(data_name):
        return Path(str(data.get("root") or data.get("name") or data_name).rstrip("/\\")).name or str(data_name)
    return data_name
