"""The operator's routes on PostgreSQL: keyset pages, job timings, queue lines with internal
queues apart, worker processes, counted and confirmed bulk actions, history, and the
metrics scrape's depth states."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tailrace.engine.app import App, JobSpec
from tailrace.engine.worker import Worker, WorkerOptions
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def _url(client: TestClient) -> str:
    url: str = client.app.state.services.config.database_url  # type: ignore[attr-defined]
    return url


def test_pages_by_keyset_and_a_job_with_its_timings(client: TestClient) -> None:
    with App(_url(client)) as app:

        @app.task(name="op.ok")
        def ok(n: int) -> None:
            pass

        ids = app.enqueue_many([JobSpec("op.ok", {"n": n}, queue="op") for n in range(7)])
        Worker(app, WorkerOptions(queues=["op"], burst=True, poll_s=0.05)).run()
    seen: list[int] = []
    after = None
    while True:
        params: dict[str, str | int] = {"queue": "op", "state": "succeeded", "limit": 3}
        if after:
            params["after"] = after
        page = client.get("/api/admin/jobs", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(ids, reverse=True)
    job = client.get(f"/api/admin/jobs/{ids[0]}").json()
    assert job["timings"]["waited_s"] >= 0 and job["timings"]["ran_s"] >= 0
    found = client.get("/api/admin/jobs", params={"q": str(ids[2])}).json()["jobs"]
    assert [j["id"] for j in found] == [ids[2]]
    bad = client.get("/api/admin/jobs", params={"after": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_queue_lines_split_scheduled_and_hide_reprocessing_queues(client: TestClient) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with App(_url(client)) as app:
        app.enqueue_many([JobSpec("x", queue="lines", priority="CRITICAL", run_at=later)] * 4)
        app.enqueue("x", queue="lines", priority="CRITICAL")
        app.enqueue("x", queue="reprocess:abc123")
    body = client.get("/api/admin/queues/lines").json()
    names = [q["name"] for q in body["queues"]]
    assert "lines" in names and "reprocess:abc123" not in names
    [internal] = [q for q in body["internal"] if q["name"] == "reprocess:abc123"]
    assert internal["reprocessing_job"] == "abc123"
    [lines] = [q for q in body["queues"] if q["name"] == "lines"]
    assert (lines["total"]["pending"], lines["total"]["scheduled"]) == (1, 4)
    assert [p["priority"] for p in lines["priorities"]] == ["CRITICAL"]
    text = client.get("/metrics").text
    assert 'tailrace_queue_depth{priority="critical",queue="lines",state="pending"} 1.0' in text
    assert 'tailrace_queue_depth{priority="critical",queue="lines",state="scheduled"} 4.0' in text
    # read again only once the figures are 5 s old, in the background: a scrape never waits
    with App(_url(client)) as app:
        app.enqueue("x", queue="lines", priority="CRITICAL")
    due = 'tailrace_queue_depth{priority="critical",queue="lines",state="pending"}'
    assert f"{due} 1.0" in client.get("/metrics").text
    wait_until(lambda: f"{due} 2.0" in client.get("/metrics").text, 20, "a fresh read")
    assert "tailrace_queue_stats_age_seconds" in client.get("/metrics").text


def test_the_jobs_list_leaves_the_reprocessing_queues_out_unless_named(
    client: TestClient,
) -> None:
    with App(_url(client)) as app:
        shown = app.enqueue_many([JobSpec("x", queue="engine")] * 2)
        internal = app.enqueue_many([JobSpec("x", queue="reprocess:abc123")] * 3)

    def listed(**params: str | int) -> set[int]:
        page = client.get("/api/admin/jobs", params={"limit": 100, **params})
        assert page.status_code == 200, page.text
        return {j["id"] for j in page.json()["jobs"]}

    assert listed() == set(shown)
    assert listed(offset=0, state="pending") == set(shown)
    assert listed(queue="reprocess:abc123") == set(internal)
    assert listed(q="reprocess:abc123") == set(internal)
    assert listed(internal="true") == {*shown, *internal}

    def counted(**params: str | int) -> int:
        return int(client.get("/api/admin/jobs/count", params=params).json()["count"])

    assert (counted(), counted(queue="reprocess:abc123"), counted(internal="true")) == (2, 3, 5)
    # a bulk action takes what the list shows: cancelling "every job" spares them
    cancelled = client.post("/api/admin/jobs/bulk", json={"action": "cancel", "confirm": True})
    assert cancelled.json()["count"] == 2
    assert {client.get(f"/api/admin/jobs/{i}").json()["state"] for i in internal} == {"pending"}


def test_bulk_actions_are_counted_then_need_confirmation(client: TestClient) -> None:
    with App(_url(client)) as app:
        ids = app.enqueue_many([JobSpec("nobody.runs", queue="bulk", max_attempts=1)] * 5)
        Worker(app, WorkerOptions(queues=["bulk"], burst=True, poll_s=0.05)).run()
    count = client.get("/api/admin/jobs/count", params={"queue": "bulk", "state": "dead"})
    assert count.json() == {"count": 5, "capped": False}
    unconfirmed = client.post("/api/admin/jobs/bulk", json={"action": "retry", "queue": "bulk"})
    assert unconfirmed.status_code == 400
    assert unconfirmed.json()["error"]["code"] == "confirmation_required"
    wrong = client.post(
        "/api/admin/jobs/bulk", json={"action": "retry", "state": "pending", "confirm": True}
    )
    assert wrong.status_code == 400 and "dead" in wrong.json()["error"]["message"]
    client.post("/api/admin/queues/bulk/pause")  # nothing claims the retried jobs
    retried = client.post(
        "/api/admin/jobs/bulk", json={"action": "retry", "queue": "bulk", "confirm": True}
    )
    assert retried.json() == {"action": "retry", "count": 5}
    cancelled = client.post(
        "/api/admin/jobs/bulk", json={"action": "cancel", "queue": "bulk", "confirm": True}
    )
    assert cancelled.json()["count"] == 5
    states = {client.get(f"/api/admin/jobs/{i}").json()["state"] for i in ids}
    assert states == {"cancelled"}
    discarded = client.post(
        "/api/admin/jobs/bulk",
        json={"action": "discard", "state": "cancelled", "queue": "bulk", "confirm": True},
    )
    assert discarded.json()["count"] == 5
    assert client.get(f"/api/admin/jobs/{ids[0]}").status_code == 404


def test_workers_lists_a_live_engine_worker(client: TestClient) -> None:
    with App(_url(client)) as app:
        worker = Worker(app, WorkerOptions(queues=["w1"], concurrency=2, heartbeat_s=0.2))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:

            def listed() -> list[dict[str, object]]:
                return [
                    w
                    for w in client.get("/api/admin/workers").json()["engine"]
                    if w["id"] == worker.id
                ]

            wait_until(lambda: bool(listed()), 15)
            [me] = listed()
            assert me["queues"] == ["w1"] and me["concurrency"] == 2 and me["alive"] is True
        finally:
            worker.stop()
            thread.join(30)
    assert client.get("/api/admin/queues/history").status_code == 200


def test_workers_lists_a_running_reprocessing_jobs_workers(client: TestClient) -> None:
    from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStatus, ReprocessingStore
    from tailrace.pipeline.sources import SourceFile

    files = [SourceFile(f"/logs/f{i}.ndjson", 100) for i in range(2)]
    with ReprocessingStore(_url(client)) as store:
        store.job_create("rw1", ReprocessingConfig(source="/logs", sink="null:"), files, 2)
        store.job_set_status("rw1", ReprocessingStatus.RUNNING)
        store.worker_start("rw1", 1, "proc-1")
    rows = client.get("/api/admin/workers").json()["reprocessing"]
    # every worker row exists from the start: index 0 has not started yet
    assert [(w["job_id"], w["worker_index"], w["status"]) for w in rows] == [
        ("rw1", 0, "pending"),
        ("rw1", 1, "running"),
    ]
