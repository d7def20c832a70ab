"""The course assignment, done in the browser as a student would (issue 23), at small scale: start from the
digit sample on the Start page, build the course's network, remove a conv-relu-pool triple and change a
conv's outputs, fix what lint finds with one click, train on real digits, draw a 7 and look inside (the top
5, a unit's receptive field and the units feeding it, Grad-CAM), and paint a photo in a style. Screenshots go
to $CNNLAB_SCREENSHOTS (docs/screenshots/ holds docs/web-app.md's)."""
from __future__ import annotations


import pytest

from browser import browser_page, digit_sample_slice, draw_seven, serving

from conftest import SHARED

SAMPLE = SHARED / "mnist-sample"


@pytest.fixture
def course_server(tmp_path):
    """`cnnlab serve` over a data folder holding a slice of the real digit sample (60 training and 10 test
    images a class, in the sample's own layout)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is missing (the shared data sets' digit sample)")
    from cnnlab.serve.app import create_app
    data = tmp_path / "data"
    digit_sample_slice(SAMPLE, data, train=60, test=10)
    app = create_app(tmp_path / "runs", str(data), worker_threads=1)
    with serving(app) as url:
        yield url
    app.state.cnnlab.worker.close()


def test_the_assignment_in_the_browser(course_server, tmp_path):
    with browser_page(tmp_path, 1400, 1000) as (page, errors, shots):
        page.goto(course_server)
        # Start: the digit sample is offered first, named for people, and already chosen (Build's one data menu too)
        sample = page.locator("#start-data button", has_text="Digit sample (700 MNIST digits)")
        sample.wait_for()
        page.wait_for_selector("#start-data button.chosen")
        assert "Digit sample" in page.inner_text("#start-data button.chosen")
        assert page.eval_on_selector("#data", "s => s.options[s.selectedIndex].text") == "Digit sample (700 MNIST digits)"
        sample.click()
        page.select_option("#start-network", "course-net")
        page.click("#start-build")
        page.wait_for_function("document.querySelectorAll('#diagram .block').length === 8")
        # Build: remove one conv-relu-maxpool triple, give the first conv 5 outputs
        for _ in range(3):
            page.click("#layers li:nth-child(4) button.remove")
        page.fill("#layers li:nth-child(1) input[data-arg=filters]", "")
        page.type("#layers li:nth-child(1) input[data-arg=filters]", "5")  # typed, no Tab or Enter: applied
        page.wait_for_function("document.querySelectorAll('#diagram .block').length === 5 && "
                               "document.querySelector('#layers li:nth-child(1) .shape').innerText === '5x28x28'")
        assert page.input_value("#model-name") == "course-net-5f"  # the name says what changed
        # a softmax before the loss: lint says so, one click fixes it
        page.click("#palette button[data-kind=softmax]")
        page.click(".finding[data-rule=softmax-output] button.fix")
        page.wait_for_function("document.querySelectorAll('#layers li').length === 5 && "
                               "!document.querySelector('.finding[data-rule=softmax-output]')")
        assert page.inner_text("#fix-note").startswith("What changed")
        page.screenshot(path=str(shots / "assignment-build.png"), full_page=True)
        # the next edit: the fix's note is gone, the name follows
        page.fill("#layers li:nth-child(1) input[data-arg=filters]", "6")
        page.wait_for_function("document.querySelector('#layers li:nth-child(1) .shape').innerText === '6x28x28'")
        assert not page.is_visible("#fix-note") and page.input_value("#model-name") == "course-net-6f"
        # Train on the digits: accuracy and examples per second
        page.click("nav button[data-page=train]")
        page.fill("input[name=epochs]", "2")
        page.fill("input[name=batch_size]", "32")
        page.fill("input[name='data.limit']", "")
        # the page says what will train, on what, and that `auto` does not augment a 2-epoch run
        page.wait_for_function("document.querySelector('#train-plan').innerText.includes('for 2 epochs')")
        assert page.inner_text("#plan-model") == "course-net-6f"
        assert page.inner_text("#plan-data") == "Digit sample (700 MNIST digits)"
        assert page.inner_text("#plan-augment").startswith("Augmentation: none")
        page.wait_for_function("document.querySelector('#augment-strip').naturalWidth > 0")
        page.click("#train-button")
        page.wait_for_function("document.querySelector('#train-status').innerText.includes('test accuracy')",
                               timeout=120_000)
        assert ": finished · test accuracy" in page.inner_text("#train-status")
        page.screenshot(path=str(shots / "assignment-train.png"), full_page=True)
        # Runs tells the run apart: its model's name and the data's folder
        page.click("nav button[data-page=runs]")
        row = page.locator("#runs-table tbody tr", has_text="course-net-6f")
        row.wait_for()
        assert "mnist-sample" in row.inner_text() and "imagefolder" not in row.inner_text()
        # See: draw a 7, the top 5, a unit's receptive field and feeding units, Grad-CAM
        page.click("nav button[data-page=see]")
        page.wait_for_selector("#see-run option", state="attached")
        draw_seven(page)
        page.wait_for_selector("#page-see[data-paint-ms]")
        assert int(page.get_attribute("#page-see", "data-paint-ms")) < 1000
        assert page.locator("#topk .bar").count() == 5
        page.locator('.act-row[data-layer="1"] .unit').nth(2).click()
        page.wait_for_selector("#see-input ~ .rf")
        assert "Click a unit" in page.inner_text("#see-hint") and "blue subtract" in page.inner_text("#see-hint")
        page.click("#topk .bar:first-child button[data-kind=gradcam]")
        page.wait_for_selector("#evidence img.overlay.gradcam")
        page.wait_for_selector("#evidence img.overlay.saliency")  # beside it
        assert "the regions that made the network say" in page.inner_text("#evidence")
        assert "LayerCAM" not in page.inner_text("#evidence")
        page.screenshot(path=str(shots / "assignment-see.png"), full_page=True)
        # a test image: the canvas shows it (not the old drawing) and says its label beside the network's answer
        drawn = page.evaluate("document.querySelector('#canvas').toDataURL()")
        page.fill("#test-index", "3")
        page.click("#show-test")
        page.wait_for_function("document.querySelector('#canvas-caption').innerText.startsWith('test image #3, labelled')")
        page.wait_for_function(f"document.querySelector('#canvas').toDataURL() !== {drawn!r}")
        assert not page.locator("#evidence img").count()  # the drawing's evidence went with it
        page.screenshot(path=str(shots / "assignment-see-test-image.png"), full_page=True)
        # Style: a few Gatys steps on a drawn photo with a bundled style
        photo = tmp_path / "photo.png"
        from PIL import Image
        Image.effect_mandelbrot((96, 72), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(photo)
        page.click("nav button[data-page=style]")
        page.wait_for_selector("#style-bundled button[data-style=cells]")
        page.set_input_files("#style-content-upload", str(photo))
        page.wait_for_function("document.querySelector('#style-content').src.startsWith('data:')")
        page.click("#style-bundled button[data-style=cells]")
        page.fill("#style-steps", "10")
        page.fill("#style-size", "48")
        page.click("#style-run-gatys")
        page.wait_for_function("document.querySelector('#style-progress').innerText.includes('done')", timeout=60_000)
        page.screenshot(path=str(shots / "assignment-style.png"), full_page=True)
    assert not errors, errors
