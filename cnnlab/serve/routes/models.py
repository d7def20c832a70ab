"""Building a model: what the server knows, checking a model against a data set, templates, YAML in and out,
and a strip of augmented samples."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...version import __version__
from ...app import datasets, lifecycle, models, weights
from ...app.config import config_defaults, layer_schema
from ...app.limits import MAX_JSON_DEPTH, json_depth
from ...errors import UserError
from ..bodies import CheckRequest, FixRequest, ModelRequest, RunRequest, TextRequest, WeightsRequest
from ..state import heavy, state

router = APIRouter(prefix="/api")


@router.get("/info")
async def info(request: Request) -> dict:
    s = state(request)
    return {"version": __version__, "datasets": datasets.names(), "present": datasets.present(s.data_dir),
            "folders": datasets.folders(s.data_dir), "labels": datasets.LABELS,
            "models": [m["name"] for m in models.models()], "templates": models.templates(),
            "layer_schema": layer_schema(), "config_defaults": config_defaults()}


@router.post("/check")
async def check(body: CheckRequest, request: Request) -> dict:
    models.refuse_code(body.model)
    return await heavy(request, models.check, body.model, body.data, state(request).data_dir)


@router.post("/model/fix")
async def model_fix(body: FixRequest, request: Request) -> dict:
    models.refuse_code(body.model)
    return await heavy(request, models.apply_fix, body.model, body.rule, body.layers, body.data, state(request).data_dir)


@router.post("/weights")
async def weight_sources(body: WeightsRequest, request: Request) -> dict:
    """What may start this model: ImageNet's weights where published, the finished runs that fit."""
    models.refuse_code(body.model)
    s = state(request)
    return await heavy(request, weights.sources, body.model, body.data, s.runs_root, s.data_dir)


@router.get("/templates/{name}")
async def template(name: str, request: Request, data: str = "cifar10") -> dict:
    return await heavy(request, models.template, name, data, state(request).data_dir)


@router.post("/model/yaml")
async def model_yaml(body: ModelRequest, request: Request) -> dict:
    models.refuse_code(body.model)
    return {"yaml": await heavy(request, models.to_yaml, body.model, body.name, body.data, state(request).data_dir)}


@router.post("/model/parse")
async def model_parse(body: TextRequest, request: Request) -> dict:
    return await heavy(request, models.parse_layers, body.text, "uploaded model", body.data, state(request).data_dir)


@router.post("/plan")
async def plan(body: RunRequest, request: Request) -> dict:
    """What this config will train, on what, with what augmentation (and a strip of what the run will see)."""
    data_dir = state(request).data_dir
    cfg = await heavy(request, lifecycle.checked, body.config, data_dir, state(request).runs_root)
    planned = await heavy(request, datasets.plan, cfg, body.config.get("augment", "auto"), data_dir)
    return {**planned, "start": weights.start_line(cfg)}


@router.get("/augment-strip", responses={200: {"content": {"image/png": {}}}})
async def augment_strip(request: Request, data: str = "cifar10", config: str = "{}") -> Response:
    if json_depth(config, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise UserError(f"config: nested more than {MAX_JSON_DEPTH} deep")
    try:
        augment = json.loads(config)
    except json.JSONDecodeError:
        raise UserError("config: not JSON") from None
    if not isinstance(augment, dict):  # a mapping, never a config file's name to read
        raise UserError("config: a mapping of augment keys, e.g. {\"crop\": 4, \"flip\": \"horizontal\"}")

    def strip() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            path = datasets.samples(data, Path(tmp) / "strip.png", augment or "auto", state(request).data_dir,
                                    count=8, repeat=2, columns=16, labelled=False)
            return path.read_bytes()
    return Response(await heavy(request, strip), media_type="image/png")
