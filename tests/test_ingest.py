"""A user's own photo folder, with the files such folders really hold: it loads and trains, every broken file
reported once by reason, and `--strict` refuses them all at once."""
from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnlab import UserError, load_dataset
from cnnlab.cli import main
from cnnlab.data.ingest import class_warnings, decode_image, probe_file, scan_folder
from conftest import pattern_images


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, holding almost none: a decompression bomb that costs
    no disk and no memory to make."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def jpeg_bytes(array: np.ndarray, **kw) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", **kw)
    return buffer.getvalue()


def write_messy_folder(root: Path) -> dict[str, list[str]]:
    """Three classes of good 20x20 images (40 cat, 30 dog, 3 fox) plus one of every kind of bad file, odd
    modes, hidden files and an empty class folder. Returns the bad files by the reason they should get."""
    from PIL import Image
    x, _ = pattern_images(73, 3, 20, 3, seed=3)
    for i, img in enumerate(x):
        name = "cat" if i < 40 else "dog" if i < 70 else "fox"
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(root / name / f"{i}.png")
    cat, dog = root / "cat", root / "dog"
    (cat / "empty.png").write_bytes(b"")
    (cat / "truncated.jpg").write_bytes(jpeg_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[:900])
    (cat / "saved-page.jpg").write_bytes(b"<!DOCTYPE html><html><body>Not Found</body></html>")
    (cat / "bomb.png").write_bytes(png_claiming(100_000, 100_000))        # 10^10 pixels claimed
    Image.new("1", (12_000, 12_000)).save(cat / "huge-blank.png")        # 144 MP, a few KiB on disk
    (root / "fox" / "notes.txt").write_text("not an image suffix: ignored")
    (dog / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (dog / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")               # a macOS resource fork: hidden
    (dog / ".thumbs").mkdir()
    (dog / ".thumbs" / "t.png").write_bytes(b"junk")
    # the modes a photo folder holds, each of which must come out as 8-bit RGB
    Image.new("CMYK", (20, 20), (0, 0, 0, 0)).save(dog / "cmyk.jpg")      # no ink: white
    Image.fromarray(np.full((20, 20), 128 * 257, np.uint16)).save(dog / "sixteen.png")  # mid grey in 16 bits
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.save(dog / "palette.png", transparency=0)                     # all transparent black: white
    Image.new("LA", (20, 20), (0, 0)).save(dog / "la.png")                # transparent: white
    (root / "empty_class").mkdir()
    return {"empty": ["empty.png"], "truncated": ["truncated.jpg"], "not an image": ["saved-page.jpg"],
            "over the pixel limit": ["bomb.png", "huge-blank.png"]}


@pytest.fixture
def messy(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "photos"
    return root, write_messy_folder(root)


def test_an_empty_class_is_an_error_naming_its_folder(messy):
    root, _ = messy
    with pytest.raises(UserError, match=r"empty_class: class folder holds no usable image.*--skip-empty") as err:
        load_dataset(str(root))
    assert "also in the folder: 5 unusable files" in str(err.value)  # the rest said at once, not after a rerun


def test_every_bad_file_is_skipped_and_reported_once(messy):
    root, bad = messy
    ds = load_dataset(str(root), skip_empty=True)
    report = ds.ingest
    assert report.classes == ds.classes == ["cat", "dog", "fox"]  # the empty folder is not a fourth class
    assert len(ds.train_x) + len(ds.test_x) == 40 + 30 + 3 + 4     # the good images and the four odd modes
    found = {reason: sorted(Path(p).name for p, _ in items) for reason, items in report.by_reason().items()}
    assert found == {reason: sorted(names) for reason, names in bad.items()}
    assert report.ignored == 4  # notes.txt, .DS_Store, ._0.png, .thumbs/t.png
    text = report.render()
    assert "5 files skipped" in text and "over the pixel limit: 2" in text and "a web page" in text
    assert "left out empty class folder empty_class" in text and "fox (3)" in text  # a tiny class, warned about


def test_strict_fails_listing_every_bad_file(messy):
    root, bad = messy
    with pytest.raises(UserError) as caught:
        load_dataset(str(root), skip_empty=True, strict=True)
    message = str(caught.value)
    assert "5 files cannot be used" in message and "--strict" in message
    for names in bad.values():
        for name in names:
            assert name in message


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(100_000, 100_000))  # 30 GB as RGB were it decoded
    start = time.perf_counter()
    reason, detail, *_ = probe_file(str(bomb))
    assert reason == "over the pixel limit" and time.perf_counter() - start < 1
    # under Pillow's own hard limit, over ours: refused by our check before a pixel is read
    (tmp_path / "big.png").write_bytes(png_claiming(400, 400))
    assert probe_file(str(tmp_path / "big.png"), max_pixels=100_000)[0] == "over the pixel limit"


def test_every_mode_is_converted_to_8_bit_rgb(messy):
    root, _ = messy
    for name, expected in (("cmyk.jpg", 255), ("sixteen.png", 128), ("palette.png", 255), ("la.png", 255)):
        array = decode_image(root / "dog" / name, None, grayscale=False)
        assert array.shape == (3, 20, 20) and array.dtype == np.uint8, name
        assert abs(int(np.median(array)) - expected) <= 2, (name, np.median(array))


def test_exif_orientation_turns_the_photo_upright(tmp_path):
    from PIL import Image
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, :5] = 255  # a white band at the left of the stored pixels
    img = Image.fromarray(wide)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    array = decode_image(tmp_path / "phone.jpg", None, grayscale=False)
    assert array.shape == (3, 30, 10)            # upright: taller than wide
    assert array[:, :5].mean() > 200 and array[:, -5:].mean() < 50  # the band is now at the top
    assert probe_file(str(tmp_path / "phone.jpg"))[2:4] == (30, 10)


def test_grayscale_beside_colour_trains_as_colour(tmp_path):
    from PIL import Image
    for i in range(6):
        (tmp_path / "f" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L" if i < 3 else "RGB", (8, 8), 90).save(tmp_path / "f" / f"c{i % 2}" / f"{i}.png")
    ds = load_dataset(str(tmp_path / "f"))
    assert ds.input_shape == (3, 8, 8)


def test_imbalance_and_tiny_classes_are_warned_about_with_what_they_mean():
    out = class_warnings(["big", "small", "tiny"], [4000, 300, 12])
    assert len(out) == 1 and "333:1" in out[0] and "per-class accuracy" in out[0]
    out = class_warnings(["a", "b"], [50, 4])
    assert any("fewer than 10" in w and "b (4)" in w for w in out)
    assert class_warnings(["a", "b"], [50, 40]) == []


def test_the_scan_is_cached_and_parallel_results_match(messy, tmp_path):
    root, _ = messy
    report, items = scan_folder(root, tmp_path / "cache", skip_empty=True)  # 83 files: scanned by worker processes
    cached = list((tmp_path / "cache" / "imagefolder").glob("*.scan.json"))
    assert len(cached) == 1
    again, items_again = scan_folder(root, tmp_path / "cache", skip_empty=True)
    assert again.as_dict() == report.as_dict() and items_again == items


def test_data_info_and_train_show_the_report_and_the_run_keeps_skipped_txt(messy, tmp_path, capsys):
    root, _ = messy
    assert main(["data", "info", str(root)]) == 2
    assert "empty_class" in capsys.readouterr().err
    assert main(["data", "info", str(root), "--skip-empty"]) == 0
    out = capsys.readouterr().out
    assert "5 files skipped" in out and "truncated: 1" in out
    assert main(["data", "info", str(root), "--skip-empty", "--strict"]) == 2
    assert "saved-page.jpg" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--skip-empty", "--set", "model=tutorial", "--batch-size", "16",
                 "--epochs", "1", "--run-dir", str(run), "--no-store"]) == 0
    out = capsys.readouterr().out
    assert "5 files skipped" in out and "skipped.txt" in out
    lines = (run / "skipped.txt").read_text().splitlines()
    assert len(lines) == 5 and any(line.startswith("not an image\t") and "saved-page.jpg" in line for line in lines)


def _zip(path: Path, entries: dict, symlink: str | None = None) -> Path:
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return path


def test_a_zip_of_photos_unpacks_and_loads(messy, tmp_path):
    import shutil
    from cnnlab.app.uploads import extract_zip
    root, _ = messy
    archive = Path(shutil.make_archive(str(tmp_path / "photos"), "zip", root.parent, root.name))
    got = extract_zip(archive, tmp_path / "unpacked")
    assert got["root"] == str(tmp_path / "unpacked" / "photos") and got["files"] == 86
    ds = load_dataset(got["root"], skip_empty=True)
    assert ds.classes == ["cat", "dog", "fox"] and len(ds.ingest.skipped) == 5


@pytest.mark.parametrize("entries, symlink, limit, message", [
    ({"../evil.png": b"x"}, None, {}, "outside its folder"),
    ({"/etc/cron.d/evil": b"x"}, None, {}, "outside its folder"),
    ({"C:/Windows/evil.png": b"x"}, None, {}, "outside its folder"),
    ({"cat/a.png": b"x"}, "cat/link.png", {}, "a link"),
    ({"cat/zeros.png": b"\0" * (40 * 2 ** 20)}, None, {}, "zip bomb"),          # 40 MiB of zeros: ~40 KiB zipped
    ({f"cat/{i}.png": b"x" for i in range(6)}, None, {"max_files": 5}, "holds 6 files"),
    ({"cat/a.png": np.random.default_rng(0).bytes(4000)}, None, {"max_bytes": 1000}, "the limit is"),
])
def test_a_hostile_zip_is_refused_whole(tmp_path, entries, symlink, limit, message):
    from cnnlab.app.uploads import extract_zip
    archive = _zip(tmp_path / "hostile.zip", entries, symlink)
    with pytest.raises(UserError, match=message):
        extract_zip(archive, tmp_path / "out", **limit)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()


def test_a_limit_on_a_folder_takes_every_class_not_the_first_class(tmp_path):
    """An image folder is stored class by class: `data.limit: 12` must not train on 12 pictures of the first
    class (it did: the test accuracy sat at one class's share)."""
    from PIL import Image
    from cnnlab.train.session import prepare_config, prepare_data
    images, labels = pattern_images(60, 3, 16, 3, seed=0)
    for i, (image, label) in enumerate(zip(images, labels)):
        path = tmp_path / "photos" / f"class{label}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(path)
    cfg = prepare_config({"model": {"layers": ["flatten", {"dense": 3}]}, "data": {
        "name": "imagefolder", "root": str(tmp_path / "photos"), "limit": 12}})
    data = prepare_data(cfg)
    assert len(data.train_y) == 12 and np.bincount(data.train_y.numpy()).tolist() == [4, 4, 4]
