"""Start's Data panel: the data doctor's findings on a folder of photos as pictures. The sections the server
builds (cnnlab.app.data_panel), the thumbnail route that serves only files of a folder it read (and refuses a
path out of it), and the panel in a real browser at 1400 and 400 px."""
from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("imagehash", reason="the data doctor's extras: pip install -e '.[doctor]'")

from cnnlab.app.data_panel import duplicate_groups, panel  # noqa: E402
from test_data_doctor import photos  # noqa: E402


def write_planted_folder(root):
    """photos/train/{cat,dog} (8 each) and photos/test/{cat,dog} (3 each) of unlike blobs of colour, with a
    training cat copied into test (a leak), a training dog saved twice under a long name (a duplicate), one wide
    cat and one grayscale dog."""
    from PIL import Image
    x = photos(24, seed=7)
    for i, img in enumerate(x[:22]):
        split, name = ("train", i) if i < 16 else ("test", i - 16)
        folder = root / split / ("cat" if name % 2 == 0 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{name}.png")
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "leak.png")
    shutil.copy(root / "train" / "dog" / "1.png", root / "train" / "dog" / "dup_scanned_again_by_the_vet.png")
    Image.fromarray(x[22].transpose(1, 2, 0)).resize((48, 24)).save(root / "train" / "cat" / "wide.png")
    Image.fromarray(x[23].transpose(1, 2, 0)).convert("L").save(root / "train" / "dog" / "gray.png")
    return root


@pytest.fixture
def planted(tmp_path):
    return write_planted_folder(tmp_path / "photos")


def write_flipped_folder(root):
    """photos/train/c0..c2 (20 a class) and photos/test (3 a class) of images whose class is a bright band
    (conftest.pattern_images: easy to learn), three training labels moved to the next class. Returns the three."""
    from PIL import Image
    from conftest import pattern_images
    x, y = pattern_images(69, 3, 16, 3, seed=4)
    flipped = []
    for i, (img, c) in enumerate(zip(x, y)):
        split = "train" if i < 60 else "test"
        label = (c + 1) % 3 if split == "train" and i % 20 == 0 else c
        (root / split / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(root / split / f"c{label}" / f"{i}.png")
        if label != c:
            flipped.append((f"train/c{label}/{i}.png", f"c{label}", f"c{c}"))
    return flipped


def assert_pictures_loaded(page) -> None:
    """Every picture on the panel came back from the thumbnail route (the ones that did not, named)."""
    page.wait_for_function("[...document.querySelectorAll('#start-data-panel img')].every((i) => i.complete)",
                           timeout=90_000)
    broken = page.evaluate("[...document.querySelectorAll('#start-data-panel img')]"
                           ".filter((i) => !i.naturalWidth).map((i) => i.src)")
    assert not broken, broken


def sections(body: dict) -> dict:
    return {s["check"]: s for s in body["panel"]}


def test_the_report_carries_the_findings_as_pictures_to_draw(client, planted):
    r = client.get("/api/data/report", params={"path": str(planted)})
    assert r.status_code == 200, r.text
    found = sections(r.json())
    leak = found["leakage"]
    assert leak["kind"] == "pairs" and leak["sides"] == ["training image", "test image"]
    assert leak["pairs"] == [{"a": "train/cat/0.png", "b": "test/cat/leak.png", "name_a": "train/cat/0.png",
                              "name_b": "test/cat/leak.png", "labels": ["cat", "cat"], "how": "identical"}]
    assert "test accuracy is optimistic" in leak["meaning"]  # the doctor's own sentence
    dup = "train/dog/dup_scanned_again_by_the_vet.png"
    assert found["duplicates"]["groups"] == [[{"file": "train/dog/1.png", "name": "train/dog/1.png", "label": "dog"},
                                              {"file": dup, "name": dup, "label": "dog"}]]
    sizes = {e["what"]: e for e in found["sizes"]["examples"]}
    assert sizes["48x24"]["files"] == [{"file": "train/cat/wide.png", "name": "train/cat/wide.png"}]
    assert sizes["32x32"]["images"] == 25 and len(sizes["32x32"]["files"]) == 3
    modes = {e["what"]: e for e in found["modes"]["examples"]}
    assert modes["L"]["files"][0]["file"] == "train/dog/gray.png" and modes["RGB"]["images"] == 25


def test_a_thumbnail_is_served_from_the_folder_that_was_read(client, planted):
    from PIL import Image
    import io
    root = str(planted)
    # before the folder is read, nothing in it is served
    r = client.get("/api/data/thumb", params={"root": root, "file": "train/cat/0.png"})
    assert r.status_code == 400 and "not a folder this server has read" in r.json()["detail"]
    assert client.get("/api/data/report", params={"path": root}).status_code == 200
    r = client.get("/api/data/thumb", params={"root": root, "file": "train/cat/0.png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)  # 32 px enlarged 3x, pixels kept
    r = client.get("/api/data/thumb", params={"root": root, "file": "train/cat/wide.png", "side": 64})
    assert Image.open(io.BytesIO(r.content)).size == (48, 24)  # at most 64: whole factors only, none fits
    # a folder inside the one read is inside it too
    r = client.get("/api/data/thumb", params={"root": str(planted / "test"), "file": "cat/leak.png"})
    assert r.status_code == 200


def test_a_thumbnail_shows_the_image_as_training_sees_it_and_a_bomb_is_refused(client, planted):
    import io
    import numpy as np
    from PIL import Image
    from test_ingest import png_claiming
    Image.fromarray(np.full((20, 20), 128 * 257, np.uint16)).save(planted / "train" / "dog" / "sixteen.png")
    (planted / "train" / "dog" / "bomb.png").write_bytes(png_claiming(100_000, 100_000))  # 10^10 pixels claimed
    assert client.get("/api/data/report", params={"path": str(planted)}).status_code == 200
    r = client.get("/api/data/thumb", params={"root": str(planted), "file": "train/dog/sixteen.png"})
    assert np.asarray(Image.open(io.BytesIO(r.content)))[0, 0].tolist() == [128, 128, 128]  # mid grey, not white
    r = client.get("/api/data/thumb", params={"root": str(planted), "file": "train/dog/bomb.png"})
    assert r.status_code == 400 and "more than 89,478,485 pixels" in r.json()["detail"]


@pytest.mark.parametrize("file, status, message", [
    ("../secret.png", 400, "leaves the folder"),
    ("train/../../secret.png", 400, "leaves the folder"),
    ("..\\secret.png", 400, "leaves the folder"),
    ("{outside}", 400, "leaves the folder"),              # an absolute path
    ("train/cat/link.png", 400, "leads outside the folder"),  # a link inside that points out
    ("notes.txt", 400, "not an image"),
    ("train/cat/nowhere.png", 404, "no image"),
    ("train/cat/" + "x" * 300 + ".png", 400, "cannot be looked up"),
    ("train/cat/a\0.png", 400, "give the image's path"),
    ("", 400, "give the image's path inside the folder"),
])
def test_a_path_out_of_the_folder_is_refused_with_a_sentence(client, planted, file, status, message):
    from PIL import Image
    outside = planted.parent / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, planted / "train" / "cat" / "link.png")
    (planted / "notes.txt").write_text("not a picture")
    assert client.get("/api/data/report", params={"path": str(planted)}).status_code == 200
    r = client.get("/api/data/thumb", params={"root": str(planted), "file": file.format(outside=outside)})
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_a_root_that_was_not_read_is_refused_even_beside_one_that_was(client, planted, tmp_path):
    from PIL import Image
    assert client.get("/api/data/report", params={"path": str(planted)}).status_code == 200
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    for root in (str(tmp_path), str(planted / ".."), str(planted) + "-not", "photos", "/", str(planted) + "\0"):
        r = client.get("/api/data/thumb", params={"root": root, "file": "secret.png"})
        assert r.status_code == 400 and "root:" in r.json()["detail"], (root, r.text)
    r = client.get("/api/data/thumb", params={"root": str(planted), "file": "train/cat/0.png", "side": 5000})
    assert r.status_code == 400 and "8 to 256" in r.json()["detail"]


def test_duplicate_pairs_that_share_an_image_are_one_group():
    pairs = [{"a": "/p/b.png", "b": "/p/c.png", "labels": ["x", "x"]},
             {"a": "/p/a.png", "b": "/p/b.png", "labels": ["y", "x"]},
             {"a": "/p/e.png", "b": "/p/d.png", "labels": ["x", "x"]}]
    assert duplicate_groups(pairs) == [[("/p/a.png", "y"), ("/p/b.png", "x"), ("/p/c.png", "x")],
                                       [("/p/d.png", "x"), ("/p/e.png", "x")]]


def test_label_suspects_are_drawn_with_the_class_they_look_like(tmp_path):
    """The label check (which trains a quick model; `cnnlab data doctor`) as the panel draws it."""
    root = tmp_path / "photos"
    doctor = {"findings": [{"check": "label suspects", "severity": "warning", "message": "2 images",
                            "meaning": "a wrong label teaches the model the wrong thing",
                            "items": [{"file": str(root / "cat" / "3.png"), "label": "cat", "suggested": "dog",
                                       "confidence": 0.91, "index": 3, "label_probability": 0.04},
                                      {"file": "train[7]", "label": "dog", "suggested": "cat", "confidence": 0.6,
                                       "index": 7, "label_probability": 0.2}]}]}
    (section,) = panel(doctor, str(root))
    assert section["kind"] == "suspects" and section["total"] == 2
    assert section["suspects"] == [
        {"file": "cat/3.png", "name": "cat/3.png", "label": "cat", "suggested": "dog", "confidence": 0.91},
        {"file": None, "name": "train[7]", "label": "dog", "suggested": "cat", "confidence": 0.6}]


@pytest.mark.parametrize("width", [1400, 400])
def test_the_start_page_draws_the_leak_and_the_duplicate_as_pictures(tmp_path, runs_root, width):
    """In a real browser: a zip with a planted leak and a duplicate chosen on Start; the leak is drawn as the
    training image beside the test image, the duplicate as a group, every picture loaded from the thumbnail
    route, nothing scrolls sideways (screenshots start-data-panel-1400.png, -400.png)."""
    from browser import browser_page, serving
    from cnnlab.serve.app import create_app
    write_planted_folder(tmp_path / "photos")
    archive = shutil.make_archive(str(tmp_path / "photos"), "zip", tmp_path, "photos")
    with serving(create_app(runs_root, None, start_worker=False)) as url, \
            browser_page(tmp_path, width, 900) as (page, errors, shots):
        page.goto(url)
        page.wait_for_selector("#start-zip")
        page.set_input_files("#start-zip", archive)
        page.wait_for_selector("#start-data-panel section[data-check=leakage] img", timeout=90_000)
        leak = page.locator("section[data-check=leakage] .pair")
        assert leak.count() == 1
        captions = leak.locator("figcaption").all_inner_texts()
        assert captions[0].startswith("training image: cat") and "train/cat/0.png" in captions[0]
        assert captions[1].startswith("test image: cat") and "test/cat/leak.png" in captions[1]
        assert "test accuracy is optimistic" in page.inner_text("section[data-check=leakage] .panel-meaning")
        group = page.locator("section[data-check=duplicates] .dup-group figcaption").all_inner_texts()
        assert [c.split("\n")[-1] for c in group] == ["train/dog/1.png", "train/dog/dup_scanned_again_by_the_vet.png"]
        # a long file name wraps after its slashes and underscores, never inside a word: each piece without a space
        # on one line
        split_words = page.evaluate("""() => [...document.querySelectorAll('#start-data-panel figcaption')]
            .flatMap((f) => [...f.querySelectorAll('*'), f].flatMap((n) => [...n.childNodes]))
            .filter((t) => t.nodeType === Node.TEXT_NODE && /^\\S+$/.test(t.textContent.trim()))
            .filter((t) => { const r = document.createRange(); r.selectNodeContents(t);
                             return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size > 1; })
            .map((t) => t.textContent)""")
        assert not split_words, split_words
        assert "48x24: 1 image" in page.inner_text("section[data-check=sizes]")
        assert "train/dog/gray.png" in page.inner_text("section[data-check=modes]")
        assert_pictures_loaded(page)
        assert page.locator("#start-data-panel img").count() >= 8
        assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
        page.locator("#step-data").screenshot(path=str(shots / f"start-data-panel-{width}.png"))
        assert not errors, errors


def test_the_label_check_is_refused_with_a_sentence_where_the_page_cannot_run_it(client, planted, tmp_path,
                                                                                   monkeypatch):
    r = client.get("/api/data/report", params={"path": str(planted), "labels": True})
    assert r.status_code == 400 and "needs 10 training images a class (20 for 2 classes)" in r.json()["detail"]
    write_flipped_folder(tmp_path / "bands")
    import cnnlab.app.datasets
    monkeypatch.setattr(cnnlab.app.datasets, "LABEL_CHECK_MAX_IMAGES", 50)
    r = client.get("/api/data/report", params={"path": str(tmp_path / "bands"), "labels": True})
    assert r.status_code == 400 and "stops at 50 training images and this folder has 60" in r.json()["detail"]
    assert "cnnlab data doctor" in r.json()["detail"]


def test_the_start_page_shows_label_suspects_as_pictures_when_asked(tmp_path, runs_root):
    """In a real browser: a folder given by its path, then *Look for label suspects* (a quick model trained 5
    times: about 12 s here) draws each flipped label with the class it looks like (start-data-panel-labels-1400.png)."""
    from browser import browser_page, serving
    from cnnlab.serve.app import create_app
    flipped = write_flipped_folder(tmp_path / "bands")
    with serving(create_app(runs_root, None, start_worker=False)) as url, \
            browser_page(tmp_path, 1400, 900) as (page, errors, shots):
        page.goto(url)
        page.wait_for_selector("#start-folder")
        page.fill("#start-folder", str(tmp_path / "bands"))
        page.click("#start-check-photos")
        page.wait_for_selector("#start-label-check", timeout=90_000).click()
        page.wait_for_selector("section[data-check='label suspects'] img", timeout=120_000)
        captions = page.locator("section[data-check='label suspects'] figcaption").all_inner_texts()
        shown = {c.split("\n")[-1]: c for c in captions}
        for name, given, true in flipped:  # each planted error found, with the class it was taken from
            assert name in shown and shown[name].startswith(f"labelled {given}, looks like {true} (")
        assert "wrong label teaches the model" in page.inner_text("section[data-check='label suspects']")
        assert_pictures_loaded(page)
        page.locator("#step-data").screenshot(path=str(shots / "start-data-panel-labels-1400.png"))
        assert not errors, errors
