"""The job API: a run's events as data, in order; stopping it from another thread, another process
(`cnnlab stop`) or with SIGTERM; listeners that break do not break the run; track/ never imports train/."""
from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import cnnlab
from cnnlab.cli import main
from cnnlab.rundir import read_metrics


def small(data_dir, epochs=2, **extra) -> dict:
    return {"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir)}, "batch_size": 8,
            "epochs": epochs, "threads": 1, **extra}


def test_a_run_tells_its_listeners_everything_in_order(data_dir, tmp_path):
    heard = []
    run = cnnlab.Job(small(data_dir), run_dir=tmp_path / "run", listeners=[heard.append], store=False).run()
    types = [e.type for e in heard]
    assert types[0] == "log" and types[-1] == "end" and "fit_start" in types
    assert types.index("fit_start") < types.index("batch_end") < types.index("epoch_end") < types.index("result") \
        < types.index("diagnosis") < types.index("end")
    assert types.count("epoch_end") == 2 and all(e.run == str(run.dir) for e in heard[types.index("fit_start"):])
    start = heard[types.index("fit_start")].data
    assert start["config"]["batch_size"] == 8 and start["summary"]["params_trainable"] == 44_426
    assert start["batches_per_epoch"] == 25 and start["data"]["classes"][0] == "0"
    batch = next(e.data for e in heard if e.type == "batch_end")
    assert 1 <= batch["batch"] <= 25 and batch["batches"] == 25 and 0 <= batch["acc"] <= 1
    rows = [e.data["row"] for e in heard if e.type == "epoch_end"]
    written = read_metrics(run.dir / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and abs(rows[-1]["test_acc"] - written[-1]["test_acc"]) < 1e-5
    result = heard[types.index("result")].data
    assert result == json.loads((run.dir / "result.json").read_text())
    assert heard[types.index("diagnosis")].data["verdict"]["regime"]
    assert heard[-1].data == {"status": "finished"}
    # events are plain data: they cross a process or a socket as JSON and come back the same
    sent = json.loads(json.dumps([e.as_dict() for e in heard]))
    assert [e["type"] for e in sent] == types and sent[types.index("result")]["data"] == result
    assert sent[-1] == {**heard[-1].as_dict(), "data": {"status": "finished"}}


def test_stop_from_another_thread_then_resume_ends_as_if_never_stopped(data_dir, tmp_path):
    straight = cnnlab.Job(small(data_dir, 3), run_dir=tmp_path / "straight", store=False).run()
    job = cnnlab.Job(small(data_dir, 3), run_dir=tmp_path / "stopped", store=False)
    events = job.events()
    first_batch_of_epoch_2 = threading.Event()
    job.listeners.append(lambda e: e.type == "batch_end" and e.data["epoch"] == 2 and first_batch_of_epoch_2.set())
    job.start()  # after the listener is in: it cannot miss epoch 2
    assert first_batch_of_epoch_2.wait(60)
    job.stop()  # from this thread, while the job's thread trains
    assert [e.type for e in events][-1] == "end"
    run = job.wait(timeout=60)
    assert job.status == "interrupted"
    done = run.result["epochs_completed"]  # 1, or 2 where epoch 2's first batch event was its last batch's
    assert run.result["status"] == "interrupted" and done in (1, 2)
    assert run.result["message"] == f"stopped by request during epoch {done + 1}"
    assert [r["epoch"] for r in run.metrics] == list(range(1, done + 1))
    assert (run.dir / "checkpoint.pt").exists() and not (run.dir / "STOP").exists()
    resumed = cnnlab.Job.resume(run.dir, store=False).run()
    a, b = load_file(str(straight.dir / "model.safetensors")), load_file(str(resumed.dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_events_replay_for_a_listener_that_comes_late(data_dir, tmp_path):
    heard = []
    job = cnnlab.Job(small(data_dir, 1), run_dir=tmp_path / "run", listeners=[heard.append], store=False)
    job.run()
    late = list(job.events())
    assert late == [e for e in heard if e.type != "batch_end"]  # every event but the batches, the same, in order
    assert late[0].type == "log" and late[-1].type == "end" and "result" in [e.type for e in late]


def test_a_broken_listener_is_dropped_and_the_run_goes_on(data_dir, tmp_path):
    def broken(event):
        if event.type == "epoch_end":
            raise RuntimeError("boom")
    heard = []
    run = cnnlab.Job(small(data_dir), run_dir=tmp_path / "run", listeners=[broken, heard.append],
                     store=False).run()
    assert run.result["status"] == "finished"
    assert any(e.type == "log" and "failed on 'epoch_end' (boom)" in e.data["text"] for e in heard)


def test_bad_input_fails_when_the_job_is_made_and_nothing_is_written(tmp_path):
    import pytest
    with pytest.raises(cnnlab.UserError, match="epochs must be an integer"):
        cnnlab.Job({"epochs": 0}, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_submitted_run_that_cannot_start_and_one_whose_process_died_end_failed(data_dir, tmp_path):
    """cnnlab.app.lifecycle decides every ending, for the server's worker as for the CLI: a run that fails
    before it trains, or before its job exists, is recorded failed and told `error` then `end`, the end only
    once the ending is on disk; a run whose training process died is failed, its checkpoint kept."""
    from cnnlab.app import lifecycle
    root, empty = tmp_path / "runs", tmp_path / "empty-folder"
    empty.mkdir()
    submitted = lifecycle.submit({**small(data_dir), "data": {"name": str(empty)}}, root)
    heard = []

    def listener(event):
        on_disk = json.loads((submitted.run_dir / "result.json").read_text())["status"]
        heard.append((event.type, on_disk if event.type == "end" else None))
    assert lifecycle.run_submitted(submitted.run_dir, root / "cnnlab.db", listeners=[listener]) == "failed"
    assert heard[-2:] == [("error", None), ("end", "failed")]
    assert "empty-folder" in json.loads((submitted.run_dir / "result.json").read_text())["message"]
    (submitted.run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")  # a resume whose job cannot be made
    heard.clear()
    assert lifecycle.run_submitted(submitted.run_dir, root / "cnnlab.db", resume=True, listeners=[listener]) == "failed"
    assert heard == [("error", None), ("end", "failed")]
    assert "cannot be read" in json.loads((submitted.run_dir / "result.json").read_text())["message"]
    other = lifecycle.submit(small(data_dir), root)
    told = lifecycle.worker_died([str(other.run_dir)], -9, root / "cnnlab.db")
    message = "the training process died (signal 9); its last checkpoint is kept"
    assert [(e.type, e.data, e.run) for e in told] == [("error", {"message": message, "kind": "crash"},
                                                        str(other.run_dir)),
                                                       ("end", {"status": "failed"}, str(other.run_dir))]
    assert cnnlab.Run(other.run_dir).result["status"] == "failed"


def _cli_train(data_dir, run_dir, epochs=1000):
    """~0.1 s an epoch: enough epochs that a stop sent after epoch 1 lands while the run trains (see _finish)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", "--data", "mnist", "--data-dir", str(data_dir), "--set",
         "batch_size=8", "--set", "threads=1", "--epochs", str(epochs), "--run-dir", str(run_dir), "--no-store"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc) -> None:
    """Until `path` exists, with the run still training (alive, no result.json)."""
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if not path.exists() or proc.poll() is not None or (path.parent / "result.json").exists():
        proc.kill()
        raise AssertionError(f"the run was not training: {proc.communicate()}")


def _finish(proc, timeout: float = 60) -> tuple[str, str]:
    """Its output once it ends; killed if it does not (a stop that did not work must not leave it training)."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cnnlab_stop_from_another_process(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = _cli_train(data_dir, run_dir)
    _wait_for(run_dir / "checkpoint.pt", proc)
    assert main(["stop", str(run_dir)]) == 0
    assert capsys.readouterr().out == (f"asked {run_dir} to stop after its current batch (wrote STOP); "
                                       f"`cnnlab resume {run_dir}` continues it\n")
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    result = json.loads((run_dir / "result.json").read_text())
    done = result["epochs_completed"]
    assert result["status"] == "interrupted" and 1 <= done < 1000
    assert result["message"] == f"stopped by request during epoch {done + 1}"
    assert f"Stopped after {done} finished epoch{'' if done == 1 else 's'}; resume with: cnnlab resume {run_dir}" in out
    assert not (run_dir / "STOP").exists()  # taken away once heard
    assert main(["stop", str(run_dir)]) == 2  # not running any more
    assert "not running" in capsys.readouterr().err


def test_sigterm_stops_cleanly(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = _cli_train(data_dir, run_dir)
    _wait_for(run_dir / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = _finish(proc)
    assert proc.returncode == 0 and "Traceback" not in err
    result = json.loads((run_dir / "result.json").read_text())
    done = result["epochs_completed"]
    assert result["status"] == "interrupted" and result["message"] == f"stopped by request during epoch {done + 1}"
    assert f"Stopped after {done} finished epoch{'' if done == 1 else 's'}; resume with: cnnlab resume {run_dir}" in out


def test_track_never_imports_train():
    package = Path(cnnlab.__file__).parent
    paths = sorted((package / "track").rglob("*.py"))
    assert {"store.py", "compare.py", "tensorboard.py", "mlflow.py"} <= {p.name for p in paths}  # it looked
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.startswith(("..train", "...train", "cnnlab.train")), f"{path.name} imports {module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("cnnlab.train") for a in node.names), path.name


def test_train_accepts_a_model_file(data_dir, tmp_path, capsys):
    model = tmp_path / "net.yaml"
    model.write_text("name: tiny\nlayers:\n  - conv: {filters: 4, activation: relu}\n  - global_avgpool\n"
                     "  - dense: classes\n")
    assert main(["train", str(model), "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "1",
                 "--run-dir", str(tmp_path / "run"), "--no-store"]) == 0
    assert "Test accuracy" in capsys.readouterr().out
    assert cnnlab.Run(tmp_path / "run").config.model["name"] == "tiny"


def test_the_cli_exits_without_teardown_but_runs_atexit_flushes_and_waits_for_threads(tmp_path):
    """cnnlab.cli.exit_now: the exit code, everything printed, atexit handlers run; a working thread is waited for."""
    import subprocess
    import sys
    script = f"""
import atexit, sys, threading, time
from cnnlab.cli import exit_now
atexit.register(lambda: open({str(tmp_path / 'atexit')!r}, 'w').write('ran'))
if sys.argv[1] == 'thread':
    threading.Thread(target=lambda: (time.sleep(0.3), open({str(tmp_path / 'thread')!r}, 'w').write('done'))).start()
print('printed', end='')
exit_now(3)
"""
    for mode in ("plain", "thread"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True)
        assert out.returncode == 3 and out.stdout == "printed" and "Traceback" not in out.stderr
        assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"


def test_every_event_a_run_says_is_documented_with_its_fields(data_dir, tmp_path):
    from cnnlab.events import EVENTS
    heard = []
    cnnlab.Job(small(data_dir, 2, data={"name": "mnist", "dir": str(data_dir), "val_split": 0.2}),
               run_dir=tmp_path / "run", listeners=[heard.append], store=False).run()
    said = {e.type for e in heard}
    assert said == set(EVENTS) - {"error"}  # all of them but an error, in a run that went well
    for event in heard:
        assert set(EVENTS[event.type]) <= set(event.data), event.type
    evaluations = [e.data for e in heard if e.type == "evaluation"]
    assert [(d["epoch"], d["split"]) for d in evaluations] == [(1, "val"), (2, "val"), (None, "test")]
    table = (Path(__file__).parents[1] / "docs" / "events.md").read_text()
    docstring = cnnlab.events.__doc__
    for name, fields in EVENTS.items():
        assert f"| `{name}` |" in table and f"  {name} " in docstring, name
        assert all(field in table for field in fields), name


def test_a_checkpoint_that_cannot_be_written_fails_the_run(data_dir, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        cnnlab.Job(small(data_dir), run_dir=tmp_path / "run", store=False).run()
    assert cnnlab.Run(tmp_path / "run").result["status"] == "failed"


def test_end_stays_last_when_a_listener_fails_on_it_and_quiet_keeps_warnings(data_dir, tmp_path, capsys):
    def fails_at_the_end(event):
        if event.type in ("end", "epoch_end"):
            raise RuntimeError("gone")
    heard = []
    cnnlab.train(small(data_dir, 1), run_dir=str(tmp_path / "run"), quiet=True, store=False,
                 listeners=[fails_at_the_end, heard.append])
    assert heard[-1].type == "end"
    err = capsys.readouterr().err
    assert "warning: listener fails_at_the_end failed on 'epoch_end' (gone)" in err
