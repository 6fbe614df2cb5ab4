"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (the database
answers and its schema is current), the same as ``/q/health/live`` and ``/q/health/ready``
(and both as ``/q/health``) in SmallRye's shape, ``/metrics`` (Prometheus; token-protected unless
``TAILRACE_METRICS_PUBLIC`` is set)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...observability.health import Check, CheckFailed, Health
from ..schemas import ErrorBody
from ..schemas import Health as HealthBody
from ..services import Svc

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthBody)
@router.get("/health", response_model=HealthBody, include_in_schema=False)  # Jitsu admin's path
def healthz() -> HealthBody:
    return HealthBody(status="ok")


@router.get("/readyz", response_model=HealthBody, responses={503: {"model": HealthBody}})
def readyz(svc: Svc) -> HealthBody | JSONResponse:
    try:
        with svc.db() as db:
            pending = db.app.store.migrations_pending()
    except Exception as exc:  # any failure to reach the database means not ready
        return _unavailable(f"database unreachable: {type(exc).__name__}")
    if pending:
        return _unavailable(f"migrations pending: {', '.join(pending)}")
    return HealthBody(status="ok")


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        HealthBody(status="unavailable", detail=detail).model_dump(), status_code=503
    )


def _health(svc: Svc) -> Health:
    def database() -> dict[str, Any]:
        with svc.db() as db:
            pending = db.app.store.migrations_pending()
        if pending:
            raise CheckFailed(f"migrations pending: {', '.join(pending)}")
        return {}

    return Health(ready=[Check("database", database, cache_s=0.0)])


# The shape of Quarkus's SmallRye Health, for operators coming from the priority-job
# framework (``curl …/q/health | jq '.checks[]'``).
@router.get("/q/health", include_in_schema=False)
@router.get("/q/health/live", include_in_schema=False)
@router.get("/q/health/ready", include_in_schema=False)
def smallrye_health(request: Request, svc: Svc) -> JSONResponse:
    answer = _health(svc).answer(request.url.path)
    assert answer is not None  # the paths above are probe paths
    code, body = answer
    return JSONResponse(body, status_code=code)


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
