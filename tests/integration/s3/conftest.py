"""moto's S3 server (`tests.s3_server.MotoS3`) for the whole session, and the environment that
points boto3 at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.s3_server import MotoS3

# A distinctive secret, so tests can check that no error message ever shows it.
SECRET_KEY = "tailrace-test-secret-Zq8vN3kP0wXy"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with MotoS3(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server.endpoint


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Dummy credentials and the endpoint in the environment, shielded from the host's AWS
    configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tailrace-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint


@pytest.fixture
def s3(s3_env: str) -> Any:
    """A boto3 client on the moto server, for putting test objects."""
    return boto3.client("s3", endpoint_url=s3_env)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket per test."""
    name = f"tailrace-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
