"""The door of the service, in front of everything else (plain ASGI): it checks the token
or session from the request's head and answers 401 before a byte of the body is read; it
caps every body (413 when the declared length is over the limit, and when the bytes that
arrive pass it, for a chunked body or one longer than it said); and it adds the security
headers to every answer.

Open without a token: the probes, `/metrics` where configured, the login form and its
static files, and the UI's pages, which redirect to the login form themselves (a browser
should get a page, not a JSON 401). Everything else needs a token, unknown paths too.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import PASSED, SESSION_COOKIE
from .errors import error_body

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("tailrace.api")

_OPEN = frozenset(
    {
        *("/healthz", "/health", "/readyz", "/login", "/logout", "/", "/docs"),
        *("/q/health", "/q/health/live", "/q/health/ready"),  # probes in SmallRye's shape
    }
)
_OPEN_PREFIXES = ("/static/", "/ui/")
_LEGACY_VIEWER = re.compile(r"/api/admin/reprocessing/jobs/[^/]+/logs/view")

# The pages load only their own scripts and styles, and call only this origin.
_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


class Gate:
    def __init__(self, app: ASGIApp, services: Services, max_body_bytes: int) -> None:
        self.app = app
        self.services = services
        self.max_body_bytes = max_body_bytes

    def _open(self, path: str) -> bool:
        if path in _OPEN or path.startswith(_OPEN_PREFIXES):
            return True
        if path == "/metrics":
            return self.services.config.metrics_public
        return _LEGACY_VIEWER.fullmatch(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        headers = Headers(scope=scope)
        auth = self.services.auth
        path = scope["path"]
        gated = not self._open(path)
        cookies: dict[str, str] = {}
        # where a session is checked
        if gated or path in ("/", "/docs") or path.startswith("/ui/"):
            cookies = cookie_parser(headers["cookie"]) if "cookie" in headers else {}
            if SESSION_COOKIE in cookies and auth.revocations.stale():
                try:
                    await run_in_threadpool(auth.revocations.refresh)
                except Exception as exc:  # the ended sessions are out of reach: fail closed
                    log.warning("ended sessions unreadable", extra={"error": type(exc).__name__})
                    await _answer(send, 503, "unavailable", "the database is unreachable; retry")
                    return
        if gated:
            refused = auth.refusal(scope["method"], headers, cookies)
            if refused is not None:
                extra = [(b"www-authenticate", b"Bearer")] if refused.status == 401 else []
                await _answer(send, refused.status, refused.code, refused.message, extra)
                return
            scope[PASSED] = True
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, 413, "too_large", BodyTooLarge(self.max_body_bytes).detail)
            return
        await self.app(scope, _capped(receive, self.max_body_bytes), send)


def _capped(receive: Receive, limit: int) -> Receive:
    """`receive`, raising 413 (FastAPI turns it into the JSON error) once the body's bytes
    pass `limit`: only the bytes up to there are ever held."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            headers.extend(_ALWAYS)
            if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                headers.append((b"content-security-policy", _CSP))
            message = {**message, "headers": headers}
        await send(message)

    return sending


async def _answer(
    send: Send,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(error_body(code, message))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
