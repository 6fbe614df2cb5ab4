"""Structured JSON logs: one object per line, with a UTC timestamp, level, logger and fields."""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

# attributes every LogRecord has; anything else was passed through ``extra=`` and is a field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Send tailrace's logs to ``stream`` (stderr) as JSON lines."""
    from .tracing import TraceLogFilter  # here: tracing imports the engine, which logs

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    # each line carries the trace id and the job or message id in force where it was logged
    handler.addFilter(TraceLogFilter())
    root = logging.getLogger("tailrace")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
