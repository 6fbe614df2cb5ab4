"""The ``tailrace`` command line."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from ..errors import ConfigurationError, TailraceError
from ..settings import database_url, redact_url

# name -> (module in tailrace.cli, attribute, the help line `tailrace --help` shows). A command's
# module is imported only when it runs or shows its own help: `tailrace --help` loads no
# engine, psycopg, boto3 or Kafka client. tests/unit/test_cli_lazy.py checks these lines
# against the commands' own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "config": (
        "config",
        "config",
        "Print the effective settings, where each came from (default, env, toml), secrets masked.",
    ),
    "consume": (
        "consume",
        "consume",
        "Consume TOPIC in a consumer group, calling --handler once per message id.",
    ),
    "db": ("db", "db", "Database schema."),
    "demo": (
        "demo",
        "demo",
        "Enqueue jobs of every priority (some failing, one until dead) and run a worker.",
    ),
    "ingest": (
        "ingest",
        "ingest",
        "Load the files at SOURCE that no run has completed yet, in the order of their logs.",
    ),
    "ingest-files": (
        "ingest",
        "ingest_files_group",
        "The record of files `tailrace ingest` keeps: list them, reset FAILED ones.",
    ),
    "jobs": ("jobs", "jobs", "Enqueue, inspect and operate on jobs."),
    "objects": ("objects", "objects", "Object jobs on the S3 API."),
    "outbox": ("outbox", "outbox", "The transactional outbox: relay pending events to Kafka."),
    "queues": ("queues", "queues", "Queue statistics and controls."),
    "reprocess": (
        "reprocess",
        "reprocess",
        "Replay the event-log files at SOURCE (a file, directory, glob or s3://bucket/prefix) "
        "into a sink, filtered and routed, resumable; exit 0 only if every file completed.",
    ),
    "reprocessing": ("reprocess", "reprocessing", "Inspect and operate on reprocessing jobs."),
    "sample-logs": (
        "samples",
        "sample_logs",
        "Write Jitsu-style failover NDJSON files (plain and gzip) into DIRECTORY.",
    ),
    "serve": (
        "serve",
        "serve",
        "Serve the admin API, the web UI and /metrics (tokens: TAILRACE_API_TOKENS).",
    ),
    "spool": ("spool", "spool", "The producer's fallback spools."),
    "worker": (
        "worker",
        "worker",
        "Run a worker: claim jobs from the queues and run them until SIGTERM.",
    ),
}


class _Group(click.Group):
    """Loads each command on first use (`COMMANDS`), and turns tailrace's own errors into one
    clear line and exit status 2, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"{__name__}.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # our own shortening: click 8.5 deprecates its helper, and the suite turns warnings
        # into errors
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, _shortened(help_line, width))
            for name, (_, _, help_line) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        # `tailrace CMD --help` runs this group's callback too: it then reads no settings
        ctx.meta[_HELP] = any(a in ("--help", "-h") for a in rest[: _end(rest)])
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TailraceError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            if not _store_error(exc):
                raise
            explicit = (ctx.obj or {}).get("database_url")
            url = redact_url(database_url(explicit))
            text = str(exc).strip()
            problem = text.splitlines()[0].strip() if text else type(exc).__name__
            click.echo(
                f"error: cannot use the database {url}: {problem} (is the server up, and is "
                f"{_database_url_origin(explicit)} right?)",
                err=True,
            )
            sys.exit(2)


_HELP = "tailrace.help"


def _database_url_origin(explicit: str | None) -> str:
    """Where the database URL came from, as the user set it: the option, a variable, or the
    settings file (a URL from tailrace.toml is not fixed by looking at the environment)."""
    if explicit:
        return "--database-url"
    from ..settings import current

    origin = current().origin("database_url")  # "env NAME", "toml PATH" or "default"
    if origin.startswith("env "):
        return origin.removeprefix("env ")
    if origin.startswith("toml "):
        return f"database_url in {origin.removeprefix('toml ')}"
    return "--database-url or TAILRACE_DATABASE_URL"


def _end(args: list[str]) -> int:
    return args.index("--") if "--" in args else len(args)


def _store_error(exc: BaseException) -> bool:
    """Did ``exc`` come from the database driver (by module: importing psycopg here would
    slow every command down)?"""
    return type(exc).__module__.partition(".")[0] in ("psycopg", "sqlite3")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.group(cls=_Group)
@click.option(
    "--database-url",
    default=None,
    help="postgresql://… or sqlite:///path (default: TAILRACE_DATABASE_URL or DATABASE_URL, "
    "then sqlite:///.tailrace/tailrace.db).",
)
@click.option(
    "--app",
    "app_spec",
    default=None,
    help="module:attribute of your App, which registers the tasks (env TAILRACE_APP).",
)
@click.option(
    "--log-level",
    default=None,
    show_default="INFO",
    help=f"{', '.join(LOG_LEVELS)} (env TAILRACE_LOG_LEVEL).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    envvar="TAILRACE_LOG_FORMAT",
    default=None,
    help="One line per event as text (coloured) or JSON (env TAILRACE_LOG_FORMAT; default: "
    "text on a terminal, JSON otherwise).",
)
@click.version_option(package_name="tailrace")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    app_spec: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """tailrace: durable background work for data platforms.

    Settings: docs/settings.md, and `tailrace config` for their values here."""
    ctx.obj = {"database_url": database_url, "app": app_spec}
    if ctx.meta.get(_HELP):
        return
    from ..settings import current
    from ..settings.sources import publish

    settings = current()  # a setting that does not fit stops here, in one line
    if ctx.invoked_subcommand != "config":  # which says where each value came from
        publish(settings, os.environ)  # for the libraries, and the workers this starts
    log_level = log_level or settings.log_level
    log_format = log_format or settings.log_format
    if log_format and log_format.strip().lower() not in ("text", "json"):
        raise ConfigurationError(
            f"--log-format (or TAILRACE_LOG_FORMAT) {log_format!r}: use text or json"
        )
    if log_level.strip().upper() not in LOG_LEVELS:
        raise ConfigurationError(
            f"--log-level (or TAILRACE_LOG_LEVEL) {log_level!r} is not a log level: "
            f"use one of {', '.join(LOG_LEVELS)}"
        )
    from ..observability.logs import configure as configure_logs
    from ..observability.logs import service_name
    from ..observability.tracing import configure_tracing

    configure_logs(
        log_level.strip(),
        fmt=log_format.lower() if log_format else None,
        service=settings.service_name or service_name(ctx.invoked_subcommand),
    )
    configure_tracing()  # off unless OTEL_TRACES_EXPORTER names an exporter
    for warning in settings.warnings:
        logging.getLogger("tailrace.settings").warning(warning)


def main() -> None:
    cli(prog_name="tailrace")


def _shortened(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, cut at a word with "..."."""
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)].rsplit(" ", 1)[0].rstrip(" ,;:") + "..."
