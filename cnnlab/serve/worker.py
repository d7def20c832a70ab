"""Training for the web server happens in a separate process: the server stays responsive while the CPU
trains, and a crash in training (even a segfault) does not take it down. One training at a time (a small
machine has the cores for one); the rest wait in order and show as queued.

This module is process mechanics only: a queue, a spawned process, signals, events forwarded as plain dicts
to the pages that listen, and noticing that the process died. What a run does and how each ending is
written down — a new run or a resume, a job that fails before it trains, a process that dies mid-run — is
cnnlab.app.lifecycle's (`run_submitted`, `worker_died`), as for the CLI. SIGTERM asks the worker to stop
its run after the current batch (marked interrupted, resumable); a worker whose server has gone stops the
same way. A rescue is one queue item that trains many runs (cnnlab.app.rescue_jobs.run_queued): its log lines
are its events, and SIGTERM stops it the same way (its journal says interrupted; Resume continues it).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_S = 2.0   # after SIGTERM, what a run gets to finish its batch and write its ending


def _worker_main(jobs: mp.Queue, events: mp.Queue, threads: int | None) -> None:
    """The worker process: train each queued run in turn, forwarding its events."""
    import torch
    from ..app.lifecycle import run_submitted
    from ..app.rescue_jobs import run_queued as run_rescue
    if threads:
        torch.set_num_threads(threads)
    current: dict = {}
    parent = os.getppid()

    def stop_and_leave(*_):
        job, rescue_stop = current.get("job"), current.get("rescue_stop")
        if job is not None:
            job.stop()
        if rescue_stop is not None:
            rescue_stop.set()
        deadline = threading.Timer(STOP_GRACE_S, lambda: os._exit(0))  # a batch that will not end is not waited for
        deadline.daemon = True  # ...and a run that ends in time is not kept waiting for it either
        deadline.start()
        current["leaving"] = True

    signal.signal(signal.SIGTERM, stop_and_leave)
    signal.signal(signal.SIGINT, stop_and_leave)  # Ctrl-C in the server's terminal reaches this process too

    def watch_parent():  # the server killed outright (SIGKILL, a crash): do not train on for nobody
        while os.getppid() == parent:
            time.sleep(1.0)
        stop_and_leave()
    threading.Thread(target=watch_parent, daemon=True).start()

    while not current.get("leaving"):
        try:
            item = jobs.get(timeout=0.5)
        except queue.Empty:
            continue
        if item is None:
            return
        run_id = item["id"]
        events.put({"id": run_id, "type": "taken", "data": {}})  # from here a dead worker fails this run
        if item.get("rescue"):  # one queue item that trains many runs; its log lines are its events
            def say(text, run_id=run_id):
                events.put({"id": run_id, "type": "log", "data": {"text": str(text)}})
            try:
                ended = run_rescue(item["rescue"], item["resume"], log=say,
                                   started=lambda stop: current.update(rescue_stop=stop))
                events.put({"id": run_id, "type": "end", "data": {"status": ended}})
            finally:
                current["rescue_stop"] = None
            continue
        try:
            run_submitted(item["run_dir"], item["store"], item["resume"],
                          listeners=[lambda event, run_id=run_id: events.put({"id": run_id, **event.as_dict()})],
                          started=lambda job: current.update(job=job))
        finally:
            current["job"] = None


@dataclass
class Queued:  # a run the server accepted, from queued to its ending
    id: str
    run_dir: str
    name: str
    status: str = "queued"          # queued | running | finished | interrupted | diverged | failed
    events: list = field(default_factory=list)  # every event but batches, for pages that come late
    rescue: bool = False            # a rescue (cnnlab.app.rescue_jobs): one item that trains many runs


class TrainingWorker:
    """The server's side: a queue of runs, a worker process, and subscribers to each run's events."""

    def __init__(self, store_path: Path, threads: int | None = None):
        self.store_path = str(store_path)
        self.threads = threads
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: no threads or locks inherited from the server
        self.jobs: mp.Queue = self._ctx.Queue()
        self.events: mp.Queue = self._ctx.Queue()
        self.runs: dict[str, Queued] = {}
        self.subscribers: dict[str, list[queue.Queue]] = {}
        self.lock = threading.Lock()
        self.process = None
        self._closing = False
        self._start_process()
        self._pump = threading.Thread(target=self._dispatch, name="cnnlab-events", daemon=True)
        self._pump.start()

    def _start_process(self) -> None:
        self.process = self._ctx.Process(target=_worker_main, args=(self.jobs, self.events, self.threads),
                                         name="cnnlab-trainer", daemon=True)
        self.process.start()

    def submit(self, run_id: str, run_dir: str, name: str, resume: bool = False) -> Queued:
        """Queue a run whose directory holds its config.yaml (lifecycle.submit wrote it), or one to resume."""
        item = Queued(run_id, run_dir, name)
        with self.lock:
            self.runs[run_id] = item
        self.jobs.put({"id": run_id, "run_dir": run_dir, "store": self.store_path, "resume": resume})
        return item

    def submit_rescue(self, name: str, folder: str, resume: bool = False) -> Queued:
        """Queue a rescue claimed by cnnlab.app.rescue_jobs.claim (its folder holds the request), or one to resume.
        Its id here is rescue:NAME, beside the runs' ids."""
        item = Queued(f"rescue:{name}", folder, name, rescue=True)
        with self.lock:
            self.runs[item.id] = item
        self.jobs.put({"id": item.id, "rescue": folder, "resume": resume})
        return item

    def rescue_held(self, name: str) -> tuple[str | None, list[str]]:
        """(queued or running while this worker holds the rescue, else None; the log lines it has said)."""
        with self.lock:
            item = self.runs.get(f"rescue:{name}")
            if item is None:
                return None, []
            return (item.status if item.status in ("queued", "running") else None,
                    [e["data"]["text"] for e in item.events if e["type"] == "log"])

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
                try:
                    self._check_alive()
                except Exception as exc:  # noqa: BLE001 — e.g. the store locked: try again in a second
                    print(f"cnnlab serve: warning: checking the training worker failed ({exc})", file=sys.stderr)
                continue
            except (EOFError, OSError, ValueError):
                return
            try:
                self._deliver(event)
            except Exception as exc:  # noqa: BLE001 — one bad event must not end delivery and crash detection
                print(f"cnnlab serve: warning: an event of run {event.get('id')} was not delivered ({exc})",
                      file=sys.stderr)

    def _deliver(self, event: dict) -> None:
        run_id = event["id"]
        with self.lock:
            run = self.runs.get(run_id)
            if run is not None:
                if event["type"] in ("taken", "fit_start"):
                    run.status = "running"
                elif event["type"] == "end":
                    run.status = event["data"]["status"]
                if event["type"] != "batch_end":
                    run.events.append(event)
            listeners = list(self.subscribers.get(run_id, []))
        for q in listeners:
            q.put(event)

    def _check_alive(self) -> None:
        """A worker that died mid-run (a segfault, the OOM killer): lifecycle.worker_died ends its run, and the
        process is started again for the runs still queued."""
        if self._closing or self.process is None or self.process.is_alive():
            return
        from ..app.lifecycle import worker_died
        from ..app.rescue_jobs import after_worker_died
        with self.lock:
            running = {r.run_dir: r.id for r in self.runs.values() if r.status == "running" and not r.rescue}
            rescues = [r for r in self.runs.values() if r.status == "running" and r.rescue]
        for event in worker_died(list(running), self.process.exitcode, self.store_path):
            self._deliver({"id": running[event.run], **event.as_dict()})
        for r in rescues:  # its journal's process is gone: interrupted, resumable (its trial's checkpoint kept)
            self._deliver({"id": r.id, "type": "end", "data": {"status": after_worker_died(r.run_dir)}})
        self._start_process()

    def queued(self) -> list[Queued]:
        with self.lock:
            return [r for r in self.runs.values() if r.status in ("queued", "running") and not r.rescue]

    def stop_soon(self) -> None:
        """Tell the worker to stop (SIGTERM: its run stops after the current batch and is marked interrupted,
        resumable) without waiting: the server sends this the moment it is told to stop, so the worker winds
        down while the server closes its connections."""
        self._closing = True
        process = self.process
        if process is not None and process.is_alive():
            try:
                process.terminate()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        """Stop the worker and wait for it (at most STOP_GRACE_S and a little more, then it is killed)."""
        self.stop_soon()
        process = self.process
        try:
            if process is not None:
                process.join(STOP_GRACE_S + 0.5)
                if process.is_alive():
                    process.kill()
                    process.join(1)
        except (OSError, ValueError):
            pass
        from ..app.lifecycle import server_stopped  # runs stopped before their job could write an ending
        with self.lock:
            unended = [r.run_dir for r in self.runs.values() if r.status in ("queued", "running") and not r.rescue]
        try:
            server_stopped(unended, self.store_path)
        except Exception as exc:  # noqa: BLE001 — the next server's start marks them (lifecycle.recover)
            print(f"cnnlab serve: warning: marking the unfinished runs interrupted failed ({exc})", file=sys.stderr)
        # the queues' pipes and locks released now, not left to the interpreter's teardown (which a fast exit
        # skips): an unreleased lock is what multiprocessing's resource tracker reports as a leaked semaphore
        for q in (self.jobs, self.events):
            try:
                q.cancel_join_thread()
                q.close()
            except (OSError, ValueError):
                pass
