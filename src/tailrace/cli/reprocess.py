"""``tailrace reprocess``: replay event-log files into a sink, with live progress.

Also ``tailrace reprocessing``: list, show, cancel and resume jobs.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

import click
import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..engine.app import App
from ..executors.local import LocalExecutor, writes_to_stdout
from ..observability.logs import configure as configure_logs
from ..pipeline.jobs import (
    FileRecord,
    ReprocessingConfig,
    ReprocessingJob,
    ReprocessingStatus,
    ReprocessingStore,
)
from ..pipeline.jobs.model import MAX_WORKERS, live_counters
from ..pipeline.jobs.service import ReprocessingService
from ..pipeline.sources.select import SkippedFiles
from ..settings import current as settings_now
from ..settings import database_url, redact_url
from .context import echo_json

POLL_S = 0.25


class _RateColumn(ProgressColumn):
    """Events read per second, from the job's line counter."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        return Text(f"{rate:,.0f} events/s" if rate else "", style="cyan")


@click.command()
@click.argument("source")
@click.option(
    "--sink", "sink", required=True, help="kafka://, postgresql://, file://, stdout:, null:"
)
@click.option("--stream-id", "stream_ids", multiple=True, help="Keep only these streams.")
@click.option(
    "--connection-id",
    "connection_ids",
    multiple=True,
    help="Send every event to these connections (else: REPOSITORY_URL's destinations).",
)
@click.option("--from", "date_from", help="Keep events at or after this ISO time.")
@click.option("--to", "date_to", help="Keep events at or before this ISO time.")
@click.option("--where", "where", multiple=True, help="Keep events where FIELD=VALUE.")
@click.option("--workers", type=int, help="At most this many worker processes.")
@click.option(
    "--stream-id-field",
    "stream_id_fields",
    multiple=True,
    help="Dotted path of the stream id, tried in order "
    "(default: origin.sourceId, origin.source_id, origin.slug).",
)
@click.option(
    "--time-field",
    "time_fields",
    multiple=True,
    help="Dotted path of the event time (default: messageCreated, timestamp, receivedAt).",
)
@click.option(
    "--message-id-field",
    "message_id_fields",
    multiple=True,
    help="Dotted path of the message id, the Kafka key (default: messageId).",
)
@click.option(
    "--checkpoint-every",
    "checkpoint_s",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between sink flushes and checkpoints: a killed worker resends at most this "
    "much to Kafka or a file (nothing to PostgreSQL).",
)
@click.option("--s3-endpoint-url", envvar="AWS_ENDPOINT_URL", help="For MinIO and other S3 stores.")
@click.option(
    "--include",
    multiple=True,
    help="Also read files matching this glob (a directory or prefix lists only log files: "
    ".ndjson, .jsonl, .json, .log, optionally .gz/.zst).",
)
@click.option("--exclude", multiple=True, help="Never read files matching this glob.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON (on standard error with --sink stdout:).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when the filters (--stream-id, --from/--to, --where) matched no event.",
)
@click.pass_context
def reprocess(
    ctx: click.Context,
    source: str,
    sink: str,
    stream_ids: tuple[str, ...],
    connection_ids: tuple[str, ...],
    date_from: str | None,
    date_to: str | None,
    where: tuple[str, ...],
    workers: int | None,
    stream_id_fields: tuple[str, ...],
    time_fields: tuple[str, ...],
    message_id_fields: tuple[str, ...],
    checkpoint_s: float,
    s3_endpoint_url: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
    strict: bool,
) -> None:
    """Replay the event-log files at SOURCE (a file, directory, glob or s3://bucket/prefix)
    into a sink, filtered and routed, resumable; exit 0 only if every file completed."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    config = ReprocessingConfig(
        source=source,
        sink=sink,
        stream_ids=stream_ids,
        connection_ids=connection_ids,
        date_from=date_from,
        date_to=date_to,
        where=where,
        max_workers=workers or MAX_WORKERS,
        s3_endpoint_url=s3_endpoint_url,
        checkpoint_s=checkpoint_s,
        stream_id_fields=stream_id_fields,
        time_fields=time_fields,
        message_id_fields=message_id_fields,
        include=include,
        exclude=exclude,
    )
    planned: list[str] = []
    with store_errors(url, planned), App(url) as app, ReprocessingStore(url) as store:
        app.store.migrate()
        service, executor = _foreground(app, store)
        job = service.plan(config)
        planned.append(job.id)
        final = run_job(service, executor, job.id, lambda: service.launch(job), as_json)
    code = exit_code(final)
    if strict and code == 0 and filters_matched_nothing(final):
        code = 1
    sys.exit(code)


#: What a store raises when it cannot be read or written: a full disk, a read-only file, a
#: lock held too long, a server that went away.
STORE_ERRORS = (sqlite3.Error, psycopg.Error)


@contextmanager
def store_errors(url: str, job_ids: list[str]) -> Iterator[None]:
    """A store that fails under a command: one line that says what and what to do, exit 1
    (not a traceback). A job it was running is left as it was: `tailrace reprocessing
    resume` continues it once the store works, even if it still shows running."""
    try:
        yield
    except STORE_ERRORS as exc:
        _store_failed(url, job_ids[-1] if job_ids else None, exc)


def _store_failed(url: str, job_id: str | None, exc: Exception) -> NoReturn:
    problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    then = (
        f"job {job_id} could not record its status; once the store works again, continue "
        f"it with: tailrace reprocessing resume {job_id}"
        if job_id
        else "nothing was started"
    )
    click.echo(
        f"error: the job store {redact_url(url)} failed: {problem} (free disk space, check "
        f"write permission or the database server); {then}",
        err=True,
    )
    sys.exit(1)


def _foreground(app: App, store: ReprocessingStore) -> tuple[ReprocessingService, LocalExecutor]:
    """The job operations with an executor whose workers run on this machine, looked after
    by this process (`LocalExecutor.watch`), at this process's own CPU priority."""
    executor = LocalExecutor(
        store.url, poll_s=POLL_S, worker_nice=0, store=store, share_stdout=True
    )
    return ReprocessingService(app, store, executor), executor


def run_job(
    service: ReprocessingService,
    executor: LocalExecutor,
    job_id: str,
    launch: Callable[[], ReprocessingJob],
    as_json: bool,
) -> ReprocessingJob:
    """Start the job's workers here (`launch`), show progress until they are done and the
    job is settled, print the summary; returns the job as it ended. Ctrl-C or SIGTERM
    cancels the job (resumable), a second one kills the workers."""
    store = service.store
    console = Console(stderr=True)
    configure_logs("WARNING")
    interrupted = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: stop now
            executor.kill(job_id)
            return
        interrupted = True
        service.cancel(job_id)

    # SIGTERM (systemd, docker stop, kill, a CI timeout) stops the job as Ctrl-C does: the job
    # cancelled and resumable, the workers checkpointed and gone, none left orphaned
    previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        job = launch()
        _header(console, store, job, as_json)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _RateColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        ) as bar:
            task = bar.add_task("reprocessing", total=job.total_bytes)
            last_lines, last_at = 0, time.monotonic()
            rate = 0.0

            def show() -> None:
                nonlocal last_lines, last_at, rate
                now = time.monotonic()
                done_bytes, lines = _live(store, store.job(job_id))
                if now - last_at >= 1.0:
                    rate = (lines - last_lines) / (now - last_at)
                    last_lines, last_at = lines, now
                bar.update(task, completed=done_bytes, rate=rate)

            executor.watch(job_id, show)
        final = store.job(job_id)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        executor.close()
    elapsed = time.monotonic() - started
    _summary(console, final, store.files(job_id), elapsed, as_json)
    return final


def _header(
    console: Console, store: ReprocessingStore, job: ReprocessingJob, as_json: bool
) -> None:
    if not as_json:
        console.print(
            f"[bold]job {job.id}[/bold]: {job.total_files} files, "
            f"{_size(job.total_bytes)}, {job.total_workers} workers, "
            f"into {job.config.sink} (database {redact_url(store.url)})",
            soft_wrap=True,  # one line in a pipe or a CI log, where rich would cut it at 80
        )
    if (settings_now().executor or "").strip().lower() == "kubernetes":
        # the setting picks the executor of `tailrace serve`; silence here would let a user
        # believe the workers below are pods
        console.print(
            "note: TAILRACE_EXECUTOR=kubernetes applies to jobs started through `tailrace "
            "serve`; this command starts its workers on this machine",
            highlight=False,
            soft_wrap=True,
        )


def _live(store: ReprocessingStore, job: ReprocessingJob) -> tuple[int, int]:
    """Bytes and lines done, as the admin service shows them (`live_counters`)."""
    counters = live_counters(job.counters, [w.counters for w in store.workers(job.id)])
    return counters.processed_bytes, counters.lines


def filters_matched_nothing(job: ReprocessingJob) -> bool:
    """Events were read, the job had filters, and every event was filtered out: most often a
    stream id or a time range that is not in the data."""
    c, config = job.counters, job.config
    has_filters = bool(config.stream_ids or config.date_from or config.date_to or config.where)
    events = c.lines - c.deadlettered
    return has_filters and events > 0 and c.filtered == events


def _filters_text(config: ReprocessingConfig) -> str:
    parts = [f"--stream-id {s}" for s in config.stream_ids]
    if config.date_from:
        parts.append(f"--from {config.date_from}")
    if config.date_to:
        parts.append(f"--to {config.date_to}")
    parts += [f"--where {w}" for w in config.where]
    return " ".join(parts)


def deadletter_location(sink: str) -> str | None:
    """Where a sink's bad lines go, as a user finds them: a file's path, else the topic or
    table as a URL (passwords hidden); None for ``null:``, which keeps none of them."""
    from ..pipeline.sinks.kinds import deadletter_spec
    from ..pipeline.sinks.url import SinkKind, parse_sink_url

    try:
        target = deadletter_spec(parse_sink_url(sink))
    except Exception:  # a sink that no longer parses (a reference gone from the environment)
        return None
    if target.kind is SinkKind.FILE and target.path is not None:
        return str(target.path)
    return None if target.kind is SinkKind.NULL else target.display


def exit_code(job: ReprocessingJob) -> int:
    """0 only for a job that completed: every file read to its end, every line accounted
    for; 1 for anything else (failed, cancelled, or not finished)."""
    return 0 if job.status is ReprocessingStatus.COMPLETED else 1


def failed_files_json(files: list[FileRecord]) -> list[dict[str, Any]]:
    """The files that ended in error, with why and how far they got."""
    return [
        {
            "index": f.index,
            "file": f.url,
            "error": f.error,
            "retryable": not f.unreadable,
            **f.counters.as_dict(),
        }
        for f in files
        if f.status is ReprocessingStatus.FAILED
    ]


def summary_json(
    job: ReprocessingJob, elapsed: float | None = None, files: list[FileRecord] | None = None
) -> dict[str, Any]:
    counters = job.counters
    data: dict[str, Any] = {
        "job_id": job.id,
        "status": str(job.status),
        "source": job.config.source,
        "sink": job.config.sink,
        "files": {"total": job.total_files, **job.files_by_status},
        "workers": job.total_workers,
        "bytes": job.total_bytes,
        **counters.as_dict(),
        "balanced": counters.balanced,
        "skip_reasons": job.skip_reasons,
        "skipped_files": job.config.listing_skipped.get("counts", {}),
        "skipped_file_examples": job.config.listing_skipped.get("examples", {}),
        "error": job.error,
        "failed_files": failed_files_json(files or []),
        "matched": counters.lines - counters.deadlettered - counters.filtered,
        "filters_matched_nothing": filters_matched_nothing(job),
        "deadletter": deadletter_location(job.config.sink) if counters.deadlettered else None,
    }
    if job.started_at and job.completed_at:
        # from the first worker's start to the last file's end: the job's own pace
        work = (job.completed_at - job.started_at).total_seconds()
        data["work_seconds"] = round(work, 3)
        data["work_events_per_second"] = round(counters.lines / work) if work > 0 else None
    if elapsed is not None:
        data["seconds"] = round(elapsed, 3)
        data["events_per_second"] = round(counters.lines / elapsed) if elapsed > 0 else None
    return data


def _summary(
    console: Console, job: ReprocessingJob, files: list[FileRecord], elapsed: float, as_json: bool
) -> None:
    if as_json:
        # with a stdout: sink, standard output carries only the events
        echo_json(summary_json(job, elapsed, files), err=writes_to_stdout(job.config.sink))
        return
    c = job.counters
    colour = {"completed": "green", "cancelled": "yellow"}.get(str(job.status), "red")
    table = Table(title=f"job {job.id}: [{colour}]{job.status}[/{colour}] in {elapsed:.1f} s")
    table.add_column("lines read", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("filtered", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("dead-lettered", justify="right")
    table.add_column("events/s", justify="right")
    table.add_row(
        f"{c.lines:,}",
        f"{c.sent:,}",
        f"{c.filtered:,}",
        f"{c.skipped:,}",
        f"{c.deadlettered:,}",
        f"{c.lines / elapsed:,.0f}" if elapsed > 0 else "-",
    )
    console.print(table)
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(job.files_by_status.items()))
    console.print(f"files: {by_status} of {job.total_files}")
    for reason, count in sorted(job.skip_reasons.items()):
        console.print(f"skipped {count:,}: {reason}")
    if job.config.listing_skipped:
        for line in SkippedFiles(**job.config.listing_skipped).describe():
            console.print(f"files {line}")
    if filters_matched_nothing(job):
        console.print(
            f"[yellow]the filters matched none of the {c.lines - c.deadlettered:,} events "
            f"read[/yellow] ({_filters_text(job.config)}): check the stream ids, the time "
            "range and the field predicates against the data",
            highlight=False,
            soft_wrap=True,
        )
    if c.deadlettered:
        where = deadletter_location(job.config.sink)
        console.print(
            f"[yellow]{c.deadlettered:,} bad lines[/yellow] went to the dead-letter output"
            + (f" {where}" if where else "")
            if where or not job.config.sink.startswith("null:")
            else f"[yellow]{c.deadlettered:,} bad lines[/yellow] were counted and discarded "
            "(the null: sink keeps nothing; give a file: sink to keep them)",
            highlight=False,
            soft_wrap=True,
        )
    failed = [f for f in files if f.status is ReprocessingStatus.FAILED]
    if failed:
        console.print(f"[red]failed files ({len(failed)}):[/red]")
        for f in failed:
            console.print(f"  {f.url}: {f.error or 'failed'}", highlight=False, soft_wrap=True)
    elif job.error:
        console.print(f"[red]error:[/red] {job.error}", highlight=False, soft_wrap=True)
    if job.status in (ReprocessingStatus.CANCELLED, ReprocessingStatus.FAILED):
        if any(not f.unreadable for f in files if f.status is not ReprocessingStatus.COMPLETED):
            console.print(f"resume with: [cyan]tailrace reprocessing resume {job.id}[/cyan]")
        if any(f.unreadable for f in failed):
            console.print(
                "files that cannot be read to their end stay failed on resume: "
                "replace them and reprocess them in a new job"
            )


def _size(n: int) -> str:
    """Bytes in binary units, as the progress bar shows them: ``296.7 MiB``."""
    if n < 1024:
        return f"{n:,} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:,.1f} {unit}"


@click.group()
def reprocessing() -> None:
    """Inspect and operate on reprocessing jobs."""


@reprocessing.command("list")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def list_jobs(ctx: click.Context, limit: int) -> None:
    """The latest jobs."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    with ReprocessingStore(url) as store:
        table = Table("id", "status", "files", "created", "source", "sink", "error")
        for job in store.jobs(limit):
            error = job.error or ""
            if job.status is ReprocessingStatus.RUNNING:
                gone = store.job_abandoned(job.id)
                error = f"{gone}: resume it" if gone else ""
            table.add_row(
                job.id,
                str(job.status),
                str(job.total_files),
                job.created_at.isoformat(timespec="seconds"),
                job.config.source,
                job.config.sink,
                error,
            )
        Console().print(table)


@reprocessing.command("show")
@click.argument("job_id")
@click.pass_context
def show_job(ctx: click.Context, job_id: str) -> None:
    """A job's status and counters, with its failed files and its workers, as JSON; exit 1
    if it ended other than completed (failed, cancelled)."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    with ReprocessingStore(url) as store:
        job = store.job(job_id)
        data = summary_json(job, files=store.files(job_id))
        data["workers_detail"] = [
            {
                "worker_index": w.worker_index,
                "status": str(w.status),
                "current_file": w.current_file,
                "current_line": w.current_line,
                "processed_files": w.processed_files,
                "restarts": w.restarts,
                **w.counters.as_dict(),
            }
            for w in store.workers(job_id)
        ]
        echo_json(data)
    if job.status.finished:
        sys.exit(exit_code(job))


@reprocessing.command("cancel")
@click.argument("job_id")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Stop a job; its workers checkpoint and exit. Counters stay."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    with App(url) as app, ReprocessingStore(url) as store:
        job = ReprocessingService(app, store).cancel(job_id)
        click.echo(f"job {job.id}: {job.status}")


@reprocessing.command("resume")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def resume(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Run a cancelled or failed job again, each file from its checkpoint; also a job left
    running by a process that was killed with its workers (no worker reports, no live
    lease)."""
    url = database_url(ctx.find_root().obj.get("database_url"))
    with store_errors(url, [job_id]), App(url) as app, ReprocessingStore(url) as store:
        service, executor = _foreground(app, store)
        # a job left running by a process that died with its workers is failed, then resumed
        final = run_job(service, executor, job_id, lambda: service.resume(job_id), as_json)
    sys.exit(exit_code(final))
