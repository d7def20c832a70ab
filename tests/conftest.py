"""Small data made in the tests, in the official layouts, so every test runs in seconds without downloads."""
from __future__ import annotations

import gzip
import http.server
import pickle
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

# Tiny models gain nothing from a second thread, and one thread keeps runs repeatable and unhurried by
# anything else the machine is doing.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pattern_images(n: int, channels: int, size: int, num_classes: int, seed: int):
    """Images whose class is visible (a bright band at a class-dependent row), so a model can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.uint8)
    band = max(size // num_classes, 1)
    for i, y in enumerate(labels):
        row = (y * band) % size
        images[i, :, row:row + band, :] = 220
    return images, labels.astype(np.int64)


def write_cifar10(folder: Path, per_batch: int = 20, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = pattern_images(per_batch, 3, 32, 10, seed + i)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x.reshape(per_batch, -1), "labels": y.tolist(), "batch_label": name}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return folder


def write_idx(folder: Path, n_train: int = 200, n_test: int = 50, gz: bool = True, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        x, y = pattern_images(n, 1, 28, 10, s)
        image_bytes = struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + x.tobytes()
        label_bytes = struct.pack(">HBBI", 0, 8, 1, n) + y.astype(np.uint8).tobytes()
        for stem, payload in ((f"{prefix}-images-idx3-ubyte", image_bytes), (f"{prefix}-labels-idx1-ubyte", label_bytes)):
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as f:
                    f.write(payload)
            else:
                (folder / stem).write_bytes(payload)
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test reads the user's cache or writes runs into the repository."""
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("CNNLAB_DATA_DIR", raising=False)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data directory holding tiny cifar10 and mnist sets in their conventional sub-folders."""
    root = tmp_path / "data"
    write_cifar10(root / "cifar-10-batches-py")
    write_idx(root / "mnist")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    from PIL import Image
    root = tmp_path / "pets"
    x, y = pattern_images(30, 3, 20, 3, seed=5)
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / ["cat", "dog", "fox"][label]
        folder.mkdir(parents=True, exist_ok=True)
        size = (20, 20) if i % 5 else (24, 18)  # a few odd sizes: resized to the common one
        Image.fromarray(img.transpose(1, 2, 0)).resize(size).save(folder / f"{i}.png")
    return root


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def client(runs_root, data_dir):
    """The web app's API with no training worker, as a test client (skipped without the web app's extras)."""
    pytest.importorskip("fastapi", reason="the web app's extras are not installed: pip install -e '.[test]'")
    from fastapi.testclient import TestClient
    from cnnlab.serve.app import create_app
    with TestClient(create_app(runs_root, str(data_dir), start_worker=False)) as c:
        yield c


def same_weights_after_a_stop(cfg: dict, tmp_path: Path):
    """The run trained straight through, and again stopped after its first epoch and resumed: (straight,
    resumed) jobs, and whether their final weights are identical."""
    import cnnlab
    import torch
    from safetensors.torch import load_file
    straight = cnnlab.Job(cfg, run_dir=tmp_path / "straight", store=False).run()
    job = cnnlab.Job(cfg, run_dir=tmp_path / "stopped", store=False)
    job.listeners.append(lambda e: e.type == "epoch_end" and job.stop())
    job.run()
    assert job.status == "interrupted"
    resumed = cnnlab.Job.resume(tmp_path / "stopped", store=False).run()
    a, b = load_file(str(straight.dir / "model.safetensors")), load_file(str(resumed.dir / "model.safetensors"))
    return straight, resumed, all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def http_root(tmp_path):
    """(a folder, the base URL a server on 127.0.0.1 serves it at): downloads tested without the network."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
