"""Inside a trained network: an image (drawn, uploaded or from the test set) through every layer; one unit's
receptive field and what feeds it; a class's saliency and Grad-CAM."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ...app import runs as app_runs, see as app_see
from ..bodies import EvidenceRequest, LayerRequest, SeeRequest, UnitRequest
from ..state import heavy, state

router = APIRouter(prefix="/api/runs")


@router.post("/{run_id}/see")
async def see_image(run_id: str, body: SeeRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    return await heavy(request, app_see.see, run, body.image, body.test_index, body.top_k, s.see)


@router.post("/{run_id}/see/layer")
async def see_layer(run_id: str, body: LayerRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    return await heavy(request, app_see.layer, run, body.layer, body.image, body.test_index, s.see)


@router.post("/{run_id}/see/unit")
async def see_unit(run_id: str, body: UnitRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    return await heavy(request, app_see.unit, run, body.layer, body.channel, body.y, body.x, body.image,
                       body.test_index, s.see)


@router.post("/{run_id}/see/evidence")
async def see_evidence(run_id: str, body: EvidenceRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    return await heavy(request, app_see.evidence, run, body.class_index, body.image, body.test_index, s.see)
