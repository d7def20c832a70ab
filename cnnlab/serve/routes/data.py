"""Your own photos: a folder on the server's machine, or a zip the page uploads, and what reading it found (the
ingestion report and the data doctor, as text and as the Data panel's pictures) before a first run."""
from __future__ import annotations

import io
from fastapi import APIRouter, Request, Response

from ...app import datasets, thumbnails
from ..state import heavy, state

router = APIRouter(prefix="/api/data")
ZIP_PATH = "/api/data/zip"  # the one route that takes a body other than JSON (guard.py): application/zip


# the label check trains the quick model 5 times on up to LABEL_CHECK_MAX_IMAGES images: minutes on 2 busy cores
LABEL_CHECK_TIMEOUT_S = 300.0


# skip_empty: the pages have no such switch, so a folder's empty class is left out and its report says so
@router.get("/report")
async def report(path: str, request: Request, skip_empty: bool = True, labels: bool = False) -> dict:
    """A folder on the server's machine, by its absolute path; `labels`: the data doctor's label check too."""
    found = await heavy(request, datasets.own_photos, path, skip_empty, labels,
                        timeout=LABEL_CHECK_TIMEOUT_S if labels else None)
    state(request).read_folders.add(found["root"])
    return found


@router.post(ZIP_PATH.removeprefix("/api/data"),
             openapi_extra={"requestBody": {"content": {"application/zip": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}})
async def upload_zip(request: Request, name: str = "photos", skip_empty: bool = True) -> dict:
    """A zip of class folders, as the body (Content-Type: application/zip); unpacked under RUNS/uploads/."""
    body = await request.body()
    return await heavy(request, datasets.receive_zip, io.BytesIO(body), state(request).uploads, name, skip_empty)


@router.get("/thumb", responses={200: {"content": {"image/png": {}}}})
def thumb(root: str, file: str, request: Request, side: int = thumbnails.THUMB_SIDE) -> Response:
    """A PNG of one image of a folder read on Start (`root`, as the report named it; `file` relative to it):
    the Data panel's pictures. A folder not read here, or a path leaving it, is a 400. Sync: FastAPI runs it in
    its thread pool, so a panel's dozens of small decodes do not queue for the two heavy slots."""
    served = state(request)
    png = thumbnails.thumbnail(root, file, [*served.read_folders, served.uploads], side)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
