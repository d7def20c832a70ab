"""`cnnlab serve`: the web app. Route handlers are a few lines each over the same Python API as the CLI
(build, summary, lint, train, doctor, store, see); the request bodies are pydantic models, so the page's
JSON is checked by the same schema as a YAML file, and the OpenAPI document at /docs is generated.

Safety: binds 127.0.0.1 by default and then answers only requests addressed to a loopback name (no DNS
rebinding). Bound elsewhere, every request needs the token `serve` prints. Run ids are checked against
the runs directory; only model.safetensors weights are loaded; uploads are size-limited and decoded with
a pixel budget; state-changing requests take JSON only (a cross-site form cannot post here).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import queue
import re
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import UserError
from ..rundir import Run, read_metrics, request_stop
from .worker import TrainingWorker

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 4 * 2 ** 20          # bytes of an uploaded image
MAX_PIXELS = 4096 * 4096          # decoded pixels; a decompression bomb stops at the header
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,150}$")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1", "testserver")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckRequest(Body):
    model: Any = Field(description="a layer list, {layers: [...]}, or a registered name")
    data: str = Field("cifar10", max_length=500, description="data set name or image-folder path")


class TextRequest(Body):
    text: str = Field(max_length=1_000_000)


class ModelRequest(Body):
    model: Any
    name: str = Field("model", max_length=100)


class RunRequest(Body):
    config: dict = Field(description="a training config: the same keys as a config file (cnnlab schema config)")


class TagRequest(Body):
    tags: list[str] = Field(max_length=50)


class CompareRequest(Body):
    ids: list[str] = Field(min_length=1, max_length=20)


class SeeRequest(Body):
    image: str | None = Field(None, max_length=MAX_UPLOAD * 4 // 3 + 100, description="a data: URL (PNG/JPEG)")
    test_index: int | None = Field(None, ge=0, le=10_000_000)
    top_k: int = Field(5, ge=1, le=100)


def create_app(runs_root: str | Path = "runs", data_dir: str | None = None, token: str | None = None,
               worker_threads: int | None = None, start_worker: bool = True) -> FastAPI:
    runs_root = Path(runs_root).resolve()
    runs_root.mkdir(parents=True, exist_ok=True)
    store_path = runs_root / "cnnlab.db"
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if app.state.worker is not None:
            app.state.worker.close()

    # /openapi.json documents the API; FastAPI's /docs page would load Swagger UI from a CDN, and this app
    # works offline, so it is off
    app = FastAPI(title="cnnlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Build, train and understand CNN image classifiers: the API under the web page.")
    app.state.worker = TrainingWorker(store_path, worker_threads) if start_worker else None
    datasets: dict[str, tuple] = {}
    seen_runs: dict[str, tuple] = {}   # run id -> (weights mtime, Run with its model loaded): See stays fast
    test_sets: dict[str, object] = {}  # run id -> its test images
    see_lock = threading.Lock()         # See hooks the shared model's layers: one request at a time

    # ------------------------------------------------------------------ safety and errors
    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").rsplit(":", 1)[0] if not (request.headers.get("host") or
                                                                                "").startswith("[") else "[::1]"
        if token is None and host not in LOOPBACK:
            return JSONResponse({"detail": f"host '{host}' is not served; use http://127.0.0.1"}, status_code=403)
        if token is not None and not request.url.path.startswith("/static/"):
            given = request.headers.get("authorization", "").removeprefix("Bearer ") or \
                request.query_params.get("token") or request.cookies.get("cnnlab_token")
            if not given or not secrets.compare_digest(given, token):
                return JSONResponse({"detail": "a token is needed: open the URL `cnnlab serve` printed"},
                                    status_code=401)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and \
                not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"detail": "send JSON (Content-Type: application/json)"}, status_code=415)
        response = await call_next(request)
        if token is not None and request.query_params.get("token"):
            response.set_cookie("cnnlab_token", token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    # ------------------------------------------------------------------ helpers
    def input_for(name: str) -> tuple[tuple, int]:
        from ..data import SOURCES, load_dataset
        if name in SOURCES:
            return SOURCES[name].input_shape, SOURCES[name].num_classes
        if name not in datasets:
            ds = load_dataset(name, data_dir)
            datasets[name] = (ds.input_shape, ds.num_classes)
        return datasets[name]

    def run_for(run_id: str) -> Run:
        if not RUN_ID.match(run_id) or not (runs_root / run_id / "config.yaml").is_file():
            raise HTTPException(404, f"no run '{run_id[:80]}' in {runs_root}")
        return Run(runs_root / run_id)

    def store():
        from ..track.store import Store
        return Store(store_path)

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ------------------------------------------------------------------ building
    @app.get("/api/info")
    def info() -> dict:
        from ..data import SOURCES
        from ..models import list_models
        from ..schema.config import defaults
        from ..schema.layers import layer_json_schema
        from .templates import TEMPLATES
        present = [n for n in SOURCES if _present(n, data_dir)]
        return {"version": __version__, "datasets": list(SOURCES), "present": present, "models": list_models(),
                "templates": list(TEMPLATES), "layer_schema": layer_json_schema(), "config_defaults": defaults()}

    @app.post("/api/check")
    def check(body: CheckRequest) -> dict:
        from ..diagnose.check import check_model
        _no_code(body.model)
        shape, classes = input_for(body.data)
        return check_model(body.model, shape, classes)

    @app.get("/api/templates/{name}")
    def template(name: str, data: str = "cifar10") -> dict:
        from ..models import model_spec
        from .templates import TEMPLATES
        shape, classes = input_for(data)
        if name in TEMPLATES:
            return {"name": name, "layers": TEMPLATES[name]}
        spec = model_spec(name, shape, classes)
        return {"name": spec.get("name", name), "layers": spec["layers"]}

    @app.post("/api/model/yaml")
    def model_yaml(body: ModelRequest) -> dict:
        import yaml
        from ..models import resolve_spec
        _no_code(body.model)
        spec = resolve_spec(body.model, (3, 32, 32), 10).data
        spec = {"name": body.name, **{k: v for k, v in spec.items() if k != "name"}}
        return {"yaml": yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110)}

    @app.post("/api/model/parse")
    def model_parse(body: TextRequest) -> dict:
        from ..models import resolve_spec
        from ..models.layers import normalise_entry
        from ..yamlio import parse_yaml
        located = parse_yaml(body.text, "uploaded model")
        _no_code(located.data)
        spec = resolve_spec(located, (3, 32, 32), 10).data
        if "layers" not in spec or not isinstance(spec["layers"], list):
            raise UserError("uploaded model: the builder edits layer lists; a {module: ...} model cannot be edited")
        spec_located = resolve_spec(located, (3, 32, 32), 10)
        for i, entry in enumerate(spec["layers"]):  # each layer against the schema, naming its line
            normalise_entry(entry, f"{spec_located.where(('layers', i))}: layer {i + 1}")
        return {"name": spec.get("name", "model"), "layers": spec["layers"]}

    @app.get("/api/augment-strip", responses={200: {"content": {"image/png": {}}}})
    def augment_strip(data: str = "cifar10", config: str = "{}") -> Response:
        import torch
        from .. import config as config_mod
        from ..data import load_dataset
        from ..train.augment import Augmenter
        from ..viz.grid import image_grid
        try:
            augment = json.loads(config)
        except json.JSONDecodeError:
            raise HTTPException(400, "config: not JSON") from None
        cfg, _ = config_mod.resolve({"augment": augment if augment else "auto", "data": {"name": data}})
        ds = load_dataset(data, data_dir)
        settings = config_mod.augment_settings(cfg, data if data in config_mod.AUGMENT_DEFAULTS else "imagefolder")
        gen = torch.Generator().manual_seed(0)
        images = ds.train_x[torch.randperm(len(ds.train_x), generator=gen)[:8]].repeat_interleave(2, 0)
        aug = Augmenter(settings, [0.0] * ds.input_shape[0], [1.0] * ds.input_shape[0], torch.device("cpu"))
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = image_grid(aug.augment(images, gen), [""] * len(images), Path(tmp) / "strip.png", columns=16)
            return Response(path.read_bytes(), media_type="image/png")

    # ------------------------------------------------------------------ training and runs
    @app.post("/api/runs", status_code=202)
    def start_run(body: RunRequest) -> dict:
        from ..rundir import new_run_dir
        from ..train.session import prepare
        config = dict(body.config)
        _no_code(config.get("model"), "config.model")
        config.setdefault("data", {})
        if isinstance(config["data"], dict) and data_dir and not config["data"].get("dir"):
            config["data"] = {**config["data"], "dir": data_dir}
        cfg, _ = prepare(config)  # the same checks as a config file: a bad value is a 400 naming the key
        if app.state.worker is None:
            raise HTTPException(503, "this server was started without a training worker")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = new_run_dir(cfg.name, None, str(runs_root), False)
        run_dir.rmdir()  # claimed for its name; the job makes it again when it starts
        queued = app.state.worker.submit(run_dir.name, str(run_dir), config)
        return {"id": queued.id, "status": queued.status, "queued_at": stamp}

    @app.get("/api/runs")
    def runs() -> list[dict]:
        rows = [{k: v for k, v in r.items() if k not in ("config", "result")} for r in store().runs()]
        known = {r["id"] for r in rows}
        worker = app.state.worker
        for q in (worker.queued() if worker else []):
            if q.id not in known:
                rows.append({"id": q.id, "name": q.config.get("name"), "status": q.status, "tags": []})
            else:
                next(r for r in rows if r["id"] == q.id)["status"] = q.status
        return rows

    @app.get("/api/runs/{run_id}")
    def run_detail(run_id: str) -> dict:
        run = run_for(run_id)
        result = run.result
        verdict = _verdict(run)
        return {"id": run_id, "config": run.config, "metrics": run.metrics, "result": result,
                "data": _safe(lambda: run.data_info), "verdict": verdict}

    @app.post("/api/runs/{run_id}/stop")
    def stop(run_id: str) -> dict:
        worker = app.state.worker
        queued = worker.runs.get(run_id) if worker else None
        if queued is not None and queued.status == "queued":
            raise HTTPException(409, f"{run_id} has not started yet; it will run when the one before it ends")
        request_stop(run_for(run_id).dir)
        return {"id": run_id, "stopping": True}

    @app.post("/api/runs/{run_id}/tags")
    def tags(run_id: str, body: TagRequest) -> dict:
        run_for(run_id)
        clean = sorted({t.strip()[:40] for t in body.tags if t.strip()})
        store().set_tags(run_id, clean)
        return {"id": run_id, "tags": clean}

    @app.get("/api/runs/{run_id}/report", response_class=HTMLResponse)
    def report(run_id: str):
        from ..viz.report import write_report
        run = run_for(run_id)
        if not (run.dir / "model.safetensors").exists():
            raise HTTPException(409, f"{run_id} has no final weights yet (status {run.result.get('status')})")
        return HTMLResponse(write_report(run.dir).read_text())

    @app.post("/api/compare")
    def compare(body: CompareRequest) -> dict:
        from ..track.compare import flatten
        runs_ = [run_for(i) for i in body.ids]
        flat = {r.dir.name: flatten(r.config.model_dump()) for r in runs_}
        keys = sorted({k for f in flat.values() for k in f})
        differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str)
                                          for f in flat.values()}) > 1]
        return {"differ": {k: {i: flat[i].get(k) for i in flat} for k in differ},
                "metrics": {r.dir.name: r.metrics for r in runs_},
                "results": {r.dir.name: r.result for r in runs_}}

    @app.get("/api/runs/{run_id}/events", response_class=StreamingResponse)
    async def events(run_id: str, request: Request):
        """Server-sent events: a run's epochs (from any process, CLI included: read from its directory as they
        land), its batches when this server trains it, the doctor's provisional verdict after each epoch,
        and its end."""
        if not RUN_ID.match(run_id):
            raise HTTPException(404, "no such run")
        worker = app.state.worker
        live, past = worker.subscribe(run_id) if worker else (None, [])
        run_dir = runs_root / run_id

        async def stream():
            sent_epochs, last_ping = 0, time.monotonic()
            try:
                yield _sse("hello", {"id": run_id, "queued": any(e["type"] == "start" for e in past) is False
                                     and worker is not None and run_id in worker.runs})
                while not await request.is_disconnected():
                    ended = None
                    while live is not None:
                        try:
                            event = live.get_nowait()
                        except queue.Empty:
                            break
                        if event["type"] in ("batch", "start", "log", "error"):
                            yield _sse(event["type"], event["data"])
                        if event["type"] == "end":
                            ended = event["data"]
                    rows = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []
                    for row in rows[sent_epochs:]:
                        yield _sse("epoch", {"row": row, "verdict": _provisional(run_dir, rows[:row["epoch"]])})
                    sent_epochs = max(sent_epochs, len(rows))
                    result_path = run_dir / "result.json"
                    if result_path.exists() and (ended or not _running_here(worker, run_id)):
                        result = json.loads(result_path.read_text())
                        yield _sse("result", result)
                        verdict = _verdict(Run(run_dir)) if rows else None
                        if verdict:
                            yield _sse("diagnosis", verdict)
                        yield _sse("end", {"status": result.get("status")})
                        return
                    if ended and not result_path.exists():
                        yield _sse("end", ended)
                        return
                    if time.monotonic() - last_ping > 15:
                        last_ping = time.monotonic()
                        yield ": ping\n\n"
                    await asyncio.sleep(0.25)
            finally:
                if live is not None:
                    worker.unsubscribe(run_id, live)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ what the network sees
    @app.post("/api/runs/{run_id}/see")
    def see_image(run_id: str, body: SeeRequest) -> dict:
        import torch
        from ..viz.activations import see
        run = run_for(run_id)
        weights = run.dir / "model.safetensors"
        if not weights.exists():
            raise HTTPException(409, f"{run_id} has no final weights (model.safetensors) yet")
        if run_id not in seen_runs or seen_runs[run_id][0] != weights.stat().st_mtime:
            if len(seen_runs) >= 4:
                seen_runs.pop(next(iter(seen_runs)))
            run.model  # noqa: B018 — load it once
            seen_runs[run_id] = (weights.stat().st_mtime, run)
        run = seen_runs[run_id][1]
        info = run.data_info
        if body.image is not None:
            image = torch.from_numpy(_decode_upload(body.image, info["input_shape"]))
        elif body.test_index is not None:
            from ..train.session import prepare_data
            if run_id not in test_sets:
                test_sets.clear()
                test_sets[run_id] = prepare_data(run.config).test_x
            test_x = test_sets[run_id]
            if body.test_index >= len(test_x):
                raise HTTPException(400, f"test_index: the test set has {len(test_x)} images")
            image = test_x[body.test_index]
        else:
            raise HTTPException(400, "send image (a data: URL) or test_index")
        with see_lock:
            return see(run, image, body.top_k)

    return app


def _no_code(model, where: str = "model") -> None:
    """`{module: package.module:Class}` imports and calls Python code: fine from a local config file, never
    from a request (it would run any callable, os:system included)."""
    if isinstance(model, str) and ("/" in model or "\\" in model or model.endswith((".yaml", ".yml"))):
        raise HTTPException(400, f"{where}: a file path is not read over the network; send the layers, or a "
                                 "registered name")
    if isinstance(model, dict) and "module" in model:
        raise HTTPException(400, f"{where}: a {{module: ...}} model imports Python code and is refused over the "
                                 "network; write it as layers, or train it from the CLI")
    if isinstance(model, dict):
        for value in model.values():
            _no_code(value, where)
    elif isinstance(model, list):
        for value in model:
            _no_code(value, where)


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _safe(get):
    try:
        return get()
    except UserError:
        return None


def _running_here(worker, run_id: str) -> bool:
    return worker is not None and run_id in worker.runs and worker.runs[run_id].status in ("queued", "running")


def _provisional(run_dir: Path, rows: list[dict]) -> dict | None:
    """The doctor's reading of the curve so far (no facts: cheap enough for every epoch)."""
    from ..diagnose.doctor import diagnose
    try:
        classes = len(json.loads((run_dir / "data.json").read_text())["classes"])
        return diagnose(rows, classes, None).as_dict()
    except (OSError, ValueError, KeyError, UserError):
        return None


def _verdict(run: Run) -> dict | None:
    from ..diagnose.doctor import diagnose
    from ..diagnose.facts import facts_for_run
    try:
        rows = run.metrics
        return diagnose(rows, len(run.data_info["classes"]), facts_for_run(run)).as_dict() if rows else None
    except UserError:
        return None


def _present(name: str, data_dir: str | None) -> bool:
    """Whether a built-in set is on this machine already (the page offers what trains without a download)."""
    from ..data import SOURCES
    from ..data.dataset import default_cache_dir, locate
    try:
        return locate(SOURCES[name], data_dir, default_cache_dir(), download=False) is not None
    except UserError:
        return False


def _decode_upload(data_url: str, input_shape):
    """A data: URL image -> uint8 (C, H, W) of the model's input size; bad input is a 400, never a crash."""
    import warnings
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "image: not base64 data") from None
    if len(raw) > MAX_UPLOAD:
        raise HTTPException(413, f"image: {len(raw):,} bytes; at most {MAX_UPLOAD:,}")
    channels, h, w = input_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(io.BytesIO(raw)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise HTTPException(400, f"image: {img.width}x{img.height} is more than {MAX_PIXELS:,} pixels")
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255) if channels == 3 else (0, 0, 0, 255))
                img = Image.alpha_composite(background, img).convert("L" if channels == 1 else "RGB")
                img = img.resize((w, h), Image.BILINEAR)
                array = np.array(img, dtype=np.uint8)  # a copy torch may write to
    except HTTPException:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            SyntaxError, ValueError) as exc:
        raise HTTPException(400, f"image: cannot decode it ({type(exc).__name__}); send a PNG or JPEG") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()
