"""Inside a trained network: an image (drawn, uploaded or from the test set) through every layer."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ...app import runs as app_runs, see as app_see
from ..bodies import SeeRequest
from ..state import heavy, state

router = APIRouter(prefix="/api/runs")


@router.post("/{run_id}/see")
async def see_image(run_id: str, body: SeeRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    return await heavy(request, app_see.see, run, body.image, body.test_index, body.top_k, s.see)
