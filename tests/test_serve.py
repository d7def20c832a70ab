"""The web app's JSON API, its safety, its live stream, and the pages in a real browser (Playwright driving
Debian's chromium; skipped with the reason where either is missing)."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser import browser_page, serving
import torch

fastapi = pytest.importorskip("fastapi", reason="fastapi is missing: pip install -e .")
from fastapi.testclient import TestClient  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402

COURSE_NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"maxpool": 2},
              {"conv": {"filters": 16, "padding": "same"}}, "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]


def png(width: int, height: int, mode: str = "L") -> str:
    from PIL import Image
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 0).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def trained(runs_root, data_dir) -> str:
    run = cnnlab.train({"model": COURSE_NET, "data": {"name": "mnist", "dir": str(data_dir)}, "epochs": 1,
                        "batch_size": 16, "threads": 1}, run_dir=runs_root / "digits", quiet=True,
                       store=runs_root / "cnnlab.db")
    return run.dir.name


def test_check_gives_shapes_params_and_findings_at_their_layer(client):
    body = client.post("/api/check", json={"model": COURSE_NET + [{"dense": {"units": 10, "activation": "softmax"}}],
                                           "data": "mnist"}).json()
    assert body["error"] is None and body["totals"]["params"] == 10 * (16 * 7 * 7) + 10 + 80 + 1168 + 110
    assert [r["out_shape"] for r in body["layers"]][:3] == ["8x28x28", "8x28x28", "8x14x14"]
    assert [f["rule"] for f in body["layers"][-1]["findings"]] == ["softmax-output"]


def test_an_impossible_model_marks_the_layer_and_says_why(client):
    model = [{"conv": 8}, {"maxpool": 2}, {"conv": {"filters": 8, "kernel": 20}}, "flatten", {"dense": 10}]
    body = client.post("/api/check", json={"model": model, "data": "mnist"}).json()
    assert body["error"]["layer"] == "3" and "smaller than the kernel" in body["error"]["message"]
    assert [r["index"] for r in body["layers"]] == ["1", "2"] and body["totals"] is None


def test_model_yaml_round_trip_and_templates(client):
    text = client.post("/api/model/yaml", json={"model": {"layers": COURSE_NET}, "name": "course"}).json()["yaml"]
    assert text.startswith("name: course")
    assert client.post("/api/model/parse", json={"text": text}).json()["layers"] == COURSE_NET
    bad = client.post("/api/model/parse", json={"text": "layers:\n  - conv: {filters: -1}\n"})
    assert bad.status_code == 400 and "line 2" in bad.json()["detail"]
    from cnnlab.models import model_spec
    registered = json.loads(json.dumps(model_spec("resnet9", (3, 32, 32), 10)["layers"]))
    assert client.get("/api/templates/resnet9?data=cifar10").json() == {"name": "resnet9", "layers": registered}
    info = client.get("/api/info").json()
    assert "course-net" in info["templates"] and "mnist" in info["present"]


def test_the_plan_says_what_a_run_will_train_and_see(client, tmp_path):
    """Train's note before a run: model, data named for people, the augmentation this run really applies (auto:
    none in a short run), a strip of what it will see, or why the data cannot be read (no broken image)."""
    config = {"name": "course-net-5f", "model": {"layers": COURSE_NET}, "data": {"name": "cifar10"}, "epochs": 2}
    short = client.post("/api/plan", json={"config": config}).json()
    assert short["model"] == "course-net-5f" and short["data"] == "CIFAR-10 (photos)"
    assert short["augment"].startswith("none: `auto` augments runs of 5 epochs or more")
    assert short["strip"].startswith("data:image/png;base64,") and short["strip_error"] is None
    long = client.post("/api/plan", json={"config": {**config, "epochs": 6}}).json()
    assert long["augment"] == "crop 4, flip horizontal"
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    broken = client.post("/api/plan", json={"config": {**config, "data": {"name": str(empty)}}}).json()
    assert broken["strip"] is None and broken["strip_error"] and broken["data"] == "your folder empty"


def test_safety(client, runs_root, trained):
    assert client.get("/", headers={"host": "evil.example:8000"}).status_code == 403  # DNS rebinding
    assert client.post("/api/check", content="model=x", headers={"content-type": "application/x-www-form-urlencoded"}
                       ).status_code == 415  # no cross-site form posts
    # another site's page may not read the API (a GET of /api/data/report would scan any folder); the page's
    # own requests, and clients that do not say where they come from (curl, Python), are answered
    assert client.get("/api/runs", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.get("/api/data/report?path=/etc", headers={"sec-fetch-site": "same-site"}).status_code == 403
    assert client.get("/api/runs", headers={"sec-fetch-site": "same-origin"}).status_code == 200
    assert client.get("/", headers={"sec-fetch-site": "cross-site"}).status_code == 200  # a link to the page
    assert client.get("/api/runs/..%2F..%2Fetc").status_code == 404
    assert client.get("/api/runs/nope").status_code == 404
    see = f"/api/runs/{trained}/see"
    assert client.post(see, json={"image": "data:image/png;base64,bm90IGFuIGltYWdl"}).status_code == 400
    assert client.post(see, json={"image": "!!!"}).status_code == 400
    assert client.post(see, json={"image": png(20000, 20000)}).status_code == 400  # a 20000x20000 PNG: 1.6 MB
    big = "data:image/png;base64," + base64.b64encode(b"\0" * (5 * 2 ** 20)).decode()
    assert client.post(see, json={"image": big}).status_code in (413, 422)
    (runs_root / trained / "model.safetensors").rename(runs_root / trained / "gone")
    assert client.post(see, json={"test_index": 0}).status_code == 409  # never falls back to a pickle
    code = {"module": "os:system", "command": "echo pwned"}  # a model that is Python code: never over the network
    for path, body in (("/api/check", {"model": code}), ("/api/model/yaml", {"model": code}),
                       ("/api/model/parse", {"text": "module: os:system\ncommand: echo pwned\n"}),
                       ("/api/runs", {"config": {"model": code}}), ("/api/check", {"model": {"layers": [code]}})):
        response = client.post(path, json=body)
        assert response.status_code == 400 and "refused over the network" in response.json()["detail"], path
    with TestClient(create_app(runs_root, start_worker=False, token="s3cret")) as remote:
        assert remote.get("/api/runs").status_code == 401
        assert remote.get("/api/runs", headers={"authorization": "Bearer s3cret"}).status_code == 200


def _model_outputs(run_dir: Path, image) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained model's logits and softmax for one uint8 (C, H, W) image, normalised as training does."""
    from cnnlab.train.augment import Augmenter
    run = cnnlab.Run(run_dir)
    info = run.data_info
    augmenter = Augmenter(run.config.augment, info["mean"], info["std"], torch.device("cpu"))
    with torch.no_grad():
        logits = run.model.eval()(augmenter.eval_batch(torch.as_tensor(image)[None])).float()[0]
    return logits, logits.softmax(0)


def _check_top5(top: list[dict], probs: torch.Tensor) -> None:
    """See's top 5 of 10 classes: the model's own 5 most probable, in order, with their probabilities."""
    p = [t["p"] for t in top]
    assert len(top) == 5 and p == sorted(p, reverse=True) and all(0 <= x <= 1 for x in p)
    assert 0.5 - 3e-4 <= sum(p) <= 1 + 3e-4  # the top half of 10 classes holds at least half; 4-decimal rounding
    values, indices = probs.topk(5)
    assert [t["class"] for t in top] == [str(int(i)) for i in indices]  # mnist's classes are "0".."9"
    assert p == pytest.approx(values.tolist(), abs=1e-4)


def test_see_gives_probabilities_and_every_layer(client, runs_root, trained):
    body = client.post(f"/api/runs/{trained}/see", json={"image": png(280, 280)}).json()
    logits, probs = _model_outputs(runs_root / trained, torch.zeros(1, 28, 28, dtype=torch.uint8))  # black: black
    _check_top5(body["top"], probs)
    assert [layer["shape"] for layer in body["layers"]] == [[8, 28, 28], [8, 28, 28], [8, 14, 14], [16, 14, 14],
                                                            [16, 14, 14], [16, 7, 7], [784], [10]]
    assert len(body["layers"][0]["channels"]) == 8 and len(body["layers"][0]["filters"]) == 8
    assert body["layers"][-1]["values"] == pytest.approx(logits.tolist(), abs=1e-4)  # the last layer: the logits
    by_index = client.post(f"/api/runs/{trained}/see", json={"test_index": 3}).json()
    from conftest import pattern_images
    test_x, _ = pattern_images(50, 1, 28, 10, seed=1)  # the data_dir fixture's mnist test images
    _check_top5(by_index["top"], _model_outputs(runs_root / trained, test_x[3])[1])


def _events(client, run_id: str, timeout: float = 120) -> list[tuple[str, dict]]:
    out = []
    with client.stream("GET", f"/api/runs/{run_id}/events", timeout=timeout) as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
                if kind == "end":
                    break
    return out


def test_train_through_the_worker_and_stream_it(runs_root, data_dir):
    with TestClient(create_app(runs_root, str(data_dir), worker_threads=1)) as client:
        config = {"model": COURSE_NET, "data": {"name": "mnist", "val_split": 0.1}, "epochs": 2, "batch_size": 16}
        bad = client.post("/api/runs", json={"config": {**config, "epochs": 0}})
        assert bad.status_code == 400 and "epochs must be an integer" in bad.json()["detail"]
        run_id = client.post("/api/runs", json={"config": config}).json()["id"]
        events = _events(client, run_id)
        kinds = [k for k, _ in events]
        assert kinds.count("epoch_end") == 2 and "batch_end" in kinds and kinds[-1] == "end"
        from cnnlab.diagnose.doctor import diagnose
        from cnnlab.diagnose.facts import facts_for_run
        epoch = next(d for k, d in events if k == "epoch_end")
        assert next(d for k, d in events if k == "result")["status"] == "finished"
        row = next(r for r in client.get("/api/runs").json() if r["id"] == run_id)
        assert row["status"] == "finished" and row["epochs_completed"] == 2
        detail = client.get(f"/api/runs/{run_id}").json()
        run = cnnlab.Run(runs_root / run_id)
        assert len(detail["metrics"]) == 2 and epoch["row"]["epoch"] == 1
        assert epoch["row"]["val_acc"] == pytest.approx(run.metrics[0]["val_acc"], rel=1e-5)  # what metrics.csv holds
        # the doctor's verdicts: provisional after epoch 1, and on the whole run as `cnnlab doctor` gives it
        assert epoch["verdict"] == json.loads(json.dumps(diagnose(run.metrics[:1], 10, None).as_dict()))
        assert detail["verdict"] == json.loads(json.dumps(diagnose(run.metrics, 10, facts_for_run(run)).as_dict()))
        # a long run, stopped from the page: marked interrupted, and resumable (~0.05 s an epoch: enough of them
        # that the stop lands while it trains)
        long_id = client.post("/api/runs", json={"config": {**config, "epochs": 2000}}).json()["id"]
        deadline = time.time() + 60
        while not (runs_root / long_id / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert client.post(f"/api/runs/{long_id}/stop", json={}).json()["stopping"]
        stopped = _events(client, long_id)
        assert stopped[-1][1]["status"] == "interrupted"
        compared = client.post("/api/compare", json={"ids": [run_id, long_id]}).json()
        assert "epochs" in compared["differ"]


def test_a_run_started_from_the_cli_streams_live(client, runs_root, data_dir):
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "--data", "mnist", "--data-dir", str(data_dir),
                             "--set", "threads=1", "--epochs", "3", "--batch-size", "16", "--runs-root", str(runs_root),
                             "--run-dir", str(runs_root / "from-cli"), "--store", str(runs_root / "cnnlab.db")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (runs_root / "from-cli" / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.05)
    events = _events(client, "from-cli")
    assert proc.wait(60) == 0, proc.stderr.read()
    assert [k for k, _ in events].count("epoch_end") == 3 and events[-1] == ("end", {"status": "finished"})


def test_a_config_trained_from_the_page_and_the_cli_writes_the_same_config_yaml(runs_root, data_dir, tmp_path):
    """Resolved once, when the server accepts it: the web run trains the config.yaml it was queued with, and
    that file is byte for byte what `cnnlab train` writes for the same config (batch size worked out, data
    folder filled in, augmentation written out)."""
    from cnnlab.cli import main
    config = {"name": "same", "model": COURSE_NET, "data": {"name": "mnist", "val_split": 0.1}, "epochs": 1,
              "threads": 1}
    with TestClient(create_app(runs_root, str(data_dir), worker_threads=1)) as client:
        run_id = client.post("/api/runs", json={"config": config}).json()["id"]
        queued = (runs_root / run_id / "config.yaml").read_bytes()
        assert _events(client, run_id)[-1] == ("end", {"status": "finished"})
    trained = (runs_root / run_id / "config.yaml").read_bytes()
    (tmp_path / "same.yaml").write_text(json.dumps(config))  # JSON is YAML
    assert main(["train", str(tmp_path / "same.yaml"), "--data-dir", str(data_dir), "--run-dir",
                 str(tmp_path / "cli" / "same"), "--no-store", "--quiet"]) == 0
    assert queued == trained == (tmp_path / "cli" / "same" / "config.yaml").read_bytes()
    assert b"batch_size: " in trained and f"dir: {data_dir}".encode() in trained


def test_the_api_survives_fuzzing_from_its_openapi_schema(runs_root, data_dir, trained):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    # the zip of photos (POST /api/data/zip) is bytes: sent as they are generated
    schemathesis.serializer.alias("application/zip", "application/octet-stream")
    app = create_app(runs_root, str(data_dir), start_worker=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []

    for operation in schema.get_all_operations():
        op = operation.ok()
        if op.path.endswith("/events"):
            continue  # a stream that ends with its run; fuzzed ids simply 404 (tested above)

        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            response = case.call()
            if response.status_code >= 500 and response.status_code != 503:  # 503: this app has no worker
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200} -> {response.status_code}")
        check()
    assert not failures, failures[:5]


# ------------------------------------------------------------------ in a real browser

@pytest.fixture
def server(tmp_path, runs_root):
    from conftest import write_idx
    data = tmp_path / "data"
    write_idx(data / "fashion-mnist", n_train=600, n_test=100)
    app = create_app(runs_root, str(data), worker_threads=1)
    with serving(app) as url:
        yield url


def test_the_pages_as_a_student_uses_them(server, tmp_path):
    with browser_page(tmp_path, 1400, 900) as (page, errors, shots):
        page.goto(server)
        page.click("nav button[data-page=build]")  # the first view is Start (tests/test_serve_pictures.py)
        page.wait_for_selector("#total-params")
        page.select_option("#data", "fashion-mnist")
        # build the course's network by clicking: conv-relu-maxpool twice, flatten, dense
        page.select_option("#template", "")
        page.evaluate("state.layers = []; renderLayers()")
        for kind in ("conv", "relu", "maxpool", "conv", "relu", "maxpool", "flatten", "dense"):
            page.click(f"#palette button[data-kind={kind}]")
        page.wait_for_function("document.querySelector('#layers li:nth-child(8) .shape').innerText === '10'")
        assert page.inner_text("#layers li:nth-child(1) .shape") == "32x28x28"  # a new conv: 32 filters, padding same
        # conv 32: 320; conv 32 on 32 channels: 9,248; 32*7*7 -> dense 10: 15,690
        assert "Total params: 25,258" in page.inner_text("#totals")
        page.screenshot(path=str(shots / "build.png"), full_page=True)
        # a layer that makes the model impossible: the error shows at that layer
        page.fill("#layers li:nth-child(4) input[data-arg=padding]", "valid")
        page.press("#layers li:nth-child(4) input[data-arg=padding]", "Tab")
        page.fill("#layers li:nth-child(4) input[data-arg=kernel]", "15")
        page.press("#layers li:nth-child(4) input[data-arg=kernel]", "Enter")
        page.wait_for_selector("#layers li.bad")
        assert page.get_attribute("#layers li.bad", "data-index") == "4"
        assert "smaller than the kernel" in page.inner_text("#layers li.bad")
        page.fill("#layers li:nth-child(4) input[data-arg=kernel]", "3")
        page.press("#layers li:nth-child(4) input[data-arg=kernel]", "Enter")
        page.wait_for_function("!document.querySelector('#layers li.bad')")
        # train one epoch: the curve gains points, the run lands in Runs
        page.click("nav button[data-page=train]")
        page.fill("input[name=epochs]", "1")
        page.fill("input[name=batch_size]", "32")
        page.click("#train-button")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('test accuracy')",
                               timeout=120_000)
        assert page.evaluate("charts.points.acc[0].length") >= 2
        page.screenshot(path=str(shots / "train.png"), full_page=True)
        # stop a long run
        page.fill("input[name=epochs]", "300")
        page.click("#train-button")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('batch')", timeout=60_000)
        page.click("#stop-button")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('interrupted')",
                               timeout=60_000)
        # a run on an empty folder fails: the page says why at once, and the next run can start
        empty = tmp_path / "empty-folder"
        empty.mkdir()
        page.click("nav button[data-page=build]")
        page.select_option("#data", "(your folder)")  # the one data menu: "your folder of images ..." opens a path box
        page.fill("#data-path", str(empty))
        page.click("nav button[data-page=train]")
        page.wait_for_selector("#train-plan .error")  # said in words before the run, and no broken strip
        assert not page.is_visible("#augment-strip")
        page.click("#train-button")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('failed')",
                               timeout=30_000)
        assert "empty-folder" in page.inner_text("#train-status")
        assert page.is_enabled("#train-button") and not page.is_enabled("#stop-button")
        page.click("nav button[data-page=build]")
        page.select_option("#data", "fashion-mnist")
        page.click("nav button[data-page=runs]")
        page.wait_for_selector("#runs-table tbody tr:nth-child(3)")
        assert "failed" in page.inner_text("#runs-table") and "empty-folder" in page.inner_text("#runs-table")
        assert "finished" in page.inner_text("#runs-table") and "interrupted" in page.inner_text("#runs-table")
        page.screenshot(path=str(shots / "runs.png"), full_page=True)
        # draw a stroke: probabilities and every layer's maps
        page.click("nav button[data-page=see]")
        page.wait_for_selector("#see-run option", state="attached")
        box = page.locator("#canvas").bounding_box()
        page.mouse.move(box["x"] + 90, box["y"] + 50)
        page.mouse.down()
        for i in range(25):
            page.mouse.move(box["x"] + 90 + i * 3, box["y"] + 50 + i * 7)
        page.mouse.up()
        page.wait_for_selector("#topk .bar")
        page.wait_for_selector(".act-row img")
        assert page.locator(".act-row").count() == 9  # the input and 8 layers
        page.locator(".act-row img").nth(2).click()
        page.wait_for_selector("#detail img")
        page.screenshot(path=str(shots / "see.png"), full_page=True)
    assert not errors, errors


def test_ctrl_c_stops_the_server_cleanly_in_the_middle_of_a_run(runs_root, data_dir):
    """`cnnlab serve`, Ctrl-C while the worker trains: the server exits on its own, the run is marked
    interrupted (resumable), and nothing is printed but the server's own lines: no traceback, and no
    "leaked semaphore objects" from multiprocessing's resource tracker (the issue saw one on every stop)."""
    import signal
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "--port", str(port), "--runs", str(runs_root),
                             "--data-dir", str(data_dir), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def call(path, body=None):
        request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    try:
        deadline = time.time() + 60
        while True:
            try:
                call("/api/runs")
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
                time.sleep(0.2)
        run_id = call("/api/runs", {"config": {"model": {"layers": ["flatten", {"dense": 10}]},
                                               "data": {"name": "mnist"}, "epochs": 5000, "batch_size": 8}})["id"]
        while next(r["status"] for r in call("/api/runs") if r["id"] == run_id) != "running":
            assert time.time() < deadline, "the run never started"
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err and "leaked" not in err, err
    assert json.loads((runs_root / run_id / "result.json").read_text())["status"] == "interrupted"
