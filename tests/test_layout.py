"""Every page from a 400 px window (a phone, a split screen) to a 1400 px one: no horizontal scrolling, Build's
diagram and summary below the layer list on a narrow window, charts as wide as their box. Each page is shown
with something in it (a trained run on real digits, its curves, See's maps) and photographed at both widths
into $CNNLAB_SCREENSHOTS."""
from __future__ import annotations


import pytest

from browser import browser_page, digit_sample_slice, draw_seven, serving

import cnnlab
from conftest import SHARED

SAMPLE = SHARED / "mnist-sample"
COURSE_NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"maxpool": 2},
              {"conv": {"filters": 16, "padding": "same"}}, "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]
PAGES = ("start", "build", "train", "runs", "see", "style")
# how far the page reaches past the window, in CSS pixels (0: no horizontal scroll bar)
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture(scope="module")
def digits_server(tmp_path_factory):
    """`cnnlab serve` over a slice of the digit sample (30 training and 5 test images a class) with one
    finished run on it."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is missing (the shared data sets' digit sample)")
    from cnnlab.serve.app import create_app
    tmp = tmp_path_factory.mktemp("layout")
    data = tmp / "data"
    digit_sample_slice(SAMPLE, data, train=30, test=5)
    runs = tmp / "runs"
    cnnlab.train({"name": "course-net", "model": {"name": "course-net", "layers": COURSE_NET},
                  "data": {"name": str(data / "mnist-sample")}, "epochs": 2, "batch_size": 32, "threads": 1},
                 run_dir=runs / "course-net-digits", quiet=True, store=runs / "cnnlab.db")
    app = create_app(runs, str(data), worker_threads=1)
    with serving(app) as url:
        yield url
    app.state.cnnlab.worker.close()


def fill(page, name: str) -> None:
    """Put on the page what a student would see there."""
    if name == "train":  # the finished run's curves, as Runs' Resume or a live run draws them
        page.wait_for_selector("#augment-strip:not([hidden])")
        page.evaluate("follow('course-net-digits')")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('finished')")
    elif name == "runs":
        page.wait_for_selector("#runs-table tbody tr")
        page.check("#runs-table tbody input")
        page.click("#compare-button")
        page.wait_for_selector("#compare-diff table")
    elif name == "see":
        page.wait_for_selector("#see-run option", state="attached")
        draw_seven(page)
        page.wait_for_selector("#page-see[data-paint-ms]")
        page.locator('.act-row[data-layer="1"] .unit').nth(1).click()
        page.wait_for_selector("#detail h3")
    elif name == "style":
        page.wait_for_selector("#style-bundled button")
        page.wait_for_selector("#style-nets button[data-net=cells]")  # never empty: cnnlab's own net
    elif name == "build":
        page.wait_for_selector("#diagram .block")


@pytest.mark.parametrize("width", [400, 1400])
def test_every_page_fits_the_window(digits_server, tmp_path, width):
    with browser_page(tmp_path, width, 900) as (page, errors, shots):
        page.goto(digits_server)
        page.wait_for_selector("#start-data button.chosen")
        for name in PAGES:
            page.click(f"nav button[data-page={name}]")
            fill(page, name)
            page.wait_for_timeout(300)  # charts and the diagram redrawn to the window
            assert page.evaluate(OVERFLOW) <= 0, f"{name} at {width} px scrolls sideways"
            page.screenshot(path=str(shots / f"layout-{name}-{width}.png"), full_page=True)
            if name == "build":
                diagram, layers = page.locator("#diagram").bounding_box(), page.locator("#layers").bounding_box()
                if width < 900:  # stacked: the diagram below the list, never over it
                    assert diagram["y"] >= layers["y"] + layers["height"] - 1
                else:  # beside it
                    assert diagram["x"] >= layers["x"] + layers["width"] - 1
            if name == "see" and width >= 1400:  # the columns fit: the class scores in view without scrolling
                assert page.evaluate("(h => h.scrollWidth - h.clientWidth)(document.querySelector('#activations'))") <= 0
            if name == "train":  # each chart as wide as its box
                box = page.locator("#chart-loss").bounding_box()
                canvas = page.locator("#chart-loss canvas").bounding_box()
                assert canvas["width"] >= box["width"] - 40 and canvas["width"] <= box["width"]
    assert not errors, errors
