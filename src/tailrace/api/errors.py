"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}`` with a 4xx status for
anything the request got wrong; a 500 only for our own bugs, still as JSON."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    ConfigurationError,
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


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc.status, exc.code, exc.message, headers, **exc.detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _response(
            exc.status_code,
            _CODES.get(exc.status_code, "error"),
            message,
            dict(exc.headers) if exc.headers else None,
        )

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

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
        return _response(409, "queue_full", str(exc))

    @app.exception_handler(ConfigurationError)
    @app.exception_handler(InvalidArgumentsError)
    async def bad_config(request: Request, exc: TailraceError) -> JSONResponse:
        return _response(422, "invalid_request", str(exc))

    @app.exception_handler(TailraceError)
    async def tailrace_error(request: Request, exc: TailraceError) -> JSONResponse:
        return _response(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", extra={"path": request.url.path})
        return _response(500, "internal", "internal error; the service log has the details")
