"""The ``tailrace`` command line."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import ConfigurationError, TailraceError
from ..observability.logs import configure as configure_logs
from ..observability.tracing import configure_tracing
from ..settings import database_url, redact_url
from . import db, jobs, queues, worker
from .consume import consume
from .demo import demo
from .ingest import ingest
from .objects import objects
from .outbox import outbox
from .reprocess import reprocess, reprocessing
from .samples import sample_logs
from .serve import serve
from .spool import spool


class _Group(click.Group):
    """Turns tailrace's own errors into one clear line and exit status 2, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TailraceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            if not _store_error(exc):
                raise
            url = redact_url(database_url((ctx.obj or {}).get("database_url")))
            text = str(exc).strip()
            problem = text.splitlines()[0].strip() if text else type(exc).__name__
            click.echo(
                f"error: cannot use the database {url}: {problem} (is the server up, and is "
                "--database-url or TAILRACE_DATABASE_URL right?)",
                err=True,
            )
            sys.exit(2)


def _store_error(exc: BaseException) -> bool:
    """Did ``exc`` come from the database driver (by module: importing psycopg here would
    slow every command down)?"""
    return type(exc).__module__.partition(".")[0] in ("psycopg", "sqlite3")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.group(cls=_Group)
@click.option(
    "--database-url",
    envvar="TAILRACE_DATABASE_URL",
    default=None,
    help="postgresql://… or sqlite:///path (default: DATABASE_URL, then "
    "sqlite:///.tailrace/tailrace.db).",
)
@click.option(
    "--app",
    "app_spec",
    envvar="TAILRACE_APP",
    default=None,
    help="module:attribute of your App, which registers the tasks.",
)
@click.option(
    "--log-level",
    default=lambda: os.environ.get("TAILRACE_LOG_LEVEL", "INFO"),
    show_default="INFO",
    help=f"{', '.join(LOG_LEVELS)} (env TAILRACE_LOG_LEVEL).",
)
@click.version_option(package_name="tailrace")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, app_spec: str | None, log_level: str) -> None:
    """tailrace: durable background work for data platforms."""
    if log_level.strip().upper() not in LOG_LEVELS:
        raise ConfigurationError(
            f"--log-level (or TAILRACE_LOG_LEVEL) {log_level!r} is not a log level: "
            f"use one of {', '.join(LOG_LEVELS)}"
        )
    configure_logs(log_level.strip())
    configure_tracing()  # off unless OTEL_TRACES_EXPORTER names an exporter
    ctx.obj = {"database_url": database_url, "app": app_spec}


for command in (
    db.db,
    worker.worker,
    jobs.jobs,
    queues.queues,
    demo,
    sample_logs,
    reprocess,
    reprocessing,
    ingest,
    serve,
    objects,
    consume,
    outbox,
    spool,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="tailrace")
