"""Your own photos: a folder on the server's machine, or a zip the page uploads, and what reading it found (the
ingestion report and the data doctor) before a first run."""
from __future__ import annotations

import io
from fastapi import APIRouter, Request

from ...app import datasets
from ..state import heavy, state

router = APIRouter(prefix="/api/data")
ZIP_PATH = "/api/data/zip"  # the one route that takes a body other than JSON (guard.py): application/zip


@router.get("/report")
async def report(path: str, request: Request, skip_empty: bool = False) -> dict:
    """A folder on the server's machine, by its absolute path."""
    return await heavy(request, datasets.own_photos, path, skip_empty)


@router.post(ZIP_PATH.removeprefix("/api/data"),
             openapi_extra={"requestBody": {"content": {"application/zip": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}})
async def upload_zip(request: Request, name: str = "photos", skip_empty: bool = False) -> dict:
    """A zip of class folders, as the body (Content-Type: application/zip); unpacked under RUNS/uploads/."""
    body = await request.body()
    uploads = state(request).runs_root / "uploads"
    return await heavy(request, datasets.receive_zip, io.BytesIO(body), uploads, name, skip_empty)
