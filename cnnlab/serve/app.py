"""`cnnlab serve`: the web app. Its routes (cnnlab/serve/routes/) are a few lines each over the application
layer (cnnlab/app/), the same functions the CLI calls; the request bodies are pydantic models (bodies.py), so
the page's JSON is checked by the same schema as a YAML file, and the OpenAPI document is generated.

Safety (guard.py, errors.py, state.py): binds 127.0.0.1 by default and then answers only requests addressed
to a loopback name; bound elsewhere, every request needs the token `serve` prints. Request bodies are
size- and depth-limited before parsing, state-changing requests take JSON from this server's own pages only,
CPU-heavy work runs off the event loop within a time limit, errors are short and echo nothing. Run ids are
checked against the runs directory; only model.safetensors weights are loaded; a model that is Python code
or a file path is refused.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..version import __version__
from ..app import lifecycle
from . import errors
from .guard import Guard
from .routes import data, models, rescues, runs, see, style
from .state import ServerState
from .worker import TrainingWorker

STATIC = Path(__file__).parent / "static"


def create_app(runs_root: str | Path = "runs", data_dir: str | None = None, token: str | None = None,
               worker_threads: int | None = None, start_worker: bool = True) -> FastAPI:
    runs_root = Path(runs_root).resolve()
    runs_root.mkdir(parents=True, exist_ok=True)
    lifecycle.recover(runs_root, runs_root / "cnnlab.db")  # runs a previous server was training: interrupted

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if app.state.cnnlab.worker is not None:
            app.state.cnnlab.worker.close()

    # /openapi.json documents the API; FastAPI's /docs page would load Swagger UI from a CDN, and this app
    # works offline, so it is off
    app = FastAPI(title="cnnlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Build, train and understand CNN image classifiers: the API under the web page.")
    worker = TrainingWorker(runs_root / "cnnlab.db", worker_threads) if start_worker else None
    app.state.cnnlab = ServerState(runs_root, data_dir, token, worker)
    app.add_middleware(Guard, token=token)
    errors.install(app)
    for router in (models.router, data.router, runs.router, runs.compare_router, rescues.router, see.router,
                   style.router):
        app.include_router(router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(app: FastAPI, host: str, port: int, graceful_s: float = 2.0) -> None:
    """Run `app` with uvicorn until Ctrl-C or SIGTERM. The training worker is told to stop at the signal itself,
    so it winds down while open streams get `graceful_s` to close: server and worker are gone within 5 s."""
    import uvicorn
    worker = app.state.cnnlab.worker

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if worker is not None:
                worker.stop_soon()
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                          timeout_graceful_shutdown=graceful_s)).run()
