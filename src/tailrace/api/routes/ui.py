"""The web UI: a login form that opens a session, and the pages (static files that call
the API with the session cookie). No page takes a token in its URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from ..auth import CSRF_COOKIE, SESSION_COOKIE
from ..services import Services, Svc

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"

router = APIRouter(include_in_schema=False)


def _page(name: str, request: Request, svc: Services) -> Response:
    session = request.cookies.get(SESSION_COOKIE)
    if session is None or not svc.auth.session_valid(session):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})


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
    session, csrf = svc.auth.open_session(index)
    response = RedirectResponse(target, status_code=303)
    secure = svc.config.cookie_secure or request.url.scheme == "https"
    ttl = svc.config.session_ttl_s
    response.set_cookie(
        SESSION_COOKIE, session, max_age=ttl, httponly=True, samesite="strict", secure=secure
    )
    # readable by the page's script, which echoes it in X-CSRF-Token
    response.set_cookie(CSRF_COOKIE, csrf, max_age=ttl, samesite="strict", secure=secure)
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


@router.get("/ui/jobs/{job_id}")
def job_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("job.html", request, svc)


@router.get("/ui/jobs/{job_id}/logs")
def logs_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("logs.html", request, svc)


@router.get("/ui/queues")
def queues_page(request: Request, svc: Svc) -> Response:
    return _page("queues.html", request, svc)


@router.get("/ui/engine")
def engine_jobs_page(request: Request, svc: Svc) -> Response:
    return _page("engine.html", request, svc)


@router.get("/ui/engine/jobs/{job_id}")
def engine_job_page(job_id: str, request: Request, svc: Svc) -> Response:
    return _page("engine_job.html", request, svc)


@router.get("/ui/workers")
def workers_page(request: Request, svc: Svc) -> Response:
    return _page("workers.html", request, svc)


@router.get("/ui/streams")
def streams_page(request: Request, svc: Svc) -> Response:
    return _page("streams.html", request, svc)


@router.get("/api/admin/reprocessing/jobs/{job_id}/logs/view")
def legacy_log_viewer(job_id: str) -> Response:
    """Reference 000's viewer address. Its ``?token=`` is ignored on purpose: tokens in
    URLs end up in logs and history. The viewer asks for a login instead."""
    return RedirectResponse(f"/ui/jobs/{quote(job_id)}/logs", status_code=303)
