"""Kill anywhere, resume, and end bit-identical: a small training is SIGKILLed at 20 points — during a batch,
between epochs, while the checkpoint is being written, during the final evaluation and the final writes,
and at random moments — and every resumed run ends with exactly the weights of an uninterrupted run."""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

import cnnlab

# The fail points of cnnlab/faults.py, each the n-th time it is passed (25 batches an epoch, 3 epochs).
FAULTS = ["batch:1", "batch:13", "batch:25", "batch:40", "batch:74", "epoch-end:1", "epoch-end:3",
          "checkpoint-write:1", "checkpoint-write:2", "checkpoint-write:3", "checkpoint-written:1",
          "final-eval:1", "weights-write:1", "result-write:1"]
RANDOM_KILLS = 6


def config(data_dir) -> dict:
    return {"model": "tutorial", "data": {"name": "mnist", "dir": str(data_dir)}, "batch_size": 8, "epochs": 3,
            "threads": 1, "seed": 3}


def train_in_child(data_dir, run_dir, fault: str | None = None) -> int:
    """Fork a training process (torch is already imported here, so it starts at once)."""
    pid = os.fork()
    if pid == 0:  # the child: train, and die at the fail point if one is set
        code = 1
        try:
            if fault:
                os.environ["CNNLAB_FAULT"] = fault
            cnnlab.train(config(data_dir), run_dir=run_dir, quiet=True, store=False)
            code = 0
        finally:
            os._exit(code)
    return pid


def weights(run_dir) -> dict:
    return load_file(str(run_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from conftest import write_idx
    root = tmp_path_factory.mktemp("resume")
    data_dir = root / "data"
    write_idx(data_dir / "mnist")
    straight = root / "straight"
    start = time.perf_counter()
    cnnlab.train(config(data_dir), run_dir=straight, quiet=True, store=False)
    return data_dir, straight, time.perf_counter() - start


def _resume_and_compare(run_dir, straight) -> None:
    if not (run_dir / "config.yaml").exists():  # killed before the run existed: nothing to resume, start again
        pytest.fail(f"{run_dir} was killed before its config was written")
    cnnlab.resume(run_dir, quiet=True, store=False)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "finished"
    assert [r["epoch"] for r in cnnlab.Run(run_dir).metrics] == [1, 2, 3]
    a, b = weights(straight), weights(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "weights differ after resume"
    assert result["test_acc"] == json.loads((straight / "result.json").read_text())["test_acc"]
    assert not list(run_dir.glob(".*.tmp")), "a half-written temporary file was left behind"


@pytest.mark.parametrize("fault", FAULTS)
def test_killed_at_a_fail_point_resumes_bit_identical(reference, tmp_path, fault):
    data_dir, straight, _ = reference
    run_dir = tmp_path / "run"
    pid = train_in_child(data_dir, run_dir, fault)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{fault} was never reached"
    assert not (run_dir / "result.json").exists() or fault == "result-write:1"
    _resume_and_compare(run_dir, straight)


@pytest.mark.parametrize("seed", range(RANDOM_KILLS))
def test_killed_at_a_random_moment_resumes_bit_identical(reference, tmp_path, seed):
    data_dir, straight, seconds = reference
    run_dir = tmp_path / "run"
    pid = train_in_child(data_dir, run_dir)
    deadline = time.time() + 60
    while not (run_dir / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0, seconds))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    _resume_and_compare(run_dir, straight)


def _slow_writes(monkeypatch=None):
    """Every checkpoint write counts as slow: the first epoch is written, later ones kept in memory until due."""
    from cnnlab.train import session
    if monkeypatch is None:
        session.MIN_SLOW_WRITE_S, session.WRITE_SHARE = -1.0, 0.0
    else:
        monkeypatch.setattr(session, "MIN_SLOW_WRITE_S", -1.0)
        monkeypatch.setattr(session, "WRITE_SHARE", 0.0)


def test_a_slow_checkpoint_is_kept_in_memory_and_a_kill_resumes_from_the_last_written(reference, tmp_path):
    data_dir, straight, _ = reference
    run_dir = tmp_path / "run"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _slow_writes()
            os.environ["CNNLAB_FAULT"] = "batch:60"  # epoch 3: epoch 2 was kept, not written
            cnnlab.train(config(data_dir), run_dir=run_dir, quiet=True, store=False)
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert [r["epoch"] for r in cnnlab.Run(run_dir).metrics] == [1, 2]  # the curves say every epoch
    _resume_and_compare(run_dir, straight)


def test_a_kept_epoch_is_written_when_the_run_is_stopped(reference, tmp_path, monkeypatch):
    data_dir, straight, _ = reference
    _slow_writes(monkeypatch)
    written = []
    job = cnnlab.Job(config(data_dir), run_dir=tmp_path / "run", store=False,
                     listeners=[lambda e: e.type == "checkpoint" and written.append(e.data["epoch"]),
                                lambda e: e.type == "epoch_end" and e.data["row"]["epoch"] == 2 and job.stop()])
    job.run()
    assert job.status == "interrupted" and written == [1, 2]  # epoch 2 was kept, then written as the run stopped
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    _resume_and_compare(tmp_path / "run", straight)
