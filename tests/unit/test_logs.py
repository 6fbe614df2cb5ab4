"""Log lines: one per event, parsed back here, in JSON and in text, from tailrace's loggers
and the application's, with job, message and trace ids whenever they are known."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from tailrace.api.redaction import RedactSecrets
from tailrace.errors import ConfigurationError
from tailrace.observability import logs, tracing

ANSI = re.compile(r"\x1b\[")
TEXT_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) +(?P<logger>[\w.]+): "
    r"(?P<message>.*?)(?:  (?P<fields>.*))?$"
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def configured() -> Iterator[None]:
    yield
    # back to what a command would leave: our handler gone, pytest's own untouched
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_tailrace", False)]
    logs._state["format"] = None


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fields_from_every_logger(configured: None) -> None:
    out = io.StringIO()
    assert logs.configure("INFO", out, fmt="json", service="orders-worker") == "json"
    logging.getLogger("tailrace.worker").info("worker started", extra={"concurrency": 4})
    logging.getLogger("myapp.billing").warning("invoice %s late", "A-7")  # the application's
    logging.getLogger("myapp.billing").debug("below the level")
    started, late = lines(out)
    for entry in (started, late):
        assert set(entry) >= {"timestamp", "level", "service", "message", "logger"}
        assert str(entry["timestamp"]).endswith("Z") and entry["service"] == "orders-worker"
    assert (started["message"], started["level"], started["concurrency"]) == (
        "worker started",
        "info",
        4,
    )
    assert (late["message"], late["level"], late["logger"]) == (
        "invoice A-7 late",
        "warning",
        "myapp.billing",
    )


def test_job_message_and_trace_ids_are_on_the_line_with_tracing_off_and_on(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tracing off, whatever provider another test of this process installed (set only once)
    monkeypatch.setattr(tracing, "_enabled", lambda: False)
    out = io.StringIO()
    logs.configure("INFO", out, fmt="json")
    log = logging.getLogger("myapp.task")
    with tracing.job_span("t", None, job_id=42) as span:  # no tracer: no span
        assert span is None
        log.info("in a job")
    with tracing.log_fields(message_id="m-1"):
        log.info("on a message")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as current:
        log.info("in a span")
    job, message, traced = lines(out)
    assert job["job_id"] == 42 and "trace_id" not in job
    assert message["message_id"] == "m-1"
    assert traced["trace_id"] == format(current.get_span_context().trace_id, "032x")


def test_json_holds_no_terminal_colours(configured: None) -> None:
    out = Tty()  # even on a terminal, when JSON is asked for
    logs.configure("INFO", out, fmt="json")
    logging.getLogger("uvicorn.error").info(
        "\x1b[32mStarted\x1b[0m server", extra={"color_message": "\x1b[1mStarted\x1b[0m"}
    )
    (entry,) = lines(out)
    assert entry["message"] == "Started server" and "color_message" not in entry
    assert not ANSI.search(out.getvalue())


def test_text_lines_parse_and_are_coloured_only_on_a_terminal(configured: None) -> None:
    plain = io.StringIO()
    assert logs.configure("INFO", plain, fmt="text") == "text"
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tailrace.worker").exception(
            "job failed", extra={"job_id": 7, "error": "ValueError: boom"}
        )
    first, *trace = plain.getvalue().splitlines()
    match = TEXT_LINE.match(first)
    assert match, first
    assert (match["level"], match["logger"], match["message"]) == (
        "ERROR",
        "tailrace.worker",
        "job failed",
    )
    assert match["fields"] == 'job_id=7 error="ValueError: boom"'
    assert trace[0] == "Traceback (most recent call last):" and not ANSI.search(first)

    tty = Tty()
    logs.configure("INFO", tty, fmt="text")
    logging.getLogger("tailrace").warning("careful")
    assert ANSI.search(tty.getvalue())
    assert TEXT_LINE.match(ANSI.sub("", re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue())).strip())


def test_the_format_follows_the_stream_and_the_environment(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAILRACE_LOG_FORMAT", raising=False)
    assert logs.resolve_format(None, io.StringIO()) == "json"  # a pipe, a file, a pod
    assert logs.resolve_format(None, Tty()) == "text"
    monkeypatch.setenv("TAILRACE_LOG_FORMAT", "json")
    assert logs.resolve_format(None, Tty()) == "json"
    monkeypatch.setenv("TAILRACE_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigurationError, match="TAILRACE_LOG_FORMAT"):
        logs.resolve_format(None, Tty())


def test_a_later_call_keeps_the_format_and_service(configured: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", out, fmt="text", service="svc")
    logs.configure("WARNING", out)  # what `reprocess` does to quiet the worker's logs
    logging.getLogger("tailrace").warning("still text")
    assert TEXT_LINE.match(out.getvalue().strip())
    assert logs._service == "svc"


def test_service_name_defaults_to_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TAILRACE_SERVICE_NAME", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert logs.service_name("consume") == "tailrace-consume"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "kafka-worker")
    assert logs.service_name("consume") == "kafka-worker"


def test_uvicorns_access_line_becomes_fields_with_secrets_out() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter("json"))
    for f in (logs.AccessLogFields(), tracing.TraceLogFilter(), RedactSecrets()):
        handler.addFilter(f)
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    access.propagate = False
    level = access.level
    access.setLevel(logging.INFO)
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d', "10.0.0.9:5123", "GET", "/logs/view?token=s3cret", "1.1", 200
        )
    finally:
        access.removeHandler(handler)
        access.propagate = True
        access.setLevel(level)
    (entry,) = lines(out)
    assert entry["method"] == "GET" and entry["status"] == 200
    assert entry["client"] == "10.0.0.9:5123" and entry["http_version"] == "1.1"
    assert entry["path"] == "/logs/view?token=[redacted]"
    assert entry["message"] == "GET /logs/view?token=[redacted] 200"
    assert "s3cret" not in out.getvalue()
