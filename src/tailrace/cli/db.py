"""``tailrace db``: the schema."""

from __future__ import annotations

import click

from ..db import Database
from ..db import migrate as migrate_lines
from ..settings import database_url, redact_url
from .context import COMMAND


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending migrations (workers also do this when they start)."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    applied = migrate_lines(url, COMMAND)
    target = redact_url(url)
    if applied:
        click.echo(f"applied {', '.join(applied)} to {target}")
    else:
        click.echo(f"{target} is up to date")


@db.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """List the migrations not yet applied, line by line (exit status 1 if any)."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    with Database(url, COMMAND, "migrations") as handle:
        pending = handle.migrations_pending()
    target = redact_url(url)
    if not pending:
        click.echo(f"{target} is up to date")
        return
    click.echo(f"{target} lacks {', '.join(pending)}")
    ctx.exit(1)
