"""The web UI: a login form that opens a session, and the pages (static files that call
the API with the session cookie). No page takes a token in its URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import fastapi_offline
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from ...errors import JobNotFoundError
from ...pipeline.jobs.store import ReprocessingJobNotFoundError
from ..auth import CSRF_COOKIE, SESSION_COOKIE
from ..errors import not_found_page
from ..services import Services, Svc

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
# Swagger UI's script and style, as the fastapi-offline package ships them: /docs works
# without reaching a CDN (the service may run where nothing outside answers).
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


def _page(
    name: str, request: Request, svc: Services, exists: Callable[[], bool] | None = None
) -> Response:
    """The page, to a browser with a session (others go to the login form first); the
    not-found page, with its status, when `exists` says the page's subject does not."""
    session = request.cookies.get(SESSION_COOKIE)
    if session is None or not svc.auth.session_valid(session):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if exists is not None and not exists():
        return not_found_page()
    return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})


def _reprocessing_job_exists(svc: Services, job_id: str) -> Callable[[], bool]:
    def exists() -> bool:
        with svc.db() as handle:
            try:
                handle.store.job_status(job_id)
            except ReprocessingJobNotFoundError:
                return False
        return True

    return exists


def _engine_job_exists(svc: Services, job_id: str) -> Callable[[], bool]:
    def exists() -> bool:
        if not job_id.isdigit() or len(job_id) > 18:  # ids are bigints
            return False
        with svc.db() as handle:
            try:
                handle.app.job(int(job_id))
            except JobNotFoundError:
                return False
        return True

    return exists


@router.get("/login")
def login_page() -> Response:
    return FileResponse(STATIC_DIR / "login.html", headers={"Cache-Control": "no-store"})


@router.post("/login")
def login(
    svc: Svc,
    request: Request,
    token: str = Form(""),
    next_path: str = Form("/", alias="next"),
) -> Response:
    index = svc.auth.token_index(token.strip())
    target = next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
    if index is None:
        return RedirectResponse(f"/login?error=1&next={quote(target)}", status_code=303)
    return _with_session(RedirectResponse(target, status_code=303), index, request, svc)


def _with_session(
    response: Response,
    index: int,
    request: Request,
    svc: Services,
    samesite: Literal["strict", "lax"] = "strict",
) -> Response:
    """`response` with a new session's cookies, for the token at `index`."""
    session, csrf = svc.auth.open_session(index)
    secure = svc.config.cookie_secure or request.url.scheme == "https"
    ttl = svc.config.session_ttl_s
    response.set_cookie(
        SESSION_COOKIE, session, max_age=ttl, httponly=True, samesite=samesite, secure=secure
    )
    # readable by the page's script, which echoes it in X-CSRF-Token
    response.set_cookie(CSRF_COOKIE, csrf, max_age=ttl, samesite=samesite, secure=secure)
    return response


@router.post("/logout")
def logout(request: Request, svc: Svc) -> Response:
    svc.auth.end_session(request.cookies.get(SESSION_COOKIE))  # refused from now on
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/")
def jobs_page(request: Request, svc: Svc) -> Response:
    return _page("index.html", request, svc)


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
def ui_root() -> Response:
    """The address an operator types: the jobs page (it answered 401 or 404)."""
    return RedirectResponse("/", status_code=307)


@router.get("/ui/jobs/{job_id}")
def job_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("job.html", request, svc, _reprocessing_job_exists(svc, job_id))


@router.get("/ui/jobs/{job_id}/logs")
def logs_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("logs.html", request, svc, _reprocessing_job_exists(svc, job_id))


@router.get("/ui/queues")
def queues_page(request: Request, svc: Svc) -> Response:
    return _page("queues.html", request, svc)


@router.get("/ui/engine")
def engine_jobs_page(request: Request, svc: Svc) -> Response:
    return _page("engine.html", request, svc)


@router.get("/ui/engine/jobs/{job_id}")
def engine_job_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("engine_job.html", request, svc, _engine_job_exists(svc, job_id))


@router.get("/ui/workers")
def workers_page(request: Request, svc: Svc) -> Response:
    return _page("workers.html", request, svc)


@router.get("/docs")
def api_docs_page(request: Request, svc: Svc) -> Response:
    """The OpenAPI description rendered by Swagger UI, whose files come with the
    ``fastapi-offline`` package (see `DOCS_ASSETS`)."""
    return _page("docs.html", request, svc)


@router.get("/ui/streams")
def streams_page(request: Request, svc: Svc) -> Response:
    return _page("streams.html", request, svc)


@router.get("/api/admin/reprocessing/jobs/{job_id}/logs/view")
def legacy_log_viewer(job_id: str, request: Request, svc: Svc, token: str = "") -> Response:
    """Reference 000's viewer address, ``?token=`` and all: a valid token is exchanged,
    once, for a session cookie, and the answer redirects to the viewer at an address
    without it (the token stays out of the page's history and of what the page loads; the
    access log redacts it). Without a valid token the viewer asks for a login."""
    target = f"/ui/jobs/{quote(job_id)}/logs"
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    index = svc.auth.token_index(token.strip()) if token else None
    if index is None:
        return response
    # Lax: the link opens from another site (Jitsu's console, a chat), and a Strict cookie
    # set in that navigation would not come back with its redirect. POSTs still need CSRF.
    return _with_session(response, index, request, svc, "lax")
