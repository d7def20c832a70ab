"""Sweeps: the sweep file's schema, parameters set anywhere in a config, trials that are ordinary runs,
pruning, a killed sweep that resumes with no trial lost or repeated, several workers on one study, and a
real PostgreSQL server shared by two workers (skipped with the reason where Debian's postgresql is absent)."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="sweeps need optuna: pip install 'cnnlab[sweep]'")

from cnnlab.cli import main  # noqa: E402
from cnnlab.errors import UserError  # noqa: E402
from cnnlab.schema.config import TrainConfig  # noqa: E402
from cnnlab.sweep.runner import open_study  # noqa: E402
from cnnlab.sweep.spec import apply_params, load_spec  # noqa: E402


def sweep_file(tmp_path, data_dir, trials=4, **extra) -> Path:
    spec = {"name": "tiny", "base": {"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir)},
                                     "epochs": 2, "batch_size": 16, "threads": 1},
            "set": ["data.val_split=0.2"], "sampler": "random", "pruner": "median", "trials": trials,
            "space": {"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
                      "model.layers.0.conv.filters": {"type": "int", "low": 4, "high": 8, "step": 2}}}
    spec.update(extra)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def counted(study) -> list:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.get_trials() if t.state in states]


def test_parameters_reach_any_key_layers_included():
    cfg = TrainConfig(model={"layers": [{"conv": {"filters": 8}}, "relu", {"dropout": 0.2}]},
                      optimizer={"lr": 0.1})
    out = apply_params(cfg, {"model.layers.0.conv.filters": 32, "model.layers.2.dropout": 0.4, "optimizer.lr": 0.01})
    assert out["model"]["layers"] == [{"conv": {"filters": 32}}, "relu", {"dropout": 0.4}]
    assert apply_params(cfg, {"model.layers.2.dropout.rate": 0.3})["model"]["layers"][2] == {"dropout": {"rate": 0.3}}
    with pytest.raises(UserError, match="'9' is not a position in a list of 3"):
        apply_params(cfg, {"model.layers.9.conv.filters": 1})


def test_a_bad_sweep_file_gets_the_line(tmp_path, data_dir, capsys):
    path = sweep_file(tmp_path, data_dir, space={"optimizer.lr": {"type": "float", "low": 1, "high": 0.1}})
    with pytest.raises(UserError, match=r"sweep.yaml line \d+: space.optimizer.lr .*low. < .high"):
        load_spec(path)
    path = sweep_file(tmp_path, data_dir, set=[])
    assert main(["sweep", str(path), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "has none; add `set: [data.val_split=0.1]`" in capsys.readouterr().err
    path = sweep_file(tmp_path, data_dir, space={"optimizer.lrr": {"type": "float", "low": 0.1, "high": 1}})
    assert main(["sweep", str(path), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "unknown key 'optimizer.lrr' (did you mean 'lr'?)" in capsys.readouterr().err


def test_a_sweep_of_normal_runs_and_its_report(tmp_path, data_dir, capsys):
    path, runs = sweep_file(tmp_path, data_dir), tmp_path / "runs"
    assert main(["sweep", str(path), "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.count("trial ") >= 4 and "best: trial" in out
    spec, _ = load_spec(path)
    study = open_study(spec, runs, None)
    assert len(counted(study)) == 4
    assert main(["runs", "--store", str(runs / "cnnlab.db"), "--filter", "sweep=tiny"]) == 0
    listed = capsys.readouterr().out
    assert all(f"tiny-t{n}" in listed for n in range(4))
    for trial in counted(study):
        assert (runs / f"tiny-t{trial.number}" / "result.json").exists()
    assert main(["sweep", "report", str(path), "--runs-root", str(runs)]) == 0
    page = (runs / "sweeps" / "tiny" / "report.html").read_text()
    assert "Optimisation history" in page and "data:image/png;base64," in page
    best = yaml.safe_load((runs / "sweeps" / "tiny" / "best.yaml").read_text())
    assert best["model"]["layers"][0]["conv"]["filters"] == study.best_params["model.layers.0.conv.filters"]


def test_a_killed_sweep_resumes_with_no_trial_lost_or_repeated(tmp_path, data_dir):
    path, runs = sweep_file(tmp_path, data_dir, trials=4), tmp_path / "runs"
    spec_data = yaml.safe_load(path.read_text())
    spec_data["base"]["epochs"] = 4
    spec_data["pruner"] = "none"
    path.write_text(yaml.safe_dump(spec_data))
    command = [sys.executable, "-m", "cnnlab", "sweep", str(path), "--runs-root", str(runs)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not glob.glob(str(runs / "tiny-t1" / "checkpoint.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    spec, _ = load_spec(path)
    study = open_study(spec, runs, None)
    done = counted(study)
    assert len(done) == 4  # none lost
    params = [json.dumps(t.params, sort_keys=True) for t in done]
    assert len(set(params)) == 4  # none repeated
    failed = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.FAIL
              and not t.user_attrs.get("surplus")]
    assert len(failed) == 1 and json.dumps(failed[0].params, sort_keys=True) in params  # the killed one, asked again


def test_two_workers_share_one_study(tmp_path, data_dir, capsys):
    path, runs = sweep_file(tmp_path, data_dir, trials=4), tmp_path / "runs"
    assert main(["sweep", str(path), "--runs-root", str(runs), "--workers", "2"]) == 0
    spec, _ = load_spec(path)
    assert len(counted(open_study(spec, runs, None))) == 4


# ------------------------------------------------------------------ PostgreSQL, for workers on many machines

def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres(tmp_path):
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("Debian's postgresql is not installed (apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    import tempfile
    data = Path(tempfile.mkdtemp(prefix="cnnlab-pg-"))  # outside pytest's 0700 tree: the server's user reads it
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth", "trust"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
                              f"-h 127.0.0.1 -p {port} -k {data}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_study_in_postgresql(tmp_path, data_dir, postgres):
    path, runs = sweep_file(tmp_path, data_dir, trials=4), tmp_path / "runs"
    command = [sys.executable, "-m", "cnnlab", "sweep", str(path), "--runs-root", str(runs), "--storage", postgres]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]  # two "machines": two processes that share nothing but the database
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1] for o in outs]
    spec, _ = load_spec(path)
    study = open_study(spec, runs, postgres)
    assert len(counted(study)) == 4  # not 8: the two workers asked one study for trials until 4 were taken


def test_a_trial_that_diverges_is_failed_and_the_sweep_goes_on(tmp_path, data_dir, monkeypatch):
    from cnnlab.app import sweep
    import optuna
    path = sweep_file(tmp_path, data_dir, trials=2, space={"optimizer.lr": {"type": "float", "low": 1e5,
                                                                             "high": 1e6, "log": True}},
                      set=["data.val_split=0.2", "loss.label_smoothing=0"])
    monkeypatch.chdir(tmp_path)
    said = []
    _, study = sweep.run(str(path), log=said.append)
    diverged = [t for t in study.trials if t.user_attrs.get("diverged")]
    assert len(diverged) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in diverged)  # counted, not retried
    assert sum("diverged" in line and "counted as failed" in line for line in said) == 2
