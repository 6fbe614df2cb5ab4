"""``tailrace serve``: the admin service (REST API, web UI, metrics) on uvicorn."""

from __future__ import annotations

import os
from typing import Any

import click

from ..settings import current, database_url, redact_url


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's own logs (startup, access) and tailrace's as JSON lines, each through the
    filter that takes secrets out (a ``?token=`` in an access line, a URL's password)."""
    formatter = {"()": "tailrace.observability.logs.JsonFormatter"}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "stream": "ext://sys.stderr",
        "filters": ["trace", "redact"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "filters": {
            "trace": {"()": "tailrace.observability.tracing.TraceLogFilter"},
            "redact": {"()": "tailrace.api.redaction.RedactSecrets"},
        },
        "handlers": {"default": handler},
        # every server process configures its logging from this (``--processes`` spawns
        # fresh interpreters), tailrace's own loggers included
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "tailrace")
        },
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
    import uvicorn  # here: FastAPI and uvicorn cost every other command 0.25 s to import

    from ..api import admin_env
    from ..api.config import ApiConfig

    admin_env.adopt()  # Jitsu's ADMIN_DATABASE_URL and the rest, before the URL is chosen
    settings = current()
    host = host or settings.host
    port = port or settings.port
    url = database_url(ctx.find_root().obj.get("database_url"))
    # the app factory reads its settings from the environment, in every server process
    os.environ["TAILRACE_DATABASE_URL"] = url
    config = ApiConfig.from_environment(url)
    where = (
        f"log in with the token in {config.token_file}"
        if config.token_file
        else f"{len(config.tokens) + len(config.hashed_tokens)} configured token(s)"
    )
    click.echo(
        f"tailrace admin on http://{host}:{port}/ (database {redact_url(url)}); {where}",
        err=True,
    )
    level = ctx.find_root().params.get("log_level") or "INFO"
    uvicorn.run(
        "tailrace.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=processes if processes > 1 else None,
        log_config=_log_config(level),
        access_log=access_log,
        proxy_headers=False,
    )
