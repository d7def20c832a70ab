"""`cnnlab rescue`: lint fixes as diffs, trials branched from the best run and kept only when they help, a
budget that counts every trial, a final run on the full training set, and a rescue that continues after a kill."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.rescue.budget import Meter, parse_budget, final_epochs
from cnnlab.rescue.changes import CHANGES, candidates
from cnnlab.rundir import Run

ROOT = Path(__file__).resolve().parents[1]

STUCK = {  # a Keras beginner's net: softmax output, heavy dropout, Adam at a tiny rate, no augmentation
    "model": {"layers": [{"conv": {"filters": 8, "kernel": 3, "activation": "relu"}}, {"maxpool": 2},
                         {"conv": {"filters": 8, "kernel": 3, "activation": "relu"}}, {"maxpool": 2},
                         "flatten", {"dropout": 0.5}, {"dense": {"units": "classes", "activation": "softmax"}}]},
    "optimizer": {"name": "adam", "lr": 1e-5}, "augment": "none", "batch_size": 16, "threads": 1,
}


def test_budgets_read_as_epochs_or_pflop_and_bad_ones_are_refused():
    assert parse_budget("15") == parse_budget("15 epochs") == parse_budget("15ep")
    assert parse_budget("0.2pflop").unit == "pflop" and parse_budget("0.2 PFLOP").amount == 0.2
    with pytest.raises(UserError, match="epochs of the training set"):
        parse_budget("fifteen")
    meter = Meter(50_000, 6e9)  # 0.3 PFLOP an epoch
    assert meter.in_epochs(parse_budget("0.3pflop")) == pytest.approx(1.0)
    assert final_epochs(15) == 8
    with pytest.raises(UserError, match="at least 2 epochs"):
        final_epochs(1.8)


def test_changes_edit_the_layer_list_as_written_and_architecture_needs_the_flag():
    config = json.loads(json.dumps(STUCK))
    bn = CHANGES["batchnorm"].apply(config)["model"]["layers"]
    assert [e if isinstance(e, str) else next(iter(e)) for e in bn][:4] == ["conv", "batchnorm", "maxpool", "conv"]
    padded = CHANGES["pad-same"].apply(config)["model"]["layers"]
    assert padded[0]["conv"]["padding"] == "same" and padded[0]["conv"]["filters"] == 8
    assert CHANGES["less-dropout"].apply(config)["model"]["layers"][5] == {"dropout": {"rate": 0.25}}
    assert CHANGES["sgd-onecycle"].apply(config)["optimizer"]["name"] == "sgd"
    assert CHANGES["sgd-onecycle"].apply({"model": "tutorial"}) is None  # cnnlab's settings already
    assert CHANGES["augment"].apply(config)["augment"] == "auto"
    assert CHANGES["augment"].apply({"model": "tutorial"}) is None
    assert CHANGES["batchnorm"].apply({"model": "tutorial"}) is None       # a named net is not edited
    assert config == STUCK                                                 # the original is never touched
    assert not any(c.architecture for c in candidates("underfitting", False, set()))
    assert [c.name for c in candidates("underfitting", True, set())][:3] == ["less-dropout", "less-decay", "batchnorm"]


def test_a_rescue_fixes_lint_branches_trials_keeps_what_helps_and_trains_the_final_model(tmp_path, data_dir, capsys):
    config = tmp_path / "stuck.yaml"
    config.write_text(yaml.safe_dump(STUCK))
    runs = tmp_path / "runs"
    code = main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "6",
                 "--runs-root", str(runs)])
    out = capsys.readouterr().out
    assert code == 0
    assert "lint fix [softmax-output]" in out and "+- dense: {units: classes}" in out  # the fix, as a diff
    journal = json.loads((runs / "rescues" / "stuck-cifar10" / "rescue.json").read_text())
    steps = {s["name"]: s for s in journal["steps"]}
    assert list(steps)[:3] == ["lint", "baseline", "sgd-onecycle"] and "final" in steps
    for s in journal["steps"]:
        if s["name"] not in ("lint", "baseline", "final", "lr-search"):
            # every trial branched from a run recorded before it, on a validation split, never the test set
            trial = yaml.safe_load((Path(s["run"]) / "config.yaml").read_text())
            assert trial["parent"] and trial["data"]["val_split"] == 0.1 and s["val_acc"] is not None
    final = yaml.safe_load((Path(steps["final"]["run"]) / "config.yaml").read_text())
    assert final["epochs"] == 3 and not final["data"]["val_split"] and not final["data"]["subset"]
    assert final["parent"] == Path(next(s for s in reversed(journal["steps"][:-1]) if s["kept"])["run"]).name
    spent = sum(s["images"] for s in journal["steps"]) / journal["train_images"]
    assert spent <= 6 + 1e-9
    assert "| final |" in out and "test accuracy" in out and f"spent {spent:.2f} of 6.00 epochs" in out
    # the store links the runs and tags them; the final run's report carries the table
    from cnnlab.track.store import Store
    rows = {r["id"]: r for r in Store(runs / "cnnlab.db").runs()}
    final_row = rows[Path(steps["final"]["run"]).name]
    assert {"rescue:stuck-cifar10", "final"} <= set(final_row["tags"])
    assert all("rescue:stuck-cifar10" in rows[Path(s["run"]).name]["tags"] for s in journal["steps"] if s["run"]
               and s["name"] != "lr-search")
    # the test set is read once, by the final run: no trial (the learning-rate search's included) has a score on it
    trials = [r for name, r in rows.items() if name != final_row["id"]]
    assert trials and all(r["test_acc"] is None for r in trials) and final_row["test_acc"] is not None
    # the same name with other arguments is refused, not mixed into this rescue's journal
    assert main(["rescue", str(config), "--data", "cifar10", "--data-dir", str(data_dir), "--budget", "6",
                 "--runs-root", str(runs), "--seed", "1"]) == 2
    assert "was started with other arguments" in capsys.readouterr().err
    assert main(["report", steps["final"]["run"]]) == 0
    assert "Rescue: what each change gave" in (Path(steps["final"]["run"]) / "report.html").read_text()


def _rescue(folder, data_dir, name, fault=None):
    argv = [sys.executable, "-m", "cnnlab", "rescue", str(ROOT / "examples" / "keras-fragment.py"), "--data",
            "cifar10", "--data-dir", str(data_dir), "--budget", "6", "--runs-root", str(folder / "runs"),
            "--name", name]
    env = {**os.environ, **({"CNNLAB_FAULT": fault} if fault else {})}  # SIGKILL at that point, the nth time
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder)
    journal = folder / "runs" / "rescues" / name / "rescue.json"
    return done, json.loads(journal.read_text()) if journal.exists() else None


def _decisions(journal: dict) -> list:
    return [(s["name"], s["kept"], s["val_acc"], s["parent"] and s["parent"].split("-", 1)[1]) for s in journal["steps"]]


@pytest.mark.parametrize("kill_in", ["baseline", "lr-search", "final"])
def test_a_killed_rescue_continues_where_it_stopped(tmp_path, data_dir, kill_in):
    """Killed in a trial, in the learning-rate search or in the final run, and started again: it finishes
    within its budget without redoing what was done (a Keras `model.add` fragment imported on the way). Killed
    outside the search it decides exactly as a rescue never killed; in the search, Optuna's sampler (which
    draws from the trials so far) may suggest other rates after the restart."""
    whole, reference = _rescue(tmp_path, data_dir, "whole")
    assert whole.returncode == 0, whole.stderr
    folder = tmp_path / "runs" / "rescues" / "whole"
    searched = sum(len(Run(m.parent).metrics) for m in folder.glob("*/metrics.csv") if not m.parent.name.endswith("final"))
    nth = {"baseline": 2, "lr-search": 5, "final": searched + 2}[kill_in]  # baseline: 3 epochs, final: 3
    killed, before = _rescue(tmp_path, data_dir, "frag", f"epoch-end:{nth}")
    assert killed.returncode == -9, killed.stderr
    before = before or {"steps": []}  # killed in the first trial: nothing journalled yet
    assert "final" not in {s["name"] for s in before["steps"]}
    assert (tmp_path / "runs" / "rescues" / "frag" / "frag-final").exists() == (kill_in == "final")
    again, after = _rescue(tmp_path, data_dir, "frag")
    assert again.returncode == 0, again.stderr
    assert after["steps"][:len(before["steps"])] == before["steps"] and after["steps"][-1]["name"] == "final"
    if kill_in != "lr-search":
        assert _decisions(after) == _decisions(reference)
    if before["steps"]:
        log = again.stdout.split("What each change gave")[0].splitlines()
        assert not any(line.lstrip().startswith("baseline ") for line in log)  # what was done is not done again
    # the budget holds but for an epoch a kill cut short in the learning-rate search (its trial starts over)
    assert sum(s["images"] for s in after["steps"]) / after["train_images"] <= 6 + 0.9
