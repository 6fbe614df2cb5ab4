"""The circuit-broken producer's gauges, scraped over HTTP from the server `consume` uses:
the circuit's state and the spool's depth through a broker outage (the broker not started,
then started), for a Redis spool (the Kafka workers' `redis_fallback_queue_length`)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tailrace.streams.consumer import metrics as consumer_metrics
from tailrace.streams.producer import BreakerProducer, BreakerSettings
from tailrace.streams.spool import open_spool
from tests.e2e.test_probes import sample
from tests.integration.streams.outbox_support import redis_url
from tests.kafka_broker import TansuBroker
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

FAST = BreakerSettings(delivery_timeout_s=3.0, cooldown_s=0.1, max_cooldown_s=0.5)


def test_circuit_state_and_spool_depth_through_an_outage(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path)  # not started: the outage comes first
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    spool = open_spool(redis_url(), name)
    server = consumer_metrics.serve(0)
    base = f"http://127.0.0.1:{server.port}"
    labels = {"spool": name, "kind": "redis"}

    def scrape(metric: str, **more: str) -> float | None:
        return sample(httpx.get(base + "/metrics").text, metric, **labels, **more)

    try:
        with BreakerProducer(broker.bootstrap, spool, FAST) as producer:
            topic = f"m-{uuid.uuid4().hex[:8]}"
            producer.send_many([(topic, b"v%d" % n, b"k", None) for n in range(300)])
            wait_until(lambda: scrape("tailrace_spool_depth") == 300, 30, "all spooled")
            states = {
                state: scrape("tailrace_producer_circuit_state", state=state)
                for state in ("closed", "open", "half_open", "draining")
            }
            # one state at a time, and not closed while the spool holds messages
            values = [v for v in states.values() if v is not None]
            assert len(values) == 4 and sorted(values) == [0, 0, 0, 1] and states["closed"] == 0
            assert spool.count() == 300  # the oracle: the spool itself
            broker.start()
            broker.create_topic(topic, exist_ok=True)  # the producer may ask first
            assert producer.flush(timeout=60), f"still {producer.state}"
            assert scrape("tailrace_spool_depth") == 0
            assert scrape("tailrace_producer_circuit_state", state="closed") == 1
            assert len(broker.consume_all(topic)) == 300
        # a closed producer is no longer reported
        assert scrape("tailrace_spool_depth") is None
    finally:
        server.close()
        broker.stop()
        leftover = open_spool(redis_url(), name)
        leftover.remove(leftover.head(1_000_000))
        leftover.close()
