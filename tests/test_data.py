import gzip
import hashlib
import io
import shutil
import tarfile

import numpy as np
import pytest

from cnnlab.data import SOURCES, load_dataset, stratified_split
from cnnlab.data import catalog
from cnnlab.data.download import Download
from cnnlab.errors import UserError
from conftest import SHARED, write_cifar10


def test_cifar10_loads_as_uint8_with_class_names(data_dir):
    ds = load_dataset("cifar10", data_dir)
    assert ds.train_x.dtype.is_floating_point is False and ds.train_x.shape == (100, 3, 32, 32)
    assert ds.test_x.shape == (20, 3, 32, 32)
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.input_shape == (3, 32, 32)


def test_idx_sets_load_gzipped_or_plain(data_dir, tmp_path):
    ds = load_dataset("mnist", data_dir)
    assert ds.train_x.shape == (200, 1, 28, 28) and ds.test_x.shape == (50, 1, 28, 28)
    plain = tmp_path / "plain"
    (plain / "mnist").mkdir(parents=True)
    for f in (data_dir / "mnist").iterdir():
        (plain / "mnist" / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    assert np.array_equal(load_dataset("mnist", plain).train_x, ds.train_x)


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data_dir))
    assert len(load_dataset("cifar10").train_x) == 100


def test_truncated_idx_file_is_named(data_dir):
    path = data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*truncated"):
        load_dataset("mnist", data_dir)


def test_corrupt_cifar_batch_is_named(data_dir):
    path = data_dir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="data_batch_3.*corrupt or truncated"):
        load_dataset("cifar10", data_dir)


def test_label_out_of_range_is_reported(tmp_path):
    import pickle
    folder = write_cifar10(tmp_path / "d" / "cifar-10-batches-py")
    with open(folder / "test_batch", "rb") as f:
        batch = pickle.load(f)
    batch["labels"][0] = 12
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(UserError, match="test_batch: labels range 0..12, expected 0..9"):
        load_dataset("cifar10", tmp_path / "d")


def test_validation_split_is_stratified_seeded_and_disjoint(data_dir):
    a = load_dataset("mnist", data_dir, val_split=0.2, seed=1)
    b = load_dataset("mnist", data_dir, val_split=0.2, seed=1)
    assert len(a.val_x) == 40 and len(a.train_x) == 160
    assert np.bincount(a.val_y.numpy()).tolist() == [4] * 10  # 20 per class -> 4 held out from each
    assert np.array_equal(a.val_x, b.val_x)
    keep, held = stratified_split(np.arange(100) % 10, 0.1, seed=3)
    assert not set(keep) & set(held) and len(keep) + len(held) == 100


def test_unknown_data_set_suggests(data_dir):
    with pytest.raises(UserError, match="unknown data set 'cifar-10' \\(did you mean 'cifar10'\\?\\)"):
        load_dataset("cifar-10", data_dir)


def test_image_folder_resizes_and_holds_out_a_test_split(image_folder, tmp_path):
    ds = load_dataset("imagefolder", root=image_folder)
    assert ds.classes == ["cat", "dog", "fox"] and ds.input_shape == (3, 20, 20)
    assert len(ds.train_x) + len(ds.test_x) == 30 and len(ds.test_x) == 6
    # the decoded arrays are cached: the second load reads them instead of the PNGs
    cached = list((tmp_path / "cache" / "imagefolder").glob("*.npy"))
    assert len(cached) == 2  # one file per split
    again = load_dataset(str(image_folder))  # a folder path works as the name too
    assert np.array_equal(again.train_x, ds.train_x)


def test_image_folder_with_train_and_test(image_folder, tmp_path):
    root = tmp_path / "split"
    shutil.copytree(image_folder, root / "train")
    shutil.copytree(image_folder / "cat", root / "test" / "cat")
    ds = load_dataset("imagefolder", root=root, image_size=16)
    assert ds.input_shape == (3, 16, 16) and len(ds.train_x) == 30 and len(ds.test_x) == 10


def test_image_that_does_not_decode_is_skipped_and_named(image_folder):
    (image_folder / "cat" / "broken.png").write_bytes(b"not a png")
    ds = load_dataset("imagefolder", root=image_folder)  # the rest trains (tests/test_ingest.py: every kind)
    assert len(ds.train_x) + len(ds.test_x) == 30 and "broken.png" in ds.ingest.render()
    with pytest.raises(UserError, match="broken.png"):
        load_dataset("imagefolder", root=image_folder, strict=True)


def test_single_class_folder_is_refused(tmp_path, image_folder):
    root = tmp_path / "one"
    shutil.copytree(image_folder / "cat", root / "cat")
    with pytest.raises(UserError, match="only one class"):
        load_dataset("imagefolder", root=root)


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="cat: class folder holds no usable image"):
        load_dataset("imagefolder", root=tmp_path / "empty")


# ---------------------------------------------------------------- downloads, against a server on 127.0.0.1

def _archive(tmp_path) -> bytes:
    folder = write_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buf.getvalue()


def _serve_cifar(monkeypatch, base, md5):
    source = SOURCES["cifar10"]
    fake = catalog.Source(source.name, source.subdir, source.required,
                          (Download("cifar-10-python.tar.gz", (base + "cifar-10-python.tar.gz",), md5, extract=True),),
                          source.classes, source.reader, source.input_shape)
    monkeypatch.setitem(SOURCES, "cifar10", fake)


def test_download_checks_the_checksum_and_unpacks(tmp_path, http_root, monkeypatch):
    root, base = http_root
    payload = _archive(tmp_path)
    (root / "cifar-10-python.tar.gz").write_bytes(payload)
    _serve_cifar(monkeypatch, base, hashlib.md5(payload).hexdigest())
    ds = load_dataset("cifar10")  # no data dir: the cache is empty, so it downloads
    assert len(ds.train_x) == 100
    cache = tmp_path / "cache"
    assert (cache / "cifar-10-batches-py" / "data_batch_1").exists()
    assert not list(cache.rglob("*.tmp"))


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path, http_root, monkeypatch):
    root, base = http_root
    (root / "cifar-10-python.tar.gz").write_bytes(_archive(tmp_path))
    _serve_cifar(monkeypatch, base, "0" * 32)
    with pytest.raises(UserError, match="MD5 .* expected 0000"):
        load_dataset("cifar10")
    assert not list((tmp_path / "cache").rglob("*cifar-10-python*"))


def test_offline_error_says_which_files_to_put_where(tmp_path, monkeypatch):
    _serve_cifar(monkeypatch, "http://127.0.0.1:9/", "0" * 32)  # port 9: nothing listens
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", tmp_path / "mine")
    message = str(err.value)
    assert "data_batch_1" in message and str(tmp_path / "mine" / "cifar-10-batches-py") in message
    assert "download failed" in message


def test_official_sources_have_checksums():
    for source in SOURCES.values():
        for item in source.downloads:
            assert len(item.md5) == 32 and item.urls[0].startswith("http")


@pytest.mark.skipif(not (SHARED / "fashion-mnist").exists(), reason="shared data sets not present")
def test_real_fashion_mnist_from_shared():
    ds = load_dataset("fashion-mnist", SHARED)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.classes[9] == "ankle boot"


def test_cifar100_layout(tmp_path):
    import pickle
    from conftest import pattern_images
    folder = tmp_path / "d" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 300), ("test", 100)):
        x, y = pattern_images(n, 3, 32, 100, seed=len(name))
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x.reshape(n, -1), "fine_labels": y.tolist(), "coarse_labels": [0] * n}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    ds = load_dataset("cifar100", tmp_path / "d")
    assert ds.num_classes == 100 and ds.classes[7] == "c7" and ds.train_x.shape == (300, 3, 32, 32)


def test_image_folders_in_the_data_folder_are_offered(tmp_path, image_folder, data_dir):
    """The Start page offers the image folders it finds beside the built-in sets (the digit sample), not the
    built-in sets' own folders."""
    from cnnlab.app.datasets import folders
    found = folders(str(image_folder.parent))
    pets = next(f for f in found if f["name"] == "pets")
    assert pets["path"] == str(image_folder.resolve()) and pets["classes"] == 3
    assert pets["label"] == f"your folder pets ({pets['images']:,} image files)" and pets["images"] > 0
    assert folders(str(data_dir)) == []  # cifar-10-batches-py and mnist are the built-in sets' folders
    assert folders(None) == [] and folders(str(tmp_path / "nowhere")) == []


def test_the_training_image_count_takes_the_limit_before_the_subset():
    from cnnlab.data.dataset import train_images
    from cnnlab.schema.config import DataConfig
    assert train_images(DataConfig(name="cifar10", val_split=0.1)) == 45_000
    assert train_images(DataConfig(name="cifar10", val_split=0.1, limit=2000)) == 2000
    # the first 2,000 images, then half of them (a rescue's forecast): not half of 45,000 cut to 2,000
    assert train_images(DataConfig(name="cifar10", val_split=0.1, limit=2000, subset=0.5)) == 1000
