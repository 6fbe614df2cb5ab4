"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}`` with a 4xx status for
anything the request got wrong; a 500 only for our own bugs, still as JSON."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from ..errors import (
    ConfigurationError,
    ConflictError,
    InvalidArgumentsError,
    JobNotFoundError,
    QueueFullError,
    TailraceError,
)
from ..pipeline.jobs.store import ReprocessingJobNotFoundError

log = logging.getLogger("tailrace.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def error_body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **detail}}


def _response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **detail: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **detail), status_code=status, headers=headers)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the documented routes accept at `path`; a literal path (``/jobs/replay``)
    wins over a template that also matches it (``/jobs/{job_id}``), as in routing."""
    table: list[tuple[re.Pattern[str], bool, set[str]]] | None = getattr(
        app.state, "allow_table", None
    )
    if table is None:
        table = []
        for template, operations in app.openapi()["paths"].items():
            pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", template))
            table.append(
                (re.compile(pattern), "{" not in template, {m.upper() for m in operations})
            )
        app.state.allow_table = table
    matches = [(literal, methods) for pattern, literal, methods in table if pattern.fullmatch(path)]
    if any(literal for literal, _ in matches):
        matches = [(literal, methods) for literal, methods in matches if literal]
    found: set[str] = set().union(*(methods for _, methods in matches))
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


NOT_FOUND_PAGE = Path(__file__).resolve().parent / "ui" / "static" / "notfound.html"


def not_found_page() -> Response:
    """The dashboard's page for an address with nothing behind it, with status 404."""
    return FileResponse(NOT_FOUND_PAGE, status_code=404, headers={"Cache-Control": "no-store"})


def _wants_a_page(request: Request) -> bool:
    """A browser's address that has no page gets the not-found page: under /ui, or asked
    for as HTML outside the API. Clients of the API always get JSON."""
    path = request.url.path
    if path == "/ui" or path.startswith("/ui/"):
        return True
    if path.startswith(("/api/", "/static/")) or path in ("/metrics", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc.status, exc.code, exc.message, headers, **exc.detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and _wants_a_page(request):
            return not_found_page()
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # the router names only the methods of the first route whose path matched
            allowed = allowed_methods(app, request.url.path)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
        return _response(exc.status_code, _CODES.get(exc.status_code, "error"), message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "location": ".".join(str(part) for part in e.get("loc", ())),
                "problem": str(e.get("msg", "invalid")),
            }
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"location": "request", "problem": "invalid"}
        return _response(
            422,
            "invalid_request",
            f"{first['location']}: {first['problem']}",
            problems=problems,
        )

    @app.exception_handler(ReprocessingJobNotFoundError)
    @app.exception_handler(JobNotFoundError)
    async def not_found(request: Request, exc: TailraceError) -> JSONResponse:
        return _response(404, "not_found", str(exc))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return _response(409, "conflict", str(exc))

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
        return _response(409, "queue_full", str(exc))

    @app.exception_handler(ConfigurationError)
    @app.exception_handler(InvalidArgumentsError)
    async def bad_config(request: Request, exc: TailraceError) -> JSONResponse:
        return _response(422, "invalid_request", str(exc))

    @app.exception_handler(psycopg.DataError)
    async def refused_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # a value the database cannot store (a NUL inside JSON arguments, say)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _response(422, "invalid_request", f"the database refused a value: {first}")

    @app.exception_handler(psycopg.OperationalError)
    async def unavailable(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        # the database (or a sink's) is unreachable: the next request reconnects
        log.warning("database unavailable", extra={"path": request.url.path, "error": str(exc)})
        return _response(503, "unavailable", "the database is unreachable; retry shortly")

    kubernetes_error_type: type[Exception] | None
    try:
        from kubernetes.client import ApiException

        kubernetes_error_type = ApiException
    except ImportError:  # the executor is optional
        kubernetes_error_type = None
    if kubernetes_error_type is not None:

        @app.exception_handler(kubernetes_error_type)
        async def kubernetes_error(request: Request, exc: Exception) -> JSONResponse:
            status = getattr(exc, "status", None)
            reason = getattr(exc, "reason", None) or type(exc).__name__
            log.warning("kubernetes call failed", extra={"status": status, "reason": reason})
            message = f"the Kubernetes API answered {status} {reason}"
            return _response(502, "kubernetes_error", message)

    @app.exception_handler(TailraceError)
    async def tailrace_error(request: Request, exc: TailraceError) -> JSONResponse:
        return _response(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", extra={"path": request.url.path})
        return _response(500, "internal", "internal error; the service log has the details")
