"""Logs: one line per event, as JSON or as text, for tailrace's loggers and the application's.

This module is the one place logging is set up. Every line carries ``timestamp`` (UTC),
``level``, ``service``, ``message`` and ``logger``, then the fields of the event: those passed
with ``extra=``, and ``job_id``, ``message_id``, ``trace_id`` whenever they are known (a job's
attempt, a consumed message, a span: see `tracing.TraceLogFilter`), whether tracing is on or
off. The handler sits on the root logger, so the application's own loggers come out the same.

Format: ``--log-format text|json`` or ``TAILRACE_LOG_FORMAT``; by default text (coloured) when
the stream is a terminal, JSON otherwise (a pod, a file, a pipe). JSON lines never hold
terminal colour codes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import ConfigurationError

FORMATS = ("auto", "text", "json")

# attributes every LogRecord has; anything else was passed through ``extra=`` and is a field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# uvicorn adds a coloured copy of some messages; the plain one says the same
_DROPPED = {"color_message"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_service = "tailrace"


def service_name(command: str | None = None) -> str:
    """``TAILRACE_SERVICE_NAME``, else ``OTEL_SERVICE_NAME``, else ``tailrace-<command>``."""
    return (
        os.environ.get("TAILRACE_SERVICE_NAME")
        or os.environ.get("OTEL_SERVICE_NAME")
        or (f"tailrace-{command}" if command else "tailrace")
    )


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_")
    }


def _exception(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname.lower(),
            "service": _service,
            "message": _ANSI.sub("", record.getMessage()),
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, _ANSI.sub("", value) if isinstance(value, str) else value)
        exc = _exception(record)
        if exc:
            entry["exc"] = exc
        return orjson.dumps(entry, default=str).decode()


_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_DIM, _RESET = "\x1b[2m", "\x1b[0m"


def _text(value: Any) -> str:
    """A field's value in a text line: bare when it is a word, else as JSON."""
    if isinstance(value, str) and value and " " not in value and '"' not in value:
        return value
    return orjson.dumps(value, default=str).decode()


class TextFormatter(logging.Formatter):
    """``timestamp LEVEL logger message key=value …`` for a person at a terminal; coloured
    when ``colour`` is on."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname
        fields = " ".join(f"{key}={_text(value)}" for key, value in _fields(record).items())
        if self.colour:
            level = f"{_COLOURS.get(level, '')}{level:<7}{_RESET}"
            fields = f"{_DIM}{fields}{_RESET}" if fields else ""
        else:
            level = f"{level:<7}"
        line = f"{_timestamp(record)} {level} {record.name}: {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        exc = _exception(record)
        return f"{line}\n{exc}" if exc else line


class AccessLogFields(logging.Filter):
    """uvicorn's access line as fields (``client``, ``method``, ``path``, ``http_version``,
    ``status``) and a short message, instead of one preformatted string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            record.client, record.method, record.path = client, method, path
            record.http_version, record.status = version, status
            record.msg, record.args = f"{method} {path} {status}", None
        return True


def resolve_format(fmt: str | None, stream: Any) -> str:
    """``text`` or ``json`` for ``fmt`` (default ``TAILRACE_LOG_FORMAT``, else auto)."""
    chosen = (fmt or os.environ.get("TAILRACE_LOG_FORMAT") or "auto").strip().lower()
    if chosen not in FORMATS:
        raise ConfigurationError(
            f"log format {chosen!r} (--log-format or TAILRACE_LOG_FORMAT): use text or json"
        )
    if chosen == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return chosen


def formatter(
    fmt: str = "json", colour: bool | None = None, service: str | None = None
) -> logging.Formatter:
    """The formatter for ``fmt``; text is coloured when ``colour`` (default: stderr is a
    terminal). Also the factory `tailrace serve`'s logging configuration names: its server
    processes are fresh interpreters, told the ``service`` this way."""
    global _service
    if service is not None:
        _service = service
    if fmt == "text":
        return TextFormatter(sys.stderr.isatty() if colour is None else colour)
    return JsonFormatter()


_state: dict[str, Any] = {"format": None}


def configure(
    level: str = "INFO",
    stream: Any = None,
    fmt: str | None = None,
    service: str | None = None,
) -> str:
    """Send every logger's records at ``level`` or above to ``stream`` (stderr), one line
    each, in ``fmt`` (see `resolve_format`); a later call without ``fmt`` or ``service``
    keeps the earlier ones. Returns the format in force."""
    from .tracing import TraceLogFilter  # here: tracing imports the engine, which logs

    global _service
    if service is not None:
        _service = service
    out = stream or sys.stderr
    chosen = resolve_format(fmt or _state["format"], out)
    _state["format"] = chosen
    handler = logging.StreamHandler(out)
    isatty = getattr(out, "isatty", None)
    handler.setFormatter(formatter(chosen, bool(isatty and isatty())))
    # each line carries the trace id and the job or message id in force where it was logged
    handler.addFilter(TraceLogFilter())
    handler._tailrace = True  # type: ignore[attr-defined]  # ours to replace, not pytest's
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_tailrace", False)]
    root.addHandler(handler)
    root.setLevel(level.upper())
    ours = logging.getLogger("tailrace")
    ours.handlers[:] = [h for h in ours.handlers if not getattr(h, "_tailrace", False)]
    ours.setLevel(logging.NOTSET)
    ours.propagate = True
    return chosen


def current_format() -> str:
    """The format `configure` chose (json before it ran)."""
    return str(_state["format"] or "json")


def current_service() -> str:
    return _service
