"""The runnable examples (examples/<name>/run.sh), each run as a user would, against the
services the rest of the suite starts: PostgreSQL, moto's S3 server, Tansu."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest

from tests.kafka_broker import TansuBroker
from tests.s3_server import MotoS3

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Example:
    """One example copied into a directory of its own, and the shell that runs it."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.source = EXAMPLES / name
        self.dir = tmp_path / name
        shutil.copytree(self.source, self.dir)
        self.work = tmp_path / "work"  # where its script runs (its outputs land here)
        self.work.mkdir()
        # `tailrace` and `python` are this interpreter's, running this checkout
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name_, command in (
            ("tailrace", f'"{sys.executable}" -m tailrace'),
            ("python", f'"{sys.executable}"'),
        ):
            shim = bin_dir / name_
            shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
            shim.chmod(0o755)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAILRACE_", "KAFKA_", "AWS_", "OTEL_"))
            and k not in ("DATABASE_URL", "JOB_ID", "WORKER_INDEX")
        }
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(self.dir)])

    def run(
        self,
        script: str = "run.sh",
        *args: str,
        timeout: float = 120,
        environ: Mapping[str, str] | None = None,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        """Runs the script in a session of its own: what it left running in the background
        (a web app, a consumer) is stopped with it, whatever happened."""
        process = subprocess.Popen(
            ["bash", str(self.dir / script), *args],
            cwd=self.work,
            env={**self.env, **(environ or {}), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(
                f"{script} still running after {timeout} s:\n{stdout[-3000:]}\n{stderr[-3000:]}"
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        output = f"{stdout[-3000:]}\n{stderr[-3000:]}"
        assert process.returncode == 0, f"{script} exited {process.returncode}:\n{output}"
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    with MotoS3(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


@pytest.fixture
def s3_env(moto: MotoS3, tmp_path: Path) -> dict[str, str]:
    """A fresh bucket on the S3 server and the settings that reach it."""
    bucket = f"examples-{tmp_path.name.lower().replace('_', '-')[-40:]}".rstrip("-")
    moto.create_bucket(bucket)
    return {
        "S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "examples",
        "AWS_SECRET_ACCESS_KEY": "examples",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def s3_client(env: dict[str, str]) -> object:
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as started:
        yield started
