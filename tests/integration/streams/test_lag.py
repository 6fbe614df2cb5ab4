"""A consumer group's lag per partition, read from a real broker (Tansu), through the admin
API and on the dashboard's Streams page in Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.streams.lag import LagError, group_lag
from tests.kafka_broker import TansuBroker
from tests.services import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

TOKEN = "lag-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


def _topic_with_a_group(broker: TansuBroker) -> tuple[str, str]:
    """Two partitions holding 7 and 5 messages; the group committed 3 on partition 0 only."""
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for partition, count in ((0, 7), (1, 5)):
        for n in range(count):
            producer.produce(topic, b"x", key=str(n).encode(), partition=partition)
            # one record per batch: Tansu's end offset counts batches, not records (seen here)
            assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    finally:
        consumer.close()
    return topic, group


def test_lag_per_partition(broker: TansuBroker) -> None:
    topic, group = _topic_with_a_group(broker)

    def settled() -> list[Any] | None:
        # Tansu's reported end offsets can trail what it stored for a moment
        lags = group_lag(broker.bootstrap, group, topic)
        return lags if [p.end for p in lags] == [7, 5] else None

    lags = wait_until(settled, 20, "the end offsets")
    assert [(p.partition, p.committed, p.lag) for p in lags] == [(0, 3, 4), (1, None, 5)]
    with pytest.raises(LagError, match="unknown"):
        group_lag(broker.bootstrap, group, f"no-such-{uuid.uuid4().hex[:6]}")


def test_the_api_and_the_streams_page_show_the_lag(
    broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, group = _topic_with_a_group(broker)
    env = {
        "TAILRACE_API_TOKENS": TOKEN,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TAILRACE_STREAM_CONSUMERS": f"{group}@{topic},other@no-such-topic",
        "TAILRACE_DATA_DIR": str(tmp_path / ".tailrace"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path}/t.db"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(ApiConfig.from_environment(url)), headers=headers) as client:

        def shown() -> dict[str, Any] | None:
            data: dict[str, Any] = client.get("/api/admin/streams").json()
            first = data["consumers"][0]
            return data if first["lag"] == 9 else None

        data = wait_until(shown, 20, "the lag through the API")
        mine, other = data["consumers"]
        assert [(p["partition"], p["lag"]) for p in mine["partitions"]] == [(0, 4), (1, 5)]
        assert other["lag"] is None and "unknown" in other["error"]
        one = client.get("/api/admin/streams/lag", params={"group": group, "topic": topic})
        assert one.status_code == 200 and one.json()["lag"] == 9

    _page_shows_the_lag(env, url, tmp_path, group)


def _page_shows_the_lag(env: dict[str, str], url: str, tmp_path: Path, group: str) -> None:
    from tests.e2e.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, artifacts_dir
    from tests.services import missing

    if not CHROMIUM.exists():
        missing("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "tailrace", "serve", "--port", str(port)],
            env={**os.environ, **env, "TAILRACE_DATABASE_URL": url},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                wait_until(lambda: _answers(base), 30, "tailrace serve")
                page.goto(base + "/ui/streams")
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                card = page.locator(f"section.consumer[data-group='{group}']")
                expect(card.locator("[data-total]")).to_have_text("lag 9")
                expect(card.locator("tr[data-partition='0'] td.lag")).to_have_text("4")
                expect(card.locator("tr[data-partition='1'] td.lag")).to_have_text("5")
                expect(page.locator("section.consumer .error")).to_contain_text("unknown")
                page.screenshot(path=str(artifacts_dir() / "streams.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def _answers(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_a_commit_past_the_reported_end_is_no_lag_not_a_negative_one(
    broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker can report an end behind a commit it already took (Tansu's offsets trail
    what it stored): the dashboard showed "lag -3". The group has read everything: 0."""
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for n in range(2):
        producer.produce(topic, b"x", key=str(n).encode(), partition=0)
        assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    finally:
        consumer.close()
    [raw] = wait_until(
        lambda: [p for p in group_lag(broker.bootstrap, group, topic) if p.end == 2] or None,
        20,
        "the end offset",
    )
    assert raw.committed == 5 and raw.lag == -3  # what the broker's figures give
    monkeypatch.setenv("TAILRACE_API_TOKENS", TOKEN)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"sqlite:///{tmp_path}/t.db"
    with TestClient(create_app(ApiConfig.from_environment(url)), headers=headers) as client:
        one = client.get("/api/admin/streams/lag", params={"group": group, "topic": topic})
    assert one.status_code == 200, one.text
    assert one.json()["lag"] == 0
    assert one.json()["partitions"] == [{"partition": 0, "committed": 5, "end": 2, "lag": 0}]
