"""The server against careless and curious input (issue 22): every case answers a short 4xx that echoes
nothing and names no server path, the server keeps answering within a second, a failed run shows as failed and
the next one trains, and SIGTERM or Ctrl-C end server and worker within 5 s whatever they are doing."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web app's extras are not installed")
from fastapi.testclient import TestClient  # noqa: E402

from cnnlab.app.limits import MAX_BODY_BYTES, MAX_UPLOAD_BYTES  # noqa: E402
from cnnlab.process import alive  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402

NET = [{"conv": {"filters": 4, "padding": "same"}}, "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]
QUICK = {"model": NET, "data": {"name": "mnist"}, "epochs": 1, "batch_size": 32}


def short_error(response, status: int, *words: str) -> str:
    """The answer is `status`, a small JSON detail holding `words`, naming no folder of the server's."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert len(response.content) < 1000, len(response.content)
    detail = response.json()["detail"]
    assert "/tmp" not in detail and "runs/" not in detail, detail
    for word in words:
        assert word in detail, detail
    return detail


def test_oversized_and_malformed_bodies_are_refused_before_parsing(client):
    upload = "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_UPLOAD_BYTES + 10)).decode()
    # a run that does not exist is a 404, whatever the body holds
    detail = short_error(client.post("/api/runs/nope/see", json={"image": upload[:MAX_BODY_BYTES - 100]}), 404)
    assert "nope" in detail
    huge = b'{"model": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    short_error(client.post("/api/check", content=huge, headers={"content-type": "application/json"}), 413, "MB")
    deep = b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    short_error(client.post("/api/check", content=deep, headers={"content-type": "application/json"}), 400,
                "nested")
    invalid = client.post("/api/check", json={"model": NET, "data": "x" * 10_000})
    assert "xxxxxxxxxx" not in short_error(invalid, 422, "data")  # pydantic's complaint, without the input


def test_an_upload_over_the_limit_is_a_413_naming_the_limit(client, runs_root, data_dir):
    import cnnlab
    cnnlab.train({**QUICK, "data": {"name": "mnist", "dir": str(data_dir)}}, run_dir=runs_root / "digits",
                 quiet=True, store=runs_root / "cnnlab.db")
    upload = "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_UPLOAD_BYTES + 10)).decode()
    short_error(client.post("/api/runs/digits/see", json={"image": upload}), 413,
                f"{MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")


def test_models_past_the_limits_are_refused_at_once(client):
    start = time.perf_counter()
    short_error(client.post("/api/check", json={"model": ["relu"] * 300_000, "data": "mnist"}), 400, "layers")
    assert time.perf_counter() - start < 3
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    start = time.perf_counter()
    short_error(client.post("/api/model/parse", json={"text": "layers: " + bomb.replace("\n", "\n  ")}), 400)
    short_error(client.post("/api/model/parse", json={"text": "layers: &a [*a]\n"}), 400, "line 1")
    assert time.perf_counter() - start < 3


def test_unknown_runs_are_404_everywhere(client):
    for method, path, body in (("get", "/api/runs/nope", None), ("get", "/api/runs/nope/events", None),
                               ("get", "/api/runs/nope/report", None), ("post", "/api/runs/nope/stop", {}),
                               ("post", "/api/runs/nope/see", {"test_index": 0}),
                               ("post", "/api/runs/nope/tags", {"tags": ["a"]}),
                               ("post", "/api/runs/nope/resume", {}), ("post", "/api/compare", {"ids": ["nope"]}),
                               ("get", "/api/runs/..%2F..%2Fetc", None)):
        response = getattr(client, method)(path, **({} if body is None else {"json": body}))
        short_error(response, 404)


def test_a_state_change_from_another_site_is_refused(client):
    response = client.post("/api/check", json={"model": NET}, headers={"origin": "http://evil.example"})
    short_error(response, 403, "another site")
    ours = client.post("/api/check", json={"model": NET, "data": "mnist"}, headers={"origin": "http://testserver"})
    assert ours.status_code == 200


def test_a_bad_config_value_is_a_400_naming_its_key(client):
    response = client.post("/api/runs", json={"config": {"model": NET, "data": {"name": "mnist"}, "epochs": 0}})
    short_error(response, 400, "epochs")


def test_a_logger_with_options_or_weights_is_refused_and_a_named_one_is_not(client, data_dir):
    """A page names loggers; where and how they write (an MLflow server, a folder, every step) is the server's to
    decide; nor does a page name a weights file on the server."""
    for logger, key in (({"name": "mlflow", "tracking_uri": "http://collector.example:5000"}, "tracking_uri"),
                        ({"name": "wandb", "dir": "/home"}, "dir"), ({"name": "csv", "every_n_steps": 1}, "every_n_steps")):
        response = client.post("/api/runs", json={"config": {**QUICK, "loggers": ["csv", logger]}})
        short_error(response, 400, f"config.loggers[1].{key}", "refused over the network", "MLFLOW_TRACKING_URI")
    response = client.post("/api/runs", json={"config": {**QUICK, "weights": "/etc/passwd"}})
    short_error(response, 400, "config.weights", "refused over the network")
    from cnnlab.app.lifecycle import checked
    cfg = checked({**QUICK, "loggers": ["mlflow", "wandb", "csv"]}, str(data_dir))
    assert [x.name for x in cfg.loggers] == ["mlflow", "wandb", "csv"]


# ------------------------------------------------------------------ a real server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict | list]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="GET" if body is None
                                     else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """`cnnlab serve` in its own process, as a user starts it."""

    def __init__(self, runs_root: Path, data_dir: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "--port", str(self.port), "--runs",
                                      str(runs_root), "--data-dir", str(data_dir), "--threads", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        line = self.proc.stdout.readline()
        assert "cnnlab serve: open http://127.0.0.1" in line, line
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if _call(self.url + "/api/info", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def long_run(self, runs_root: Path) -> str:
        """A run of 500 epochs, once its first checkpoint is written."""
        status, body = _call(self.url + "/api/runs", {"config": {**QUICK, "epochs": 500}})
        assert status == 202, body
        deadline = time.time() + 60
        while not (runs_root / body["id"] / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.1)
        return body["id"]

    def wait_for(self, run_id: str, statuses: tuple, timeout: float = 90) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            rows = {r["id"]: r for r in _call(self.url + "/api/runs")[1]}
            if rows.get(run_id, {}).get("status") in statuses:
                return rows[run_id]
            time.sleep(0.2)
        raise AssertionError(f"{run_id} never reached {statuses}: {rows.get(run_id)}")


def all_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.time() + timeout
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


def test_a_failed_run_shows_as_failed_and_the_next_one_trains(runs_root, data_dir, tmp_path):
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    server = Server(runs_root, data_dir)
    try:
        status, body = _call(server.url + "/api/runs", {"config": {**QUICK, "data": {"name": str(empty)}}})
        assert status == 202
        failed = server.wait_for(body["id"], ("failed",), timeout=30)
        assert failed["message"] and "empty-folder" in failed["message"]
        status, body = _call(server.url + "/api/runs", {"config": {**QUICK, "data": {"name": "/etc"}}})
        assert status == 202 and server.wait_for(body["id"], ("failed",), timeout=30)["message"]
        status, body = _call(server.url + "/api/runs", {"config": QUICK})
        assert server.wait_for(body["id"], ("finished",))["epochs_completed"] == 1
        # while a request works, /api/info answers at once
        slow = threading.Thread(target=_call, args=(server.url + "/api/check",
                                                    {"model": ["relu"] * 300_000, "data": "mnist"}))
        slow.start()
        start = time.perf_counter()
        assert _call(server.url + "/api/info")[0] == 200 and time.perf_counter() - start < 1
        slow.join()
    finally:
        server.proc.kill()
        server.proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_server_and_worker_within_5_s_and_the_run_resumes(runs_root, data_dir, sig):
    server = Server(runs_root, data_dir)
    try:
        run_id = server.long_run(runs_root)
        stream = urllib.request.urlopen(server.url + f"/api/runs/{run_id}/events", timeout=30)  # held open
        workers = server.children()
        assert workers, "the training worker runs in a child process"
        start = time.perf_counter()
        server.proc.send_signal(sig)
        server.proc.wait(10)
        assert all_gone(workers, 0.2)  # the server waits for its worker: both gone when it exits
        assert time.perf_counter() - start < 5
        stream.close()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    result = json.loads((runs_root / run_id / "result.json").read_text())
    assert result["status"] == "interrupted"
    with TestClient(create_app(runs_root, str(data_dir), start_worker=False)) as client:
        row = next(r for r in client.get("/api/runs").json() if r["id"] == run_id)
        assert row["status"] == "interrupted"


def test_a_run_cut_off_by_a_killed_server_is_marked_interrupted_and_resumes(runs_root, data_dir):
    server = Server(runs_root, data_dir)
    try:
        run_id = server.long_run(runs_root)
        workers = server.children()
        server.proc.kill()  # no shutdown at all: the worker notices its parent is gone and stops
        server.proc.wait(10)
        assert all_gone(workers, 8)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    again = Server(runs_root, data_dir)  # the next server finds it cut off
    try:
        row = again.wait_for(run_id, ("interrupted",), timeout=10)
        assert row["message"]
        epochs_before = row["epochs_completed"]
        assert _call(again.url + f"/api/runs/{run_id}/resume", {})[0] == 202
        again.wait_for(run_id, ("running",), timeout=30)
        first = _call(again.url + f"/api/runs/{run_id}/stop", {})
        assert first[0] in (200, 409), first  # 409: still loading its data, stop it in a moment
        if first[0] == 409:
            assert "starting" in first[1]["detail"]
            deadline = time.time() + 30
            while (runs_root / run_id / "result.json").exists() and time.time() < deadline:
                time.sleep(0.05)  # training again: the old ending is cleared
            assert _call(again.url + f"/api/runs/{run_id}/stop", {})[0] == 200
        stopped = again.wait_for(run_id, ("interrupted",), timeout=30)
        assert stopped["epochs_completed"] >= epochs_before
    finally:
        again.proc.kill()
        again.proc.wait(10)
