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
    training cat copied into test (a leak), a training dog saved twice (a duplicate), one wide cat and one
    grayscale dog."""
    from PIL import Image
    x = photos(24, seed=7)
    for i, img in enumerate(x[:22]):
        split, name = ("train", i) if i < 16 else ("test", i - 16)
        folder = root / split / ("cat" if name % 2 == 0 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{name}.png")
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "leak.png")
    shutil.copy(root / "train" / "dog" / "1.png", root / "train" / "dog" / "dup.png")
    Image.fromarray(x[22].transpose(1, 2, 0)).resize((48, 24)).save(root / "train" / "cat" / "wide.png")
    Image.fromarray(x[23].transpose(1, 2, 0)).convert("L").save(root / "train" / "dog" / "gray.png")
    return root


@pytest.fixture
def planted(tmp_path):
    return write_planted_folder(tmp_path / "photos")


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
    assert found["duplicates"]["groups"] == [[{"file": "train/dog/1.png", "name": "train/dog/1.png", "label": "dog"},
                                              {"file": "train/dog/dup.png", "name": "train/dog/dup.png",
                                               "label": "dog"}]]
    sizes = {e["what"]: e for e in found["sizes"]["examples"]}
    assert sizes["24x48"]["files"] == [{"file": "train/cat/wide.png", "name": "train/cat/wide.png"}]
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


@pytest.mark.parametrize("file, status, message", [
    ("../secret.png", 400, "leaves the folder"),
    ("train/../../secret.png", 400, "leaves the folder"),
    ("..\\secret.png", 400, "leaves the folder"),
    ("{outside}", 400, "leaves the folder"),              # an absolute path
    ("train/cat/link.png", 400, "leads outside the folder"),  # a link inside that points out
    ("notes.txt", 400, "not an image"),
    ("train/cat/nowhere.png", 404, "no image"),
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
    for root in (str(tmp_path), str(planted / ".."), str(planted) + "-not", "photos", "/"):
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
