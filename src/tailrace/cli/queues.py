"""``tailrace queues``: depth by priority and state, pause, resume, capacity."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..engine.states import JobState, Priority
from .context import app_from, echo_json


@click.group()
def queues() -> None:
    """Queue statistics and controls."""


@queues.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Jobs per queue, priority and state."""
    app = app_from(ctx)
    rows = app.stats()
    info = {q.name: q for q in app.queues()}
    if as_json:
        echo_json(
            {
                "queues": [
                    {"name": q.name, "paused": q.paused, "capacity": q.capacity}
                    for q in info.values()
                ],
                "jobs": [
                    {
                        "queue": s.queue,
                        "priority": s.priority.name,
                        "state": s.state.value,
                        "count": s.count,
                    }
                    for s in rows
                ],
            }
        )
        return
    states = list(JobState)
    table = Table("queue", "priority", *[s.value for s in states], "paused")
    keyed: dict[tuple[str, Priority], dict[JobState, int]] = {}
    for s in rows:
        keyed.setdefault((s.queue, s.priority), {})[s.state] = s.count
    for (queue, priority), counts in sorted(keyed.items()):
        paused = "yes" if queue in info and info[queue].paused else ""
        table.add_row(queue, priority.name, *[str(counts.get(s, 0)) for s in states], paused)
    Console().print(table)


@queues.command()
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Stop workers claiming from queue NAME (running jobs finish)."""
    app_from(ctx).queue_pause(name)
    click.echo(f"queue {name!r} paused")


@queues.command()
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Let workers claim from queue NAME again."""
    app_from(ctx).queue_resume(name)
    click.echo(f"queue {name!r} resumed")


@queues.command()
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=1), required=False)
@click.option("--clear", is_flag=True, help="Remove the cap: any number of jobs may wait.")
@click.pass_context
def capacity(ctx: click.Context, name: str, limit: int | None, clear: bool) -> None:
    """Show queue NAME's capacity; with LIMIT, cap it at LIMIT waiting or running jobs;
    with --clear, remove the cap."""
    if clear and limit is not None:
        raise click.UsageError("give a LIMIT or --clear, not both")
    app = app_from(ctx)
    if clear or limit is not None:
        app.queue_capacity(name, limit)
        click.echo(f"queue {name!r} capacity: {limit if limit is not None else 'unlimited'}")
        return
    info = {q.name: q for q in app.queues()}.get(name)
    cap = info.capacity if info is not None else None
    shown = f"{cap} jobs" if cap is not None else "unlimited"
    click.echo(f"queue {name!r} capacity: {shown}")
