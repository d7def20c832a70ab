"""Start from weights on the web: a request names `imagenet` (for a *-imagenet network) or a finished run of
this server (its id); cnnlab.app.weights decides, and a path, an unknown run or one whose model does not fit
is refused naming config.weights. A run started from a past run trains, says where its weights came from,
and shows its parent in Runs; on the page, "Start from" -> a past run, one epoch, then See on the new run."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from browser import browser_page, digit_sample_slice, draw_seven, serving

fastapi = pytest.importorskip("fastapi", reason="fastapi is missing: pip install -e .")
from fastapi.testclient import TestClient  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.app import lifecycle  # noqa: E402
from cnnlab.errors import UserError  # noqa: E402
from cnnlab.models.templates import TEMPLATES  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from conftest import SHARED  # noqa: E402
from test_imagenet_archs import _publish  # noqa: E402 — a torchvision-format file on the local weights server
try:  # the local weights server: conftest's fixture on main (07f1eea), test_imagenet_archs' before it
    from test_imagenet_archs import http_root  # noqa: E402,F401
except ImportError:
    pass

SAMPLE = SHARED / "mnist-sample"
NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"maxpool": 2}, {"conv": {"filters": 8, "padding": "same"}},
       "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]
WIDER = [{"conv": {"filters": 16, "padding": "same"}}] + NET[1:]
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture
def past_run(runs_root, data_dir) -> str:
    """A finished run of NET on the tiny MNIST set: the run a request may start from."""
    cnnlab.train({"name": "small-net", "model": {"name": "small-net", "layers": NET},
                  "data": {"name": "mnist", "dir": str(data_dir)}, "epochs": 1, "batch_size": 16, "threads": 1},
                 run_dir=runs_root / "small-start", quiet=True, store=runs_root / "cnnlab.db")
    return "small-start"


def plan(client, model, weights, **more):
    config = {"model": model, "data": {"name": "mnist"}, "epochs": 1, **more}
    if weights is not None:
        config["weights"] = weights
    return client.post("/api/plan", json={"config": config})


def test_a_request_names_imagenet_or_a_finished_run_never_a_path(client, past_run, runs_root):
    for weights, status, says in ((3, 400, "config.weights"), ("", 400, "config.weights"),
                                  ("/etc/passwd", 400,
                                   "config.weights: '/etc/passwd': a file on the server is refused"),
                                  (f"../{runs_root.name}/{past_run}", 400, "config.weights"),
                                  (str(runs_root / past_run), 400, "config.weights"),
                                  ("..", 400, "config.weights"),
                                  ("nope", 404, "config.weights: no finished run 'nope'"),
                                  ("imagenet", 400, "config.weights: imagenet: model 'model' has no published "
                                                    "ImageNet weights; those that have: resnet18-imagenet")):
        answer = plan(client, {"name": "model", "layers": NET}, weights)
        assert answer.status_code == status and says in answer.json()["detail"], (weights, answer.json())
        assert str(runs_root) not in answer.json()["detail"] or weights == str(runs_root / past_run)
    # model.weights is the same key; given twice differently, refused
    inner = client.post("/api/plan", json={"config": {"model": {"layers": NET, "weights": "/etc/passwd"},
                                                      "data": {"name": "mnist"}}})
    assert inner.status_code == 400 and inner.json()["detail"].startswith("config.weights")
    twice = client.post("/api/plan", json={"config": {"model": {"layers": NET, "weights": past_run},
                                                      "weights": "imagenet", "data": {"name": "mnist"}}})
    assert twice.status_code == 400 and "given twice" in twice.json()["detail"]
    # a run whose model does not fit: the run, the layer and both shapes
    wider = plan(client, {"name": "wider", "layers": WIDER}, past_run)
    assert wider.status_code == 400, wider.json()
    assert wider.json()["detail"] == ("config.weights: run 'small-start' does not fit this model: layer 1 (conv 16 "
                                      "3x3 same) weight is (8, 1, 3, 3) in small-start (small-net) and (16, 1, 3, "
                                      "3) here: another architecture, or another size of it")
    # a run that has not finished (queued on this server) is not a start
    queued = runs_root / "queued-run"
    queued.mkdir()
    (queued / "config.yaml").write_text((runs_root / past_run / "config.yaml").read_text())
    (queued / "result.json").write_text(json.dumps({"status": "queued"}))
    answer = plan(client, {"name": "model", "layers": NET}, "queued-run")
    assert answer.status_code == 400 and "run 'queued-run' is queued" in answer.json()["detail"]
    # one that fits is planned, saying where it starts and how it is fine-tuned
    fits = plan(client, {"name": "model", "layers": NET}, past_run, finetune={"freeze": "body", "head_epochs": 1},
                epochs=2)
    assert fits.status_code == 200 and fits.json()["start"] == (
        "the final weights of run small-start; the body frozen for 1 epoch(s), then every layer at discriminative "
        "rates (lr/100 at the first layer to lr at the head)")
    whole = plan(client, {"name": "model", "layers": NET}, past_run, finetune={"freeze": "body", "head_epochs": 1})
    assert whole.json()["start"].endswith("frozen for the whole run (1 head epoch(s) of 1: give more epochs for every "
                                          "layer to train)")  # 1 epoch: nothing is left after the head's
    assert plan(client, {"name": "model", "layers": NET}, None).json()["start"] == "random weights"
    # a server's check without a runs folder refuses any weights, as before
    with pytest.raises(UserError, match="config.weights: a file on the server is refused"):
        lifecycle.checked({"model": NET, "weights": past_run})


def test_the_build_page_is_offered_what_fits(client, past_run):
    offered = client.post("/api/weights", json={"model": {"name": "m", "layers": NET}, "data": "mnist"}).json()
    assert offered["imagenet"] is False and offered["finetune"]["freeze"] == "body"
    assert offered["finetune"]["head_epochs"] == 1
    assert [(r["id"], r["fits"], r["name"]) for r in offered["runs"]] == [("small-start", True, "small-net")]
    other = client.post("/api/weights", json={"model": {"name": "w", "layers": WIDER}, "data": "mnist"}).json()
    assert not other["runs"][0]["fits"] and "layer 1 (conv 16 3x3 same)" in other["runs"][0]["why"]
    assert client.post("/api/weights", json={"model": "resnet18-imagenet", "data": "cifar10"}).json()["imagenet"]
    assert client.post("/api/weights", json={"model": {"module": "os:system"}}).status_code == 400
    assert client.post("/api/weights", json={"data": "mnist"}).status_code == 422


def test_imagenet_is_for_a_published_network_unchanged(client):
    """Sent as its name, or as the layers the Build page wrote out (the classifier may differ: it is new);
    planned without fetching anything (the file is fetched by the run)."""
    ok = client.post("/api/plan", json={"config": {"model": "resnet18-imagenet", "weights": "imagenet",
                                                   "data": {"name": "cifar10"}, "epochs": 1}})
    assert ok.status_code == 200 and ok.json()["start"].startswith("ImageNet's weights; every layer trains")
    layers = client.get("/api/templates/resnet18-imagenet?data=cifar10").json()["layers"]
    written = client.post("/api/plan", json={"config": {"model": {"name": "resnet18-imagenet", "layers": layers},
                                                        "weights": "imagenet", "data": {"name": "cifar10"}}})
    assert written.status_code == 200, written.json()
    edited = client.post("/api/plan", json={"config": {"model": {"name": "resnet18-imagenet", "layers": layers[1:]},
                                                       "weights": "imagenet", "data": {"name": "cifar10"}}})
    assert edited.status_code == 400
    assert "the layers differ from resnet18-imagenet as published" in edited.json()["detail"]
    grey = client.post("/api/plan", json={"config": {"model": "resnet18-imagenet", "weights": "imagenet",
                                                     "data": {"name": "mnist"}}})
    assert grey.status_code == 400 and "colour (3-channel) images, and this data has 1 channel" in grey.json()["detail"]
    offered = client.post("/api/weights", json={"model": "resnet18-imagenet", "data": "mnist"}).json()
    assert not offered["imagenet"] and offered["imagenet_why"] == ("ImageNet's weights take colour images; this data "
                                                                   "has 1 channel(s)")


def test_imagenet_from_the_web_fetches_from_the_weights_server_and_says_so(http_root, data_dir, runs_root,
                                                                         monkeypatch):
    """The run a web request for ImageNet's weights makes, trained as the server's worker trains it
    (lifecycle.submit, then run_submitted), its file from the test's own server on 127.0.0.1."""
    root, base = http_root
    name = _publish(root, monkeypatch, base)
    submitted = lifecycle.submit({"model": "resnet18-imagenet", "weights": "imagenet", "epochs": 1, "threads": 1,
                                  "batch_size": 20, "data": {"name": "cifar10", "limit": 20}},
                                 runs_root, str(data_dir))
    assert lifecycle.run_submitted(submitted.run_dir, None) == "finished"
    from cnnlab.app import runs
    detail = runs.detail(runs.run_in(runs_root, submitted.id))
    assert detail["result"]["weights_from"] == f"imagenet ({name}) (120 tensors loaded, new classifier)"
    assert detail["config"]["weights"] == "imagenet"


def digits(tmp: Path) -> tuple[Path, Path]:
    """(runs folder, data folder): 10 training and 3 test images a digit, and a finished run `start` of the
    Build page's first network (course-net) on them."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is missing (the shared data sets' digit sample)")
    data = digit_sample_slice(SAMPLE, tmp / "data", train=10, test=3)
    runs = tmp / "runs"
    cnnlab.train({"name": "course-net", "model": {"name": "course-net", "layers": TEMPLATES["course-net"]},
                  "data": {"name": str(data / "mnist-sample")}, "epochs": 1, "batch_size": 32, "threads": 1},
                 run_dir=runs / "start", quiet=True, store=runs / "cnnlab.db")
    return runs, data


def test_a_web_run_from_a_past_run_trains_and_records_its_parent(tmp_path):
    runs, data = digits(tmp_path)
    with TestClient(create_app(runs, str(data), worker_threads=1)) as client:
        config = {"name": "course-net-tuned", "model": {"name": "course-net", "layers": TEMPLATES["course-net"]},
                  # val_split as the page sends it: the split scans the folder in the worker, a daemonic process
                  "data": {"name": str(data / "mnist-sample"), "val_split": 0.1}, "epochs": 2, "batch_size": 32,
                  "threads": 1, "weights": "start", "finetune": {"freeze": "body", "head_epochs": 1}}
        started = client.post("/api/runs", json={"config": config})
        assert started.status_code == 202, started.json()
        run_id = started.json()["id"]
        deadline = time.time() + 180
        while (detail := client.get(f"/api/runs/{run_id}").json())["result"].get("status") not in (
                "finished", "failed") and time.time() < deadline:
            time.sleep(0.3)
        result = detail["result"]
        assert result["status"] == "finished", result
        assert result["weights_from"] == "run start (6 tensors loaded)"
        assert result["weights"]["source"] == "run start" and detail["config"]["weights"] == "start"
        assert str(runs) not in json.dumps(detail)  # the page names runs, never the server's folders
        assert detail["config"]["parent"] == "start" and detail["config"]["finetune"]["head_epochs"] == 1
        rows = {r["id"]: r for r in client.get("/api/runs").json()}
        assert rows[run_id]["parent"] == "start" and rows["start"]["parent"] is None
        report = client.get(f"/api/runs/{run_id}/report").text
        assert "<td>started from</td><td>run start (6 tensors loaded)</td>" in report


def test_on_the_page_a_run_starts_from_a_past_run_and_see_opens_it(tmp_path):
    runs, data = digits(tmp_path)
    app = create_app(runs, str(data), worker_threads=1)
    try:
        with serving(app) as url:
            for width in (1400, 400):
                with browser_page(tmp_path, width, 900) as (page, errors, shots):
                    page.goto(url)
                    page.wait_for_selector("#start-data button.chosen")
                    page.click("nav button[data-page=build]")  # course-net on the digits: what `start` trained
                    page.wait_for_selector("#weights option[value=start]", state="attached")
                    assert page.locator("#weights option[value=imagenet]").count() == 0  # not a *-imagenet net
                    page.select_option("#weights", "start")
                    assert page.evaluate(OVERFLOW) <= 0, f"build at {width} px scrolls sideways"
                    page.screenshot(path=str(shots / f"weights-build-{width}.png"), full_page=True)
                    page.click("nav button[data-page=train]")
                    assert page.is_visible("#finetune-box") and page.input_value("#finetune-head") == "1"
                    page.fill("#train-form input[name=epochs]", "1")
                    page.fill("#train-form input[name=batch_size]", "32")
                    page.wait_for_function("(document.querySelector('#plan-start') || {}).innerText"
                                           "?.includes('the final weights of run start; the body frozen for the whole run (1 head "
                                           "epoch(s) of 1')")  # one epoch: the plan says nothing is left after the head's
                    assert page.evaluate(OVERFLOW) <= 0, f"train at {width} px scrolls sideways"
                    page.click("#train-button")
                    page.wait_for_function("document.querySelector('#train-status').innerText.includes('started "
                                           "from run start')", timeout=120_000)
                    assert "finished" in page.inner_text("#train-status")
                    run_id = page.evaluate("state.run")
                    page.screenshot(path=str(shots / f"weights-train-{width}.png"), full_page=True)
                    page.click("nav button[data-page=runs]")
                    row = page.locator(f"#runs-table tbody tr[data-id='{run_id}']")
                    row.wait_for()
                    assert "from start" in row.inner_text()
                    assert page.evaluate(OVERFLOW) <= 0, f"runs at {width} px scrolls sideways"
                    page.screenshot(path=str(shots / f"weights-runs-{width}.png"), full_page=True)
                    page.click("nav button[data-page=see]")
                    page.wait_for_selector(f"#see-run option[value='{run_id}']", state="attached")
                    page.select_option("#see-run", run_id)
                    draw_seven(page)
                    page.wait_for_selector("#page-see[data-paint-ms]")
                    assert page.locator(".act-row").count() >= 3  # the fine-tuned net's activations, layer by layer
                    assert page.evaluate(OVERFLOW) <= 0, f"see at {width} px scrolls sideways"
                    page.screenshot(path=str(shots / f"weights-see-{width}.png"), full_page=True)
                    assert not errors, errors
    finally:
        app.state.cnnlab.worker.close()


def test_on_the_page_imagenet_is_offered_for_a_published_network_on_colour_images(data_dir, runs_root, tmp_path):
    """Build: CIFAR-10 and resnet18-imagenet -> "ImageNet weights" in Start from; Train's plan says so (the run
    itself, fetching the file, is the test above: the server's worker is another process)."""
    app = create_app(runs_root, str(data_dir), start_worker=False)
    with serving(app) as url, browser_page(tmp_path, 1400, 900) as (page, errors, shots):
        page.goto(url)
        page.click("nav button[data-page=build]")
        page.select_option("#data", "cifar10")
        page.wait_for_selector("#weights optgroup", state="attached")
        assert page.locator("#weights option[value=imagenet]").count() == 0  # course-net has no published weights
        page.select_option("#template", "resnet18-imagenet")
        page.wait_for_selector("#weights option[value=imagenet]", state="attached")
        page.select_option("#weights", "imagenet")
        page.click("nav button[data-page=train]")
        page.wait_for_function("(document.querySelector('#plan-start') || {}).innerText"
                               "?.startsWith(\"Starts from ImageNet's weights; the body frozen for 1 epoch(s)\")")
        page.select_option("#finetune-mode", "all")
        assert not page.is_visible("#finetune-head")
        page.wait_for_function("(document.querySelector('#plan-start') || {}).innerText"
                               "?.startsWith(\"Starts from ImageNet's weights; every layer trains\")")
        assert page.evaluate("trainConfig()")["weights"] == "imagenet"
        assert not errors, errors
