"""``tailrace jobs``: enqueue, list, show, cancel, replay, discard, prune."""

from __future__ import annotations

from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from ..engine.jobs import Job, JobFilter
from ..engine.states import JobState, Priority
from ..errors import InvalidArgumentsError
from .context import app_from, echo_json

STATES = click.Choice([s.value for s in JobState])
PRIORITIES = click.Choice([p.name for p in Priority], case_sensitive=False)


@click.group()
def jobs() -> None:
    """Enqueue, inspect and operate on jobs."""


@jobs.command()
@click.argument("task")
@click.option(
    "--args",
    "args_text",
    default="null",
    help="Arguments as JSON (an object gives keyword arguments, an array positional ones).",
)
@click.option("--queue")
@click.option("--priority", type=PRIORITIES)
@click.option("--delay", type=float, help="Seconds from now before it may run.")
@click.option("--max-attempts", type=int)
@click.option("--timeout", type=float, help="Seconds an attempt may run.")
@click.option("--dedup-key", help="Return the existing job if one with this key is live.")
@click.option("--dedup-window", type=float, help="…or was created within these seconds.")
@click.pass_context
def enqueue(
    ctx: click.Context,
    task: str,
    args_text: str,
    queue: str | None,
    priority: str | None,
    delay: float | None,
    max_attempts: int | None,
    timeout: float | None,
    dedup_key: str | None,
    dedup_window: float | None,
) -> None:
    """Enqueue a job of TASK; prints its id."""
    try:
        args = orjson.loads(args_text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentsError(f"--args is not valid JSON: {exc}") from None
    job_id = app_from(ctx).enqueue(
        task,
        args,
        queue=queue,
        priority=priority,
        delay=delay,
        max_attempts=max_attempts,
        timeout=timeout,
        dedup_key=dedup_key,
        dedup_window=dedup_window,
    )
    click.echo(job_id)


def _filter_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--state", type=STATES),
            click.option("--queue"),
            click.option("--task"),
            click.option("--priority", type=PRIORITIES),
        ]
    ):
        fn = option(fn)
    return fn


def _where(
    state: str | None,
    queue: str | None,
    task: str | None,
    priority: str | None,
    ids: tuple[int, ...] = (),
) -> JobFilter:
    return JobFilter(
        state=JobState(state) if state else None,
        queue=queue,
        task=task,
        priority=Priority.parse(priority) if priority else None,
        ids=ids or None,
    )


@jobs.command("list")
@_filter_options
@click.option("--limit", default=50, show_default=True)
@click.option("--offset", default=0)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_jobs(
    ctx: click.Context,
    state: str | None,
    queue: str | None,
    task: str | None,
    priority: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    found = app_from(ctx).jobs(_where(state, queue, task, priority), limit, offset)
    if as_json:
        echo_json([j.to_dict() for j in found])
        return
    table = Table("id", "task", "queue", "priority", "state", "attempts", "created", "last error")
    for j in found:
        last = j.errors[-1]["error"] if j.errors else ""
        table.add_row(
            str(j.id),
            j.task,
            j.queue,
            j.priority.name,
            j.state.value,
            f"{j.attempts}/{j.max_attempts}",
            j.created_at.strftime("%F %T"),
            last[:60],
        )
    Console().print(table)


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, job_id: int, as_json: bool) -> None:
    """Show one job with every attempt's error."""
    job = app_from(ctx).job(job_id)
    if as_json:
        echo_json(job.to_dict())
        return
    _print_job(job)


def _print_job(job: Job) -> None:
    console = Console()
    for key, value in job.to_dict().items():
        if key != "errors":
            console.print(f"[bold]{key}[/bold]: {value}")
    for e in job.errors:
        console.print(f"[red]attempt {e.get('attempt')} at {e.get('at')}[/red]: {e.get('error')}")
        if e.get("traceback"):
            console.print(e["traceback"], markup=False, highlight=False)


@jobs.command()
@click.argument("job_id", type=int)
@click.pass_context
def cancel(ctx: click.Context, job_id: int) -> None:
    """Cancel a job (a running one stops at its worker's next heartbeat)."""
    job = app_from(ctx).cancel(job_id)
    if job.state is JobState.CANCELLED:
        click.echo(f"job {job_id} cancelled")
    elif job.cancel_requested:
        click.echo(f"job {job_id} is running; cancel requested")
    else:
        click.echo(f"job {job_id} is {job.state.value}; nothing to cancel")


def _bulk(action: str) -> Any:
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--all", "everything", is_flag=True, help=f"{action.title()} every match.")
    @click.option("--queue")
    @click.option("--task")
    @click.option("--priority", type=PRIORITIES)
    @click.pass_context
    def command(
        ctx: click.Context,
        ids: tuple[int, ...],
        everything: bool,
        queue: str | None,
        task: str | None,
        priority: str | None,
    ) -> None:
        if not (ids or everything or queue or task or priority):
            raise click.UsageError(f"say which dead jobs to {action}: ids, a filter or --all")
        where = _where(JobState.DEAD.value, queue, task, priority, ids)
        app = app_from(ctx)
        n = app.replay(where) if action == "replay" else app.discard(where)
        click.echo(f"{n} dead job{'s' if n != 1 else ''} {action}ed")

    return command


jobs.command("replay", help="Put dead jobs back in their queue (ids, a filter or --all).")(
    _bulk("replay")
)
jobs.command("discard", help="Delete dead jobs (ids, a filter or --all).")(_bulk("discard"))


@jobs.command()
@click.option(
    "--older-than",
    "older_than",
    type=float,
    default=86400.0,
    show_default=True,
    help="Seconds since the job finished.",
)
@click.option("--include-dead", is_flag=True, help="Prune dead jobs too.")
@click.pass_context
def prune(ctx: click.Context, older_than: float, include_dead: bool) -> None:
    """Delete finished jobs older than a retention period."""
    n = app_from(ctx).prune(older_than, include_dead)
    click.echo(f"{n} finished jobs pruned")
