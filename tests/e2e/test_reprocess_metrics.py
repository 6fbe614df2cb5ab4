"""A reprocessing worker serves its own figures and probes over HTTP, and they agree with
what its input holds (an oracle counted from the files, not the worker's own report)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tailrace.db.connection import PROMPT
from tailrace.engine.app import App
from tailrace.engine.store import open_store
from tailrace.observability.worker_server import PromptStore, database_check
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.plan import plan_job
from tailrace.pipeline.worker import ReprocessWorker
from tailrace.pipeline.worker_metrics import serve_worker

from .test_probes import sample


def test_a_reprocessing_worker_serves_its_lines_by_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    good = [b'{"n": %d}' % i for i in range(120)]
    bad = [b"{not json", b'{"n": '] * 3
    (logs / "a.ndjson").write_bytes(b"\n".join(good[:70] + bad) + b"\n")
    (logs / "b.ndjson").write_bytes(b"\n".join(good[70:]) + b"\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(tmp_path / ".tailrace"))
    url = f"sqlite:///{tmp_path}/tailrace.db"
    out = tmp_path / "out.ndjson"
    config = ReprocessingConfig(source=str(logs), sink=out.as_uri(), roots=(str(tmp_path),))
    with App(url) as app, ReprocessingStore(url) as store:
        job = plan_job(app, store, config)
    worker = ReprocessWorker(url, job.id, 0)
    server = serve_worker(
        worker, 0, "127.0.0.1", database_check(PromptStore(lambda: open_store(url, PROMPT)))
    )
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(base + "/readyz").status_code == 200
        assert worker.run() is ReprocessingStatus.COMPLETED
        page = httpx.get(base + "/metrics")
        assert page.status_code == 200
        labels = {"job_id": job.id, "worker_index": "0"}
        events = "tailrace_reprocessing_worker_events_total"
        written = out.read_bytes().splitlines()
        assert sample(page.text, events, **labels, outcome="read") == len(good) + len(bad)
        assert sample(page.text, events, **labels, outcome="sent") == len(written) == len(good)
        assert sample(page.text, events, **labels, outcome="deadlettered") == len(bad)
        files = "tailrace_reprocessing_worker_files"
        assert sample(page.text, files, **labels, state="processed") == 2
        size = sum(p.stat().st_size for p in logs.iterdir())
        assert sample(page.text, "tailrace_reprocessing_worker_bytes", **labels) == size
        assert httpx.get(base + "/q/health/ready").json()["status"] == "UP"
        assert httpx.get(base + "/unknown").status_code == 404
    finally:
        server.close()
