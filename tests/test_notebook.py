"""cnnlab in Jupyter: the tour notebook executed in a real kernel keeps the live bar's last state, the summary
table and the curves; the live display driven by hand-made events; the HTML a notebook shows for a run, a
summary, a verdict, a comparison and a look inside a network, every text escaped."""
from __future__ import annotations

import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab.diagnose.doctor import Verdict
from cnnlab.events import Event
from cnnlab.track.compare import Comparison

from conftest import write_idx

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "examples" / "tour.ipynb"


# ------------------------------------------------------------------ the tour, in a kernel

def outputs(notebook) -> list[dict]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def test_the_tour_runs_in_a_kernel_and_keeps_what_it_showed(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    before = sorted(p.name for p in TOUR.parent.iterdir())
    notebook = nbformat.read(TOUR, as_version=4)
    # the kernel starts beside the notebook, as Jupyter starts it, and with no CNNLAB_RUNS: the notebook's
    # first cell alone keeps its runs out of the repository
    env = {k: v for k, v in os.environ.items() if k not in ("CNNLAB_RUNS", "CNNLAB_STORE")}
    env.update(PYTHONPATH=str(ROOT), CNNLAB_TOUR_DIR=str(tmp_path / "tour"))
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(TOUR.parent)}})
    client.execute(env=env)  # a cell that raises fails here, with its traceback

    shown = outputs(notebook)
    html = [o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {})]
    # the live bar, updated in place: its last state is the finished second epoch, full
    bar = next(h for h in html if "<progress" in h)
    assert "Epoch 2/2" in bar and "batch 25/25" in bar
    value, most = re.search(r"<progress value='(\d+)' max='(\d+)'", bar).groups()
    assert value == most == "50"
    assert any(h.startswith("<div><b>Test accuracy") and "Diagnosis:" in h for h in html)  # the end of the run
    assert any("<table>" in h and "Total params" in h for h in html)         # run.summary
    assert any("Diagnosis: too-short" in h and "<ol>" in h for h in html)    # cnnlab.doctor(run)
    assert any(" vs " in h and "optimizer.lr" in h for h in html)           # cnnlab.compare([run, other])
    assert any("probability" in h and "conv 6 5x5" in h for h in html)      # cnnlab.see(run, 0)
    pictures = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
                and any("image/png" in o.get("data", {}) for o in cell.outputs)]
    assert len(pictures) == 2  # the live curves, and the reader's own plt.plot: import cnnlab kept the inline backend
    # the runs went to the scratch folder, and nothing was left beside the notebook
    runs = tmp_path / "tour" / "runs"
    # two runs in the same second (a fast CPU) are <stamp>-tutorial and <stamp>-tutorial-2
    assert len([p for p in runs.iterdir() if p.is_dir() and p.name.split("-")[2] == "tutorial"]) == 2
    assert (runs / "cnnlab.db").exists()
    assert sorted(p.name for p in TOUR.parent.iterdir()) == before


# ------------------------------------------------------------------ the live display, by hand

class Handle:
    """Stands in for IPython's DisplayHandle: every version of one output."""

    def __init__(self, obj):
        self.versions = [obj]

    def update(self, obj):
        self.versions.append(obj)


class Screen:
    """Stands in for IPython's `display`: the outputs in the order they appeared."""

    def __init__(self):
        self.parts: list[Handle] = []

    def __call__(self, obj, display_id=False):
        assert display_id is True  # every part is shown to be updated in place
        self.parts.append(Handle(obj))
        return self.parts[-1]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def row(epoch: int, acc: float) -> dict:
    return {"epoch": epoch, "lr": 0.01, "loss": 1 - acc, "acc": acc, "val_loss": 1.1 - acc, "val_acc": acc - 0.05,
            "seconds": 2.0, "img_per_s": 100.0}


def test_the_live_display_updates_its_parts_in_place():
    pytest.importorskip("IPython")
    from cnnlab.viz.notebook import NotebookProgress
    screen, clock = Screen(), Clock()
    live = NotebookProgress(display=screen, clock=clock)
    say = lambda kind, **data: live(Event(kind, data, run="runs/demo"))  # noqa: E731
    say("log", text="Run runs/demo <script>")
    say("fit_start", run_dir="runs/demo", name="demo", config={}, summary={}, data={}, epochs=2,
        batches_per_epoch=10, history=[], pid=1)
    for epoch in (1, 2):
        say("epoch_start", epoch=epoch, epochs=2)
        for batch in range(1, 11):
            clock.now += 0.1  # ten batches a second: the bar redraws at most four times a second
            say("batch_end", epoch=epoch, batch=batch, batches=10, step=batch, loss=0.5, acc=0.8, img_per_s=160.0,
                lr=0.01)
        say("epoch_end", row=row(epoch, 0.6 + 0.2 * epoch), epochs=2, eta_s=2.0 * (2 - epoch))
    say("result", status="finished", test_acc=0.97, epochs_completed=2, wall_time_s=4.2)
    say("diagnosis", verdict={"regime": "good-fit", "headline": "levelled off", "prescriptions": ["go wider"],
                              "details": []}, text="")
    say("end", status="finished")

    log, bar, curves, end = screen.parts
    assert "&lt;script&gt;" in log.versions[-1].data and "<script>" not in log.versions[-1].data
    # throttled: 20 batches in 2 s redraw the bar ~8 times, plus once at each epoch's end and at the start
    assert 8 <= len(bar.versions) <= 14
    assert "Epoch 1/2" in bar.versions[2].data and "loss 0.5000" in bar.versions[2].data
    final = bar.versions[-1].data
    assert "Epoch 2/2" in final and "<progress value='20' max='20'" in final and "ETA" not in final
    assert "val_acc 0.950" in final  # the terminal's epoch line, under the bar
    assert len(curves.versions) == 2 and all(v.data.startswith(b"\x89PNG") for v in curves.versions)
    assert "Test accuracy 0.9700 after 2 epochs in 4.2s" in end.versions[-1].data
    assert "<b>Diagnosis: good-fit</b>" in end.versions[-1].data and "<li>go wider</li>" in end.versions[-1].data


def test_a_resumed_run_draws_its_earlier_epochs_at_once():
    pytest.importorskip("IPython")
    from cnnlab.viz.notebook import NotebookProgress
    screen = Screen()
    live = NotebookProgress(display=screen)
    live(Event("fit_start", {"name": "demo", "epochs": 3, "batches_per_epoch": 4, "history": [row(1, 0.7)]}))
    bar, curves = screen.parts
    assert "Epoch 2/3" in bar.versions[0].data and "<progress value='4' max='12'" in bar.versions[0].data
    assert curves.versions[0].data.startswith(b"\x89PNG")


def test_train_picks_the_live_display_only_inside_a_kernel(monkeypatch):
    pytest.importorskip("IPython.display")
    from cnnlab.app.job import progress
    from cnnlab.train.progress import Progress
    from cnnlab.viz.notebook import NotebookProgress, in_notebook
    kernel_shell = type("ZMQInteractiveShell", (), {})()
    terminal_shell = type("TerminalInteractiveShell", (), {})()
    for shell, inside in ((kernel_shell, True), (terminal_shell, False), (None, False)):
        monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda s=shell: s))
        assert in_notebook() is inside
        assert type(progress()) is (NotebookProgress if inside else Progress)
        assert type(progress(quiet=True)) is Progress
    monkeypatch.delitem(sys.modules, "IPython")
    assert in_notebook() is False  # IPython not imported: never imported for the question


# ------------------------------------------------------------------ the HTML reprs

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_idx(root / "mnist", n_train=100, n_test=30)
    config = {"model": "tutorial", "data": {"name": "mnist", "dir": str(root)}, "batch_size": 10, "epochs": 2,
              "threads": 1}
    first = cnnlab.train(config, runs_root=root / "runs", store=False, quiet=True)
    second = cnnlab.train({**config, "epochs": 1}, runs_root=root / "runs", store=False, quiet=True)
    return first, second


def test_a_run_shows_its_status_metrics_and_curves(two_runs):
    run, _ = two_runs
    html = run._repr_html_()
    assert f"<b>{run.dir.name}</b>" in html and "status finished" in html
    assert f"test accuracy {run.result['test_acc']:.4f}" in html
    assert html.count("<tr>") == 1 + 2 and "test acc" in html  # the header and one row an epoch
    assert '<img src="data:image/png;base64,' in html  # curves.png, inside the notebook file


def test_a_summary_is_a_table_with_totals(two_runs):
    summary = two_runs[0].summary
    html = summary._repr_html_()
    assert "<b>Model: tutorial</b>" in html and "<tfoot>" in html
    assert ">Total params</td>" in html and ">44,426</td>" in html
    assert html.count("<tr>") == 1 + len(summary.rows) + 3
    summary.name = "<img src=x onerror=alert(1)>"
    assert "<img" not in summary._repr_html_() and "&lt;img src=x" in summary._repr_html_()


def test_a_verdict_reads_as_its_text_does_and_escapes_it():
    verdict = Verdict("overfitting", "gap 0.20 <b>", ["add dropout", "add weight decay"], ["best at epoch 3"])
    html = verdict._repr_html_()
    assert "<b>Diagnosis: overfitting</b>" in html and "gap 0.20 &lt;b&gt;" in html
    assert "<ol><li>add dropout</li><li>add weight decay</li></ol>" in html and "<li>best at epoch 3</li>" in html
    assert "Next" not in Verdict("no-data", "nothing yet")._repr_html_()


def test_a_comparison_is_still_the_dict_the_page_gets_and_shows_tables_and_curves(two_runs):
    compared = cnnlab.compare(list(two_runs))
    assert json.loads(json.dumps(compared))["differ"] == {"epochs": {r.dir.name: n for r, n in zip(two_runs, (2, 1))}}
    html = compared._repr_html_()
    assert ">config key</th>" in html and ">epochs</td>" in html and ">test_acc</td>" in html
    assert '<img src="data:image/png;base64,' in html
    hostile = Comparison({"differ": {}, "results": {"<i>a": {"status": "<b>x"}}, "model_diff": {}})
    assert "<i>" not in hostile._repr_html_() and "&lt;b&gt;x" in hostile._repr_html_()
    assert "the configs are identical" in hostile._repr_html_()


def test_see_takes_a_test_index_a_path_or_an_array(two_runs, tmp_path):
    run, _ = two_runs
    by_index = cnnlab.see(run, 0)
    assert [layer["index"] for layer in by_index["layers"]] == [str(i) for i in range(1, 9)]
    html = by_index._repr_html_()
    assert ">probability</th>" in html and "<b>1</b> conv 6 5x5 valid relu \u2192 6x24x24" in html
    assert html.count('alt="channel ') == 6 + 6 + 16 + 16 + 16  # the maps of conv, pool, conv, pool, flatten
    digit = np.zeros((40, 40), np.uint8)
    digit[10:14] = 220
    Image.fromarray(digit).save(tmp_path / "band.png")
    from_file = cnnlab.see(run, tmp_path / "band.png", top_k=3)
    from_array = cnnlab.see(str(run.dir), np.stack([digit] * 3), top_k=3)  # C x H x W, RGB: made grey
    assert len(from_file["top"]) == 3 and from_file["top"] == from_array["top"]
    with pytest.raises(cnnlab.UserError, match="expected a uint8 array"):
        cnnlab.see(run, digit.astype(np.float32))
    with pytest.raises(cnnlab.UserError, match="test set has 30 images"):
        cnnlab.see(run, 30)
