"""``tailrace config``: the effective settings."""

from __future__ import annotations

import os

import click
import orjson


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting.")
@click.option(
    "--reference", is_flag=True, help="Print the reference page of every setting (Markdown)."
)
@click.pass_context
def config(ctx: click.Context, as_json: bool, reference: bool) -> None:
    """Print the effective settings, where each came from (default, env, toml), secrets
    masked."""
    from ..settings import current, report

    if reference:
        click.echo(report.reference(), nl=False)
        return
    settings = current()
    if as_json:
        for row in report.rows(settings, os.environ):
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(report.table(settings, os.environ), nl=False)
