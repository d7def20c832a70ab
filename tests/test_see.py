"""See as a node-link picture: where a unit looks (receptive fields worked out by hand), what feeds it (the
contributions add up to its value), which pixels speak for a class (saliency and Grad-CAM on a tiny network
trained on real digits), and the page in a real browser: draw, click a unit, open Grad-CAM, clear."""
from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser import browser_page, draw_seven, serving
import torch

import cnnlab
from cnnlab.models.layers import BuildContext, build_layers
from cnnlab.viz.evidence import receptive_field, saliency_and_cam, unit

DIGITS = Path("/work/shared/datasets/mnist-sample")
COURSE_NET = [{"conv": {"filters": 8, "padding": "same"}}, "relu", {"maxpool": 2},
              {"conv": {"filters": 16, "padding": "same"}}, "relu", {"maxpool": 2}, "flatten", {"dense": "classes"}]


def infos(layers, shape=(1, 28, 28)):
    """The layers as the model builder lays them out (a model need not end in a classifier here)."""
    return build_layers(layers, shape, BuildContext(num_classes=10))[0]


def box(field: dict) -> tuple:
    return field["top"], field["left"], field["bottom"], field["right"], field["height"], field["width"]


# ------------------------------------------------------------------ receptive fields, by hand

def test_receptive_fields_of_the_course_network():
    net = infos(COURSE_NET)
    # conv 3x3 same: unit (5, 5) reads input rows and columns 4..6
    assert box(receptive_field(net, "1", 5, 5)) == (4, 4, 6, 6, 3, 3)
    # at the border the box is clipped to the image; its size stays the filter's
    assert box(receptive_field(net, "1", 0, 0)) == (0, 0, 1, 1, 3, 3)
    # relu changes nothing
    assert receptive_field(net, "2", 5, 5) == receptive_field(net, "1", 5, 5)
    # maxpool 2: pool unit (2, 3) takes conv rows 4..5, columns 6..7 -> input rows 3..6, columns 5..8
    assert box(receptive_field(net, "3", 2, 3)) == (3, 5, 6, 8, 4, 4)
    # conv 3x3 on the pooled map: unit (3, 3) reads pool rows 2..4 -> conv rows 4..9 -> input 3..10: 8 wide
    assert box(receptive_field(net, "4", 3, 3)) == (3, 3, 10, 10, 8, 8)
    # second pool: unit (3, 3) -> conv2 rows 6..7 -> pool1 rows 5..8 -> conv1 rows 10..17 -> input 9..18
    assert box(receptive_field(net, "6", 3, 3)) == (9, 9, 18, 18, 10, 10)
    # a flattened map's unit (channel, y, x) sees what the map's unit sees; a dense unit sees everything
    assert receptive_field(net, "7", 3, 3) == receptive_field(net, "6", 3, 3)
    assert box(receptive_field(net, "8")) == (0, 0, 27, 27, 28, 28)


def test_receptive_fields_with_stride_dilation_and_padding():
    # 5x5 valid stride 2, then 3x3 dilation 2: r = 5 + (5 - 1) * 2 = 13; unit (1, 1) reads layer-1 rows 1..5,
    # which read input rows 2..14
    net = infos([{"conv": {"filters": 4, "kernel": 5, "stride": 2}},
                 {"conv": {"filters": 4, "kernel": 3, "dilation": 2}}])
    assert box(receptive_field(net, "2", 1, 1)) == (2, 2, 14, 14, 13, 13)
    # a pad layer shifts: after pad 2, a 3x3 valid conv's unit (0, 0) reads padded rows 0..2 = input -2..0
    net = infos([{"pad": 2}, {"conv": {"filters": 4, "kernel": 3}}])
    assert box(receptive_field(net, "2", 0, 0)) == (0, 0, 0, 0, 3, 3)
    # maxpool 3 stride 2 'same' on 28: out 14, total padding (14-1)*2+3-28 = 1, so 0 before; unit (1, 1)
    # reads rows 2..4
    net = infos([{"maxpool": {"size": 3, "stride": 2, "padding": "same"}}])
    assert box(receptive_field(net, "1", 1, 1)) == (2, 2, 4, 4, 3, 3)
    # an odd 'same' total pads after, not before: 3x3 stride 2 on 28 -> 14, padding (14-1)*2+3-28 = 1, all of it
    # at the bottom/right; unit (1, 1) reads rows 2..4, and the last unit (13, 13) rows 26..28, clipped to 27
    net = infos([{"conv": {"filters": 4, "kernel": 3, "stride": 2, "padding": "same"}}])
    assert box(receptive_field(net, "1", 1, 1)) == (2, 2, 4, 4, 3, 3)
    assert box(receptive_field(net, "1", 13, 13)) == (26, 26, 27, 27, 3, 3)
    # a residual block of two 3x3 convs: the body sees 5x5, the identity 1x1; the box is their union
    net = infos([{"residual": {"layers": [{"conv": {"filters": 1, "padding": "same"}},
                                          {"conv": {"filters": 1, "padding": "same"}}]}}])
    assert box(receptive_field(net, "1", 10, 10)) == (8, 8, 12, 12, 5, 5)


# ------------------------------------------------------------------ a tiny network trained on real digits

@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """A few hundred real MNIST digits as an image folder: 60 a class to train on, 10 a class to test."""
    if not DIGITS.is_dir():
        pytest.skip(f"{DIGITS} is not on this machine")
    root = tmp_path_factory.mktemp("digits")
    for split, count in (("train", 60), ("test", 10)):
        for digit in range(10):
            (root / split / str(digit)).mkdir(parents=True)
            for path in sorted((DIGITS / split / str(digit)).iterdir())[:count]:
                shutil.copy(path, root / split / str(digit) / path.name)
    return root


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, digits):
    """The course's network, 2 epochs on 600 digits (~3 s on 2 cores; about 90% on the 100 test digits)."""
    runs = tmp_path_factory.mktemp("runs")
    return cnnlab.train({"model": COURSE_NET, "data": {"name": str(digits)}, "epochs": 2, "batch_size": 16,
                         "augment": "none", "optimizer": {"name": "adam", "lr": 0.003}, "threads": 1},
                        run_dir=runs / "digits", quiet=True, store=runs / "cnnlab.db")


@pytest.fixture(scope="module")
def model(trained_run):
    from cnnlab.train import TrainedModel
    return TrainedModel.load(trained_run.dir, device="cpu")


def digit_images(digits) -> list[tuple[int, torch.Tensor]]:
    from PIL import Image
    return [(d, torch.from_numpy(np.array(Image.open(sorted((digits / "test" / str(d)).iterdir())[0])))[None])
            for d in range(10)]


def test_what_feeds_a_unit_adds_up_to_its_value(model, digits):
    seven = digit_images(digits)[7][1]
    conv2 = unit(model, seven, "4", channel=5)  # no position: the channel's strongest unit
    assert conv2["previous"] == "3" and len(conv2["feeding"]) == 8  # all 8 channels of the pool before it
    bias = float(model.model.infos[3].module.bias[5].detach())
    assert sum(f["contribution"] for f in conv2["feeding"]) + bias == pytest.approx(conv2["value"], abs=1e-3)
    strengths = [abs(f["contribution"]) for f in conv2["feeding"]]
    assert strengths == sorted(strengths, reverse=True)
    assert np.array(conv2["feeding"][0]["weights"]).shape == (3, 3)
    assert conv2["feeding"][0]["weights_png"].startswith("data:image/png;base64,")
    assert conv2["field"]["height"] == 8 and conv2["field"]["bottom"] - conv2["field"]["top"] < 8
    # the class unit: 16 channel templates of the flattened 7x7 maps, which add up to the logit
    logit = unit(model, seven, "8", channel=7)
    assert logit["previous"] == "7" and len(logit["feeding"]) == 16
    assert np.array(logit["feeding"][0]["weights"]).shape == (7, 7)
    bias = float(model.model.infos[7].module.bias[7].detach())
    assert sum(f["contribution"] for f in logit["feeding"]) + bias == pytest.approx(logit["value"], abs=1e-3)
    # a pool unit: fed by the same channel, the max of its window
    pool = unit(model, seven, "3", channel=2, y=4, x=6)
    assert [f["channel"] for f in pool["feeding"]] == [2] and pool["feeding"][0]["contribution"] == pool["value"]
    with pytest.raises(cnnlab.UserError, match="channel: layer 4 has 16"):
        unit(model, seven, "4", channel=16)


def test_contributions_through_strides_odd_padding_and_dilation(trained_run, digits):
    """A conv whose 'same' padding is odd (padded after) and a dilated one: what feeds a unit still adds up."""
    from cnnlab.device import choose_placement
    from cnnlab.train import TrainedModel
    torch.manual_seed(0)
    layers = [{"conv": {"filters": 4, "kernel": 3, "stride": 2, "padding": "same", "activation": "relu"}},
              {"conv": {"filters": 6, "kernel": 3, "dilation": 2, "padding": "same"}}, "flatten", {"dense": 10}]
    net = cnnlab.build_model({"layers": layers}, (1, 28, 28), 10).eval()
    info = trained_run.data_info
    model = TrainedModel(net, trained_run.config, info["classes"], (1, 28, 28), info["mean"], info["std"],
                         choose_placement("cpu", "fp32", False))
    seven = digit_images(digits)[7][1]
    for layer, channel, y, x in (("1", 2, 13, 13), ("1", 1, 0, 0), ("2", 5, 6, 6), ("2", 0, 0, 13)):
        got = unit(model, seven, layer, channel, y, x)
        conv = next(m for m in net.infos[int(layer) - 1].module.modules() if isinstance(m, torch.nn.Conv2d))
        pre = sum(f["contribution"] for f in got["feeding"]) + float(conv.bias[channel].detach())
        assert (max(pre, 0.0) if layer == "1" else pre) == pytest.approx(got["value"], abs=1e-3), (layer, y, x)


def test_saliency_and_grad_cam_light_the_stroke(model, digits):
    lit = 0
    for digit, image in digit_images(digits):
        predicted = int(model.probabilities(image[None])[0].argmax())
        maps = saliency_and_cam(model, image, predicted)
        assert maps["saliency"].shape == maps["cam"].shape == (28, 28) and maps["cam_layer"] == "6 maxpool 2x2"
        stroke = image[0].numpy() > 60
        lit += maps["cam"][stroke].mean() > 1.5 * maps["cam"][~stroke].mean()
        # a region, not a grid of dots: neighbouring pixels differ by little against the map's own level
        steps = np.abs(np.diff(maps["cam"], axis=1)).mean() / max(maps["cam"].mean(), 1e-9)
        assert steps < 0.3, f"digit {digit}: Grad-CAM is speckled (mean step {steps:.2f} of its mean)"
    assert lit >= 8, f"Grad-CAM lit the stroke for {lit} of 10 digits"


def png_of(image: torch.Tensor, size: int = 280) -> str:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image[0].numpy()).resize((size, size)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_the_routes(trained_run, digits, monkeypatch):
    from fastapi.testclient import TestClient
    from cnnlab.serve.app import create_app
    seven = png_of(digit_images(digits)[7][1])
    run_id = trained_run.dir.name
    with TestClient(create_app(trained_run.dir.parent, start_worker=False)) as client:
        seen = client.post(f"/api/runs/{run_id}/see", json={"image": seven}).json()
        assert [len(layer.get("channels", [])) for layer in seen["layers"]] == [8, 8, 8, 16, 16, 16, 16, 0]
        assert seen["layers"][6]["map_shape"] == [16, 7, 7] and seen["classes"][7] == "7"
        top = seen["top"][0]
        got = client.post(f"/api/runs/{run_id}/see/unit", json={"image": seven, "layer": "4", "channel": 0,
                                                                "y": 3, "x": 3}).json()
        assert (got["y"], got["x"], got["field"]["top"], got["field"]["height"]) == (3, 3, 3, 8)
        evidence = client.post(f"/api/runs/{run_id}/see/evidence",
                               json={"image": seven, "class_index": top["index"]}).json()
        assert evidence["class"] == top["class"] and evidence["gradcam"].startswith("data:image/png")
        assert evidence["saliency"].startswith("data:image/png") and evidence["gradcam_layer"] == "6 maxpool 2x2"
        # a wide layer's first answer carries AT_ONCE channels; the rest come with the layer asked for by name
        monkeypatch.setattr("cnnlab.viz.activations.AT_ONCE", 4)
        seen = client.post(f"/api/runs/{run_id}/see", json={"image": seven}).json()
        assert [(len(layer["channels"]), layer["more"]) for layer in seen["layers"][3:7]] == [(4, 12)] * 4
        full = client.post(f"/api/runs/{run_id}/see/layer", json={"image": seven, "layer": "4"}).json()
        assert full["index"] == "4" and len(full["channels"]) == len(full["filters"]) == 16 and full["more"] == 0
        bad = client.post(f"/api/runs/{run_id}/see/unit", json={"image": seven, "layer": "99", "channel": 0})
        assert bad.status_code == 400 and "no top-level layer '99'" in bad.json()["detail"]
        bad = client.post(f"/api/runs/{run_id}/see/evidence", json={"test_index": 0, "class_index": 10})
        assert bad.status_code == 400 and "10 classes" in bad.json()["detail"]


# ------------------------------------------------------------------ in a real browser

@pytest.fixture
def server(trained_run):
    from cnnlab.serve.app import create_app
    app = create_app(trained_run.dir.parent, start_worker=False)
    with serving(app) as url:
        yield url


def test_see_as_a_student_uses_it(server, tmp_path):
    with browser_page(tmp_path, 1400, 1000) as (page, errors, shots):
        page.goto(server)
        page.click("nav button[data-page=see]")
        page.wait_for_selector("#see-run option", state="attached")
        # draw: the top 5 and every layer's units, painted within a second of the last stroke
        draw_seven(page)
        page.wait_for_selector("#page-see[data-paint-ms]")
        painted = [int(page.get_attribute("#page-see", "data-paint-ms"))]
        assert page.locator("#topk .bar").count() == 5
        assert page.locator("#activations .act-row").count() == 9  # the input and 8 layers
        assert page.locator('.act-row[data-layer="4"] .unit').count() == 16  # every channel, no "+N more"
        page.screenshot(path=str(shots / "see.png"), full_page=True)
        # a unit: its receptive field on the input, links from the units that feed it, the filter's weights
        page.locator('.act-row[data-layer="4"] .unit').nth(3).click()
        page.wait_for_selector("#detail .feed img.weights")
        assert page.locator("#see-input ~ .rf").count() == 1
        assert page.locator("#links line").count() == 8 and page.locator(".act-row .unit.feeder").count() == 8
        assert "fed by layer 3" in page.inner_text("#detail") and "sees input rows" in page.inner_text("#detail")
        page.screenshot(path=str(shots / "see-unit.png"), full_page=True)
        # a class unit: its 16 channel templates, the links reaching back to the flattened maps
        page.locator('.act-row[data-layer="8"] .unit').nth(7).click()
        page.wait_for_function("document.querySelector('#detail h3').innerText.includes('layer 8')")
        assert page.locator("#links line").count() == 16
        # columns fold past `see.fold` units and open on request
        page.evaluate("see.fold = 4; paintNet(see.seen)")
        page.click('.act-row[data-layer="4"] button.expand')
        assert page.locator('.act-row[data-layer="4"] .unit').count() == 16
        # which pixels made it say its top class
        page.click("#topk .bar:first-child button[data-kind=gradcam]")
        page.wait_for_selector("#evidence img.overlay.gradcam")
        assert "Grad-CAM: the regions that made the network say" in page.inner_text("#evidence")
        assert page.locator("#evidence img.overlay.saliency").count() == 1  # beside it
        page.screenshot(path=str(shots / "see-gradcam.png"), full_page=True)
        page.click("#topk .bar:nth-child(2) button[data-kind=saliency]")
        page.wait_for_selector("#evidence img.overlay.saliency")
        # Clear leaves nothing stale
        page.click("#clear-canvas")
        for part in ("#topk", "#activations", "#detail", "#evidence"):
            assert page.inner_html(part) == "", part
        # a second drawing, then a failed upload: its error, and nothing of the drawing
        draw_seven(page)
        page.wait_for_selector("#page-see[data-paint-ms]")
        painted.append(int(page.get_attribute("#page-see", "data-paint-ms")))
        bad = tmp_path / "not-an-image.png"
        bad.write_bytes(b"not an image")
        page.set_input_files("#upload-image", str(bad))
        page.wait_for_function("document.querySelector('#topk').innerText.includes('cannot decode')")
        assert page.locator("#activations .act-row").count() == 0 and page.inner_html("#evidence") == ""
    assert not errors, errors
    print(f"stroke to painted: {painted} ms")
    assert max(painted) < 1000, painted


def test_a_colour_network_shows_its_input_in_colour(trained_run):
    """The input picture of a 3-channel net is the image as it is, not its grey average."""
    import base64
    import io
    from PIL import Image
    from cnnlab.device import choose_placement
    from cnnlab.train import TrainedModel
    from cnnlab.viz.activations import see
    net = cnnlab.build_model({"layers": [{"conv": {"filters": 4, "kernel": 3}}, "flatten", {"dense": 10}]},
                             (3, 8, 8), 10).eval()
    model = TrainedModel(net, trained_run.config, [str(i) for i in range(10)], (3, 8, 8), [0.5] * 3, [0.25] * 3,
                         choose_placement("cpu", "fp32", False))
    red = torch.zeros(3, 8, 8, dtype=torch.uint8)
    red[0] = 200
    shown = see(model, red)["input"]
    picture = Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1])))
    assert picture.mode == "RGB" and picture.getpixel((0, 0)) == (200, 0, 0)
