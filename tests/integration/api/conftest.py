"""The admin service in-process (FastAPI's TestClient, lifespan and all) on a fresh
PostgreSQL schema; the jobs it starts run real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tailrace.api import ApiConfig, create_app
from tailrace.pipeline.samples import SampleFile, write_samples

TOKEN = "test-token-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    monkeypatch.setenv("TAILRACE_API_TOKENS", f"{TOKEN},another-token-0123456789")
    for name in ("TAILRACE_DEFAULT_SINK", "KAFKA_BOOTSTRAP_SERVERS", "TAILRACE_METRICS_PUBLIC"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def client(api_env: Path, pg_url: str) -> Iterator[TestClient]:
    app = create_app(ApiConfig.from_environment(pg_url))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def anonymous(client: TestClient) -> TestClient:
    """The same service, without the token."""
    del client.headers["Authorization"]
    return client


@pytest.fixture
def samples(api_env: Path) -> list[SampleFile]:
    return write_samples(api_env / "logs", files=6, lines=3000, seed=7, bad_rate=0.002)
