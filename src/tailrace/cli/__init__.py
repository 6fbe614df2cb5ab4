"""The ``tailrace`` command line."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import TailraceError
from ..observability.logs import configure as configure_logs
from ..observability.tracing import configure_tracing
from . import db, jobs, queues, worker
from .consume import consume
from .demo import demo
from .ingest import ingest, ingest_files_group
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
    "--log-level", default=lambda: os.environ.get("TAILRACE_LOG_LEVEL", "INFO"), show_default="INFO"
)
@click.version_option(package_name="tailrace")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, app_spec: str | None, log_level: str) -> None:
    """tailrace: durable background work for data platforms."""
    configure_logs(log_level)
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
    ingest_files_group,
    serve,
    objects,
    consume,
    outbox,
    spool,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="tailrace")
