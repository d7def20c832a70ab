"""What the browser tests share: the web app served by uvicorn in a thread on a free port, Debian's chromium
driven by Playwright (skipped with the reason where either is missing), and a 7 drawn on See's canvas."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def serving(app):
    """`app` on http://127.0.0.1:PORT until the block ends."""
    uvicorn = pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def browser_page(tmp_path: Path, width: int = 1400, height: int = 1000):
    """(page, errors seen on it, the screenshots folder: $CNNLAB_SCREENSHOTS or tmp_path)."""
    if chromium() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    shots = Path(os.environ.get("CNNLAB_SCREENSHOTS", tmp_path))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page, errors, shots
        finally:
            browser.close()


def draw_seven(page) -> None:
    """A 7 on See's canvas: the bar, then the stem, in one stroke."""
    box = page.locator("#canvas").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + 70, y0 + 60)
    page.mouse.down()
    for i in range(1, 15):
        page.mouse.move(x0 + 70 + i * 10, y0 + 60)
    for i in range(1, 18):
        page.mouse.move(x0 + 210 - i * 5, y0 + 60 + i * 11)
    page.mouse.up()


def digit_sample_slice(sample: Path, data: Path, train: int, test: int) -> Path:
    """The first `train` and `test` images a class of the shared digit sample, copied in its own layout to
    data/mnist-sample (a page test's data folder)."""
    for split, count in (("train", train), ("test", test)):
        for digit in range(10):
            target = data / "mnist-sample" / split / str(digit)
            target.mkdir(parents=True)
            for image in sorted((sample / split / str(digit)).glob("*.png"))[:count]:
                shutil.copy(image, target / image.name)
    return data
