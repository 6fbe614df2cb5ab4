"""Every long-running process answers its probes and serves /metrics over HTTP, tried on the
real processes (`tailrace worker`, `consume`, `outbox relay`) with real faults: the database
stopped under a worker and a relay, a consumer started before its broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Producer

import tailrace
from tailrace import JobSpec, JobState
from tailrace.engine.store.postgres.store import PostgresStore
from tailrace.streams import outbox
from tailrace.streams.outbox import OutboxEvent
from tests.integration.streams.outbox_support import start_relay
from tests.kafka_broker import TansuBroker
from tests.pg_cluster import Cluster, cluster_url, pg_cluster  # noqa: F401 - fixtures
from tests.services import free_port, stop_process

from .support import Harness, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

SRC = Path(tailrace.__file__).resolve().parents[1]  # the tree under test
PROBES = ("/healthz", "/readyz", "/q/health", "/q/health/live", "/q/health/ready")


def get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return None


def status(port: int, path: str) -> int | None:
    response = get(port, path)
    return None if response is None else response.status_code


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus text page (None: not there)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def assert_probe_paths(port: int, live: list[str] | None = None) -> None:
    """Every probe answers UP in its shape, metrics on their paths, 404 elsewhere; `live`:
    the names of the liveness checks."""
    for path in PROBES:
        response = get(port, path)
        assert response is not None and response.status_code == 200, (path, response)
        body = response.json()
        assert body["status"] in ("ok", "UP"), (path, body)
    ready = get(port, "/q/health/ready")
    assert ready is not None
    assert {c["status"] for c in ready.json()["checks"]} == {"UP"}
    alive = get(port, "/q/health/live")
    assert alive is not None
    assert [c["name"] for c in alive.json()["checks"]] == (live or [])
    for path in ("/", "/nope", "/metrics/extra", "/q/health/nope"):
        assert status(port, path) == 404, path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started


# -- tailrace worker --------------------------------------------------------------------------


def test_the_worker_serves_metrics_and_probes_and_is_unready_without_its_database(
    pg_cluster: Cluster,  # noqa: F811
    cluster_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    h = Harness(cluster_url, tmp_path)
    try:
        port = free_port()
        w = h.start_worker("--metrics-port", str(port), "--poll", "0.2")
        wait_until(lambda: status(port, "/readyz") == 200, 30, w.tail)
        assert_probe_paths(port, live=["scheduler"])
        # the priority-job framework's runbook: `.checks[] | select(.name | contains("scheduler"))`
        health = get(port, "/q/health")
        assert health is not None
        [scheduler] = [c for c in health.json()["checks"] if "scheduler" in c["name"]]
        assert scheduler["status"] == "UP" and scheduler["data"]["concurrency"] == 16
        h.app.enqueue_many(JobSpec("record", {"n": n}) for n in range(5))
        wait_until(lambda: h.counts()[JobState.SUCCEEDED] == 5, 30, w.tail)

        page = get(port, "/metrics")
        assert page is not None and page.status_code == 200
        assert sample(page.text, "tailrace_jobs_completed_total", task="record") == 5
        # a CRITICAL job for tomorrow: scheduled, not pending (it must not scale the pool)
        later = datetime.now(UTC) + timedelta(days=1)
        h.app.enqueue_many([JobSpec("record", {"n": -1}, priority="CRITICAL", run_at=later)])
        page = get(port, "/metrics")
        assert page is not None
        scheduled = {"queue": "default", "priority": "critical", "state": "scheduled"}
        assert sample(page.text, "tailrace_queue_depth", **scheduled) == 1
        pending = {**scheduled, "state": "pending"}
        assert not sample(page.text, "tailrace_queue_depth", **pending)
        # the object jobs' counters are served where those jobs run
        assert sample(page.text, "tailrace_objects_retention_runs_total") == 0
        assert get(port, "/q/metrics") is not None

        pg_cluster.stop()
        wait_until(lambda: status(port, "/readyz") == 503, 30, "the worker unready")
        down = get(port, "/q/health/ready")
        assert down is not None and down.status_code == 503
        assert down.json()["status"] == "DOWN"
        assert down.json()["checks"][0]["name"] == "database"
        assert status(port, "/healthz") == 200  # alive: it waits the outage out
        assert w.alive()
        # a scrape still answers, with the counters, and without the gauges it cannot read
        during = get(port, "/metrics")
        assert during is not None and during.status_code == 200
        assert sample(during.text, "tailrace_jobs_completed_total", task="record") == 5
        assert "tailrace_queue_depth{" not in during.text
        pg_cluster.start()
        wait_until(lambda: status(port, "/readyz") == 200, 30, "the worker ready again")
    finally:
        h.close()


# -- tailrace consume -------------------------------------------------------------------------

HANDLER = "def handle(message):\n    pass\n"


def _consume(tmp_path: Path, bootstrap: str, topic: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-c", "from tailrace.cli.consume import consume; consume()", topic),
        *("--group", f"g-{uuid.uuid4().hex[:8]}", "--handler", "handlers:handle"),
        *("--bootstrap-servers", bootstrap, "--dedup-store", "none"),
        *("--metrics-port", str(port), "--metrics-host", "127.0.0.1"),
    ]
    (tmp_path / "handlers.py").write_text(HANDLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    with (tmp_path / "consumer.log").open("ab") as log:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stderr=log)


def test_consume_is_ready_once_it_has_partitions_and_counts_what_it_handled(
    broker: TansuBroker, tmp_path: Path
) -> None:
    topic = f"probes-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(40):
        producer.produce(topic, b"v%d" % i, b"k%d" % i, headers=[("message_id", b"m%d" % i)])
    assert producer.flush(10) == 0
    del producer
    port = free_port()
    process = _consume(tmp_path, broker.bootstrap, topic, port)
    log = tmp_path / "consumer.log"
    try:

        def handled() -> float | None:
            page = get(port, "/metrics")
            if page is None:
                return None
            return sample(page.text, "tailrace_stream_messages_handled_total", topic=topic)

        wait_until(lambda: handled() == 40, 60, lambda: log.read_text()[-3000:])
        assert_probe_paths(port)

        def check() -> dict[str, Any]:
            ready = get(port, "/q/health/ready")
            assert ready is not None
            [found] = ready.json()["checks"]
            return dict(found)

        # counted by the consumer's loop every few seconds
        wait_until(lambda: check()["data"]["assigned_partitions"] == 2, 30, lambda: str(check()))
        assert check()["name"] == "kafka"
    finally:
        stop_process(process, 20)
    assert process.returncode == 0, log.read_text()[-3000:]


def test_consume_is_unready_while_no_broker_answers(tmp_path: Path) -> None:
    broker = TansuBroker(tmp_path)  # not started yet
    port = free_port()
    topic = f"late-{uuid.uuid4().hex[:8]}"
    process = _consume(tmp_path, broker.bootstrap, topic, port)
    log = tmp_path / "consumer.log"
    try:
        wait_until(lambda: status(port, "/readyz") == 503, 30, lambda: log.read_text()[-3000:])
        down = get(port, "/q/health/ready")
        assert down is not None and down.json()["status"] == "DOWN"
        assert status(port, "/healthz") == 200
        with broker:
            broker.create_topic(topic, partitions=1, exist_ok=True)  # the consumer may ask first
            wait_until(lambda: status(port, "/readyz") == 200, 60, lambda: log.read_text()[-3000:])
            stop_process(process, 20)
    finally:
        stop_process(process, 20)


# -- tailrace outbox relay --------------------------------------------------------------------


def test_the_relay_serves_outbox_metrics_and_is_unready_without_its_database(
    pg_cluster: Cluster,  # noqa: F811
    cluster_url: str,  # noqa: F811
    broker: TansuBroker,
    tmp_path: Path,
) -> None:
    store = PostgresStore(cluster_url)
    store.migrate()
    store.close()
    topic = f"outbox-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=1)
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        outbox.add_many(conn, [OutboxEvent(topic, f"k{i}", b"v") for i in range(30)])
    port = free_port()
    log = tmp_path / "relay.log"
    process = start_relay(cluster_url, broker.bootstrap, log, "--metrics-port", str(port))
    try:

        def published() -> float | None:
            page = get(port, "/metrics")
            if page is None:
                return None
            return sample(page.text, "tailrace_outbox_published_events_total")

        wait_until(lambda: published() == 30, 60, lambda: log.read_text()[-3000:])
        assert_probe_paths(port)

        def outbox_events() -> dict[str, float | None]:
            page = get(port, "/metrics")
            assert page is not None
            return {
                state: sample(page.text, "tailrace_outbox_events", status=state)
                for state in ("pending", "publishing", "dead")
            }

        # the counts are read at most every 5 s: an earlier scrape may have seen them pending
        everything_sent = {"pending": 0, "publishing": 0, "dead": 0}
        wait_until(lambda: outbox_events() == everything_sent, 15, lambda: str(outbox_events()))
        page = get(port, "/metrics")
        assert page is not None
        assert (sample(page.text, "tailrace_outbox_batch_seconds_count") or 0) >= 1

        pg_cluster.stop()
        wait_until(lambda: status(port, "/readyz") == 503, 30, lambda: log.read_text()[-3000:])
        assert status(port, "/healthz") == 200 and process.poll() is None
        pg_cluster.start()
        wait_until(lambda: status(port, "/readyz") == 200, 30, lambda: log.read_text()[-3000:])
    finally:
        stop_process(process, 20)


def test_the_relay_is_unready_while_no_broker_answers(pg_url: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_url)
    store.migrate()
    store.close()
    port = free_port()
    log = tmp_path / "relay.log"
    with TansuBroker(tmp_path) as broker:
        process = start_relay(pg_url, broker.bootstrap, log, "--metrics-port", str(port))
        try:
            wait_until(lambda: status(port, "/readyz") == 200, 30, lambda: log.read_text()[-3000:])
            ready = get(port, "/q/health/ready")
            assert ready is not None
            assert [c["name"] for c in ready.json()["checks"]] == ["database", "kafka"]

            broker.kill()  # nothing in flight: the outbox is empty
            wait_until(lambda: status(port, "/readyz") == 503, 15, lambda: log.read_text()[-3000:])
            down = get(port, "/readyz")
            assert down is not None and "kafka: no broker answers" in down.json()["detail"]
            assert status(port, "/healthz") == 200 and process.poll() is None

            broker.start()
            wait_until(lambda: status(port, "/readyz") == 200, 30, lambda: log.read_text()[-3000:])
        finally:
            stop_process(process, 20)


def test_the_outbox_gauge_counts_what_waits(pg_url: str) -> None:
    from tailrace.streams.outbox.metrics import OutboxCollector, _Database

    store = PostgresStore(pg_url)
    store.migrate()
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        outbox.add_many(conn, [OutboxEvent("t", f"k{i}", b"v") for i in range(7)])
        conn.execute("UPDATE tailrace_outbox SET status = 'dead' WHERE key IN ('k0', 'k1')")
    db = _Database(pg_url)
    try:
        [family] = OutboxCollector(db).collect()
    finally:
        db.close()
    found = {s.labels["status"]: s.value for s in family.samples}
    assert found == {"pending": 5, "publishing": 0, "dead": 2}
