"""OpenTelemetry tracing: one trace from a producer, through the jobs it enqueues and the Kafka
messages it sends, to the workers and consumers that handle them. Off by default.

The trace context (W3C ``traceparent``/``tracestate``) travels in a job's arguments, under the
reserved key ``_tailrace`` (``{"_tailrace": {"trace": {...}}}``: jobs have no metadata column,
and only object arguments have room for one), and in Kafka message headers. Workers and
consumers extract it and run the handler in a child span. Log records made meanwhile carry
``trace_id``, ``span_id`` and the job or message id (`TraceLogFilter`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind

from ..errors import ConfigurationError
from ..extras import require

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from ..engine.jobs import ClaimedJob

META_KEY = "_tailrace"  # a job's metadata inside its object arguments
MESSAGE_ID_HEADER = "message_id"
TRACER_NAME = "tailrace"
F = TypeVar("F", bound=Callable[..., Any])
HeaderValue = str | bytes | None
Headers = Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None

# (name, value) pairs: a context variable's default must not be mutable
_log_fields: ContextVar[tuple[tuple[str, Any], ...]] = ContextVar("tailrace_log_fields", default=())


# -- setup ---------------------------------------------------------------------------------


def configure_tracing(
    service_name: str | None = None,
    *,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Install a tracer provider exporting in batches, if tracing is on; returns it.

    Off unless ``exporter`` is given or ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console``
    (OpenTelemetry's own default is otlp; tailrace exports nothing unless asked).
    ``OTEL_SDK_DISABLED=true`` turns it off; the OTLP exporter reads its own
    ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, protocol). Call once per process.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if exporter is None:
        kind = env.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
        if kind in ("", "none"):
            return None
        exporter = _exporter(kind, env)
    require("otel", "opentelemetry.sdk")  # the API (core) carries context; the SDK exports
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = service_name or env.get("OTEL_SERVICE_NAME") or "tailrace"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(kind: str, env: Mapping[str, str]) -> SpanExporter:
    if kind == "console":
        require("otel", "opentelemetry.sdk")
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={kind!r}: tailrace knows otlp, console, none"
        )
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    package = "grpc" if protocol == "grpc" else "http"
    # the otel extra brings the http exporter; grpc is opentelemetry-exporter-otlp-proto-grpc
    module = require("otel", f"opentelemetry.exporter.otlp.proto.{package}.trace_exporter")
    return cast("SpanExporter", module.OTLPSpanExporter())


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def enabled() -> bool:
    """Whether a tracer provider is installed (`configure_tracing`). Without one, spans would
    be no-ops: hot paths (a job without a parent, every consumed message) skip them."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


_enabled = enabled


# -- carrying the context ------------------------------------------------------------------


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C fields; empty when no span is current."""
    fields: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(fields)
    return fields


def inject_job_args(args: Any, carrier: dict[str, str] | None = None) -> Any:
    """``args`` with the current trace context in their metadata, for `App.enqueue`.

    Unchanged when no span is current, and for arguments that are not an object (a list or
    a scalar has no room for metadata: such jobs start traces of their own). ``carrier``:
    the context already read by ``current_carrier`` (a bulk enqueue reads it once).
    """
    if not isinstance(args, dict):
        return args
    fields = current_carrier() if carrier is None else carrier
    if not fields:
        return args
    meta = args.get(META_KEY)
    return {**args, META_KEY: {**(meta if isinstance(meta, dict) else {}), "trace": fields}}


def split_job_args(args: Any) -> tuple[Any, dict[str, str] | None]:
    """A job's arguments without their metadata, and the trace context it carried."""
    if not isinstance(args, dict) or META_KEY not in args:
        return args, None
    rest = {k: v for k, v in args.items() if k != META_KEY}
    meta = args[META_KEY]
    fields = meta.get("trace") if isinstance(meta, dict) else None
    return rest, fields if isinstance(fields, dict) else None


def inject_headers(headers: Headers = None) -> list[tuple[str, HeaderValue]]:
    """Kafka headers with the current trace context (replacing one already there), as the
    list of (name, bytes) a Kafka producer takes."""
    fields = current_carrier()
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    kept: list[tuple[str, HeaderValue]] = [(k, _bytes(v)) for k, v in pairs if k not in fields]
    return kept + [(k, v.encode()) for k, v in fields.items()]


def extract_headers(headers: Headers) -> Context:
    """The trace context that Kafka headers carry (an empty context if none)."""
    return propagate.extract(header_map(headers))


def header_map(headers: Headers) -> dict[str, str]:
    """Kafka headers as text; the last of repeated names wins, as Kafka clients read them."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {k: _text(v) for k, v in pairs if v is not None}


def _bytes(value: HeaderValue) -> bytes:
    return value.encode() if isinstance(value, str) else (value or b"")


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


# -- continuing it ---------------------------------------------------------------------------


@contextmanager
def job_span(
    task: str,
    fields: Mapping[str, str] | None,
    *,
    job_id: int | None = None,
    attempt: int | None = None,
    queue: str | None = None,
) -> Iterator[Span | None]:
    """Run a job's attempt in a span that continues the enqueuer's trace (``fields``).

    Log records made inside carry ``job_id`` either way. Without a parent and without a
    tracer provider there is no span (None): a no-op span per job would cost for nothing.
    """
    with log_fields(job_id=job_id):
        if fields is None and not _enabled():
            yield None
            return
        attributes: dict[str, str | int] = {"tailrace.task": task}
        for key, value in (
            ("tailrace.job.id", job_id),
            ("tailrace.job.attempt", attempt),
            ("tailrace.queue", queue),
        ):
            if value is not None:
                attributes[key] = value
        parent = propagate.extract(fields) if fields is not None else None
        with tracer().start_as_current_span(
            f"job {task}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            yield span


def job_call(
    fn: Callable[..., Any], is_async: bool, job: ClaimedJob
) -> tuple[Any, Callable[..., Any]]:
    """For the worker: the job's arguments without metadata, and ``fn`` wrapped to run in
    the job's span. The span starts inside the call, so it is current on the thread a sync
    task runs on, too."""
    args, fields = split_job_args(job.args)
    if fields is None and not enabled():
        # nothing to continue and nothing to export: only the job id for the task's logs,
        # set directly (a span's context managers would cost every job microseconds)
        return args, _with_job_id(fn, is_async, job.id)

    def span() -> Any:
        return job_span(job.task, fields, job_id=job.id, attempt=job.attempt, queue=job.queue)

    if is_async:

        async def run_async(*a: Any, **kw: Any) -> Any:
            with span():
                return await fn(*a, **kw)

        return args, run_async

    def run(*a: Any, **kw: Any) -> Any:
        with span():
            return fn(*a, **kw)

    return args, run


def _with_job_id(fn: Callable[..., Any], is_async: bool, job_id: int) -> Callable[..., Any]:
    fields = (("job_id", job_id),)
    if is_async:

        async def run_async(*a: Any, **kw: Any) -> Any:
            token = _log_fields.set(fields)
            try:
                return await fn(*a, **kw)
            finally:
                _log_fields.reset(token)

        return run_async

    def run(*a: Any, **kw: Any) -> Any:
        token = _log_fields.set(fields)
        try:
            return fn(*a, **kw)
        finally:
            _log_fields.reset(token)

    return run


def traced_task(fn: F) -> F:
    """Decorate a task (under ``@app.task``) to continue the trace its job carries, on an
    engine that does not do so itself. A no-op for jobs whose metadata was already taken."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    def start(args: tuple[Any, ...], meta: Any) -> Any:
        from ..engine.tasks import JobContext

        ctx = args[0] if args and isinstance(args[0], JobContext) else None
        _, fields = split_job_args({META_KEY: meta})
        return job_span(
            ctx.task if ctx else name,
            fields,
            job_id=ctx.job_id if ctx else None,
            attempt=ctx.attempt if ctx else None,
            queue=ctx.queue if ctx else None,
        )

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            if META_KEY not in kwargs:
                return await fn(*args, **kwargs)
            with start(args, kwargs.pop(META_KEY)):
                return await fn(*args, **kwargs)

        return cast(F, run_async)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if META_KEY not in kwargs:
            return fn(*args, **kwargs)
        with start(args, kwargs.pop(META_KEY)):
            return fn(*args, **kwargs)

    return cast(F, run)


@contextmanager
def message_span(
    message: Any,
    *,
    name: str | None = None,
    message_id: str | None = None,
    group: str | None = None,
) -> Iterator[Span]:
    """Handle one consumed Kafka message (a ``confluent_kafka.Message``) in a span that
    continues the producer's trace. ``message_id`` defaults to the ``message_id`` header;
    log records made inside carry it."""
    headers = header_map(message.headers())
    message_id = message_id or headers.get(MESSAGE_ID_HEADER)
    topic = str(message.topic())
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(message.partition()),
        "messaging.kafka.offset": int(message.offset()),
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    if group:
        attributes["messaging.consumer.group.name"] = group
    with (
        log_fields(message_id=message_id),
        tracer().start_as_current_span(
            name or f"process {topic}",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span,
    ):
        yield span


# -- logs ------------------------------------------------------------------------------------


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Log records made inside (on this thread or task) carry ``fields`` (None ones skipped)."""
    extra = {k: v for k, v in fields.items() if v is not None}
    if not extra:
        yield
        return
    token = _log_fields.set((*_log_fields.get(), *extra.items()))
    try:
        yield
    finally:
        _log_fields.reset(token)


# The id of the message a consumer's handler is on, for its log lines with tracing off: a
# plain variable set per message (cheaper than `log_fields` in the consumer's hot loop).
_message_id: ContextVar[str | None] = ContextVar("tailrace_message_id", default=None)


def current_message(message_id: str | None) -> None:
    """The message the handler called next is about (None once it returns)."""
    _message_id.set(message_id)


class TraceLogFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the current span and the `log_fields` in force to
    each record, without overriding fields the call passed itself. Put it on a handler: a
    logger's filters do not see its children's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        for key, value in reversed(_log_fields.get()):  # the innermost wins
            if not hasattr(record, key):
                setattr(record, key, value)
        message_id = _message_id.get()
        if message_id is not None and not hasattr(record, "message_id"):
            record.message_id = message_id
        return True
