"""The OpenAPI document fuzzed with schemathesis against `tailrace serve` on PostgreSQL:
whatever a client sends, the service answers with a documented status and a body that
matches its schema, and never a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.services import free_port, stop_process
from tests.waiting import wait_until

from .conftest import TOKEN

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def server(api_env: Path, pg_url: str) -> Iterator[str]:
    port = free_port()
    with (api_env / "serve.log").open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailrace", "serve", "--port", str(port), "--no-access-log"],
            env={**os.environ, "TAILRACE_DATABASE_URL": pg_url},
            cwd=api_env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, (api_env / "serve.log").read_text()
            return False

    try:
        # a deadline, not a wait: a loaded 2-core machine once took over 30 s to start it
        wait_until(up, 90, "tailrace serve to be ready")
        yield base
    finally:
        stop_process(process, 10)
    log = (api_env / "serve.log").read_text()
    assert '"level":"error"' not in log, log


def test_no_request_gets_a_5xx_or_an_undocumented_answer(server: str) -> None:
    """Every operation of the document, each with its own generated requests. Driven here
    rather than by schemathesis' pytest plugin, which breaks with newer pytest releases."""
    schema = schemathesis.openapi.from_url(
        f"{server}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case[Any]) -> None:
            # A body can match the schema and still be refused, with a 4xx that says why: a
            # path and an s3_path together, a source with no files, a job id that does not exist.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()
