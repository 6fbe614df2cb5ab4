"""A source file swapped for a symbolic link between planning and reading: the worker
opens it, sees where it really leads, and refuses it; nothing of the outside file reaches
the sink or the dead letters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tailrace.engine.app import App
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.plan import plan_job
from tailrace.pipeline.worker import ReprocessWorker

SECRET = b'{"secret": "outside the root"}'


@pytest.mark.slow  # the refused file is retried (engine backoff) before it fails
@pytest.mark.parametrize("into", ["outside", "data directory"])
def test_a_file_swapped_for_a_symlink_after_planning_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, into: str
) -> None:
    root = tmp_path / "root"
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "a.ndjson").write_bytes(b'{"n": 1}\n')
    (logs / "b.ndjson").write_bytes(b'{"n": 2}\n')
    outside = tmp_path / "outside.ndjson"
    outside.write_bytes(SECRET + b"\n")
    data = root / ".tailrace"
    data.mkdir()
    (data / "api-token").write_bytes(SECRET + b"\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(data))
    url = f"sqlite:///{tmp_path}/tailrace.db"
    out = root / "out.ndjson"
    config = ReprocessingConfig(source=str(logs), sink=out.as_uri(), roots=(str(root),))
    with App(url) as app, ReprocessingStore(url) as store:
        job = plan_job(app, store, config)
        # the race, set up deterministically: planned, then swapped, then read
        (logs / "b.ndjson").unlink()
        target = outside if into == "outside" else data / "api-token"
        os.symlink(target, logs / "b.ndjson")

        status = ReprocessWorker(url, job.id, 0, lease_s=2.0).run()

        files = {Path(f.url).name: f for f in store.files(job.id)}
    assert files["a.ndjson"].status is ReprocessingStatus.COMPLETED
    assert files["b.ndjson"].status is not ReprocessingStatus.COMPLETED
    assert "refusing to read" in (files["b.ndjson"].error or "")
    assert status is not ReprocessingStatus.COMPLETED
    written = out.read_bytes() if out.exists() else b""
    assert written == b'{"n": 1}\n'
    for path in root.rglob("*deadletter*"):
        assert b"secret" not in path.read_bytes()
