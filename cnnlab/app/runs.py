"""A recorded run, after (or while) it trains: find it, stop it, diagnose it, compare it with others,
evaluate it again, predict with it, look inside it, write its report, export it. Everything is read from what
the run wrote (cnnlab/rundir.py), so a run trained by the CLI, the web page or a script reads the same."""
from __future__ import annotations

import base64
import binascii
import io
import os
import re
import threading
from pathlib import Path

from ..diagnose.facts import diagnose_run
from ..errors import Conflict, NotFound, TooLarge, UserError
from ..rundir import Run, request_stop
from ..schema.limits import MAX_UPLOAD_BYTES
from ..track.compare import config_diff
from ..track.store import Store

MAX_PIXELS = 4096 * 4096  # decoded pixels of an upload; a decompression bomb stops at the header
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,150}$")


def open_run(ref: str, store: str | os.PathLike | None = None) -> Run:
    """A run directory path, or a run's name (or a unique part of it) from the store."""
    from ..track.store import default_store_path
    if Path(ref).is_dir() or "/" in str(ref) or (store is None and not default_store_path().exists()):
        return Run(ref)  # names what is wrong with the directory, if anything
    return Run(Store(store).find(ref)["path"])


def run_in(runs_root: Path, run_id: str) -> Run:
    """The run `run_id` directly under `runs_root`; an id that is not a plain name, or names no run, is
    NotFound (and the message names the run, never the server's folders)."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or \
            not (Path(runs_root) / run_id / "config.yaml").is_file():
        raise NotFound(f"no run '{str(run_id)[:80]}'")
    return Run(Path(runs_root) / run_id)


def stop(run: Run) -> Path:
    """Ask the process training `run` (any process: CLI, server, script) to stop after its current batch."""
    return request_stop(run.dir)


def diagnose(run: Run):
    """The doctor's verdict: a Verdict with render() and as_dict()."""
    return diagnose_run(run)


def provisional(run: Run, rows: list[dict]) -> dict | None:
    """The doctor's reading of the curve so far, without the model's facts: cheap enough for every epoch."""
    from ..diagnose.doctor import diagnose as from_rows
    try:
        return from_rows(rows, len(run.data_info["classes"]), None).as_dict()
    except UserError:
        return None


def detail(run: Run) -> dict:
    """What the Runs page shows of one run: config, per-epoch rows, result and the doctor's verdict."""
    try:
        data = run.data_info
    except UserError:
        data = None
    try:
        verdict = diagnose_run(run) if data and run.metrics else None
    except UserError:
        verdict = None
    return {"id": run.dir.name, "config": run.config.model_dump(), "metrics": run.metrics, "result": run.result, "data": data,
            "verdict": verdict.as_dict() if verdict else None}


def compare(runs: list[Run]) -> dict:
    """The config keys that differ (with each run's value), the curves and the results of several runs."""
    return {"differ": config_diff({r.dir.name: r.config.model_dump() for r in runs}),
            "metrics": {r.dir.name: r.metrics for r in runs}, "results": {r.dir.name: r.result for r in runs}}


def final_weights(run: Run) -> Run:
    """`run`, if its final weights are written; else a Conflict saying what state it is in."""
    if not (run.dir / "model.safetensors").exists():
        raise Conflict(f"{run.dir.name} has no final weights (model.safetensors) yet (status "
                       f"{run.result.get('status')})")
    return run


def report(run: Run, image: int = 0, fmt: str = "html") -> Path:
    """report.html (or the figures as PNG files) in the run's directory; an unfinished run is reported from its
    last checkpoint."""
    from ..viz.report import write_report
    return write_report(run.dir, image, fmt)


def export(run: Run, fmt: str = "onnx", out: str | None = None, input_kind: str = "float") -> Path:
    from ..interop.export import export as export_run
    return export_run(run.dir, fmt, out, input_kind)


def evaluate(run: Run, data: str | None = None, data_dir: str | None = None, split: str = "test") -> dict:
    from ..train import evaluate_run
    return evaluate_run(run.dir, data, data_dir, split)


def predict(run: Run, images: list[str], top_k: int = 3) -> list[dict]:
    from ..train.predict import predict as predict_files
    return predict_files(run.dir, images, top_k)


class SeeCache:
    """Loaded models and test sets of the runs a page looks inside, so each stroke costs one forward pass.
    Thread-safe: See hooks the shared model's layers, so one look at a time per cache."""

    def __init__(self, runs: int = 4):
        self.runs = runs
        self._models: dict[str, tuple[float, object]] = {}   # run id -> (weights mtime, its TrainedModel)
        self._test: dict[str, object] = {}
        self.lock = threading.Lock()

    def model(self, run: Run):
        from ..train.trained import TrainedModel
        weights = final_weights(run).dir / "model.safetensors"
        key, mtime = run.dir.name, weights.stat().st_mtime
        if key not in self._models or self._models[key][0] != mtime:
            if len(self._models) >= self.runs:
                self._models.pop(next(iter(self._models)))
            self._models[key] = (mtime, TrainedModel.load(run, device="cpu"))
        return self._models[key][1]

    def test_image(self, run: Run, index: int):
        from ..train.session import prepare_data
        if run.dir.name not in self._test:
            self._test.clear()
            self._test[run.dir.name] = prepare_data(run.config).test_x
        test_x = self._test[run.dir.name]
        if not 0 <= index < len(test_x):
            raise UserError(f"test_index: the test set has {len(test_x)} images (0 to {len(test_x) - 1})")
        return test_x[index]


def see(run: Run, image: str | None = None, test_index: int | None = None, top_k: int = 5,
        cache: SeeCache | None = None) -> dict:
    """The top-k classes and every layer's maps for a drawn or uploaded image (a data: URL) or a test image."""
    import torch
    from ..viz.activations import see as look
    cache = cache or SeeCache(1)
    with cache.lock:
        trained = cache.model(run)
        if image is not None:
            x = torch.from_numpy(decode_upload(image, trained.input_shape))
        elif test_index is not None:
            x = cache.test_image(run, test_index)
        else:
            raise UserError("send image (a data: URL) or test_index")
        return look(trained, x, top_k)


def decode_upload(data_url: str, input_shape) -> "np.ndarray":  # noqa: F821
    """A data: URL image -> uint8 (C, H, W) of the model's input size. Over the size limit is TooLarge; what
    does not decode (or decodes to more than MAX_PIXELS: a decompression bomb stops at the header) is a
    UserError, never a crash."""
    import warnings
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    if len(payload) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise TooLarge(f"image: over the upload limit of {MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("image: not base64 data") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"image: {len(raw) / 2 ** 20:.1f} MB; the upload limit is {MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
    channels, h, w = input_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(io.BytesIO(raw)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UserError(f"image: {img.width}x{img.height} is more than {MAX_PIXELS:,} pixels")
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255) if channels == 3 else (0, 0, 0, 255))
                img = Image.alpha_composite(background, img).convert("L" if channels == 1 else "RGB")
                img = img.resize((w, h), Image.BILINEAR)
                array = np.array(img, dtype=np.uint8)  # a copy torch may write to
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            SyntaxError, ValueError) as exc:
        raise UserError(f"image: cannot decode it ({type(exc).__name__}); send a PNG or JPEG") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def epochs(runs_root: Path, run_id: str) -> list[dict]:
    """The per-epoch rows a run has written so far ([] before its first epoch, or before it exists)."""
    from ..rundir import read_metrics
    if not RUN_ID.match(run_id):
        return []
    return read_metrics(Path(runs_root) / run_id / "metrics.csv")


def ending(runs_root: Path, run_id: str) -> dict | None:
    """The run's final result.json, or None while it is queued or training."""
    import json
    from .lifecycle import UNFINISHED
    try:
        result = json.loads((Path(runs_root) / run_id / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return None if result.get("status") in UNFINISHED else result
