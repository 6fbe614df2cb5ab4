"""A span started by a producer continues in the job a real engine worker runs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailrace import App, JobContext
from tailrace.engine.states import JobState
from tailrace.engine.worker import Worker, WorkerOptions
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


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """tailrace's JSON log lines, with the trace filter on their handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(tracing.TraceLogFilter())
    logger = logging.getLogger("tests.tracing.tasks")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_a_job_continues_the_producers_trace(
    tmp_path: Path, spans: InMemorySpanExporter, logs: io.StringIO
) -> None:
    seen: dict[str, Any] = {}
    with App(f"sqlite:///{tmp_path}/t.db") as app:

        @app.task(name="sync", pass_context=True)
        @tracing.traced_task
        def sync_task(ctx: JobContext, n: int) -> None:
            seen["sync"] = trace.get_current_span().get_span_context()
            logging.getLogger("tests.tracing.tasks").info("handled", extra={"n": n})

        @app.task(name="async")  # the engine continues the trace: no decorator needed
        async def async_task(n: int) -> None:
            seen["async"] = trace.get_current_span().get_span_context()

        with trace.get_tracer("tests").start_as_current_span("request") as request:
            sync_id = app.enqueue("sync", {"n": 1})  # enqueue puts the context in the job
            async_id = app.enqueue("async", {"n": 2})
        Worker(app, WorkerOptions(burst=True, poll_s=0.05)).run()

        assert {j.state for j in app.jobs()} == {JobState.SUCCEEDED}

    parent = request.get_span_context()
    by_id = {s.context.span_id: s for s in spans.get_finished_spans() if s.context}
    for name in ("sync", "async"):
        run: ReadableSpan = by_id[seen[name].span_id]  # the span current inside the task
        assert run.parent is not None and run.context is not None
        assert (run.context.trace_id, run.parent.span_id) == (parent.trace_id, parent.span_id)
    # one span per job, named after its task (the decorator adds none of its own)
    for name, job_id in (("sync", sync_id), ("async", async_id)):
        run = by_id[seen[name].span_id]
        assert (run.name, run.attributes["tailrace.job.id"]) == (f"job {name}", job_id)  # type: ignore[index]
    assert len([s for s in spans.get_finished_spans() if s.name.startswith("job ")]) == 2
    (line,) = [orjson.loads(x) for x in logs.getvalue().splitlines()]
    assert line["trace_id"] == format(parent.trace_id, "032x")
    assert (line["job_id"], line["n"]) == (sync_id, 1)
