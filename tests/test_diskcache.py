"""An image folder's decoded cache on disk (cnnlab/data/diskcache.py): built once and reused, rebuilt when a
file changes, never left half-written, and trained through memory-mapped exactly as in memory: the same
weights, a resume that ends the same, DDP ranks sharing one file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import cnnlab
from cnnlab.data import diskcache, ingest, load_dataset
from cnnlab.errors import UserError


def cache_files(tmp_path):
    return sorted((tmp_path / "cache" / "imagefolder").glob("*.npy"))


@pytest.fixture
def decodes(monkeypatch):
    """How many images were decoded (a folder under 64 files decodes in this process, so every call counts)."""
    count = {"n": 0}
    real = ingest.decode_image

    def counting(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(ingest, "decode_image", counting)
    return count


def test_the_cache_is_built_once_and_reused(image_folder, tmp_path, decodes):
    first = load_dataset(str(image_folder), in_memory=False)
    assert decodes["n"] == 30
    files = cache_files(tmp_path)
    assert len(files) == 2  # train and the held-out test split, one file each
    stamps = [f.stat().st_mtime_ns for f in files]
    again = load_dataset(str(image_folder), in_memory=False)
    assert decodes["n"] == 30, "the second load decoded images again"
    assert [f.stat().st_mtime_ns for f in cache_files(tmp_path)] == stamps
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_x, again.test_x)
    assert np.load(files[0], mmap_mode="r").dtype == np.uint8


def test_a_changed_file_makes_a_new_cache(image_folder, tmp_path, decodes):
    from PIL import Image
    before = load_dataset(str(image_folder), in_memory=False)
    changed = image_folder / "cat" / before.train_files[0].rsplit("/", 1)[1]
    Image.new("RGB", (20, 20), (255, 0, 0)).save(changed)
    after = load_dataset(str(image_folder), in_memory=False)
    assert decodes["n"] > 30  # decoded again
    assert after.train_files == before.train_files
    assert torch.equal(after.train_x[0], torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None].expand(3, 20, 20))
    assert not torch.equal(after.train_x, before.train_x)


def test_old_builds_of_a_changing_folder_are_deleted_past_a_few(image_folder, tmp_path):
    """Every edit to a folder makes a new build of its splits; only the last few stay on disk (a folder of
    100,000 photos is ~5 GB decoded: ten edits must not fill the disk)."""
    import time
    from PIL import Image
    first = load_dataset(str(image_folder), in_memory=False)
    edited = image_folder / "cat" / first.train_files[0].rsplit("/", 1)[1]
    for shade in range(ingest.KEEP_BUILDS + 2):
        time.sleep(0.01)  # the lock file's time orders the builds
        Image.new("RGB", (20, 20), (shade * 40, 0, 0)).save(edited)
        latest = load_dataset(str(image_folder), in_memory=False)
    assert len(cache_files(tmp_path)) == ingest.KEEP_BUILDS + 1  # train's last builds, and test's one
    assert torch.equal(latest.train_x, load_dataset(str(image_folder), in_memory=False).train_x)


def test_a_build_that_fails_leaves_no_cache_file(image_folder, tmp_path, monkeypatch):
    real, calls = ingest.decode_image, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("killed mid-write")
        return real(*args, **kwargs)
    monkeypatch.setattr(ingest, "decode_image", failing)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        load_dataset(str(image_folder), in_memory=False)
    folder = tmp_path / "cache" / "imagefolder"
    assert not cache_files(tmp_path) and not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    monkeypatch.setattr(ingest, "decode_image", real)
    ds = load_dataset(str(image_folder), in_memory=False)  # the next load builds it whole
    assert len(ds.train_x) + len(ds.test_x) == 30 and len(cache_files(tmp_path)) == 2
    train = cache_files(tmp_path)[0]
    train.unlink()
    killed = folder / f".{train.name}.k1ll3d.tmp"  # what a build killed outright (SIGKILL) leaves
    killed.write_bytes(b"half")
    load_dataset(str(image_folder), in_memory=False)
    assert train.exists() and not killed.exists()


def test_in_memory_false_maps_the_file_and_true_reads_it_into_memory(image_folder):
    mapped = load_dataset(str(image_folder), in_memory=False, val_split=0.2)
    loaded = load_dataset(str(image_folder), in_memory=True, val_split=0.2)
    assert diskcache.on_disk(mapped.train_x) and diskcache.on_disk(mapped.val_x) and diskcache.on_disk(mapped.test_x)
    assert not diskcache.on_disk(loaded.train_x)
    for a, b in ((mapped.train_x, loaded.train_x), (mapped.val_x, loaded.val_x), (mapped.test_x, loaded.test_x)):
        assert torch.equal(a, b)
    assert mapped.channel_stats() == loaded.channel_stats()
    idx = torch.tensor([5, 0, 17, 5, 3])
    assert torch.equal(diskcache.take(mapped.train_x, idx), loaded.train_x[idx])  # the sampled order, repeats kept
    with pytest.raises(UserError, match="data.in_memory: 'maybe'; valid: auto, true"):
        load_dataset(str(image_folder), in_memory="maybe")


def test_a_pass_over_a_mapped_set_hands_its_pages_back(image_folder, monkeypatch):
    """What a mapped set adds to RSS is bounded: a pass in blocks unmaps its pages every RELEASE_EVERY bytes."""
    ds = load_dataset(str(image_folder), in_memory=False)
    real, released = diskcache.release, []
    monkeypatch.setattr(diskcache, "RELEASE_EVERY", 3 * ds.train_x[0].nbytes)
    monkeypatch.setattr(diskcache, "release", lambda x: released.append(1) or real(x))
    seen = torch.cat(list(diskcache.blocks(ds.train_x, rows=1)))
    assert torch.equal(seen, ds.train_x) and len(released) == len(ds.train_x) // 3


def config(root, in_memory, epochs=2) -> dict:
    return {"model": "tutorial", "data": {"name": "imagefolder", "root": str(root), "in_memory": in_memory},
            "batch_size": 8, "epochs": epochs, "threads": 1, "seed": 3, "augment": {"crop": 2, "flip": "horizontal"}}


def test_training_through_the_map_gives_the_weights_of_training_in_memory(image_folder, tmp_path):
    for in_memory in (True, False):
        cnnlab.train(config(image_folder, in_memory), run_dir=tmp_path / str(in_memory), quiet=True, store=False)
    a, b = load_file(str(tmp_path / "True" / "model.safetensors")), load_file(str(tmp_path / "False" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results = [json.loads((tmp_path / str(m) / "result.json").read_text()) for m in (True, False)]
    assert results[0]["test_acc"] == results[1]["test_acc"]


def test_a_run_killed_while_training_from_the_map_resumes_bit_identical(image_folder, tmp_path):
    cnnlab.train(config(image_folder, False, epochs=3), run_dir=tmp_path / "straight", quiet=True, store=False)
    run_dir = tmp_path / "killed"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ["CNNLAB_FAULT"] = "batch:5"  # epoch 2 of 3 (3 batches an epoch)
            cnnlab.train(config(image_folder, False, epochs=3), run_dir=run_dir, quiet=True, store=False)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    cnnlab.resume(run_dir, quiet=True, store=False)
    a, b = load_file(str(tmp_path / "straight" / "model.safetensors")), load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ after resume"


def test_two_ranks_build_one_cache_and_train_from_it(tmp_path):
    from PIL import Image
    from conftest import pattern_images
    root = tmp_path / "folder"
    x, y = pattern_images(120, 3, 16, 3, seed=1)  # over 64 files: decoded by worker processes
    for i, (img, label) in enumerate(zip(x, y)):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(root / f"c{label}" / f"{i}.png")
    out = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--data", str(root), "--model", "tutorial",
                          "--set", "data.in_memory=false", "--set", "threads=1", "--epochs", "1", "--batch-size", "16",
                          "--run-dir", str(tmp_path / "run"), "--no-store", "--quiet", "--nproc", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(cache_files(tmp_path)) == 2  # both ranks opened the file one of them built
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "finished"
