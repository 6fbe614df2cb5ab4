"""Tansu brokers started by the tests themselves (see `tests.kafka_broker`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker import TansuBroker
from tests.s3_server import MotoS3


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One in-memory broker for the whole session. Shared: never stop it in a test (take
    `durable_kafka_broker` for that)."""
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker


@pytest.fixture(scope="session")
def moto_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    with MotoS3(tmp_path_factory.mktemp("moto") / "server.log") as storage:
        yield storage


@pytest.fixture
def durable_kafka_broker(moto_storage: MotoS3, tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of the test's own whose topics live in S3 (moto), so they survive
    `stop()`, `kill()` and `restart()`."""
    with TansuBroker(tmp_path, storage=moto_storage) as broker:
        yield broker


@pytest.fixture
def kafka_topic(kafka_broker: TansuBroker) -> str:
    """A fresh single-partition topic on the session broker."""
    name = f"tailrace-{uuid.uuid4().hex[:12]}"
    kafka_broker.create_topic(name)
    return name
