"""Training for the web server happens in a separate process: the server stays responsive while the CPU
trains, and a crash in training (even a segfault) does not take it down. One training at a time (a small
machine has the cores for one); the rest wait in order and show as queued.

The worker runs ordinary Jobs (cnnlab/train/job.py) and sends their events back as plain dicts; the
server fans them out to the pages that listen. Stopping goes through the run's STOP file, as from the CLI.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path


def _worker_main(jobs: mp.Queue, events: mp.Queue, threads: int | None) -> None:
    """The worker process: train each job in turn, forwarding its events."""
    import torch
    from ..errors import UserError
    from ..train import Job
    if threads:
        torch.set_num_threads(threads)
    while True:
        item = jobs.get()
        if item is None:
            return
        run_id = item["id"]

        def forward(event, run_id=run_id):
            events.put({"id": run_id, **event.as_dict()})
        try:
            Job(item["config"], run_dir=item["run_dir"], store=item["store"], listeners=[forward]).run()
        except (UserError, KeyboardInterrupt):
            pass  # told to the page as an 'error' event already
        except Exception:  # noqa: BLE001 — a crash of one run is that run's; the worker takes the next
            pass


@dataclass
class Queued:
    id: str
    run_dir: str
    config: dict
    status: str = "queued"          # queued | running | finished | interrupted | diverged | failed
    events: list = field(default_factory=list)  # every event but batches, for pages that come late


class TrainingWorker:
    """The server's side: a queue of runs, a worker process, and subscribers to each run's events."""

    def __init__(self, store_path: Path, threads: int | None = None):
        self.store_path = str(store_path)
        self.threads = threads
        ctx = mp.get_context("spawn")  # a fresh interpreter: no threads or locks inherited from the server
        self._ctx = ctx
        self.jobs: mp.Queue = ctx.Queue()
        self.events: mp.Queue = ctx.Queue()
        self.runs: dict[str, Queued] = {}
        self.subscribers: dict[str, list[queue.Queue]] = {}
        self.lock = threading.Lock()
        self.process = None
        self._start_process()
        self._pump = threading.Thread(target=self._dispatch, name="cnnlab-events", daemon=True)
        self._pump.start()

    def _start_process(self) -> None:
        self.process = self._ctx.Process(target=_worker_main, args=(self.jobs, self.events, self.threads),
                                         name="cnnlab-trainer", daemon=True)
        self.process.start()

    def submit(self, run_id: str, run_dir: str, config: dict) -> Queued:
        item = Queued(run_id, run_dir, config)
        with self.lock:
            self.runs[run_id] = item
        self.jobs.put({"id": run_id, "run_dir": run_dir, "config": config, "store": self.store_path})
        return item

    def subscribe(self, run_id: str) -> tuple[queue.Queue, list]:
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.subscribers.setdefault(run_id, []).append(q)
            past = list(self.runs[run_id].events) if run_id in self.runs else []
        return q, past

    def unsubscribe(self, run_id: str, q: queue.Queue) -> None:
        with self.lock:
            if q in self.subscribers.get(run_id, []):
                self.subscribers[run_id].remove(q)

    def _dispatch(self) -> None:
        while True:
            try:
                event = self.events.get(timeout=1.0)
            except queue.Empty:
                self._check_alive()
                continue
            except (EOFError, OSError):
                return
            run_id = event["id"]
            with self.lock:
                run = self.runs.get(run_id)
                if run is not None:
                    if event["type"] == "start":
                        run.status = "running"
                    elif event["type"] == "end":
                        run.status = event["data"]["status"]
                    if event["type"] != "batch":
                        run.events.append(event)
                listeners = list(self.subscribers.get(run_id, []))
            for q in listeners:
                q.put(event)

    def _check_alive(self) -> None:
        """A worker that died mid-run (a segfault, the OOM killer) fails that run and is started again."""
        if self.process is not None and not self.process.is_alive():
            with self.lock:
                for run in self.runs.values():
                    if run.status == "running":
                        run.status = "failed"
                        end = {"id": run.id, "type": "end", "data": {"status": "failed"}, "run": run.run_dir}
                        run.events.append(end)
                        for q in self.subscribers.get(run.id, []):
                            q.put(end)
            self._start_process()

    def queued(self) -> list[Queued]:
        with self.lock:
            return [r for r in self.runs.values() if r.status in ("queued", "running")]

    def close(self) -> None:
        try:
            self.jobs.put(None)
            if self.process is not None:
                self.process.join(timeout=2)
                if self.process.is_alive():
                    self.process.terminate()
        except (OSError, ValueError):
            pass
