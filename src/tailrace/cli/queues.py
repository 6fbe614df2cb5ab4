"""``tailrace queues``: depth by priority and state, pause, resume, capacity; worker pools."""

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
                    {
                        "name": q.name,
                        "paused": q.paused,
                        "capacity": q.capacity,
                        "capacity_by_priority": {p.name: n for p, n in q.capacities.items()},
                    }
                    for q in info.values()
                ],
                "pools": [{"name": p.name, "paused": p.paused} for p in app.pools()],
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
@click.option(
    "--priority",
    type=click.Choice([p.name for p in Priority], case_sensitive=False),
    help="Cap only this priority's jobs (a BULK cap never refuses CRITICAL jobs).",
)
@click.pass_context
def capacity(
    ctx: click.Context, name: str, limit: int | None, clear: bool, priority: str | None
) -> None:
    """Show queue NAME's capacity; with LIMIT, cap it at LIMIT waiting or running jobs;
    with --clear, remove the cap. The queue's own cap counts, for each job, the jobs of its
    priority or a more urgent one: a queue full of BULK jobs still takes CRITICAL ones."""
    if clear and limit is not None:
        raise click.UsageError("give a LIMIT or --clear, not both")
    app = app_from(ctx)
    what = f"queue {name!r} capacity" + (f" for {priority.upper()} jobs" if priority else "")
    if clear or limit is not None:
        app.queue_capacity(name, limit, priority)
        click.echo(f"{what}: {limit if limit is not None else 'unlimited'}")
        return
    info = {q.name: q for q in app.queues()}.get(name)
    if priority:
        prio = Priority.parse(priority)
        cap = info.capacities.get(prio) if info is not None else None
        if cap is None:
            cap = app.queue_capacity_defaults.get(prio)  # JOBS_QUEUE_CAPACITY_<PRIORITY>
    else:
        cap = info.capacity if info is not None else None
    shown = f"{cap} jobs" if cap is not None else "unlimited"
    click.echo(f"{what}: {shown}")
    if not priority:  # the caps per priority refuse enqueues too: never "unlimited" alone
        stored = info.capacities if info is not None else {}
        for prio in Priority:
            if prio in stored:
                click.echo(f"  {prio.name} jobs: {stored[prio]} jobs")
            elif prio in app.queue_capacity_defaults:
                limit_env = app.queue_capacity_defaults[prio]
                click.echo(
                    f"  {prio.name} jobs: {limit_env} jobs (JOBS_QUEUE_CAPACITY_{prio.name})"
                )


@queues.command("pause-pool")
@click.argument("name")
@click.pass_context
def pause_pool(ctx: click.Context, name: str) -> None:
    """Stop the workers started with --pool NAME from claiming jobs and firing schedules,
    without a restart (running jobs finish; missed schedule ticks are not saved up)."""
    app_from(ctx).pool_pause(name)
    click.echo(f"worker pool {name!r} paused")


@queues.command("resume-pool")
@click.argument("name")
@click.pass_context
def resume_pool(ctx: click.Context, name: str) -> None:
    """Let the workers of pool NAME claim jobs again."""
    app_from(ctx).pool_resume(name)
    click.echo(f"worker pool {name!r} resumed")


@queues.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def pools(ctx: click.Context, as_json: bool) -> None:
    """The worker pools (those of workers started with --pool, and those paused or resumed)
    and their state."""
    found = app_from(ctx).pools()
    if as_json:
        echo_json({"pools": [{"name": p.name, "paused": p.paused} for p in found]})
        return
    for p in found:
        click.echo(f"{p.name}\t{'paused' if p.paused else 'running'}")
