"""The pages a course hands its students, as a student sees them (Playwright driving Debian's chromium;
skipped with the reason where either is missing): the Start view first, Build's diagram of the network, a
lint fix applied with one click, a prescription that shows what it changed, and Compare layer by layer.
Screenshots go to $CNNLAB_SCREENSHOTS (start.png, build.png, build-bad.png, compare.png)."""
from __future__ import annotations


import pytest

from browser import browser_page, serving

pytest.importorskip("fastapi", reason="fastapi is missing: pip install -e .")

import cnnlab  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402

COURSE_NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"maxpool": 2},
              {"conv": {"filters": 16, "padding": "same"}}, "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]


@pytest.fixture
def server(tmp_path, runs_root):
    """The app on a free port, with tiny Fashion-MNIST and MNIST sets and two recorded runs: the course's
    network ending in a softmax ("with-softmax"), and the same without it, derived from the first ("fixed")."""
    from conftest import write_idx
    data = tmp_path / "data"
    write_idx(data / "fashion-mnist", n_train=600, n_test=100)
    write_idx(data / "mnist", n_train=600, n_test=100)
    common = {"data": {"name": "mnist", "dir": str(data), "limit": 64}, "epochs": 1, "batch_size": 32, "threads": 1}
    for name, model, parent in (("with-softmax", COURSE_NET + ["softmax"], None),
                                ("fixed", COURSE_NET, "with-softmax")):
        cnnlab.train({**common, "model": model, "parent": parent}, run_dir=runs_root / name, quiet=True,
                     store=runs_root / "cnnlab.db")
    app = create_app(runs_root, str(data), start_worker=False)
    with serving(app) as url:
        yield url


def test_start_build_as_a_picture_fix_and_compare(server, tmp_path):
    with browser_page(tmp_path, 1400, 900) as (page, errors, shots):
        page.goto(server)
        # the first view: the steps, each explained, on one screen; the network menu says what is loaded
        page.wait_for_selector("#start-data button[data-data=mnist]")
        for step in ("Pick a data set", "Pick a starting network", "Train for a minute", "See inside it"):
            assert page.get_by_role("heading", name=step).is_visible()
        assert page.locator(".step").evaluate_all("steps => steps.every(s => s.getBoundingClientRect().bottom < 900)")
        page.click("#start-data button[data-data=fashion-mnist]")
        assert page.input_value("#start-network") == "course-net"
        page.screenshot(path=str(shots / "start.png"), full_page=True)
        # step 3 without training: Train's settings filled in for a short run, and shown as changed
        page.click("#start-train-settings")
        assert page.input_value("input[name=epochs]") == "2" and page.input_value("input[name='data.limit']") == "10000"
        assert page.locator("#train-form label.changed").count() == 2
        page.click("nav button[data-page=start]")
        page.click("#start-build")
        page.wait_for_selector("#total-params")
        assert page.input_value("#template") == "course-net" and page.input_value("#data") == "fashion-mnist"
        # the diagram: one block per layer, the shapes on its edges
        page.wait_for_function("document.querySelectorAll('#diagram .block').length === 8 && "
                               "document.querySelector('#diagram').textContent.includes('16×7×7')")
        # a softmax before the loss: the finding carries a fix; one click removes it and says so
        page.click("#palette button[data-kind=softmax]")
        page.wait_for_selector(".finding[data-rule=softmax-output] button.fix")
        assert page.locator("#diagram .block").count() == 9
        # clicking a block selects its layer in the list
        page.click("#diagram .block[data-index='4']")
        assert page.get_attribute("#layers li.selected", "data-index") == "4"
        # an impossible layer turns its block red (and the list's row)
        page.fill("#layers li:nth-child(4) input[data-arg=padding]", "valid")
        page.press("#layers li:nth-child(4) input[data-arg=padding]", "Tab")
        page.fill("#layers li:nth-child(4) input[data-arg=kernel]", "20")
        page.press("#layers li:nth-child(4) input[data-arg=kernel]", "Enter")
        page.wait_for_selector("#diagram .block.bad")
        assert page.get_attribute("#diagram .block.bad", "data-index") == "4"
        assert page.get_attribute("#layers li.bad", "data-index") == "4"
        page.screenshot(path=str(shots / "build-bad.png"), full_page=True)
        page.fill("#layers li:nth-child(4) input[data-arg=kernel]", "3")
        page.press("#layers li:nth-child(4) input[data-arg=kernel]", "Enter")
        page.wait_for_function("!document.querySelector('#diagram .block.bad') && "
                               "document.querySelector('#total-params')")
        page.click(".finding[data-rule=softmax-output] button.fix")
        page.wait_for_function("document.querySelectorAll('#layers li').length === 8 && "
                               "!document.querySelector('.finding[data-rule=softmax-output]') && "
                               "document.querySelectorAll('#diagram .block').length === 8")
        assert page.inner_text("#fix-note") == "What changed: removed layer 9 (softmax)."
        page.wait_for_selector("#total-params")
        page.screenshot(path=str(shots / "build.png"), full_page=True)
        # a prescription for a run: the changed field is highlighted, and the next run records its parent
        page.evaluate("state.run = 'with-softmax'; prescriptionAction('lower the learning rate 10x')()")
        assert page.locator("#page-train").is_visible()
        assert page.locator("#train-form label.changed").count() == 1
        assert "optimizer.lr 0.05 → 0.005" in page.inner_text("#train-change")
        assert page.evaluate("trainConfig().parent") == "with-softmax"
        # Runs: the parent shown; Compare: the models layer by layer
        page.click("nav button[data-page=runs]")
        page.wait_for_selector("#runs-table tbody tr:nth-child(2)")
        assert "from with-softmax" in page.inner_text("#runs-table tr[data-id=fixed]")
        page.check("#runs-table tr[data-id=with-softmax] input")
        page.check("#runs-table tr[data-id=fixed] input")
        page.click("#compare-button")
        page.wait_for_selector("table.model-diff")
        order = page.evaluate("[...document.querySelectorAll('#runs-table tbody input:checked')].map(i => i.value)")
        removed = page.locator("table.model-diff tr.diff-removed, table.model-diff tr.diff-added")
        assert removed.count() == 1 and "softmax" in removed.inner_text()
        assert "1 layer(s) differ" in page.inner_text("table.model-diff caption") and len(order) == 2
        assert '{\\"layers' not in page.inner_text("#compare-diff")  # no JSON of the model
        page.screenshot(path=str(shots / "compare.png"), full_page=True)
        # the doctor's batchnorm prescription for a net with dropout: batchnorm in, dropout out, in one click
        page.evaluate("state.layers = [{kind: 'conv', args: {filters: 8}}, {kind: 'relu', args: {}}, "
                      "{kind: 'dropout', args: {rate: 0.25}}, {kind: 'conv', args: {filters: 8}}, "
                      "{kind: 'flatten', args: {}}, {kind: 'dense', args: {units: 'classes'}}]; "
                      "prescriptionAction('add `batchnorm` after the convolutions and take the dropout out')()")
        assert page.evaluate("state.layers.map(l => l.kind).join(' ')") == \
            "conv batchnorm relu conv batchnorm flatten dense"
        assert "added batchnorm after every conv and took the dropout out" in page.inner_text("#fix-note")
        page.wait_for_selector("#total-params")
        page.screenshot(path=str(shots / "build-batchnorm-no-dropout.png"), full_page=True)
    assert not errors, errors
