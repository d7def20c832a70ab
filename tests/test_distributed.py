"""Data-parallel training on the CPU with 2 gloo ranks: the same curve as one process with the same global
batch (within a stated tolerance: the ranks draw their own augmentations), a run directory of the same
shape written by rank 0 alone, one store row, and stop + resume across ranks."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import cnnlab
from cnnlab.track.store import Store

TOLERANCE = 0.03  # final test accuracy on Fashion-MNIST, 2 ranks against 1 process, same global batch


def _train(data_dir, run_dir, store, nproc=None, epochs=4, data="mnist", extra=()):
    command = [sys.executable, "-m", "cnnlab", "train", "--data", data, "--data-dir", str(data_dir), "--set",
               "threads=1", "--epochs", str(epochs), "--batch-size", "32", "--run-dir", str(run_dir),
               "--store", str(store), *extra]
    if nproc:
        command += ["--nproc", str(nproc)]
    return command


@pytest.fixture
def more_digits(tmp_path):
    from conftest import write_idx
    data = tmp_path / "data"
    write_idx(data / "mnist", n_train=640, n_test=200)
    return data


def test_two_ranks_learn_as_one_process_and_write_one_run(tmp_path):
    from conftest import SHARED
    if not (SHARED / "fashion-mnist").exists():
        pytest.skip(f"the shared Fashion-MNIST is not at {SHARED}")
    store = tmp_path / "runs.db"
    slice_ = ("--set", "data.limit=4000", "--batch-size", "128")  # 4,000 real images: accuracy means something
    subprocess.run(_train(SHARED, tmp_path / "one", store, epochs=2, data="fashion-mnist", extra=slice_),
                   check=True, capture_output=True, timeout=300)
    two = subprocess.run(_train(SHARED, tmp_path / "two", store, nproc=2, epochs=2, data="fashion-mnist",
                                extra=slice_), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("Test accuracy") == 1 and two.stdout.count("Epoch 2/2") == 1  # rank 0 speaks
    one_result = json.loads((tmp_path / "one" / "result.json").read_text())
    two_result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert abs(one_result["test_acc"] - two_result["test_acc"]) <= TOLERANCE
    one_rows, two_rows = cnnlab.Run(tmp_path / "one").metrics, cnnlab.Run(tmp_path / "two").metrics
    assert [r["lr"] for r in one_rows] == [r["lr"] for r in two_rows]  # the same schedule, step for step
    assert abs(one_rows[-1]["loss"] - two_rows[-1]["loss"]) <= 0.1 * one_rows[-1]["loss"]
    names = lambda d: sorted(p.name for p in d.iterdir())  # noqa: E731
    assert names(tmp_path / "one") == names(tmp_path / "two")
    assert sorted(r["id"] for r in Store(store).runs()) == ["one", "two"]


def test_stop_and_resume_with_two_ranks(more_digits, tmp_path):
    store, run_dir = tmp_path / "runs.db", tmp_path / "long"
    proc = subprocess.Popen(_train(more_digits, run_dir, store, nproc=2, epochs=200), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    from cnnlab.cli import main
    assert main(["stop", str(run_dir)]) == 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "interrupted"
    config = cnnlab.Run(run_dir).config
    config.epochs = result["epochs_completed"] + 1  # finish soon: one more epoch on both ranks
    (run_dir / "config.yaml").write_text(cnnlab.config.dump(config))
    resumed = subprocess.run([sys.executable, "-m", "cnnlab", "resume", str(run_dir), "--nproc", "2"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "result.json").read_text())["status"] == "finished"


def test_a_fine_tune_trains_on_two_ranks(more_digits, tmp_path):
    """The head-first fine-tune leaves the frozen body without gradients in its first epochs: DDP must not wait
    for them (it failed with "Expected to have finished reduction in the prior iteration"). The frozen
    layers stay exactly as the weights brought them while the head trains."""
    from safetensors.torch import load_file
    store = tmp_path / "runs.db"
    subprocess.run(_train(more_digits, tmp_path / "source", store, epochs=1), check=True, capture_output=True,
                   timeout=300)
    tuned = subprocess.run(_train(more_digits, tmp_path / "tuned", store, nproc=2, epochs=1, extra=(
        "--weights", str(tmp_path / "source"), "--set", "finetune.freeze=body", "--set", "finetune.head_epochs=1")),
        capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    before, after = load_file(tmp_path / "source" / "model.safetensors"), load_file(tmp_path / "tuned" / "model.safetensors")
    changed = sorted(k for k in after if not (after[k] == before[k]).all())
    last = max(after, key=lambda k: [int(part) for part in k.split(".") if part.isdigit()])
    assert changed == sorted(k for k in after if k.rsplit(".", 1)[0] == last.rsplit(".", 1)[0]), changed  # the head
