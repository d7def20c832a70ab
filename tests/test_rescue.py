"""`cnnlab rescue`: the floor is cnnlab's defaults on the user's layers; the doctor's candidates race to a rung
on a validation split and the winner trains on as the final run; the budget is FLOP; a diverged candidate is
dropped, a stopped or killed rescue continues with the same decisions."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.rescue.budget import Entrant, Meter, parse_budget, plan_epochs, rung_epochs, val_fraction
from cnnlab.rescue.prior import candidates, floor
from cnnlab.rundir import Run

STUCK = {  # a Keras beginner's net: six weighted layers without normalisation, softmax output, heavy dropout,
    # Adam at a tiny rate, no augmentation
    "model": {"layers": [{"conv": {"filters": 8, "kernel": 3, "activation": "relu"}}, {"maxpool": 2},
                         {"conv": {"filters": 8, "kernel": 3, "activation": "relu"}}, {"maxpool": 2},
                         {"conv": {"filters": 8, "kernel": 3, "activation": "relu"}},
                         "flatten", {"dropout": 0.5}, {"dense": {"units": 16, "activation": "relu"}},
                         {"dense": {"units": 16, "activation": "relu"}},
                         {"dense": {"units": "classes", "activation": "softmax"}}]},
    "optimizer": {"name": "adam", "lr": 1e-5}, "augment": "none", "batch_size": 16, "threads": 1,
}
# normalised, no dropout, nothing saturating: the doctor has nothing to add to cnnlab's settings
SOUND = {"model": {"layers": [{"conv": {"filters": 8, "kernel": 3, "padding": "same", "bias": False}}, "batchnorm", "relu",
                              {"maxpool": 2}, "global_avgpool", {"dense": "classes"}]},
         "optimizer": {"name": "sgd", "lr": 0.5}, "threads": 1}


def _kinds(layers):
    return [e if isinstance(e, str) else next(iter(e)) for e in layers]


def test_the_budget_is_flop_and_every_candidate_is_planned_for_all_of_it_as_if_it_wins():
    assert parse_budget("15") == parse_budget("15 epochs") == parse_budget("15ep")
    assert parse_budget("0.2pflop").unit == "pflop" and parse_budget("0.2 PFLOP").amount == 0.2
    with pytest.raises(UserError, match="epochs of the training set"):
        parse_budget("fifteen")
    meter = Meter(50_000, 6e9)  # 0.3 PFLOP an epoch
    assert meter.flop(parse_budget("0.3pflop")) == pytest.approx(meter.flop(parse_budget("1")))
    assert val_fraction(50_000) == 0.05 and val_fraction(10_000) == 0.1 and val_fraction(30_000) == pytest.approx(1 / 12)
    assert rung_epochs(15) == 1 and rung_epochs(40) == 2 and rung_epochs(200) == 3
    total = meter.flop(parse_budget("15"))
    train = 47_500
    entrants = [Entrant("floor", 6e9, train, True), Entrant("wide", 24e9, train, True),
                Entrant("forecast", 6e9, train / 2, False)]
    plan = plan_epochs(total, entrants, rung=1, final_images=50_000)
    # the floor pays for the wide net's first epoch (4x), half an epoch of the forecast and its own rung on the
    # train split; the rest goes on all 50,000 images
    assert plan == {"floor": 1 + int((15 * 50_000 - 4 * train - train / 2 - train) / 50_000),
                    "wide": 1 + int((15 * 50_000 - train * 1.5 - 4 * train) / (4 * 50_000))}
    assert "forecast" not in plan
    with pytest.raises(UserError, match="larger budget"):
        plan_epochs(meter.flop(parse_budget("2")), entrants, rung=1, final_images=50_000)


def test_the_floor_is_cnnlabs_settings_and_the_doctor_prescribes_its_fixes_together():
    base = floor(STUCK)
    assert set(base) == {"model", "threads"}  # the user's optimizer, batch and augmentation are cnnlab's now
    found = {c.name: c for c in candidates(STUCK, allow_architecture=False)}
    assert list(found) == ["floor", "prescribed", "forecast"]
    assert found["prescribed"].changes == ["less-dropout", "lr-div3"]  # its layers kept: training settings only
    assert found["prescribed"].config["model"]["layers"][6] == {"dropout": {"rate": 0.25}}
    assert not found["prescribed"].architecture and found["forecast"].architecture
    assert not found["forecast"].promotable and "batchnorm" in _kinds(found["forecast"].config["model"]["layers"])
    # where batchnorm goes in, dropout comes out (halved, it cost the Keras net 3 points on CIFAR-10)
    assert found["forecast"].changes == ["no-dropout", "batchnorm"]
    assert "dropout" not in _kinds(found["forecast"].config["model"]["layers"])
    allowed = {c.name: c for c in candidates(STUCK, allow_architecture=True)}
    assert list(allowed) == ["floor", "prescribed"]  # nothing left to forecast
    assert allowed["prescribed"].changes == ["no-dropout", "batchnorm"]
    assert _kinds(allowed["prescribed"].config["model"]["layers"]).count("batchnorm") == 3
    assert "dropout" not in _kinds(allowed["prescribed"].config["model"]["layers"])
    assert STUCK["model"]["layers"][6] == {"dropout": 0.5}  # the user's config is never touched
    assert [c.name for c in candidates(SOUND, allow_architecture=True)] == ["floor"]
    # a shallow plain net (five weighted layers) trains as well without batchnorm: nothing is prescribed
    shallow = {"model": {"layers": [{"conv": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}},
                                    {"maxpool": 2}] * 3 + ["flatten", {"dense": {"units": 16, "activation": "relu"}},
                                                           {"dense": "classes"}]}}
    assert [c.name for c in candidates(shallow, allow_architecture=True)] == ["floor"]
    # a bundle stays within 1.5x the floor's compute: padding that keeps every map full size is left out, and said
    unpadded = {"model": {"layers": [{"conv": {"filters": 8, "kernel": 3}}, "relu"] * 5 + ["flatten", {"dense": "classes"}]}}
    cost = lambda c: 4.0 if "same" in json.dumps(c["model"]) else 1.0  # noqa: E731
    found = {c.name: c for c in candidates(unpadded, allow_architecture=True, flop_of=cost)}
    assert found["prescribed"].changes == ["batchnorm"]
    assert "(padding same on unpadded convs left out: over 1.5x the compute)" in found["prescribed"].label
    # a net that starts from trained weights keeps its layers: its prescription is the fine-tune schedule
    tuned = {**STUCK, "weights": "runs/pretrained"}
    found = {c.name: c for c in candidates(tuned, allow_architecture=True)}
    assert list(found) == ["floor", "prescribed"] and found["prescribed"].changes == ["finetune", "less-dropout"]
    assert found["prescribed"].config["finetune"] == {"freeze": "body", "head_epochs": 1, "rates": "discriminative"}
    assert found["floor"].config["weights"] == "runs/pretrained"
    sigmoid = {"model": {"layers": [{"conv": {"filters": 8, "kernel": 3, "activation": "sigmoid"}}] * 4 +
                         ["flatten", {"dense": {"units": 64, "activation": "tanh"}}, {"dense": "classes"}]}}
    found = {c.name: c for c in candidates(sigmoid, allow_architecture=False)}
    assert found["prescribed"].changes == ["adam"] and found["prescribed"].config["optimizer"]["name"] == "adam"
    assert found["forecast"].changes == ["adam", "relu", "batchnorm", "pad-same"]
    assert "sigmoid" not in json.dumps(found["forecast"].config["model"]) and "tanh" not in json.dumps(
        found["forecast"].config["model"])


def _store_rows(runs):
    from cnnlab.track.store import Store
    return {r["id"]: r for r in Store(runs / "cnnlab.db").runs()}


def test_a_rescue_races_the_candidates_and_the_winner_trains_on_as_the_final_run(tmp_path, data_dir, capsys):
    config = tmp_path / "stuck.yaml"
    config.write_text(yaml.safe_dump(STUCK))
    runs = tmp_path / "runs"
    code = main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "6",
                 "--runs-root", str(runs)])
    out = capsys.readouterr().out
    assert code == 0
    assert "lint fix [softmax-output]" in out and "+- dense: {units: classes}" in out  # the fix, as a diff
    folder = runs / "rescues" / "stuck-cifar10"
    journal = json.loads((folder / "rescue.json").read_text())
    steps = {s["name"]: s for s in journal["steps"]}
    assert list(steps) == ["lint", "floor", "prescribed", "forecast", "final"]
    plan = journal["plan"]
    assert plan["rung"] == 1 and plan["val_split"] == 0.1
    winner = next(s for s in journal["steps"] if s["status"] == "won")
    loser = next(s for s in journal["steps"] if s["status"] == "dropped")
    assert {winner["name"], loser["name"]} == {"floor", "prescribed"} and steps["forecast"]["status"] == "forecast"
    # every candidate raced to the rung on the same split and schedule; the winner's run IS the final run
    for name in ("floor", "prescribed", "forecast"):
        trial = yaml.safe_load((Path(steps[name]["run"]) / "config.yaml").read_text())
        assert (trial["data"]["val_split"] == 0.1 or name == winner["name"]) and trial["epochs"] == plan["epochs"].get(name, plan["epochs"]["floor"])
        assert steps[name]["epoch"] == 1 and steps[name]["val_acc"] is not None
    assert steps["final"]["run"] == winner["run"]
    final = yaml.safe_load((Path(winner["run"]) / "config.yaml").read_text())
    assert final["epochs"] == plan["epochs"][winner["name"]] and not final["data"]["val_split"]  # all images
    metrics = Run(winner["run"]).metrics
    assert metrics[0]["val_acc"] is not None and metrics[-1]["test_acc"] is not None
    assert Run(winner["run"]).data_info["train"] == 100 and steps["floor"]["images"] == 90
    assert yaml.safe_load((folder / "floor.yaml").read_text())["model"]["layers"][-1] == {"dense": {"units": "classes"}}
    # the budget holds, in FLOP; the forecast cost half an epoch
    per_epoch = journal["train_images"] * journal["flop_per_image"]
    spent = sum(s["flop"] for s in journal["steps"])
    assert spent <= 6 * per_epoch + 1e-6 and steps["forecast"]["images"] == pytest.approx(0.5 * steps["floor"]["images"], rel=0.15)
    assert f"spent {spent / per_epoch:.2f} of 6.00 epochs" in out and "the search:" in out
    assert "forecast, not applied: " in out and "batchnorm after every conv" in out
    # the test set is read once: by the final run; the others stopped at the rung without a test score
    rows = _store_rows(runs)
    assert rows[Path(winner["run"]).name]["test_acc"] is not None
    assert {"rescue:stuck-cifar10", "final"} <= set(rows[Path(winner["run"]).name]["tags"])
    for s in (loser, steps["forecast"]):
        assert rows[Path(s["run"]).name]["test_acc"] is None and "rescue:stuck-cifar10" in rows[Path(s["run"]).name]["tags"]
    # the same name with other arguments is refused, not mixed into this rescue's journal
    assert main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "6",
                 "--runs-root", str(runs), "--seed", "1"]) == 2
    assert "was started with other arguments" in capsys.readouterr().err
    assert main(["report", winner["run"]]) == 0
    assert "Rescue: what each change gave" in (Path(winner["run"]) / "report.html").read_text()


def test_with_nothing_to_prescribe_the_rescue_is_exactly_cnnlab_train_of_the_floor(tmp_path, data_dir, capsys):
    """The floor cannot be lost when the doctor has nothing to add: the whole budget goes to it, and it ends
    where `cnnlab train floor.yaml --epochs B` ends, to the last digit."""
    config = tmp_path / "sound.yaml"
    config.write_text(yaml.safe_dump(SOUND))
    runs = tmp_path / "runs"
    assert main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "3",
                 "--runs-root", str(runs)]) == 0
    folder = runs / "rescues" / "sound-cifar10"
    journal = json.loads((folder / "rescue.json").read_text())
    assert [s["name"] for s in journal["steps"]] == ["alone"]
    assert main(["train", str(folder / "floor.yaml"), "--epochs", "3", "--run-dir", str(tmp_path / "plain"),
                 "--quiet"]) == 0
    plain = json.loads((tmp_path / "plain" / "result.json").read_text())
    assert journal["steps"][0]["test_acc"] == plain["test_acc"]
    assert "nothing beyond cnnlab's training settings" in capsys.readouterr().out


def test_a_candidate_that_diverges_is_dropped_and_counted_and_the_rescue_goes_on(tmp_path, data_dir):
    from cnnlab.app.job import Job
    from cnnlab.rescue.budget import parse_budget
    from cnnlab.rescue.loop import Rescue
    from cnnlab.rescue.prior import Candidate
    base = floor({**STUCK, "data": {"name": "cifar10", "dir": str(data_dir)}})
    wild = json.loads(json.dumps(base))
    wild["optimizer"] = {"name": "sgd", "lr": 1e6}
    wild["batch_size"] = 4  # 20 steps an epoch at that rate: inf, then nan
    entrants = [Candidate("floor", "the floor", base), Candidate("prescribed", "a rate of a million", wild)]
    loop = Rescue(entrants, parse_budget("6"), tmp_path / "r", Meter(100, 6e5), Job, name="r",
                  flop_of=lambda c: 6e5, started={"name": "r"}, log=lambda text: None)
    (tmp_path / "r").mkdir()
    final = loop.run()
    steps = {s.name: s for s in loop.journal.steps}
    assert steps["prescribed"].status == "diverged" and steps["prescribed"].flop > 0
    assert steps["prescribed-lr3"].status == "diverged"  # raced again once at a third of the rate
    assert steps["floor"].status == "won" and final.test_acc is not None
    assert "diverged" in loop.table()


ROOT = Path(__file__).resolve().parents[1]


def _rescue(folder, data_dir, name, fault=None, sigterm_after=None):
    argv = [sys.executable, "-m", "cnnlab", "rescue", str(ROOT / "tests" / "keras" / "cifar10_cnn_keras2.py"), "--data",
            "cifar10", "--data-dir", str(data_dir), "--budget", "6", "--runs-root", str(folder / "runs"),
            "--name", name]
    env = {**os.environ, **({"CNNLAB_FAULT": fault} if fault else {})}  # SIGKILL at that point, the nth time
    if sigterm_after is None:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder)
    else:  # SIGTERM once the log shows `sigterm_after`
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if sigterm_after in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=120)
        done = subprocess.CompletedProcess(argv, proc.returncode, "".join(lines) + out, err)
    journal = folder / "runs" / "rescues" / name / "rescue.json"
    return done, json.loads(journal.read_text()) if journal.exists() else None


def _decisions(journal: dict) -> list:
    return [(s["name"], s["status"], s["val_acc"], s["test_acc"]) for s in journal["steps"]]


@pytest.mark.parametrize("stop", ["kill-in-race", "kill-in-final", "sigterm"])
def test_a_killed_or_stopped_rescue_continues_with_the_same_decisions(tmp_path, data_dir, stop):
    """Killed (SIGKILL) in the race or in the final run, or stopped with SIGTERM: the same command continues,
    redoes nothing that was done, decides exactly as a rescue never stopped, and stays within its budget."""
    whole, reference = _rescue(tmp_path, data_dir, "whole")
    assert whole.returncode == 0, whole.stderr
    if stop == "sigterm":
        stopped, before = _rescue(tmp_path, data_dir, "frag", sigterm_after="  floor ")
        assert stopped.returncode == 130, stopped.stderr
        assert "continue with: cnnlab rescue" in stopped.stderr and "interrupted" in stopped.stderr
        assert before["state"] == "stopped"
    else:
        nth = {"kill-in-race": 2, "kill-in-final": 5}[stop]  # rungs at epoch-ends 1-3, the final run's after
        stopped, before = _rescue(tmp_path, data_dir, "frag", f"epoch-end:{nth}")
        assert stopped.returncode == -9, stopped.stderr
    assert "final" not in {s["name"] for s in before["steps"]}
    again, after = _rescue(tmp_path, data_dir, "frag")
    assert again.returncode == 0, again.stderr
    assert _decisions(after) == _decisions(reference)
    if any(s["name"] == "floor" for s in before["steps"]):
        assert not any(line.lstrip().startswith("floor ") for line in again.stdout.splitlines())  # not redone
    assert sum(s["flop"] for s in after["steps"]) <= 6 * after["train_images"] * after["flop_per_image"] * (1 + 1e-9)


def test_a_budget_past_the_epoch_limit_or_a_file_that_is_no_model_is_one_sentence(tmp_path, data_dir, capsys):
    config = tmp_path / "sound.yaml"
    config.write_text(yaml.safe_dump(SOUND))
    runs = tmp_path / "runs"
    assert main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget",
                 "99999999999999999999", "--runs-root", str(runs)]) == 2
    assert "over cnnlab's limit of 100,000; give a smaller budget" in capsys.readouterr().err
    # nothing trained: the same name takes other arguments
    assert main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "2",
                 "--runs-root", str(runs)]) == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n" * 100)
    assert main(["rescue", str(notes), "--runs-root", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "not a file cnnlab reads as a model" in err and "root:x" not in err
