"""moto's S3 server in a subprocess on a free loopback port: the S3 API for the source tests,
and storage that outlives a Tansu process for the Kafka tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.services import accepts, free_port, missing, stop_process

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class MotoS3:
    """moto's S3 server in a subprocess: storage that outlives a Tansu process."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        # Logs go to a file: a pipe nobody drains would fill up and block the server.
        with self._log_path.open("ab") as output:
            self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(self.port):
            if self._process.poll() is not None:
                tail = self._log_path.read_text(errors="replace")[-500:]
                missing("moto S3 server", f"exited with {self._process.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                missing("moto S3 server", f"not accepting connections after {START_TIMEOUT} s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, STOP_TIMEOUT)
            self._process = None

    def create_bucket(self, name: str) -> None:
        # moto does not check signatures: a bare PUT creates the bucket.
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def environment(self) -> dict[str, str]:
        """What Tansu's object store needs to use this server (dummy credentials)."""
        return {
            "AWS_ACCESS_KEY_ID": "tailrace-test-key",
            "AWS_SECRET_ACCESS_KEY": "tailrace-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
