"""The admin service: an ASGI app (FastAPI) that serves the reprocessing and queue
endpoints, the probes and metrics, and the web UI, and runs the local workers of the jobs
it starts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import errors
from .config import ApiConfig
from .metrics import registry
from .routes import engine, health, reprocessing, ui
from .routes.ui import STATIC_DIR
from .services import Services

log = logging.getLogger("tailrace.api")


def create_app(config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig.from_environment()
    svc = Services(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(
        title="tailrace admin",
        version="1",
        description="Reprocessing jobs, queues and metrics of a tailrace installation.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.metrics = registry(svc.db)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(reprocessing.router)
    app.include_router(engine.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
