"""``tailrace ingest``: load the files of a source not loaded before, one at a time, in the
order of their logs; safe to run on a schedule (cron, a Kubernetes CronJob), and several runs
at once share the files. ``tailrace ingest-files``: list and reset the record of files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import click
import orjson
from rich.console import Console

from ..engine.app import App
from ..observability.logs import configure as configure_logs
from ..pipeline.ingest import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_STALE_AFTER_S,
    HEARTBEAT_S,
    MIN_STALE_AFTER_S,
    IngestResult,
    StaleAfterTooShortError,
    check_stale_after,
    ingest_files,
    scope_of,
)
from ..pipeline.ingest_env import apply_aws_region, choose_sink, state_database
from ..pipeline.jobs import ReprocessingConfig, ReprocessingStore
from ..pipeline.jobs.model import IngestStatus, ProcessedFile
from ..pipeline.sinks.url import SinkKind, parse_sink_url
from ..pipeline.worker import ReprocessWorker
from ..settings import current, redact_url
from .context import echo_json
from .reprocess import summary_json

# Exit statuses: 0 every file of the source is loaded; 1 files are left FAILED (by this run
# or an earlier one: `tailrace ingest-files list` names them, `reset` retries them).
FAILED_LEFT = 1


@click.command()
@click.argument("source")
@click.option(
    "--sink",
    help="postgresql://… (or any other sink URL); default: the database DB_HOST, DB_PORT,"
    " DB_USERNAME, DB_PASSWORD and DB_DATABASE name, table log.",
)
@click.option("--table", help="Table for a postgresql:// sink (default: logs).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Claim loops in parallel: this process and workers-1 more, one file each at a time.",
)
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
@click.option(
    "--s3-endpoint-url",
    envvar=["AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
    help="For MinIO, LocalStack and other S3 stores (AWS_ENDPOINT_URL or AWS_ENDPOINT).",
)
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
    sink: str | None,
    table: str | None,
    workers: int,
    max_attempts: int,
    stale_after_s: float,
    s3_endpoint_url: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Load the files at SOURCE that no run has completed yet, in the order of their logs."""
    console = Console(stderr=True)
    try:
        check_stale_after(stale_after_s)
    except StaleAfterTooShortError as exc:
        raise click.BadParameter(str(exc), param_hint="--stale-after") from None
    chosen = choose_sink(sink, os.environ)
    sink_url = chosen.sink
    assert sink_url is not None
    for warning in chosen.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if table:
        if parse_sink_url(sink_url).kind is not SinkKind.POSTGRESQL:
            raise click.BadParameter("--table is for postgresql:// sinks", param_hint="--table")
        sink_url += ("&" if "?" in sink_url else "?") + f"table={table}"
    region_warning = apply_aws_region(os.environ)
    if region_warning:
        console.print(f"[yellow]warning:[/yellow] {region_warning}", highlight=False)
    url, why = state_database(ctx.find_root().obj.get("database_url"), sink_url, os.environ)
    if not as_json:
        console.print(
            f"record of files: {redact_url(url)} ({why})", highlight=False, soft_wrap=True
        )
    config = ReprocessingConfig(
        source=source,
        sink=sink_url,
        max_workers=1,
        s3_endpoint_url=s3_endpoint_url,
        include=include,
        exclude=exclude,
    )
    siblings = _start_siblings(workers - 1, url)
    started = time.monotonic()
    try:
        with App(url) as app, ReprocessingStore(url) as store:

            def run_files(job_id: str) -> None:
                ReprocessWorker(url, job_id, 0).run()
                configure_logs("WARNING")  # the worker's logs went to stderr: quiet again

            def on_file(file: ProcessedFile, status: IngestStatus) -> None:
                if not as_json:
                    colour = "green" if status is IngestStatus.COMPLETED else "red"
                    where = f"s3://{file.bucket}/{file.key}" if file.bucket else file.key
                    console.print(f"[{colour}]{status}[/{colour}] {where}", highlight=False)

            configure_logs("WARNING")
            result = ingest_files(
                app,
                store,
                config,
                run_files,
                max_attempts=max_attempts,
                stale_after_s=stale_after_s,
                on_file=on_file,
            )
            left = result.failed_in_source(store, source)
            report = _report(store, result, left, time.monotonic() - started)
    finally:
        sibling_reports = _wait_siblings(siblings)
    report = _merge([report, *sibling_reports])
    if left or report["status"] != "nothing to do":
        report["failed_files"] = [f.as_dict() for f in left]
    _print(console, report, left, as_json)
    sys.exit(FAILED_LEFT if left or report["status"] == "failed" else 0)


def _report(
    store: ReprocessingStore, result: IngestResult, left: list[ProcessedFile], elapsed: float
) -> dict[str, Any]:
    if result.job is None:
        return {"status": "nothing to do", "files": {"total": 0}}
    data = summary_json(result.job, elapsed, store.files(result.job.id))
    data["jobs"] = [result.job.id]
    return data


_SUMMED = ("lines", "sent", "filtered", "skipped", "deadlettered", "processed_bytes", "bytes")


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary for the run's claim loops (itself and its siblings)."""
    done = [r for r in reports if r.get("status") != "nothing to do"]
    if not done:
        return {"status": "nothing to do", "files": {"total": 0}}
    if len(done) == 1:
        return done[0]
    merged: dict[str, Any] = {"status": "completed", "files": {}, "jobs": []}
    for report in done:
        if report.get("status") != "completed":
            merged["status"] = "failed"
        for name, count in report["files"].items():
            merged["files"][name] = merged["files"].get(name, 0) + count
        for name in _SUMMED:
            merged[name] = merged.get(name, 0) + int(report.get(name) or 0)
        merged["jobs"] += report.get("jobs", [])
    merged["balanced"] = all(r.get("balanced") for r in done)
    return merged


def _start_siblings(count: int, database_url: str) -> list[subprocess.Popen[bytes]]:
    """`count` more claim loops: this command again, one loop each."""
    if count <= 0:
        return []
    # The arguments as given (a sink reference like @ingest stays one: no password in the
    # process list); the database this run resolved goes by the environment.
    args = _without_options(sys.argv[1:], ("--workers", "--database-url"))
    env = {**os.environ, "TAILRACE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "tailrace", *args, "--workers", "1"]
    if "--json" not in command:
        command.append("--json")
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if any(arg.startswith(name + "=") for name in names):
            continue
        kept.append(arg)
    return kept


def _wait_siblings(siblings: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    reports = []
    for sibling in siblings:
        out, _ = sibling.communicate()
        try:
            reports.append(orjson.loads(out))
        except orjson.JSONDecodeError:
            reports.append({"status": "failed", "files": {}, "error": "a claim loop crashed"})
    return reports


def _print(
    console: Console, report: dict[str, Any], left: list[ProcessedFile], as_json: bool
) -> None:
    if as_json:
        echo_json(report)
        return
    if report["status"] == "nothing to do":
        console.print("nothing new to ingest")
    else:
        files = ", ".join(f"{n} {s}" for s, n in sorted(report["files"].items()) if s != "total")
        console.print(
            f"{files}; {report.get('lines', 0):,} lines, {report.get('sent', 0):,} stored,"
            f" {report.get('skipped', 0):,} skipped, {report.get('deadlettered', 0):,}"
            " dead-lettered"
        )
    if left:
        console.print(f"[red]{len(left)} files are FAILED[/red]:")
        for f in left:
            where = f"s3://{f.bucket}/{f.key}" if f.bucket else f.key
            console.print(
                f"  {where} ({f.attempts} attempts): {f.error}", highlight=False, soft_wrap=True
            )
        console.print("retry them with: [cyan]tailrace ingest-files reset SOURCE[/cyan]")


# -- the record of files ----------------------------------------------------------------------


@click.group("ingest-files")
def ingest_files_group() -> None:
    """The record of files `tailrace ingest` keeps: list them, reset FAILED ones."""


def _record_store(ctx: click.Context, sink: str | None) -> ReprocessingStore:
    chosen = choose_sink(sink, os.environ) if sink or current().ingest_db_host else None
    sink_url = chosen.sink if chosen is not None and chosen.sink else "null://"
    url, _ = state_database(ctx.find_root().obj.get("database_url"), sink_url, os.environ)
    return ReprocessingStore(url)


@ingest_files_group.command("list")
@click.argument("source", required=False)
@click.option(
    "--status",
    type=click.Choice([s.value for s in IngestStatus], case_sensitive=False),
    default="FAILED",
    show_default=True,
)
@click.option("--sink", help="The ingest's sink, when its database holds the record.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_files(
    ctx: click.Context, source: str | None, status: str, sink: str | None, as_json: bool
) -> None:
    """Files of SOURCE (default: every source) in a status, in the order of their logs."""
    with _record_store(ctx, sink) as store:
        scope = scope_of(source) if source else None
        files = store.processed_by_status(IngestStatus(status.upper()), scope)
    if as_json:
        echo_json({"files": [f.as_dict() for f in files], "total": len(files)})
        return
    for f in files:
        where = f"s3://{f.bucket}/{f.key}" if f.bucket else f.key
        click.echo(f"{f.status}\t{f.attempts}\t{where}\t{f.error or ''}")
    if not files:  # on stderr: the listing itself stays empty for scripts that read it
        wanted = status.upper()
        other = "--status completed lists the loaded ones" if wanted == "FAILED" else ""
        click.echo(
            f"no {wanted} files"
            + (f" under {source}" if source else "")
            + (f" ({other})" if other else ""),
            err=True,
        )


@ingest_files_group.command("reset")
@click.argument("source", required=False)
@click.option("--all", "every", is_flag=True, help="Reset the FAILED files of every source.")
@click.option("--sink", help="The ingest's sink, when its database holds the record.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reset_files(
    ctx: click.Context, source: str | None, every: bool, sink: str | None, as_json: bool
) -> None:
    """Make the FAILED files under SOURCE (a prefix, or one file) PENDING again, their
    attempts at zero: the next `tailrace ingest` takes them."""
    if not source and not every:
        raise click.UsageError("name a SOURCE (a prefix or one file), or pass --all")
    with _record_store(ctx, sink) as store:
        files = store.processed_reset(scope_of(source) if source else None)
    if as_json:
        echo_json({"reset": [f.as_dict() for f in files], "total": len(files)})
        return
    click.echo(f"{len(files)} files reset to PENDING")
