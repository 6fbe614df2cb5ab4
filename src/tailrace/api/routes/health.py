"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (the database
answers and its schema is current), ``/metrics`` (Prometheus; token-protected unless
``TAILRACE_METRICS_PUBLIC`` is set)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..schemas import ErrorBody, Health
from ..services import Svc

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
@router.get("/health", response_model=Health, include_in_schema=False)  # Jitsu admin's path
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(svc: Svc) -> Any:
    try:
        with svc.db() as db:
            pending = db.app.store.migrations_pending()
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    if pending:
        return JSONResponse(
            {"status": "unavailable", "detail": f"migrations pending: {', '.join(pending)}"},
            status_code=503,
        )
    return {"status": "ok"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: {"model": ErrorBody},
    },
)
def metrics(request: Request, svc: Svc) -> Response:
    if not svc.config.metrics_public:
        svc.auth.check(request)
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
