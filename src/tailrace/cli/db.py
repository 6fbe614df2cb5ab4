"""``tailrace db``: the schema."""

from __future__ import annotations

import click

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
