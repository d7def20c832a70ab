"""Rescue from the web: POST /api/rescues on a finished run queues one job in the training worker that trains
the trials and the final run (ordinary runs, in Runs with their parents); the page follows it by polling
GET /api/rescues/NAME; Stop and Resume work, and a rescue cut off by a dead worker or a server restart reads
as interrupted and resumes. Every test runs on a slice of the shared digit sample, a few seconds a rescue."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from browser import browser_page, digit_sample_slice, serving

fastapi = pytest.importorskip("fastapi", reason="fastapi is missing: pip install -e .")
from fastapi.testclient import TestClient  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from conftest import SHARED  # noqa: E402

SAMPLE = SHARED / "mnist-sample"
# a beginner's net the doctor has prescriptions for: heavy dropout (halved: a candidate of the race) and six
# weighted layers without normalisation (batchnorm: a forecast, since the architecture is not to be changed)
NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"conv": {"filters": 8, "padding": "same"}}, "relu",
       {"maxpool": 2}, {"conv": {"filters": 8, "padding": "same"}}, "relu", {"conv": {"filters": 8, "padding": "same"}},
       "relu", {"maxpool": 2}, "flatten", {"dropout": 0.5}, {"dense": {"units": 16, "activation": "relu"}},
       {"dense": "classes"}]


def digits_with_a_run(tmp: Path, per_class: int) -> tuple[Path, Path]:
    """(runs folder, data folder): `per_class` training and 5 test images a digit, and one finished run
    `start` of a small net on them (one epoch of Adam at a rate too small to learn)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is missing (the shared data sets' digit sample)")
    data = digit_sample_slice(SAMPLE, tmp / "data", train=per_class, test=5)
    runs = tmp / "runs"
    cnnlab.train({"name": "small-net", "model": {"name": "small-net", "layers": NET},
                  "data": {"name": str(data / "mnist-sample")}, "epochs": 1, "batch_size": 32, "threads": 1,
                  "optimizer": {"name": "adam", "lr": 1e-5}, "augment": "none"},
                 run_dir=runs / "start", quiet=True, store=runs / "cnnlab.db")
    return runs, data


def wait_for(client, name: str, states=("finished", "interrupted", "failed"), timeout: float = 180,
             until=None) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rescue = client.get(f"/api/rescues/{name}").json()
        if rescue["state"] in states or (until is not None and until(rescue)):
            return rescue
        time.sleep(0.2)
    raise AssertionError(f"rescue {name} still {rescue['state']} after {timeout} s: {rescue}")


def test_a_rescue_started_on_a_run_trains_trials_and_its_final_run_lands_in_runs(tmp_path):
    runs, data = digits_with_a_run(tmp_path, 20)
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        # bad input is a 4xx naming the field, never a 500
        for body, status, says in (({"run": "start", "budget": 1}, 422, "budget"),
                                   ({"run": "start", "budget": "lots"}, 422, "budget"),
                                   ({"run": "start", "budget": 3, "change_architecture": "maybe"}, 422,
                                    "change_architecture"),
                                   ({"run": "start", "budget": 3, "epochs": 2}, 422, "epochs"),
                                   ({"budget": 3}, 422, "run"),
                                   ({"run": "../start", "budget": 3}, 404, "no run"),
                                   ({"run": "nope", "budget": 3}, 404, "no run")):
            answer = client.post("/api/rescues", json=body)
            assert answer.status_code == status and says in answer.json()["detail"], (body, answer.json())
        assert client.get("/api/rescues/nope").status_code == 404
        assert client.get("/api/rescues/..%2F..").status_code == 404

        started = client.post("/api/rescues", json={"run": "start", "budget": 4})
        assert started.status_code == 202 and started.json() == {"name": "start-rescue", "state": "queued"}
        rescue = wait_for(client, "start-rescue")
        assert rescue["state"] == "finished", rescue
        assert rescue["start_id"] == "start" and rescue["log"]
        steps = {s["name"]: s for s in rescue["steps"]}
        assert {"floor", "prescribed", "forecast"} <= set(steps) and steps["floor"]["val_acc"] is not None
        assert rescue["spent"] <= rescue["budget_total"] + 1e-9 and "| floor |" in rescue["table"]
        final = rescue["final"]
        assert final["id"] == Path(final["run"]).name and final["test_acc"] is not None
        assert not rescue["can_stop"] and not rescue["can_resume"]
        assert client.post("/api/rescues/start-rescue/stop", json={}).status_code == 409
        assert client.post("/api/rescues/start-rescue/resume", json={}).status_code == 409

        # the trials and the final run are runs: in the list with their parents, opened and compared as any run
        rows = {r["id"]: r for r in client.get("/api/runs").json()}
        assert rows[final["id"]]["status"] == "finished" and rows[final["id"]]["parent"] == "start"
        assert "rescue:start-rescue" in rows[final["id"]]["tags"]
        assert all(rows[s["id"]]["parent"] == "start" for s in rescue["steps"] if s["id"])
        assert client.get(f"/api/runs/{final['id']}").json()["result"]["status"] == "finished"
        compared = client.post("/api/compare", json={"ids": ["start", final["id"]]}).json()
        assert set(compared["results"]) == {"start", final["id"]}
        # rescued again, a rescue of its own beside the first; a budget too small for its race fails, saying so
        assert client.post("/api/rescues", json={"run": "start", "budget": 2}).json()["name"] == "start-rescue-2"
        small = wait_for(client, "start-rescue-2")
        assert small["state"] == "failed" and "give a larger budget" in small["message"], small


def test_stop_then_resume_continues_the_rescue_with_what_it_had_done(tmp_path):
    runs, data = digits_with_a_run(tmp_path, 100)
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        name = client.post("/api/rescues", json={"run": "start", "budget": 8}).json()["name"]
        wait_for(client, name, until=lambda r: r["state"] == "running" and r["log"])
        assert client.post(f"/api/rescues/{name}/stop", json={}).json() == {"name": name, "stopping": True}
        stopped = wait_for(client, name)
        assert stopped["state"] == "interrupted" and stopped["can_resume"] and stopped["final"] is None, stopped
        assert any("Resume on the page continues it" in line for line in stopped["log"])
        assert not any(str(runs) in line for line in stopped["log"])  # the server's folders are not shown
        assert client.post(f"/api/rescues/{name}/resume", json={}).status_code == 202
        done = wait_for(client, name)
        assert done["state"] == "finished" and done["final"]["test_acc"] is not None, done
        finished_before = [s for s in stopped["steps"] if s["status"] == "finished"]
        assert done["steps"][:len(finished_before)] == finished_before  # what was done is kept


def test_a_rescue_cut_off_by_a_server_restart_is_interrupted_and_resumes(tmp_path):
    """The server stopped mid-rescue (its worker told to stop, as Ctrl-C or SIGTERM does), a new one started on
    the same runs folder: the rescue reads as interrupted, and Resume finishes it."""
    runs, data = digits_with_a_run(tmp_path, 100)
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        name = client.post("/api/rescues", json={"run": "start", "budget": 8}).json()["name"]
        wait_for(client, name, until=lambda r: r["state"] == "running" and r["log"])
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        cut = client.get(f"/api/rescues/{name}").json()
        assert cut["state"] == "interrupted" and cut["can_resume"] and cut["final"] is None, cut
        assert client.post(f"/api/rescues/{name}/resume", json={}).status_code == 202
        done = wait_for(client, name)
        assert done["state"] == "finished" and done["final"]["test_acc"] is not None, done


def test_a_rescue_cut_off_by_the_worker_s_death_is_interrupted_after_a_restart_and_resumes(tmp_path, monkeypatch):
    runs, data = digits_with_a_run(tmp_path, 20)
    monkeypatch.setenv("CNNLAB_FAULT", "epoch-end:2")  # the worker process is SIGKILLed at its second epoch's end
    app = create_app(runs, str(data), worker_threads=1)
    with TestClient(app) as client:
        name = client.post("/api/rescues", json={"run": "start", "budget": 6}).json()["name"]
        cut = wait_for(client, name)
        monkeypatch.delenv("CNNLAB_FAULT")
        assert cut["state"] == "interrupted" and cut["can_resume"], cut
    # a new server on the same runs folder: the rescue is still interrupted, and Resume finishes it
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        again = client.get(f"/api/rescues/{name}").json()
        assert again["state"] == "interrupted" and again["can_resume"]
        assert client.post(f"/api/rescues/{name}/resume", json={}).status_code == 202
        done = wait_for(client, name)
        assert done["state"] == "finished" and done["final"]["test_acc"] is not None, done
        kept = [s for s in again["steps"] if s["status"] == "finished"]
        assert done["steps"][:len(kept)] == kept  # what was done before the kill is not done again


OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_the_page_rescues_a_run_from_its_doctor_panel(tmp_path):
    """Runs -> Doctor on a finished run -> Rescue this run with a budget of 4: the trials come in as rows with
    their curves, the final run is linked, shown in Runs with its parent, and compared with the start. Train's
    diagnosis offers the same button. Photographed at 1400 and 400 px into $CNNLAB_SCREENSHOTS."""
    runs, data = digits_with_a_run(tmp_path, 20)
    app = create_app(runs, str(data), worker_threads=1)
    try:
        with serving(app) as url, browser_page(tmp_path, 1400, 1000) as (page, errors, shots):
            page.goto(url)
            page.click("nav button[data-page=train]")
            page.evaluate("follow('start')")  # Train's verdict of a finished run: the doctor can act on it
            page.wait_for_selector("#verdict .rescue-button")
            page.click("nav button[data-page=runs]")
            page.click('#runs-table tbody tr[data-id="start"] button.doctor')
            page.wait_for_selector("#run-doctor .rescue-button")
            page.fill("#run-doctor .rescue-budget", "1")
            page.click("#run-doctor .rescue-button")
            page.wait_for_selector("#run-doctor .rescue-error:has-text('budget')")  # refused, and why
            page.fill("#run-doctor .rescue-budget", "4")
            page.click("#run-doctor .rescue-button")
            page.wait_for_selector("#rescue-table tbody tr.rescue-step", timeout=120_000)  # the first trials
            page.screenshot(path=str(shots / "rescue-trials-1400.png"), full_page=True)
            page.wait_for_selector("#rescue-final-link", timeout=180_000)
            page.wait_for_selector("#compare-diff table")
            steps = page.locator("#rescue-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.step)")
            assert steps[:3] == ["floor", "prescribed", "forecast"] and steps[-1] == "final"
            assert page.locator("#rescue-table tbody tr svg.spark circle").count() >= 4  # a curve for every run
            assert page.locator("#rescue-state").inner_text() == "finished"
            assert page.locator("#rescue-stop").is_disabled() and page.locator("#rescue-resume").is_disabled()
            final = page.locator("#rescue-final-link").inner_text()
            assert "against" in page.locator("#rescue-final").inner_text()  # the start's test accuracy beside
            assert final in page.locator("#compare-diff").inner_text() and "start" in page.locator("#compare-diff").inner_text()
            page.screenshot(path=str(shots / "rescue-finished-1400.png"), full_page=True)
            page.click("#rescue-final-link")  # the final run in Runs, with the run it came from
            row = page.locator(f'#runs-table tbody tr[data-id="{final}"]')
            row.wait_for()
            assert "from start" in row.inner_text() and "finished" in row.inner_text()
            # a narrow window, the page opened afresh: a rescue's tag in Runs opens it again
            page.set_viewport_size({"width": 400, "height": 900})
            page.reload()
            page.click("nav button[data-page=runs]")
            page.click(f'#runs-table tbody tr[data-id="{final}"] a.rescue-tag')
            page.wait_for_selector("#rescue-final-link")
            page.wait_for_selector("#compare-diff table")
            page.wait_for_timeout(300)
            assert page.evaluate(OVERFLOW) <= 0, "the rescue view at 400 px scrolls sideways"
            page.screenshot(path=str(shots / "rescue-finished-400.png"), full_page=True)
        assert not errors, errors
    finally:
        app.state.cnnlab.worker.close()


def test_stop_and_resume_in_the_page(tmp_path):
    """Stop while the race runs: the rescue is interrupted and Resume is offered; Resume finishes it, the rows
    done before the stop kept."""
    runs, data = digits_with_a_run(tmp_path, 100)
    app = create_app(runs, str(data), worker_threads=1)
    try:
        with serving(app) as url, browser_page(tmp_path, 1400, 1000) as (page, errors, shots):
            page.goto(url)
            page.click("nav button[data-page=runs]")
            page.click('#runs-table tbody tr[data-id="start"] button.doctor')
            # a budget the rescue cannot spend before the click lands: on a fast CPU (Zen 4, 0.2 s an epoch here)
            # budget 8 was spent between the page showing Stop and the stop arriving; 40 lasts about 10 s
            page.fill("#run-doctor .rescue-budget", "40")
            page.click("#run-doctor .rescue-button")
            page.click("#rescue-stop:not([disabled])", timeout=120_000)
            # interrupted, or (a failure to explain) the state it reached instead, with the page's note
            page.wait_for_selector("#rescue-state:is(.interrupted, .finished, .failed)", timeout=60_000)
            assert page.inner_text("#rescue-state") == "interrupted", page.inner_text("#rescue-view")
            page.screenshot(path=str(shots / "rescue-stopped-1400.png"), full_page=True)
            assert page.locator("#rescue-stop").is_disabled()
            page.click("#rescue-resume:not([disabled])")
            page.wait_for_selector("#rescue-final-link", timeout=180_000)
            assert page.locator("#rescue-state").inner_text() == "finished"
        assert not errors, errors
    finally:
        app.state.cnnlab.worker.close()
