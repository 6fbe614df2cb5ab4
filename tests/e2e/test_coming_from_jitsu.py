"""docs/coming-from/failover-reprocessing.md's migration recipe, step by step, with the real
``tailrace serve``: Jitsu's admin environment as it is (ADMIN_* names, its port, its tokens),
on the PostgreSQL database its admin created tables in, with a job of its still there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples
from tests.e2e.reprocess_support import (
    start_cli,
    stop_cli,
    summary,
    wait_for_checkpoint,
    worker_pids,
)
from tests.e2e.support import CLI, wait_until
from tests.integration.postgres.test_jitsu_tables import JITSU_DDL, JITSU_ROWS
from tests.services import accepts, free_port, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "jitsu-admin-raw-token-0123456789"


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_migration_recipe_with_jitsus_environment_and_database(
    pg_url: str, tmp_path: Path
) -> None:
    # step 0: the database as Jitsu's admin left it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in JITSU_DDL + JITSU_ROWS:
            conn.execute(statement)
    write_samples(tmp_path / "failover", files=3, lines=200, seed=3)
    port = free_port()
    # step 1: Jitsu admin's environment, unchanged, plus the executor (local here)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILRACE_", "DATABASE_"))}
    env.update(
        {
            "ADMIN_DATABASE_URL": pg_url,
            "ADMIN_RAW_AUTH_TOKENS": TOKEN,
            "ADMIN_HTTP_PORT": str(port),
            "ADMIN_LOG_FORMAT": "json",
            "TAILRACE_DATA_DIR": str(tmp_path / ".tailrace"),
            "TAILRACE_API_SOURCE_ROOTS": str(tmp_path),
        }
    )
    log = tmp_path / "serve.log"  # a file, not a pipe nobody reads while it runs
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*CLI, "serve"], cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: accepts(port), 60, "tailrace serve to listen")
        # step 2: the probes and the jobs Jitsu's admin had
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        status, listed = _call(port, "GET", "/api/admin/reprocessing/jobs")
        assert status == 200
        assert {"jitsu-done", "jitsu-paused"} <= {j["id"] for j in listed["jobs"]}
        # step 3: the same start request as before, Jitsu's field names and all
        status, job = _call(
            port,
            "POST",
            "/api/admin/reprocessing/jobs",
            {"local_path": str(tmp_path / "failover"), "dry_run": True, "batch_size": 100},
        )
        assert status == 201, job
        done = wait_until(
            lambda: (
                found
                if (found := _call(port, "GET", f"/api/admin/reprocessing/jobs/{job['id']}")[1])[
                    "status"
                ]
                in ("completed", "failed")
                else None
            ),
            90,
            "the job to finish",
        )
        assert done["status"] == "completed" and done["total_lines"] == 600
    finally:
        stop_process(server, 10)
    # step 4: what is not honoured was said at start
    assert b"ADMIN_LOG_FORMAT is set but not honoured" in log.read_bytes()


def test_a_worker_with_mounted_files_and_no_sink_exits_saying_what_to_set(tmp_path: Path) -> None:
    """Reference 001: a worker that cannot start exits with an error (here: naming the fix)."""
    (tmp_path / "config" / "files").mkdir(parents=True)
    (tmp_path / "config" / "files" / "files.json").write_text(
        json.dumps([{"path": str(tmp_path / "a.ndjson"), "size": 3}])
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAILRACE_", "KAFKA_"))}
    env.update(
        {
            "JOB_ID": "j1",
            "WORKER_INDEX": "0",
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "TAILRACE_WORKER_CONFIG_DIR": str(tmp_path / "config"),
        }
    )
    result = subprocess.run(
        [*CLI, "worker"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "set KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_a_killed_workers_row_never_goes_backwards(pg_url: str, tmp_path: Path) -> None:
    """A worker SIGKILLed while its row is ahead of its last checkpoint is started again
    and goes on from the checkpoint: its row, watched all along, never goes backwards."""
    # files that take seconds to read, checkpointed twice a second: a kill lands mid-file
    samples = write_samples(tmp_path / "logs", files=2, lines=300_000, seed=8, gzip_share=0)
    args = ["reprocess", str(tmp_path / "logs"), "--sink", "null:", "--json", "--workers", "1"]
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    row = conn.execute(
                        "SELECT total_lines, success_count, processed_files"
                        " FROM reprocessing_workers WHERE worker_index = 0"
                    ).fetchone()
                except psycopg.errors.UndefinedTable:  # not migrated yet
                    row = None
                if row is not None:
                    seen.append((int(row[0]), int(row[1]), int(row[2])))
                stop.wait(0.005)

    cli = start_cli([*args, "--checkpoint-every", "0.5"], pg_url, tmp_path)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ReprocessingStore(pg_url) as store:
            job_id = wait_for_checkpoint(store, running=True)

            def ahead() -> bool:  # the row reports lines past every file's checkpoint
                checkpointed = sum(f.counters.lines for f in store.files(job_id))
                rows = store.workers(job_id)
                return bool(rows) and rows[0].counters.lines > checkpointed + 2_000

            wait_until(ahead, 60, "the worker's row to run ahead of its checkpoint")
            os.kill(worker_pids(tmp_path)[0], signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=240)
    finally:
        stop_cli(cli)
        stop.set()
        watcher.join(10)
    assert cli.returncode == 0, stderr
    assert summary(stdout)["balanced"] is True
    for column in range(3):
        values = [s[column] for s in seen]
        assert values == sorted(values), f"column {column} went backwards"
    assert seen[-1][0] == sum(s.lines for s in samples)
    with ReprocessingStore(pg_url) as store:
        (worker,) = store.workers(job_id)
    assert worker.restarts >= 1 and worker.status is ReprocessingStatus.COMPLETED
