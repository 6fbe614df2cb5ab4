"""A Kafka sink whose broker is not there: the plan refuses it in seconds, a producer that no
broker ever answered gives up after the connect timeout (not the 300 s outage timeout), and
librdkafka's retry lines are rate-limited."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from tailrace.kafka_client import LibrdkafkaLog
from tailrace.pipeline.sinks import parse_sink_url
from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.kafka import KafkaSink
from tailrace.pipeline.sinks.reach import SinkUnreachableError, check_reachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_reachable_names_each_broker_and_why() -> None:
    a, b = _closed_port(), _closed_port()
    spec = parse_sink_url(f"kafka://127.0.0.1:{a},127.0.0.1:{b}/events")
    with pytest.raises(SinkUnreachableError) as caught:
        check_reachable(spec, timeout_s=2)
    text = str(caught.value)
    assert f"127.0.0.1:{a} (Connection refused)" in text, text
    assert f"127.0.0.1:{b}" in text and "--sink" in text, text


def test_check_reachable_passes_when_one_broker_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        spec = parse_sink_url(f"kafka://127.0.0.1:{_closed_port()},127.0.0.1:{port}/events")
        check_reachable(spec, timeout_s=2)
    check_reachable(parse_sink_url("null:"))  # nothing to reach


def test_a_producer_no_broker_answered_gives_up_after_the_connect_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = KafkaSink(
        f"127.0.0.1:{_closed_port()}",
        "events",
        environ={"KAFKA_CONNECT_TIMEOUT_S": "1.5"},
    )
    assert sink.outage_timeout_s == 300
    sink.write([b"event %d" % i for i in range(100)])
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="tailrace.sink.kafka"):
        with pytest.raises(
            SinkError, match=r"no broker answered in \d+ s.*KAFKA_CONNECT_TIMEOUT_S"
        ):
            sink.flush()
    took = time.monotonic() - started
    sink.close()
    assert took < 10, f"gave up after {took:.1f} s"
    assert sink.counters.events == 0
    # librdkafka retries the connection many times a second: its lines come out rate-limited
    by_facility: dict[object, int] = {}
    for record in caplog.records:
        if record.funcName == "log" and isinstance(record.args, tuple):  # LibrdkafkaLog.log
            by_facility[record.args[0]] = by_facility.get(record.args[0], 0) + 1
    assert all(n <= 2 for n in by_facility.values()), by_facility


def test_connect_timeout_must_be_a_positive_number() -> None:
    with pytest.raises(SinkError, match="KAFKA_CONNECT_TIMEOUT_S must be a positive number"):
        KafkaSink("127.0.0.1:9", "t", environ={"KAFKA_CONNECT_TIMEOUT_S": "soon"})


def test_librdkafka_lines_are_rate_limited_per_facility(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    rdlog = LibrdkafkaLog(every_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="tailrace.sink.kafka"):
        for _ in range(1_000):
            rdlog.log(logging.ERROR, "%s [thrd:%s]: connect failed", "FAIL", "b1")
        rdlog.log(logging.INFO, "%s [thrd:%s]: metadata", "METADATA", "x")
        now[0] += 10.5
        rdlog.log(logging.ERROR, "%s [thrd:%s]: connect failed", "FAIL", "b1")
    records = [
        (r.args[0], r.levelno, getattr(r, "similar_lines_held_back", 0))  # type: ignore[index]
        for r in caplog.records
    ]
    assert records == [
        ("FAIL", logging.WARNING, 0),
        ("METADATA", logging.INFO, 0),
        ("FAIL", logging.WARNING, 999),
    ]
