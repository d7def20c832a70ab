"""Training as a user runs it: the command, the files it writes, resume after a kill, evaluate, predict."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import cnnlab
from cnnlab.cli import main

SMALL = ["--set", "model=tutorial", "--set", "batch_size=32", "--set", "eval_batch_size=100"]


def cli(*args):
    return main([str(a) for a in args])


def test_train_writes_a_complete_run_directory(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "--data", "mnist", "--data-dir", data_dir, *SMALL, "--epochs", 2, "--run-dir", run) == 0
    out = capsys.readouterr().out
    assert "Epoch 1/2  loss" in out and "Epoch 2/2  loss" in out and "test_acc" in out and "img/s" in out
    for name in ("config.yaml", "summary.txt", "metrics.csv", "checkpoint.pt", "model.safetensors", "result.json",
                 "curves.png", "data.json"):
        assert (run / name).exists(), name
    rows = cnnlab.Run(run).metrics
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["val_acc"] is None for r in rows)
    result = json.loads((run / "result.json").read_text())
    # the final test accuracy is the last epoch's test evaluation (the same weights), of 50 test images
    assert result["status"] == "finished" and result["epochs_completed"] == 2
    assert result["test_acc"] == pytest.approx(rows[-1]["test_acc"], rel=1e-5)
    assert result["test_acc"] * 50 == pytest.approx(round(result["test_acc"] * 50))
    assert f"Test accuracy {result['test_acc']:.4f} after 2 epochs" in out
    assert result["params_trainable"] == 44426 and result["versions"]["torch"].startswith("2.13")
    assert "test_acc_tta" not in result  # no flips for digits, so no flip TTA
    config = (run / "config.yaml").read_text()
    assert "flip: none" in config and "crop: 0" in config  # written out: none in a run this short (cnnlab/config.py)


def test_python_api_learns_the_pattern_data(data_dir, tmp_path):
    run = cnnlab.train({"model": [{"conv": {"filters": 8, "padding": "same", "activation": "relu"}}, "batchnorm",
                                  {"maxpool": 4}, "flatten", {"dense": 10}],
                        "data": {"name": "mnist", "dir": str(data_dir), "val_split": 0.2},
                        "epochs": 6, "batch_size": 16, "optimizer": {"lr": 0.1}, "augment": "none"},
                       run_dir=tmp_path / "api", quiet=True)
    assert run.metrics[-1]["val_acc"] == pytest.approx(run.result["val_acc"], rel=1e-5)
    assert all(r["test_acc"] is None for r in run.metrics)
    assert run.result["val_acc"] * 40 == pytest.approx(round(run.result["val_acc"] * 40))  # 40 = 0.2 x 200 images
    assert run.result["test_acc"] > 0.5  # chance is 0.1
    assert run.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_an_existing_run_directory_is_refused_and_kept(data_dir, tmp_path, capsys):
    run = tmp_path / "taken"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert cli("train", "--data", "mnist", "--data-dir", data_dir, *SMALL, "--epochs", 1, "--run-dir", run) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (run / "notes.txt").read_text() == "mine"


def test_bad_config_exits_2_with_one_sentence(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("model: tutorial\nbatch_sise: 64\n")
    assert cli("train", path) == 2
    err = capsys.readouterr().err
    assert "c.yaml line 2: unknown key 'batch_sise' (did you mean 'batch_size'?)" in err
    assert "Traceback" not in err


def test_a_bad_flag_is_named_as_it_was_typed(capsys):
    assert cli("train", "--epochs", 0, "--dry-run") == 2
    assert "--epochs 0: epochs must be an integer from 1 to 100,000, got 0" in capsys.readouterr().err
    assert cli("train", "--batch-size", 0, "--dry-run") == 2
    assert "--batch-size 0: batch_size must be an integer from 1 to 1,000,000 (or null), got 0" in capsys.readouterr().err
    assert cli("train", "--lr", "1e-05", "--epochs", 3, "--dry-run") == 0  # the flag's number, not YAML's string
    assert "3 epochs of batch 128" in capsys.readouterr().out


def test_bad_model_fails_before_a_run_directory_exists(data_dir, tmp_path, capsys):
    run = tmp_path / "never"
    assert cli("train", "--data", "mnist", "--data-dir", data_dir, "--set", "model=[{conv: 8}, {dense: 10}]",
               "--run-dir", run) == 2
    err = capsys.readouterr().err
    assert "layer 2: the model ends with a 10x26x26 feature map; add `flatten` or `global_avgpool`" in err
    assert "Traceback" not in err
    assert not run.exists()


def test_divergence_stops_with_advice(data_dir, tmp_path, capsys):
    run = tmp_path / "nan"
    code = cli("train", "--data", "mnist", "--data-dir", data_dir, "--set", "model=tutorial", "--set", "batch_size=16",
               "--lr", "1e6", "--set", "loss.label_smoothing=0", "--epochs", 3, "--run-dir", run)
    err = capsys.readouterr().err
    assert code == 2
    assert "the training loss became" in err and "at epoch" in err and "lower learning rate" in err
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "diverged"


def test_predict_and_eval(data_dir, tmp_path, capsys):
    from PIL import Image
    run = tmp_path / "run"
    assert cli("train", "--data", "mnist", "--data-dir", data_dir, *SMALL, "--epochs", 1, "--run-dir", run) == 0
    capsys.readouterr()
    image = tmp_path / "digit.jpg"
    Image.new("RGB", (64, 50), (200, 10, 10)).save(image)  # colour and size differ from the training data
    assert cli("predict", run, image, "--top-k", 3) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("digit.jpg") and len(out) == 4
    ranks, names, probs = zip(*(line.split() for line in out[1:]))
    assert ranks == ("1.", "2.", "3.") and len(set(names)) == 3 and set(names) <= {str(d) for d in range(10)}
    probs = [float(p) for p in probs]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs) and sum(probs) <= 1.0015
    assert cli("eval", run) == 0
    out = capsys.readouterr().out
    test_acc = json.loads((run / "result.json").read_text())["test_acc"]
    assert f"test accuracy {test_acc:.4f}" in out
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    assert cli("predict", run, broken) == 2
    assert "broken.png: cannot decode the image" in capsys.readouterr().err


def test_image_folder_end_to_end(image_folder, tmp_path, capsys):
    run = tmp_path / "pets-run"
    assert cli("train", "--set", f"data.name={image_folder}", *SMALL, "--batch-size", 8, "--epochs", 1,
               "--run-dir", run) == 0
    info = json.loads((run / "data.json").read_text())
    assert info["classes"] == ["cat", "dog", "fox"] and info["input_shape"] == [3, 20, 20]


def _train_command(data_dir, run, epochs):
    return [sys.executable, "-m", "cnnlab.cli", "train", "--data", "mnist", "--data-dir", str(data_dir),
            "--set", "model=tutorial", "--set", "batch_size=8", "--set", "threads=1", "--epochs", str(epochs),
            "--run-dir", str(run)]


def _wait_until_training(proc, run):
    """Until the run has finished epoch 1 (checkpoint.pt is written at an epoch's end, by the training loop)
    and is still training: no result.json yet and the process alive."""
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is not None or not (run / "checkpoint.pt").exists() or (run / "result.json").exists():
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the run was not training (exit {proc.returncode}):\n{out}\n{err}")


@contextlib.contextmanager
def _sigint_at_its_default():
    """Children started in this block have SIGINT at its default, as a command run in a terminal has it, so
    ctrl-C raises KeyboardInterrupt in them. Where this process ignores SIGINT (a background job of a shell
    without job control: `pytest ... &` in a script, `bash -c '... &'`, many CI runners), a child inherits
    SIG_IGN through exec, Python leaves an ignored SIGINT ignored, and the signal would do nothing: the run
    trained to its end and exited 0. A signal with a handler is reset to its default at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def test_resume_after_sigkill_ends_with_the_same_weights(data_dir, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    epochs = 6  # an epoch here is ~0.1 s: the kill after epoch 1 must land before the run ends, even on a busy machine
    straight = tmp_path / "straight"
    subprocess.run(_train_command(data_dir, straight, epochs), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(data_dir, killed, epochs), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_until_training(proc, killed)
    time.sleep(0.05)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "result.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "cnnlab.cli", "resume", str(killed)], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming {killed} after epoch" in resumed.stdout and f"Epoch {epochs}/{epochs}" in resumed.stdout
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in cnnlab.Run(killed).metrics] == list(range(1, epochs + 1))


def test_ctrl_c_stops_cleanly_and_can_resume(data_dir, tmp_path):
    run = tmp_path / "interrupted"
    epochs = 1000  # ~0.1 s an epoch: ctrl-C after epoch 1 finds the run training, however late it comes
    with _sigint_at_its_default():
        proc = subprocess.Popen(_train_command(data_dir, run, epochs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        _wait_until_training(proc, run)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "cnnlab: interrupted" in err and "Traceback" not in err
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted" and 1 <= result["epochs_completed"] < epochs
    assert result["message"] == f"interrupted during epoch {result['epochs_completed'] + 1}"
    assert f"Stopped after {result['epochs_completed']} finished epoch{'' if result['epochs_completed'] == 1 else 's'}; resume with: cnnlab resume {run}" in out
    assert not (run / "model.safetensors").exists()  # no final weights: the state is the checkpoint
    # it resumes from the checkpoint (stopped again after one more epoch, to keep the test short)
    done = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["epoch"]
    assert done in (result["epochs_completed"], result["epochs_completed"] - 1)  # ctrl-C may cut a checkpoint write
    logs = []
    job = cnnlab.Job.resume(run, store=False)
    job.listeners += [lambda e: e.type == "log" and logs.append(e.data["text"]),
                      lambda e: e.type == "epoch_end" and job.stop()]
    job.run()
    assert f"Resuming {run} after epoch {done}" in logs
    assert job.status == "interrupted" and job.result["epochs_completed"] == done + 1
    assert [r["epoch"] for r in cnnlab.Run(run).metrics] == list(range(1, done + 2))


def test_summary_data_info_and_show(data_dir, tmp_path, capsys):
    assert cli("summary", "tutorial", "--data", "mnist") == 0
    out = capsys.readouterr().out
    assert "Total params: 44,426" in out and "Output shape" in out
    assert cli("data", "info", "mnist", "--data-dir", data_dir) == 0
    out = capsys.readouterr().out
    assert "200 training" in out and "50 test" in out and "channel mean" in out
    png = tmp_path / "grid.png"
    assert cli("data", "show", "cifar10", "--data-dir", data_dir, "--augment", "auto", "--out", png) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli("summary", "nonsense-model") == 2
    assert "unknown model" in capsys.readouterr().err


def test_a_model_too_large_for_memory_is_refused_before_allocating(data_dir, tmp_path, capsys):
    code = cli("train", "--data", "cifar10", "--data-dir", data_dir, "--set",
               "model=[{conv: {filters: 512, padding: same}}, {conv: {filters: 512, padding: same}}, flatten, "
               "{dense: 10}]", "--batch-size", "8192", "--run-dir", tmp_path / "big")
    err = capsys.readouterr().err
    assert code == 2 and "GB for batch_size 8192" in err and "lower batch_size" in err
    assert not (tmp_path / "big").exists()


def test_images_per_second_is_over_a_window_not_one_slow_batch():
    """An epoch's first batch is slow (the epoch's setup): over a window of batches the figure barely moves."""
    from cnnlab.train.engine import Throughput
    rate = Throughput(window=2.0)
    for _ in range(400):
        rate.add(32, 32 / 3600)  # 3,600 images/s: 3.6 s of batches
    rate.add(32, 0.2)  # an epoch's first batch: 160 images/s alone
    assert 2500 < rate.rate() < 3600
    assert len(rate.batches) < 250  # only the last ~2 s are kept
    assert Throughput(2.0).rate() is None
