"""``tailrace ingest``: load the files of a source not loaded before; safe to run on a
schedule (cron, a Kubernetes CronJob) even when runs overlap."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console

from ..engine.app import App
from ..pipeline.ingest import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_STALE_AFTER_S,
    HEARTBEAT_S,
    MIN_STALE_AFTER_S,
    StaleAfterTooShortError,
    check_stale_after,
    finish_ingest,
    start_ingest,
)
from ..pipeline.jobs import JobConfig, JobStatus, JobStore
from ..pipeline.sinks.url import SinkKind, parse_sink_url
from ..settings import database_url
from .context import echo_json
from .reprocess import run_job

TOUCH_EVERY_S = HEARTBEAT_S


@click.command()
@click.argument("source")
@click.option("--sink", required=True, help="postgresql://… (or any other sink URL).")
@click.option("--table", help="Table for a postgresql:// sink (default: logs).")
@click.option("--workers", type=int, help="At most this many worker processes.")
@click.option(
    "--max-attempts",
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="Runs that may try a failing file.",
)
@click.option(
    "--stale-after",
    "stale_after_s",
    default=DEFAULT_STALE_AFTER_S,
    show_default=True,
    help="Seconds after which a file left PROCESSING by a dead run is taken again"
    f" (at least {MIN_STALE_AFTER_S:g}: a live run says so every {HEARTBEAT_S:g} s).",
)
@click.option("--s3-endpoint-url", envvar="AWS_ENDPOINT_URL", help="For MinIO and other S3 stores.")
@click.option(
    "--include",
    multiple=True,
    help="Also read files matching this glob (a directory or prefix lists only log files).",
)
@click.option("--exclude", multiple=True, help="Never read files matching this glob.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest(
    ctx: click.Context,
    source: str,
    sink: str,
    table: str | None,
    workers: int | None,
    max_attempts: int,
    stale_after_s: float,
    s3_endpoint_url: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Load the files at SOURCE that no run has completed yet, oldest first."""
    try:
        check_stale_after(stale_after_s)
    except StaleAfterTooShortError as exc:
        raise click.BadParameter(str(exc), param_hint="--stale-after") from None
    if table:
        if parse_sink_url(sink).kind is not SinkKind.POSTGRESQL:
            raise click.BadParameter("--table is for postgresql:// sinks", param_hint="--table")
        sink += ("&" if "?" in sink else "?") + f"table={table}"
    url = database_url(ctx.find_root().obj.get("database_url"))
    config = JobConfig(
        source=source,
        sink=sink,
        max_workers=workers or 50,
        s3_endpoint_url=s3_endpoint_url,
        include=include,
        exclude=exclude,
    )
    with App(url) as app, JobStore(url) as store:
        run = start_ingest(
            app, store, config, max_attempts=max_attempts, stale_after_s=stale_after_s
        )
        if run.job is None:
            if as_json:
                echo_json({"status": "nothing to do", "files": {"total": 0}})
            else:
                Console(stderr=True).print("nothing new to ingest")
            return
        job_id = run.job.id
        next_touch = 0.0

        def alive() -> None:  # keeps this run's files from looking stuck to other runs
            nonlocal next_touch
            if time.monotonic() >= next_touch:
                next_touch = time.monotonic() + TOUCH_EVERY_S
                store.processed_touch(job_id)

        try:
            final = run_job(app, store, run.job, as_json, on_poll=alive)
        finally:
            outcome = finish_ingest(store, run)
        if not as_json:
            Console(stderr=True).print(
                ", ".join(f"{n} {status}" for status, n in sorted(outcome.items()))
            )
    sys.exit(0 if final.status is JobStatus.COMPLETED else 1)
