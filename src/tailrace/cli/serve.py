"""``tailrace serve``: the admin service (REST API, web UI, metrics) on uvicorn."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from ..extras import require
from ..settings import current, database_url, redact_url


def _log_config(level: str, fmt: str, service: str) -> dict[str, Any]:
    """uvicorn's own logs (startup, access) and every other logger's in the format the CLI
    chose (`tailrace.observability.logs`), each through the filter that takes secrets out
    (a ``?token=`` in an access line, a URL's password); access lines as fields."""
    formatter = {"()": "tailrace.observability.logs.formatter", "fmt": fmt, "service": service}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "line",
        "stream": "ext://sys.stderr",
        # the access line's fields first, so that the redaction sees them
        "filters": ["access", "trace", "redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "filters": {
            "access": {"()": "tailrace.observability.logs.AccessLogFields"},
            "trace": {"()": "tailrace.observability.tracing.TraceLogFilter"},
            "redact": {"()": "tailrace.api.redaction.RedactSecrets"},
        },
        "handlers": {"default": handler},
        # every server process configures its logging from this (``--processes`` spawns
        # fresh interpreters): uvicorn's loggers, and the root for tailrace's and the rest
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["default"], "level": level.upper()},
    }


@click.command()
@click.option("--host", default=None, show_default="127.0.0.1", help="Address (env TAILRACE_HOST).")
@click.option(
    "--port",
    default=None,
    show_default="3049",
    type=click.IntRange(1, 65535),
    help="Port (env TAILRACE_PORT, or Jitsu's ADMIN_HTTP_PORT).",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (each supervises the workers of the jobs it starts).",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, processes: int, access_log: bool
) -> None:
    """Serve the admin API, the web UI and /metrics (tokens: TAILRACE_API_TOKENS)."""
    # here: FastAPI and uvicorn cost every other command 0.25 s to import; and they are the
    # server extra, which a worker's installation may lack
    require("server", "fastapi")
    require("server", "python_multipart")  # the login form
    uvicorn: Any = require("server", "uvicorn")

    from ..api import admin_env
    from ..api.config import ApiConfig
    from ..observability.logs import current_format, current_service

    admin_env.adopt()  # Jitsu's ADMIN_DATABASE_URL and the rest, before the URL is chosen
    settings = current()
    host = host or settings.host
    port = port or settings.port
    url = database_url(ctx.find_root().obj.get("database_url"))
    # the app factory reads its settings from the environment, in every server process
    os.environ["TAILRACE_DATABASE_URL"] = url
    config = ApiConfig.from_environment(url)
    if config.executor == "kubernetes":  # say so here, not in a traceback of every server process
        require("kubernetes", "kubernetes.client")
    where = (
        f"log in with the token in {config.token_file}"
        if config.token_file
        else f"{len(config.tokens) + len(config.hashed_tokens)} configured token(s)"
    )
    # a log line like every other (JSON in a pod), not a bare banner
    logging.getLogger("tailrace.serve").info(
        f"tailrace admin on http://{host}:{port}/ (database {redact_url(url)}); {where}"
    )
    level = ctx.find_root().params.get("log_level") or "INFO"
    uvicorn.run(
        "tailrace.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=processes if processes > 1 else None,
        log_config=_log_config(level, current_format(), current_service()),
        access_log=access_log,
        proxy_headers=False,
    )
