"""Tracing helpers without services: carrying the context, continuing it, logs."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailrace.engine.jobs import ClaimedJob
from tailrace.engine.states import Priority
from tailrace.errors import ConfigurationError
from tailrace.observability import tracing
from tailrace.observability.logs import JsonFormatter


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """Spans of the process's one tracer provider (the global can be set only once)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def producer() -> Any:
    return trace.get_tracer("tests").start_as_current_span("produce")


def one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.name == name]
    return span


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and child.context is not None and parent.context is not None
    return (child.context.trace_id, child.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )


def test_nothing_is_added_without_a_span() -> None:
    args = {"a": 1}
    assert tracing.inject_job_args(args) is args
    assert tracing.inject_headers([("k", "v")]) == [("k", b"v")]


def test_job_args_carry_the_context_and_give_it_back(spans: InMemorySpanExporter) -> None:
    with producer():
        args = tracing.inject_job_args({"a": 1, "_tailrace": {"other": True}})
    assert tracing.inject_job_args([1, 2]) == [1, 2]  # no room for metadata
    rest, fields = tracing.split_job_args(args)
    assert rest == {"a": 1}
    assert fields is not None and fields["traceparent"].startswith("00-")
    assert args["_tailrace"]["other"] is True
    assert tracing.split_job_args({"a": 1}) == ({"a": 1}, None)


def test_headers_replace_a_stale_context(spans: InMemorySpanExporter) -> None:
    stale = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with producer() as span:
        headers = tracing.inject_headers({"traceparent": stale, "message_id": "m1"})
    names = [k for k, _ in headers]
    assert names == ["message_id", "traceparent"]
    context = trace.get_current_span(tracing.extract_headers(headers)).get_span_context()
    assert context.span_id == span.get_span_context().span_id


def job(args: Any) -> ClaimedJob:
    return ClaimedJob(7, "t", args, "q", Priority.DEFAULT, 1, 3, None)


@pytest.mark.parametrize("is_async", [False, True])
def test_job_call_continues_the_trace(spans: InMemorySpanExporter, is_async: bool) -> None:
    seen: list[Any] = []

    def task(x: int) -> int:
        seen.append(trace.get_current_span().get_span_context())
        return x + 1

    async def atask(x: int) -> int:
        return task(x)

    with producer():
        args = tracing.inject_job_args({"x": 1})
    rest, call = tracing.job_call(atask if is_async else task, is_async, job(args))
    result = asyncio.run(call(**rest)) if is_async else call(**rest)
    assert result == 2
    run = one(spans, "job t")
    assert is_child(run, one(spans, "produce"))
    assert run.attributes is not None and run.attributes["tailrace.job.id"] == 7
    assert seen[0].span_id == run.context.span_id


def test_traced_task_takes_the_metadata_and_keeps_other_calls_plain(
    spans: InMemorySpanExporter,
) -> None:
    @tracing.traced_task
    def task(x: int) -> int:
        return x

    with producer():
        args = tracing.inject_job_args({"x": 3})
    assert task(**args) == 3
    assert is_child(one(spans, f"job {__name__}.{task.__qualname__}"), one(spans, "produce"))
    spans.clear()
    assert task(x=4) == 4
    assert spans.get_finished_spans() == ()


def test_log_records_carry_trace_job_and_message_ids(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(tracing.TraceLogFilter())
    log = logging.getLogger("tests.tracing")
    log.addHandler(handler)
    log.propagate = False
    try:
        with tracing.job_span("t", None, job_id=5) as span, tracing.log_fields(message_id="m"):
            log.warning("inside")
        log.warning("outside", extra={"job_id": 9})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    inside, outside = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert span is not None
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert (inside["job_id"], inside["message_id"]) == (5, "m")
    assert outside == {**outside, "job_id": 9} and "trace_id" not in outside


class Message:
    """What a consumer gets from confluent_kafka, reduced to what `message_span` reads."""

    def __init__(self, headers: list[tuple[str, Any]]) -> None:
        self._headers = headers

    def headers(self) -> list[tuple[str, Any]]:
        return self._headers

    def topic(self) -> str:
        return "events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 42


def test_message_span_continues_the_producer(spans: InMemorySpanExporter) -> None:
    with producer():
        headers = tracing.inject_headers([("message_id", b"m-1")])
    with tracing.message_span(Message(headers), group="g"):
        pass
    handled = one(spans, "process events")
    assert is_child(handled, one(spans, "produce"))
    assert handled.attributes is not None
    assert handled.attributes["messaging.message.id"] == "m-1"
    assert handled.attributes["messaging.kafka.offset"] == 42


def test_tracing_is_off_unless_asked() -> None:
    assert tracing.configure_tracing(environ={}) is None
    assert tracing.configure_tracing(environ={"OTEL_TRACES_EXPORTER": "none"}) is None
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert tracing.configure_tracing(environ=disabled) is None
    with pytest.raises(ConfigurationError, match="zipkin"):
        tracing.configure_tracing(environ={"OTEL_TRACES_EXPORTER": "zipkin"})


def test_the_otlp_exporter_comes_from_the_environment() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter = tracing._exporter("otlp", {})
    assert type(exporter).__name__ == "OTLPSpanExporter"
    exporter.shutdown()


def test_a_job_without_parent_or_provider_gets_no_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_enabled", lambda: False)
    with tracing.job_span("t", None, job_id=1) as span:
        assert span is None


def test_without_a_trace_a_jobs_logs_still_carry_its_id() -> None:
    """The path every job takes when tracing is off and the job brought no context."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(tracing.TraceLogFilter())
    logger = logging.getLogger("tests.tracing.plain")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def task(n: int) -> int:
        logger.info("sync", extra={"n": n})
        return n

    async def atask(n: int) -> int:
        logger.info("async")
        return n

    try:
        assert tracing._with_job_id(task, False, 41)(n=1) == 1
        assert asyncio.run(tracing._with_job_id(atask, True, 42)(n=2)) == 2
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("job_id") for line in lines] == [41, 42, None]
