"""moto's S3 server in a subprocess on a free loopback port, for the whole session."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.services import missing

# A distinctive secret, so tests can check that no error message ever shows it.
SECRET_KEY = "tailrace-test-secret-Zq8vN3kP0wXy"
START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # The server logs every request: to a file, as a pipe nobody drains would fill and block it.
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(port):
            if server.poll() is not None:
                output = log_path.read_text(errors="replace")[-500:]
                missing("moto S3 server", f"exited with {server.returncode}: {output}")
            if time.monotonic() > deadline:
                missing("moto S3 server", f"not accepting connections after {START_TIMEOUT} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait(timeout=10)


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
