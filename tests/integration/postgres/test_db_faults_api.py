"""`tailrace serve` (a real process) on a PostgreSQL cluster the test owns, through a freeze
(SIGSTOP of the server and its backends) and a restart.

Frozen: requests that need the database answer 503 JSON at once-ish (bounded by the
connection policy: no request waits on a frozen server), `/readyz` says not ready, `/healthz`
stays OK. Thawed or restarted: everything works again without restarting the service.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import tailrace
from tests.e2e.support import CLI, REPO_ROOT
from tests.pg_cluster import Cluster, cluster_url, pg_cluster  # noqa: F401 - fixtures
from tests.services import free_port, stop_process
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

TOKEN = "dbfaults-token-abcdefghijklmnopqrstuvwxyz"
# Generous: the service answers in about two seconds; before the connection policy it hung
# until the server thawed.
CLIENT_TIMEOUT_S = 10.0


@pytest.fixture
def service(cluster_url: str, tmp_path: Path) -> Iterator[httpx.Client]:  # noqa: F811
    port = free_port()
    path = os.pathsep.join([str(Path(tailrace.__file__).parents[1]), str(REPO_ROOT)])
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "TAILRACE_DATABASE_URL": cluster_url,
        "TAILRACE_API_TOKENS": TOKEN,
        "TAILRACE_DATA_DIR": str(tmp_path / ".tailrace"),
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--no-access-log"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=CLIENT_TIMEOUT_S,
    )

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return client.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 60, "the service to be ready")
        yield client
    finally:
        client.close()
        stop_process(process, 20)
        log.close()


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == "unavailable", error
    assert error["message"]


def test_a_frozen_database_gets_503_not_a_hang_and_the_service_recovers(
    service: httpx.Client,
    pg_cluster: Cluster,  # noqa: F811
) -> None:
    created = service.post("/api/admin/jobs", json={"task": "t", "args": [1]})
    assert created.status_code == 201, created.text
    assert service.get("/api/admin/jobs").status_code == 200

    with pg_cluster.frozen():
        assert service.get("/healthz").status_code == 200
        ready = service.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
        # more requests at once than the pool has connections: none waits on another
        paths = ["/api/admin/jobs", "/api/admin/queues", "/api/admin/reprocessing/jobs"] * 4
        with ThreadPoolExecutor(len(paths)) as pool:
            for response in pool.map(service.get, paths):
                _unavailable(response)
        _unavailable(service.post("/api/admin/jobs", json={"task": "t", "args": [2]}))
        assert service.get("/healthz").status_code == 200

    # thawed: ready again, and the same connections pool serves requests
    wait_until(lambda: service.get("/readyz").status_code == 200, 30, "ready after the thaw")
    jobs = service.get("/api/admin/jobs")
    assert jobs.status_code == 200, jobs.text
    assert service.post("/api/admin/jobs", json={"task": "t", "args": [3]}).status_code == 201


def test_after_a_restart_the_next_requests_succeed(
    service: httpx.Client,
    pg_cluster: Cluster,  # noqa: F811
) -> None:
    paths = ["/api/admin/jobs", "/api/admin/queues", "/api/admin/reprocessing/jobs"] * 3
    with ThreadPoolExecutor(len(paths)) as pool:  # every pooled connection in use once
        assert all(r.status_code == 200 for r in pool.map(service.get, paths))
    pg_cluster.restart()
    # every pooled connection is broken now; each request reconnects and succeeds
    with ThreadPoolExecutor(len(paths)) as pool:
        for response in pool.map(service.get, paths):
            assert response.status_code == 200, response.text
    assert service.get("/readyz").status_code == 200
