"""Your own photos through the web server: a zip upload (and a hostile one), or a folder by its path, answered
with the ingestion report and the data doctor's findings."""
from __future__ import annotations

import io
import shutil
import zipfile

import pytest

from test_ingest import write_messy_folder

pytest.importorskip("imagehash", reason="the data doctor's extras: pip install -e '.[doctor]'")


def test_a_zip_of_photos_is_read_and_reported(client, tmp_path):
    root = tmp_path / "photos"
    write_messy_folder(root)
    shutil.rmtree(root / "empty_class")
    shutil.copy(root / "cat" / "1.png", root / "dog" / "copy-of-1.png")  # one picture in two classes
    archive = shutil.make_archive(str(tmp_path / "photos"), "zip", tmp_path, "photos")
    with open(archive, "rb") as f:
        r = client.post("/api/data/zip?name=my photos", content=f.read(), headers={"content-type": "application/zip"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classes"] == ["cat", "dog", "fox"] and body["unpacked"]["root"].endswith("/photos")
    assert "/uploads/my-photos-" in body["unpacked"]["root"]
    assert len(body["ingest"]["skipped"]) == 5 and "over the pixel limit: 2" in body["ingest_text"]
    checks = {f["check"] for f in body["doctor"]["findings"]}
    assert "conflicting labels" in checks and "copy-of-1.png" in body["doctor_text"]
    # the same folder by its path on the server's machine
    r = client.get("/api/data/report", params={"path": str(root)})
    assert r.status_code == 200 and r.json()["train"] == body["train"]


def test_a_folder_with_an_empty_class_is_reported_with_it_left_out(client, tmp_path):
    root = tmp_path / "photos"
    write_messy_folder(root)  # it has an empty class folder: the pages have no --skip-empty, so it is left out
    r = client.get("/api/data/report", params={"path": str(root)})
    assert r.status_code == 200, r.text
    assert r.json()["classes"] == ["cat", "dog", "fox"] and "left out empty class folder empty_class" in r.json()["ingest_text"]
    r = client.get("/api/data/report", params={"path": " "})
    assert r.status_code == 400 and "no folder given" in r.json()["detail"]


def _hostile(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("entries, status, message", [
    ({"../../evil.png": b"x", "cat/a.png": b"x"}, 400, "outside its folder"),
    ({"/tmp/evil.png": b"x"}, 400, "outside its folder"),
    ({"cat/zeros.png": b"\0" * (40 * 2 ** 20)}, 413, "zip bomb"),
])
def test_a_hostile_zip_is_refused_and_leaves_nothing(client, runs_root, entries, status, message):
    r = client.post("/api/data/zip", content=_hostile(entries), headers={"content-type": "application/zip"})
    assert r.status_code == status and message in r.json()["detail"]
    assert not list((runs_root / "uploads").glob("*")) if (runs_root / "uploads").exists() else True


def test_only_the_zip_route_takes_a_zip_and_a_form_cannot_send_one(client):
    r = client.post("/api/check", content=_hostile({"a": b"x"}), headers={"content-type": "application/zip"})
    assert r.status_code == 415
    r = client.post("/api/data/zip", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = client.post("/api/data/zip", content=b"not a zip", headers={"content-type": "application/zip"})
    assert r.status_code == 400 and "not a zip" in r.json()["detail"]


def test_a_folder_is_given_by_its_absolute_path_and_a_huge_tree_is_refused(client, tmp_path, monkeypatch):
    assert client.get("/api/data/report", params={"path": "photos"}).status_code == 400
    assert client.get("/api/data/report", params={"path": str(tmp_path / "nowhere")}).status_code == 400
    import cnnlab.app.limits
    monkeypatch.setattr(cnnlab.app.limits, "MAX_ZIP_FILES", 3)
    for i in range(4):
        (tmp_path / "big" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "big" / f"c{i % 2}" / f"{i}.png").write_bytes(b"x")
    r = client.get("/api/data/report", params={"path": str(tmp_path / "big")})
    assert r.status_code == 400 and "more than 3 files" in r.json()["detail"]


def test_the_start_page_takes_a_zip_of_photos_and_shows_the_report(tmp_path, runs_root):
    """In a real browser: the zip chosen on Start, the report and the doctor's findings shown before a first run
    (screenshot start-photos.png), and a hostile zip refused on the page."""
    from browser import browser_page, serving
    from cnnlab.serve.app import create_app
    root = tmp_path / "photos"
    write_messy_folder(root)
    shutil.rmtree(root / "empty_class")
    shutil.copy(root / "cat" / "1.png", root / "dog" / "copy-of-1.png")
    archive = shutil.make_archive(str(tmp_path / "photos"), "zip", tmp_path, "photos")
    (tmp_path / "hostile.zip").write_bytes(_hostile({"../../evil.png": b"x"}))
    with serving(create_app(runs_root, None, start_worker=False)) as url, \
            browser_page(tmp_path, 1400, 1000) as (page, errors, shots):
        page.goto(url)
        page.wait_for_selector("#start-zip")
        page.set_input_files("#start-zip", archive)
        page.wait_for_selector("#start-data-panel section[data-check='conflicting labels'] img", timeout=60_000)
        assert "5 files skipped" in page.inner_text("#start-ingest")
        page.click("#start-photos .doctor-text summary")  # the doctor's findings as text, under the pictures
        assert "conflicting labels" in page.inner_text("#start-doctor")
        assert page.input_value("#start-folder").endswith("/photos")  # the unpacked folder is the chosen data
        page.locator("#step-data").screenshot(path=str(shots / "start-photos.png"))
        page.set_input_files("#start-zip", str(tmp_path / "hostile.zip"))
        page.wait_for_function("document.querySelector('#start-ingest').innerText.startsWith('refused')")
        assert "outside its folder" in page.inner_text("#start-ingest")
        assert not errors, errors
