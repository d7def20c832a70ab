"""The run store under concurrent writers and a killed writer; runs, compare and report as a user runs them."""
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.track.store import Store


def _writer(path, worker, epochs):
    store = Store(path)
    run_dir = Path(path).parent / f"run-{worker}"
    store.record_start(run_dir, {"model": "tutorial", "epochs": epochs, "name": f"w{worker}"}, {"macs": 1}, "mnist")
    for epoch in range(1, epochs + 1):
        store.record_epoch(run_dir.name, {"epoch": epoch, "loss": 1.0 / epoch, "acc": 0.1 * epoch})
    store.record_result(run_dir.name, {"status": "finished", "test_acc": 0.5, "epochs_completed": epochs})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "store.db"
    Store(path)
    ctx = multiprocessing.get_context("fork")  # the children only touch SQLite
    procs = [ctx.Process(target=_writer, args=(str(path), w, 25)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(path)
    runs = store.runs()
    assert len(runs) == 6 and all(r["status"] == "finished" for r in runs)
    assert all(len(store.metrics(r["id"])) == 25 for r in runs)


KILLED_WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO metrics (run_id, epoch, loss) VALUES ('half-written', 1, 0.5)")
print("in transaction", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_mid_transaction_leaves_the_store_readable(tmp_path):
    path = tmp_path / "store.db"
    store = Store(path)
    _writer(str(path), 0, 3)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in transaction"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(store.runs()) == 1 and store.metrics("half-written") == []
    _writer(str(path), 1, 2)  # and writable again
    assert len(store.runs()) == 2


def test_a_crashed_run_shows_as_crashed(tmp_path):
    store = Store(tmp_path / "s.db")
    store.record_start(tmp_path / "r", {"model": "m", "epochs": 3}, {}, "mnist")
    db = sqlite3.connect(store.path)
    db.execute("UPDATE runs SET pid=999999999")
    db.commit()
    assert store.runs()[0]["status"] == "crashed"


@pytest.fixture
def two_runs(data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    for lr in ("0.01", "0.2"):
        assert main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--model", "tutorial", "--epochs", "2",
                     "--batch-size", "32", "--lr", lr, "--run-dir", str(runs / f"lr{lr}")]) == 0
    capsys.readouterr()
    return runs


def test_runs_list_filter_show_tag_note_export(two_runs, tmp_path, capsys):
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "lr0.01" in out and "lr0.2" in out and "finished" in out
    assert main(["runs", "--filter", "id~0.2", "--sort", "test_acc", "--desc"]) == 0
    out = capsys.readouterr().out
    assert "lr0.2" in out and "lr0.01" not in out
    assert main(["runs", "tag", "lr0.2", "baseline"]) == 0
    assert main(["runs", "note", "lr0.2", "higher", "lr"]) == 0
    capsys.readouterr()
    assert main(["runs", "--filter", "tag=baseline"]) == 0
    assert "baseline" in capsys.readouterr().out
    assert main(["runs", "show", "lr0.2"]) == 0
    out = capsys.readouterr().out
    assert "note              higher lr" in out and "test acc" in out
    csv_path = tmp_path / "runs.csv"
    assert main(["runs", "export", str(csv_path)]) == 0
    assert len(csv_path.read_text().splitlines()) == 3
    assert main(["runs", "--filter", "acc=>1"]) == 2
    assert "--filter" in capsys.readouterr().err


def test_reindex_rebuilds_the_store_from_directories(two_runs, tmp_path, capsys):
    store_path = Path(os.environ["CNNLAB_RUNS"]) / "cnnlab.db"
    store_path.unlink()
    assert main(["runs", "reindex", str(two_runs)]) == 0
    assert "indexed 2 runs" in capsys.readouterr().out
    runs = Store(store_path).runs()
    assert sorted(r["id"] for r in runs) == ["lr0.01", "lr0.2"] and all(r["status"] == "finished" for r in runs)
    assert len(Store(store_path).metrics("lr0.2")) == 2


def test_compare_shows_differences_and_writes_a_figure(two_runs, tmp_path, capsys):
    out_png = tmp_path / "cmp.png"
    assert main(["compare", "lr0.01", "lr0.2", "--out", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "optimizer.lr" in out and "0.0100" in out and "0.2000" in out and "test_acc" in out
    assert "data.name" not in out  # the same in both: not a difference
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_report_html_has_every_section_with_embedded_images(two_runs, capsys):
    assert main(["report", str(two_runs / "lr0.2"), "--image", "3"]) == 0
    page = (two_runs / "lr0.2" / "report.html").read_text()
    for section in ("summary", "curves", "diagnosis", "confusion", "per-class", "wrong", "filters", "feature-maps"):
        assert f'<section id="{section}">' in page
    assert page.count("data:image/png;base64,") == 5 and "http" not in page.replace("charset", "")
    assert "test image 3" in page and "Diagnosis:" in page
    assert not re.search(r"<td>\d\.\d{5,}</td>", page)  # accuracies as 0.9619, not 0.9619238476953907
    assert main(["report", "lr0.2", "--format", "png"]) == 0
    assert sorted(p.name for p in (two_runs / "lr0.2" / "report").iterdir()) == [
        "confusion.png", "curves.png", "feature_maps.png", "filters.png", "wrong.png"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    assert main(["report", str(two_runs / "lr0.2")]) == 0
    page = (two_runs / "lr0.2" / "report.html").resolve()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-ok="5/5"' in dom  # every embedded figure decoded
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image
    with Image.open(shot) as img:
        assert img.size == (1200, 3000)
        colours = img.convert("L").getextrema()
        assert colours[0] < 50 and colours[1] > 200  # text and figures on a white page, not a blank one


def test_tensorboard_logging(data_dir, tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "tb"
    assert main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--model", "tutorial", "--epochs", "1",
                 "--batch-size", "32", "--run-dir", str(run), "--tensorboard", "--quiet"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/acc", "test/test_acc"} <= set(events.Tags()["scalars"])
