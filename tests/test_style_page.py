"""Style in the page: Gatys from in-memory images streamed as the image forms, the fast style nets of
<runs folder>/styles/ listed and chained (the same net twice too), the routes' answers to bad requests, and
the Style view in a real browser (Playwright driving Debian's chromium; skipped with the reason where missing)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from browser import browser_page, serving
import torch

from cnnlab.app import style as app_style
from cnnlab.errors import NotFound, TooLarge, UserError
from cnnlab.style.fast import StyleNet, apply_style_net, save_style_net


def png(width: int, height: int, seed: int = 0) -> str:
    """A photo-like upload: smooth colour gradients with some noise, as a PNG data: URL."""
    from PIL import Image
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    rng = np.random.default_rng(seed)
    array = np.stack([x, y, 1 - x * y], -1) * 200 + rng.integers(0, 50, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decoded(data_url: str) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def tiny_net(runs_root: Path, name: str, seed: int) -> Path:
    """A small style net, saved by cnnlab's own code where the server looks for them."""
    torch.manual_seed(seed)
    return save_style_net(StyleNet(width=4, blocks=1), runs_root / "styles" / f"{name}.safetensors",
                          {"style": f"/somewhere/{name}.png", "images": 3, "steps": 0, "loss_net": "RandomLoss"})


# ------------------------------------------------------------------ the application layer

def test_gatys_streams_the_image_as_it_forms_and_the_style_loss_falls():
    events = []
    last = app_style.gatys(png(48, 40), "cells", events.append, size=48, steps=20, every=5)
    assert [e["step"] for e in events] == [1, 5, 10, 15, 20] and last["step"] == 20
    assert decoded(events[0]["image"]).shape == (40, 48, 3)  # the longer side is `size`, the aspect kept
    assert events[-1]["style"] < 0.8 * events[0]["style"]
    assert decoded(events[0]["image"]).tolist() != decoded(events[-1]["image"]).tolist()


def test_gatys_stops_when_asked_and_refuses_runs_past_its_bounds():
    steps = []
    with pytest.raises(app_style.Stopped):
        app_style.gatys(png(32, 32), "dots", lambda e: steps.append(e["step"]), size=32, steps=20, every=1,
                        should_stop=lambda: len(steps) >= 3)
    assert steps == [1, 2, 3]
    with pytest.raises(UserError, match="size 1000: valid 16 to 256"):
        app_style.gatys(png(32, 32), "dots", print, size=1000)
    with pytest.raises(UserError, match="not bundled; valid: stripes, cells, dots"):
        app_style.gatys(png(32, 32), "waves", print, size=32, steps=2)


def test_bundled_styles_are_made_in_code():
    for name in app_style.BUNDLED:
        image = app_style.bundled_style(name, 32)
        assert image.shape == (3, 32, 32) and 0 <= image.min() and image.max() <= 1 and image.std() > 0.1
    assert [s["name"] for s in app_style.bundled_styles()] == ["stripes", "cells", "dots"]


def test_a_net_trained_by_cnnlab_is_listed_with_its_metadata(tmp_path, runs_root):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        (photos / f"p{i}.png").write_bytes(base64.b64decode(png(40, 32, i).split(",", 1)[1]))
    (tmp_path / "cells.png").write_bytes(base64.b64decode(app_style.data_url(app_style.bundled_style("cells", 32))
                                                          .split(",", 1)[1]))
    path, n, _ = app_style.train_net(str(tmp_path / "cells.png"), str(photos), runs_root / "styles" / "cells.safetensors",
                                     size=32, steps=3, batch=2)
    (runs_root / "styles" / "notes.safetensors").write_bytes(b"not a net")
    nets = {n["name"]: n for n in app_style.style_nets(runs_root)}
    assert nets["cells"]["error"] is None and nets["cells"]["style"] == "cells.png"
    assert (nets["cells"]["images"], nets["cells"]["steps"], nets["cells"]["width"]) == (2, 3, 16)
    assert "cannot be read" in nets["notes"]["error"]   # listed with its reason, not hidden
    assert app_style.apply_nets(runs_root, png(40, 32), ["cells"], size=32)["stages"][0]["net"] == "cells"


def test_apply_chains_two_nets_and_the_same_net_twice(runs_root):
    a, b = tiny_net(runs_root, "a", 1), tiny_net(runs_root, "b", 2)
    photo = png(40, 32)
    twice = app_style.apply_nets(runs_root, photo, ["a", "a"], size=40)["stages"]
    from cnnlab.style.fast import load_style_net
    net = load_style_net(a)
    x = app_style.decode_image(photo, 40)[None]
    once_x, _ = apply_style_net(net, x)
    twice_x, _ = apply_style_net(net, once_x)
    assert [s["net"] for s in twice] == ["a", "a"]
    assert twice[0]["image"] == app_style.data_url(once_x[0]) and twice[1]["image"] == app_style.data_url(twice_x[0])
    assert twice[0]["image"] != twice[1]["image"]
    chained = app_style.apply_nets(runs_root, photo, ["a", "b"], size=40)["stages"]
    assert chained[1]["image"] == app_style.data_url(apply_style_net(load_style_net(b), once_x)[0][0])
    with pytest.raises(NotFound, match="no style net 'c'"):
        app_style.apply_nets(runs_root, photo, ["a", "c"], size=40)
    with pytest.raises(NotFound):
        app_style.apply_nets(runs_root, photo, ["../a"], size=40)


def test_uploads_are_size_capped_and_checked():
    from cnnlab.schema.limits import MAX_PIXELS, MAX_UPLOAD_BYTES
    with pytest.raises(TooLarge):
        app_style.decode_image("data:image/png;base64," + "A" * (MAX_UPLOAD_BYTES * 2), 64)
    with pytest.raises(UserError, match="content: not base64"):
        app_style.decode_image("data:image/png;base64,%%%", 64, "content")
    with pytest.raises(UserError, match="cannot decode"):
        app_style.decode_image("data:image/png;base64," + base64.b64encode(b"hello").decode(), 64)
    from PIL import Image
    side = int(MAX_PIXELS ** 0.5) + 10
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, "PNG")
    with pytest.raises(UserError, match="more than"):
        app_style.decode_image(base64.b64encode(buffer.getvalue()).decode(), 64)


# ------------------------------------------------------------------ the routes

def events(response) -> list[tuple[str, dict]]:
    out = []
    for chunk in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_the_style_routes(client, runs_root):
    assert [(n["name"], n["bundled"]) for n in client.get("/api/style/nets").json()] == [("cells", True)]  # cnnlab's own
    tiny_net(runs_root, "a", 1)
    assert [n["name"] for n in client.get("/api/style/nets").json()] == ["a", "cells"]
    assert [s["name"] for s in client.get("/api/style/styles").json()] == ["stripes", "cells", "dots"]
    body = client.post("/api/style/apply", json={"image": png(32, 32), "nets": ["a", "a"], "size": 32}).json()
    assert [s["net"] for s in body["stages"]] == ["a", "a"]
    response = client.post("/api/style/gatys", json={"content": png(32, 32), "style_name": "stripes", "size": 32,
                                                     "steps": 6, "every": 3})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    got = events(response)
    assert [(k, d.get("step")) for k, d in got] == [("step", 1), ("step", 3), ("step", 6), ("done", None)]
    assert got[0][1]["image"].startswith("data:image/png;base64,")


def test_the_style_routes_answer_bad_requests_without_a_500(client, runs_root):
    from cnnlab.schema.limits import MAX_UPLOAD_BYTES
    tiny_net(runs_root, "a", 1)
    cases = [
        ("/api/style/apply", {"image": png(32, 32), "nets": ["nope"]}, 404, "no style net 'nope'"),
        ("/api/style/apply", {"image": png(32, 32), "nets": ["../../x"]}, 404, "no style net"),
        ("/api/style/apply", {"run": "nope", "test_index": 0, "nets": ["a"]}, 404, "no run 'nope'"),
        ("/api/style/apply", {"image": "data:image/png;base64,%%%", "nets": ["a"]}, 400, "not base64"),
        ("/api/style/apply", {"nets": ["a"]}, 400, "send image"),
        ("/api/style/apply", {"image": png(32, 32), "nets": []}, 422, "nets"),
        ("/api/style/gatys", {"content": png(32, 32), "style_name": "waves"}, 400, "not bundled"),
        ("/api/style/gatys", {"content": png(32, 32)}, 400, "send style"),
        ("/api/style/gatys", {"style_name": "dots"}, 400, "send content"),
        ("/api/style/gatys", {"content": "data:,hello", "style_name": "dots"}, 400, "content: "),
        ("/api/style/gatys", {"content": png(32, 32), "style_name": "dots", "every": 0}, 422, "every"),
        ("/api/style/gatys", {"content": png(32, 32), "style_name": "dots", "size": 4096}, 422, "size"),
        ("/api/style/gatys", {"content": png(32, 32), "style_name": "dots", "steps": 100000}, 422, "steps"),
        ("/api/style/gatys", {"run": "nope", "test_index": 0, "style_name": "dots"}, 404, "no run"),
    ]
    for path, body, status, message in cases:
        response = client.post(path, json=body)
        assert (response.status_code, path, body.get("nets")) == (status, path, body.get("nets")), response.text
        assert message in response.json()["detail"]
    big = "data:image/png;base64," + "A" * (MAX_UPLOAD_BYTES * 4 // 3 + 100)
    response = client.post("/api/style/gatys", json={"content": png(32, 32), "style": big})
    assert response.status_code == 413 and "upload limit" in response.json()["detail"]


def test_one_gatys_at_a_time(client):
    lock = threading.Lock()
    client.app.state.gatys_lock = lock
    with lock:  # as if another page's run were going
        response = client.post("/api/style/gatys", json={"content": png(32, 32), "style_name": "dots", "size": 32,
                                                         "steps": 2})
        assert response.status_code == 503 and "already running" in response.json()["detail"]
    assert client.post("/api/style/gatys", json={"content": png(32, 32), "style_name": "dots", "size": 32,
                                                 "steps": 2}).status_code == 200


def test_a_finished_runs_test_image_is_a_content(client, runs_root, data_dir):
    import cnnlab
    cnnlab.train({"model": [{"conv": 4}, "relu", "flatten", {"dense": "classes"}],
                  "data": {"name": "mnist", "dir": str(data_dir)}, "epochs": 1, "batch_size": 32, "threads": 1}, run_dir=runs_root / "digits", quiet=True, store=runs_root / "cnnlab.db")
    tiny_net(runs_root, "a", 1)
    body = client.post("/api/style/apply", json={"run": "digits", "test_index": 3, "nets": ["a"], "size": 32}).json()
    assert decoded(body["input"]).shape == (32, 32, 3) and len(body["stages"]) == 1
    response = client.post("/api/style/gatys", json={"run": "digits", "test_index": 3, "style_name": "cells",
                                                     "size": 32, "steps": 2, "every": 1})
    assert [k for k, _ in events(response)] == ["step", "step", "done"]
    assert client.post("/api/style/apply", json={"run": "digits", "test_index": 10 ** 6, "nets": ["a"]}).status_code == 400
    shown = client.post("/api/style/content", json={"run": "digits", "test_index": 3, "size": 56}).json()
    assert decoded(shown["image"]).shape == (56, 56, 3)
    assert client.post("/api/style/content", json={"run": "nope", "test_index": 3}).status_code == 404


# ------------------------------------------------------------------ in a real browser

@pytest.fixture
def server(tmp_path, runs_root):
    from cnnlab.serve.app import create_app
    app = create_app(runs_root, str(tmp_path / "data"), start_worker=False)
    with serving(app) as url:
        yield url


def test_a_client_that_hangs_up_stops_the_optimisation(server):
    httpx = pytest.importorskip("httpx")
    # 500 steps at 64 px: over a minute here, were it not stopped
    body = {"content": png(64, 64), "style_name": "dots", "size": 64, "steps": 500, "every": 1}
    with httpx.Client(base_url=server, timeout=30) as http:
        with http.stream("POST", "/api/style/gatys", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection (a hang-up)
            assert next(lines) == "event: step"
            busy = http.post("/api/style/gatys", json=body)  # while it runs, a second is refused
            assert (busy.status_code, "already running" in busy.text) == (503, True), busy.text[:300]
        # hung up after a step or so of 500: the optimisation stops, and the server takes the next one
        deadline = time.time() + 10
        while time.time() < deadline:
            with http.stream("POST", "/api/style/gatys", json={**body, "steps": 2}) as again:
                if again.status_code == 200:
                    assert "event: done" in again.read().decode()
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the optimisation went on after its client hung up")


def test_the_style_view_as_a_student_uses_it(server, runs_root, tmp_path):
    tiny_net(runs_root, "mosaic", 1)
    tiny_net(runs_root, "waves", 2)
    photo = tmp_path / "photo.png"
    photo.write_bytes(base64.b64decode(png(96, 72).split(",", 1)[1]))
    with browser_page(tmp_path, 1400, 1100) as (page, errors, shots):
        page.goto(server)
        page.click("nav button[data-page=style]")
        page.wait_for_selector("#style-bundled button[data-style=stripes]")
        assert "cnnlab style train STYLE --images DIR -o runs/styles/NAME.safetensors" in page.inner_text("#page-style")
        page.set_input_files("#style-content-upload", str(photo))
        page.wait_for_function("document.querySelector('#style-content').src.startsWith('data:')")
        page.click("#style-bundled button[data-style=stripes]")
        page.fill("#style-steps", "12")
        page.fill("#style-size", "64")
        page.click("#style-run-gatys")
        page.wait_for_function("+document.querySelector('#page-style').dataset.updates >= 2", timeout=60_000)
        page.wait_for_function("document.querySelector('#style-progress').innerText.includes('done')", timeout=60_000)
        progress = page.inner_text("#style-progress")
        assert progress.startswith("step 12/12: style loss") and int(page.get_attribute("#page-style", "data-updates")) >= 2
        # two nets in a row, the first twice
        for net in ("mosaic", "mosaic", "waves"):
            page.click(f"#style-nets button[data-net={net}]")
        assert page.inner_text("#style-chain") == "mosaic -> mosaic -> waves"
        page.click("#style-apply")
        page.wait_for_selector("#style-stages figure:nth-child(4) img")
        captions = page.locator("#style-stages figcaption").all_inner_texts()
        assert captions[0] == "photo" and [c.split(" (")[0] for c in captions[1:]] == ["1. mosaic", "2. mosaic", "3. waves"]
        page.screenshot(path=str(shots / "style.png"), full_page=True)
        assert errors == []
