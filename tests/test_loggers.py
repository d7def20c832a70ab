"""Loggers by name: a run, a failed run, a stopped-and-resumed run and a sweep as MLflow (a file store and a real
`mlflow server` on 127.0.0.1) and W&B offline (its .wandb file read back) show them, and the CSV log."""
from __future__ import annotations

import csv
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import cnnlab
from cnnlab.errors import UserError

mlflow = pytest.importorskip("mlflow", reason="the mlflow logger's tests need cnnlab[loggers]")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
from mlflow import MlflowClient  # noqa: E402


def config(data_dir, epochs=2, **extra) -> dict:
    return {"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir), "val_split": 0.2},
            "batch_size": 16, "epochs": epochs, "threads": 1, **extra}


def mlflow_runs(uri, **filters) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cnnlab")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"]) if experiment else []


def metric_steps(uri, run_id, key) -> list[int]:
    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, key)]


def test_a_finished_run_in_mlflow_wandb_and_csv(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    uri = str(tmp_path / "mlruns")
    loggers = [{"name": "mlflow", "tracking_uri": uri, "every_n_steps": 5}, {"name": "wandb", "every_n_steps": 5},
               {"name": "csv", "every_n_steps": 5}]
    run = cnnlab.Job(config(data_dir, loggers=loggers), run_dir=tmp_path / "run", store=False).run()

    (found,) = mlflow_runs(uri)
    assert found.info.status == "FINISHED" and found.info.run_name == run.config.name
    assert found.data.params["optimizer.lr"] == str(run.config.optimizer.lr)
    assert found.data.params["epochs"] == "2" and found.data.tags["cnnlab.run_id"] == "run"
    assert metric_steps(uri, found.info.run_id, "val_acc") == [1, 2]
    assert metric_steps(uri, found.info.run_id, "step_loss") == list(range(5, 21, 5))  # 10 steps an epoch
    assert found.data.metrics["final_test_acc"] == pytest.approx(run.result["test_acc"])
    kept = {a.path for a in MlflowClient(uri).list_artifacts(found.info.run_id)}
    assert {"model.safetensors", "summary.txt", "curves.png", "report.html", "config.yaml"} <= kept

    records = wandb_records(run.dir / "wandb")
    epochs = [r for r in records["history"] if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [1, 2] and all("val_acc" in r for r in epochs)
    assert [r["step"] for r in records["history"] if "step" in r] == [5, 10, 15, 20]
    assert records["config"]["optimizer.lr"] == str(run.config.optimizer.lr)
    assert {"model.safetensors", "summary.txt", "report.html"} <= set(records["artifact"])
    assert records["summary"]["final/test_acc"] == pytest.approx(run.result["test_acc"])
    assert records["exit"] == 0

    rows = list(csv.DictReader((run.dir / "log.csv").open()))
    assert [r["epoch"] for r in rows if r["metric"] == "val_acc"] == ["1", "2"]
    assert [r["step"] for r in rows if r["metric"] == "step_loss"] == ["5", "10", "15", "20"]


def test_a_diverged_run_is_failed_in_mlflow_and_wandb(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    uri = str(tmp_path / "mlruns")
    cfg = config(data_dir, optimizer={"lr": 1e6}, loss={"label_smoothing": 0},
                 loggers=[{"name": "mlflow", "tracking_uri": uri}, "wandb"])
    with pytest.raises(UserError, match="became"):
        cnnlab.Job(cfg, run_dir=tmp_path / "run", store=False).run()
    (found,) = mlflow_runs(uri)
    assert found.info.status == "FAILED"
    records = wandb_records(tmp_path / "run" / "wandb")
    assert records["exit"] == 1 and records["summary"]["status"] == "diverged"


def test_a_stopped_run_is_killed_and_its_resume_continues_the_same_run(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    uri = str(tmp_path / "mlruns")
    job = cnnlab.Job(config(data_dir, 3, loggers=[{"name": "mlflow", "tracking_uri": uri}, "wandb"]),
                     run_dir=tmp_path / "run", store=False)
    job.listeners.append(lambda e: e.type == "epoch_end" and job.stop())
    job.run()
    (stopped,) = mlflow_runs(uri)
    assert stopped.info.status == "KILLED" and metric_steps(uri, stopped.info.run_id, "val_acc") == [1]
    wandb_id = json.loads((tmp_path / "run" / "wandb.json").read_text())["id"]
    assert wandb_records(tmp_path / "run" / "wandb")["exit"] == 1

    cnnlab.Job.resume(tmp_path / "run", store=False).run()
    (resumed,) = mlflow_runs(uri)
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert metric_steps(uri, resumed.info.run_id, "val_acc") == [1, 2, 3]
    assert json.loads((tmp_path / "run" / "wandb.json").read_text())["id"] == wandb_id  # the same W&B run
    assert wandb_epochs(tmp_path / "run" / "wandb", wandb_id, until={1, 2, 3}) == {1, 2, 3}


def test_sweep_trials_are_nested_under_one_parent_run(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    from cnnlab.app import sweep
    uri = str(tmp_path / "mlruns")
    spec = {"name": "tiny", "base": config(data_dir, 1, loggers=[{"name": "mlflow", "tracking_uri": uri}, "wandb"]),
            "sampler": "random", "trials": 2,
            "space": {"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    sweep.run(str(path), log=lambda *_: None)
    runs = mlflow_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("cnnlab.role") == "group"]
    trials = [r for r in runs if r is not parent]
    assert parent.info.run_name == "sweep:tiny" and len(trials) == 2
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials)
    assert {t.info.status for t in trials} == {"FINISHED"}
    groups = [wandb_records(Path(t.data.tags["cnnlab.run_dir"]) / "wandb")["group"] for t in trials]
    assert groups == ["sweep:tiny", "sweep:tiny"]


def test_a_logger_whose_server_is_down_warns_once_and_the_run_goes_on(data_dir, tmp_path):
    heard = []
    cfg = config(data_dir, 1, loggers=[{"name": "mlflow", "tracking_uri": f"http://127.0.0.1:{free_port()}"}])
    run = cnnlab.Job(cfg, run_dir=tmp_path / "run", store=False, listeners=[heard.append]).run()
    assert run.result["status"] == "finished"
    warnings = [e.data["text"] for e in heard if e.type == "log" and "warning" in e.data["text"]]
    assert len(warnings) == 1 and "listener mlflow failed on 'fit_start'" in warnings[0]


def test_an_unknown_logger_names_the_ones_there_are(data_dir, tmp_path):
    with pytest.raises(UserError) as err:
        cnnlab.Job(config(data_dir, loggers=["neptune"]), run_dir=tmp_path / "run", store=False)
    assert "loggers" in str(err.value) and "mlflow" in str(err.value)


def test_a_run_logged_to_a_real_mlflow_server(data_dir, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for(port, server)
        run = cnnlab.Job(config(data_dir, 1, loggers=[{"name": "mlflow", "tracking_uri": uri}]),
                         run_dir=tmp_path / "run", store=False).run()
        (found,) = mlflow_runs(uri)
        assert found.info.status == "FINISHED" and found.data.params["epochs"] == "1"
        assert found.data.metrics["val_acc"] == pytest.approx(run.metrics[-1]["val_acc"])
        assert "model.safetensors" in {a.path for a in MlflowClient(uri).list_artifacts(found.info.run_id)}
    finally:
        server.terminate()
        server.wait(20)


# ---------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, server, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail("mlflow server did not start in time")


def wandb_records(folder: Path, run: str = "offline-run-*", wait_s: float = 20) -> dict:
    """What an offline W&B run wrote, read back from its .wandb file (a LevelDB-style log of protobuf records,
    as `wandb sync` reads it): history rows, config, summary, the artifact's files and the exit code. W&B's
    service writes the file after `finish()` returns: read until the exit record is there."""
    deadline = time.time() + wait_s
    while True:
        out = _wandb_records(folder, run)
        if out["exit"] is not None or time.time() > deadline:
            return out
        time.sleep(0.25)


def wandb_epochs(folder: Path, run_id: str, until: set, wait_s: float = 20) -> set:
    """The epochs logged under one W&B run id, over its offline folders (a resume gets a folder of its own,
    `...-ID-1` within the same second), read until `until` is there or the time is up."""
    deadline = time.time() + wait_s
    while True:
        seen = {r["epoch"] for path in folder.glob(f"offline-run-*-{run_id}*")  # `-1` after a same-second resume
                for r in _wandb_records(folder, path.name)["history"] if "epoch" in r}
        if seen >= until or time.time() > deadline:
            return seen
        time.sleep(0.25)


def _wandb_records(folder: Path, run: str) -> dict:
    from wandb.proto import wandb_internal_pb2 as pb
    (path,) = folder.glob(f"{run}/run-*.wandb")
    out = {"history": [], "config": {}, "summary": {}, "artifact": [], "exit": None, "group": None}
    for data in _log_records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item
                                   if not _key(i).startswith("_")})
        elif kind == "run":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            out["group"] = record.run.run_group
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "artifact":
            out["artifact"] += [m.path for m in record.artifact.manifest.contents]
        elif kind == "exit":
            out["exit"] = record.exit.exit_code
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _log_records(raw: bytes, block: int = 32768):
    """Records of a LevelDB log after W&B's 7-byte header: 32 KiB blocks of (crc, length, type) chunks."""
    pos, pending = 7, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def test_the_logger_flag_of_cnnlab_train(data_dir, tmp_path, capsys):
    from cnnlab.cli import main
    run = tmp_path / "run"
    assert main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "1", "--logger", "csv",
                 "--run-dir", str(run), "--no-store", "--quiet"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["loggers"] == ["csv"]
    assert "val_acc" in (run / "log.csv").read_text() or "test_acc" in (run / "log.csv").read_text()
    assert main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--logger", "neptune",
                 "--run-dir", str(tmp_path / "other"), "--no-store"]) == 2
    assert "--logger neptune: loggers.0.name must be 'mlflow', 'wandb', 'tensorboard' or 'csv', got 'neptune'" in capsys.readouterr().err


def test_the_csv_log_of_a_resumed_run_drops_what_the_killed_attempt_logged_past_its_checkpoint(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    cnnlab.Job(config(data_dir, 2, loggers=["csv"]), run_dir=run_dir, store=False).run()
    with (run_dir / "log.csv").open("a") as f:  # as if epoch 3 had been logged before a kill
        f.write("0,3,,loss,9.9\n")
    checkpoint = torch_load(run_dir / "checkpoint.pt")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["epochs"] = 4
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert checkpoint["epoch"] == 2
    cnnlab.Job.resume(run_dir, store=False).run()
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    assert [r["epoch"] for r in rows if r["metric"] == "loss"] == ["1", "2", "3", "4"]
    assert "9.9" not in [r["value"] for r in rows]
    assert len([r for r in rows if r["metric"] == "final/test_acc"]) == 1


def torch_load(path):
    import torch
    return torch.load(path, map_location="cpu", weights_only=False)
