"""The engine's queues and jobs through the API (reference 002's operations)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tailrace.engine.app import App
from tailrace.engine.states import Priority
from tailrace.engine.worker import Worker, WorkerOptions

pytestmark = pytest.mark.postgres


def _dead_jobs(url: str, queue: str, count: int) -> list[int]:
    """Jobs for a task no worker has, tried once: a burst worker leaves them dead."""
    with App(url) as app:
        ids = [
            app.enqueue("nobody.has.this", {"n": n}, queue=queue, max_attempts=1)
            for n in range(count)
        ]
        Worker(app, WorkerOptions(queues=[queue], burst=True, poll_s=0.05)).run()
    return ids


def test_enqueue_list_inspect_and_cancel(client: TestClient) -> None:
    created = client.post(
        "/api/admin/jobs",
        json={"task": "reports.refresh", "args": {"id": 7}, "queue": "reports", "priority": "HIGH"},
    )
    assert created.status_code == 201, created.text
    job = created.json()
    # `_tailrace` holds tailrace's own metadata (a trace context when a tracer is set up)
    args = {k: v for k, v in job["args"].items() if k != "_tailrace"}
    assert job["state"] == "pending" and job["priority"] == "HIGH" and args == {"id": 7}

    listed = client.get("/api/admin/jobs", params={"queue": "reports", "state": "pending"}).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    assert client.get(f"/api/admin/jobs/{job['id']}").json()["task"] == "reports.refresh"

    stats = client.get("/api/admin/queues").json()["queues"]
    reports = next(q for q in stats if q["name"] == "reports")
    assert reports["counts"]["pending"] == 1
    assert reports["by_priority"] == {"HIGH": {"pending": 1}}

    cancelled = client.post(f"/api/admin/jobs/{job['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"


def test_enqueue_validates_its_body(client: TestClient) -> None:
    for body in (
        {},
        {"task": ""},
        {"task": "t", "priority": "URGENT"},
        {"task": "t", "max_attempts": 0},
        {"task": "t", "unknown": 1},
        {"task": "t", "delay": -1},
    ):
        response = client.post("/api/admin/jobs", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"
    not_json = client.post(
        "/api/admin/jobs", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422


def test_pause_and_resume_show_in_the_stats(client: TestClient) -> None:
    client.post("/api/admin/jobs", json={"task": "t", "queue": "q1"})
    assert client.post("/api/admin/queues/q1/pause").json() == {"name": "q1", "paused": True}
    stats = {q["name"]: q for q in client.get("/api/admin/queues").json()["queues"]}
    assert stats["q1"]["paused"] is True
    assert client.post("/api/admin/queues/q1/resume").json()["paused"] is False
    stats = {q["name"]: q for q in client.get("/api/admin/queues").json()["queues"]}
    assert stats["q1"]["paused"] is False


def test_dead_jobs_are_replayed_or_discarded_one_or_by_filter(
    client: TestClient, pg_url: str
) -> None:
    first, second, third = _dead_jobs(pg_url, "doomed", 3)
    dead = client.get("/api/admin/jobs", params={"state": "dead"}).json()["jobs"]
    assert sorted(j["id"] for j in dead) == [first, second, third]
    assert all(j["errors"] for j in dead)

    replayed = client.post(f"/api/admin/jobs/{first}/replay")
    assert replayed.status_code == 200 and replayed.json()["state"] == "pending"
    again = client.post(f"/api/admin/jobs/{first}/replay")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    assert client.post(f"/api/admin/jobs/{second}/discard").json() == {
        "id": second,
        "discarded": True,
    }
    assert client.get(f"/api/admin/jobs/{second}").status_code == 404
    assert client.post(f"/api/admin/jobs/{first}/discard").status_code == 409  # not dead

    assert client.post("/api/admin/jobs/replay", json={"queue": "elsewhere"}).json() == {"count": 0}
    assert client.post("/api/admin/jobs/discard", json={"queue": "doomed"}).json() == {"count": 1}
    assert client.get(f"/api/admin/jobs/{third}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/admin/jobs/999999"),
        ("POST", "/api/admin/jobs/999999/replay"),
        ("POST", "/api/admin/jobs/999999/discard"),
        ("POST", "/api/admin/jobs/999999/cancel"),
    ],
)
def test_an_unknown_engine_job_is_a_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "no job with id 999999"}


def test_a_job_id_out_of_range_is_a_422_and_not_a_number_a_404(client: TestClient) -> None:
    assert client.get("/api/admin/jobs/abc").status_code == 404
    for job_id in ("0", "99999999999999999999"):
        path = f"/api/admin/jobs/{job_id}"
        response = client.get(path)
        assert response.status_code == 422, path
        assert response.json()["error"]["code"] == "invalid_request"


def test_worker_pools_pause_and_resume_through_the_api(client: TestClient, pg_url: str) -> None:
    assert client.get("/api/admin/pools").json() == {"pools": []}
    paused = client.post("/api/admin/pools/etl/pause")
    assert paused.status_code == 200 and paused.json() == {"name": "etl", "paused": True}
    assert client.get("/api/admin/pools").json() == {"pools": [{"name": "etl", "paused": True}]}
    with App(pg_url) as app:
        app.enqueue("reports.refresh")
        assert app.store.jobs_claim("w", 5, 30, None, list(Priority), pool="etl") == []
        resumed = client.post("/api/admin/pools/etl/resume")
        assert resumed.json() == {"name": "etl", "paused": False}
        assert len(app.store.jobs_claim("w", 5, 30, None, list(Priority), pool="etl")) == 1


def test_queue_caps_per_priority_are_listed(client: TestClient, pg_url: str) -> None:
    with App(pg_url) as app:
        app.queue_capacity("reports", 1000, "CRITICAL")
        app.queue_capacity("reports", 50)
    (queue,) = [
        q for q in client.get("/api/admin/queues").json()["queues"] if q["name"] == "reports"
    ]
    assert queue["capacity"] == 50 and queue["capacity_by_priority"] == {"CRITICAL": 1000}
