"""moto's S3 server for the object jobs, a bucket per test, and the engine's database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailrace.db import migrate
from tailrace.objects import s3_client
from tests.s3_server import MotoS3
from tests.services import postgres_schema


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with MotoS3(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server.endpoint


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A client on moto, built the way the object jobs build theirs (from the environment)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tailrace-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tailrace-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"tailrace-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Upload records on both stores, migrated (as a worker or `tailrace db migrate` does)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/tailrace.db"
        migrate(url)
        yield url
    else:
        with postgres_schema() as url:
            migrate(url)
            yield url


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", ()))


def read(s3: Any, bucket: str, key: str) -> bytes:
    with s3.get_object(Bucket=bucket, Key=key)["Body"] as body:
        data: bytes = body.read()
    return data
