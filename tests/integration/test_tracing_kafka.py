"""A span started by a producer continues in a consumer, through a real broker (Tansu)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tailrace.observability import tracing
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


def test_a_consumer_continues_the_producers_trace(
    broker: TansuBroker, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    exporter.clear()
    topic = f"traced-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    with trace.get_tracer("tests").start_as_current_span("send") as send:
        headers = tracing.inject_headers([(tracing.MESSAGE_ID_HEADER, b"m-1")])
        producer.produce(topic, b"payload", key=b"k", headers=headers)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}"}
    )
    try:
        # assigned, not subscribed: joining a group takes seconds on Tansu
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = wait_until(lambda: consumer.poll(0.2), timeout=20, what="the message")
        assert message is not None and message.error() is None
        with tracing.message_span(message, group="g") as handled:
            inner = trace.get_current_span().get_span_context()
    finally:
        consumer.close()

    parent = send.get_span_context()
    (span,) = [s for s in exporter.get_finished_spans() if s.name == f"process {topic}"]
    assert span.parent is not None and span.context is not None
    assert (span.context.trace_id, span.parent.span_id) == (parent.trace_id, parent.span_id)
    assert inner.span_id == handled.get_span_context().span_id
    assert span.attributes is not None and span.attributes["messaging.message.id"] == "m-1"


def test_tailraces_consumer_continues_the_trace_into_its_outputs(
    broker: TansuBroker, exporter: InMemorySpanExporter
) -> None:
    import threading

    from tailrace.streams.consumer.config import ConsumerConfig
    from tailrace.streams.consumer.loop import Consumer as StreamConsumer
    from tailrace.streams.consumer.message import Message, Output

    exporter.clear()
    topic, out = f"in-{uuid.uuid4().hex[:8]}", f"out-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic)
    broker.create_topic(out)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    with trace.get_tracer("tests").start_as_current_span("send") as send:
        producer.produce(topic, b"payload", key=b"k", headers=tracing.inject_headers())
    assert producer.flush(10) == 0

    inside: list[trace.SpanContext] = []

    def handler(message: Message) -> list[Output]:
        inside.append(trace.get_current_span().get_span_context())
        return [Output(b"status", key=b"k")]

    config = ConsumerConfig(
        topic=topic,
        group=f"g-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=broker.bootstrap,
        partitions=[0],
        routes=(out,),
        poll_timeout_s=0.1,
    )
    with StreamConsumer(config, handler) as consumer:
        thread = threading.Thread(target=consumer.run)
        thread.start()
        try:
            wait_until(lambda: broker.consume_all(out), 20, "the routed output")
        finally:
            consumer.stop()
            thread.join(10)

    (handled,) = inside
    assert handled.trace_id == send.get_span_context().trace_id
    (record,) = broker.consume_all(out)
    headers = tracing.header_map(record.headers)
    # the output carries the consumer's span: the next consumer continues from there
    assert f"{handled.span_id:016x}" in headers["traceparent"]


def test_an_outbox_event_carries_the_writers_trace_to_the_topic(
    broker: TansuBroker, exporter: InMemorySpanExporter
) -> None:
    import psycopg

    from tailrace.streams import outbox
    from tailrace.streams.outbox.relay import Relay
    from tests.integration.streams.outbox_support import migrated_schema

    topic = f"outboxed-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic)
    with migrated_schema() as url:
        with (
            trace.get_tracer("tests").start_as_current_span("request") as request,
            psycopg.connect(url) as conn,
            conn.transaction(),
        ):
            outbox.add(conn, topic, "k", {"n": 1})
        with Relay(url, broker.bootstrap) as relay:
            assert relay.run(until_idle=True).published == 1
    (record,) = broker.consume_all(topic, quiet=0.5)
    traceparent = tracing.header_map(record.headers)["traceparent"]
    context = request.get_span_context()
    assert traceparent.split("-")[1:3] == [f"{context.trace_id:032x}", f"{context.span_id:016x}"]
