"""The probe server every long-running process shares: metrics, the probe paths in both
shapes, 404 elsewhere, and checks that fail."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from tailrace.observability.health import Check, CheckFailed, Health
from tailrace.observability.server import ProbeServer


class Switch:
    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    def probe(self) -> dict[str, int]:
        self.calls += 1
        if not self.up:
            raise CheckFailed("the database is away")
        return {"calls": self.calls}


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def base(switch: Switch) -> Iterator[str]:
    registry = CollectorRegistry()
    Counter("probe_test_things", "Things", registry=registry).inc(3)
    health = Health(ready=[Check("database", switch.probe, cache_s=0.0)])
    server = ProbeServer([registry], health).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def test_metrics_on_their_paths_and_404_elsewhere(base: str) -> None:
    for path in ("/metrics", "/q/metrics"):
        response = httpx.get(base + path)
        assert response.status_code == 200
        assert "probe_test_things_total 3.0" in response.text
        assert response.headers["content-type"].startswith("text/plain")
    for path in ("/", "/anything", "/metricsx", "/q/health/other"):
        response = httpx.get(base + path)
        assert response.status_code == 404, path
        assert "probe_test_things" not in response.text


def test_probes_in_both_shapes(base: str, switch: Switch) -> None:
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base + "/readyz").json() == {"status": "ok"}
    live = httpx.get(base + "/q/health/live")
    assert live.status_code == 200 and live.json() == {"status": "UP", "checks": []}
    ready = httpx.get(base + "/q/health/ready").json()
    assert ready["status"] == "UP"
    assert [(c["name"], c["status"]) for c in ready["checks"]] == [("database", "UP")]
    assert httpx.get(base + "/q/health").json()["status"] == "UP"

    switch.up = False
    assert httpx.get(base + "/healthz").status_code == 200  # alive, not ready
    readyz = httpx.get(base + "/readyz")
    assert readyz.status_code == 503
    assert readyz.json() == {"status": "unavailable", "detail": "database: the database is away"}
    for path in ("/q/health", "/q/health/ready"):
        response = httpx.get(base + path)
        assert response.status_code == 503
        assert response.json() == {
            "status": "DOWN",
            "checks": [
                {"name": "database", "status": "DOWN", "data": {"error": "the database is away"}}
            ],
        }
    switch.up = True
    assert httpx.get(base + "/readyz").status_code == 200


def test_a_check_result_is_shared_for_its_cache_time() -> None:
    switch = Switch()
    check = Check("database", switch.probe, cache_s=60.0)
    first = check.run()
    assert check.run() is first and switch.calls == 1
    switch.up = False
    assert check.run()["status"] == "UP"  # still cached
    assert Check("database", switch.probe, cache_s=0.0).run()["status"] == "DOWN"


def test_a_check_that_raises_anything_is_down() -> None:
    def broken() -> None:
        raise ConnectionRefusedError()

    result = Check("kafka", broken).run()
    assert result == {
        "name": "kafka",
        "status": "DOWN",
        "data": {"error": "ConnectionRefusedError"},
    }


def test_spool_kinds_by_class() -> None:
    from tailrace.streams.producer_metrics import spool_kind

    class RedisListSpool:
        pass

    class MemorySpool:
        pass

    assert spool_kind(RedisListSpool()) == "redis"
    assert spool_kind(MemorySpool()) == "memoryspool"
