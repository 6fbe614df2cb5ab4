"""`tailrace ingest` and `tailrace reprocess` into PostgreSQL through real worker processes:
each input record is a row exactly once, whatever happens to the files and the workers."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tailrace import App
from tailrace.db import migrate
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus
from tailrace.pipeline.plan import create_job
from tailrace.pipeline.runtime import source_for

from .reprocess_support import run_cli, start_cli, stop_cli, summary, worker_pids
from .support import wait_until


def api_log(n: int, file: int) -> dict[str, Any]:
    return {
        "level": 30,
        "time": 1_743_532_441_581 + n,
        "pid": 46,
        "hostname": f"server-{file}",
        "req": {"id": n, "method": "GET", "url": f"/api/items/{n}"},
        "message": "Processing GET request",
        "processingTimeMs": n % 250,
    }


def write_file(path: Path, ids: range, *, file: int = 0, level: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(orjson.dumps([api_log(n, file) for n in ids]), level))


def distinct_ids(directory: Path) -> set[str]:
    """The oracle: the record ids the input files hold, read back from the files."""
    ids: set[str] = set()
    for path in directory.rglob("*.json.gz"):
        ids.update(
            str(record["req"]["id"]) for record in orjson.loads(gzip.decompress(path.read_bytes()))
        )
    return ids


def table_counts(url: str, table: str = "logs") -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def ingest(url: str, logs: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["ingest", str(logs), "--sink", f"{url}&table=logs", "--json", *extra], url, cwd)


def test_a_reuploaded_file_adds_only_records_not_stored_before(pg_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_file(logs / "a.json.gz", range(0, 2_500))
    write_file(logs / "b.json.gz", range(2_500, 5_000), file=1)
    first = ingest(pg_url, logs, tmp_path)
    assert first.returncode == 0, first.stderr
    assert table_counts(pg_url) == (5_000, 5_000)

    # The same records under other gzip bytes, and a fixed file with 700 more records.
    write_file(logs / "a.json.gz", range(0, 2_500), level=9)
    write_file(logs / "b.json.gz", range(2_500, 5_700), file=1)
    again = ingest(pg_url, logs, tmp_path)
    assert again.returncode == 0, again.stderr
    report = summary(again.stdout)
    assert table_counts(pg_url) == (5_700, 5_700) == (len(distinct_ids(logs)),) * 2
    assert report["sent"] == 700  # only rows actually inserted
    assert report["skipped"] == 5_000
    assert report["balanced"] is True


def test_stale_after_below_the_safe_minimum_is_refused(pg_url: str, tmp_path: Path) -> None:
    write_file(tmp_path / "logs" / "a.json.gz", range(10))
    result = ingest(pg_url, tmp_path / "logs", tmp_path, "--stale-after", "5")
    assert result.returncode == 2
    assert "--stale-after" in result.stderr and "at least 60" in result.stderr
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT to_regclass('logs')").fetchone()
    assert row == (None,)  # nothing was started


def test_a_file_the_reader_could_not_finish_is_recorded_failed(pg_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_file(logs / "good.json.gz", range(0, 1_000))
    whole = gzip.compress(orjson.dumps([api_log(n, 1) for n in range(1_000, 3_000)]), 1)
    (logs / "cut.json.gz").write_bytes(whole[: len(whole) // 2])  # truncated upload
    result = ingest(pg_url, logs, tmp_path)
    assert result.returncode != 0
    with ReprocessingStore(pg_url) as store:
        records = {Path(r.key).name: r for r in store.processed_files()}
    assert records["good.json.gz"].status is IngestStatus.COMPLETED
    assert records["cut.json.gz"].status is IngestStatus.FAILED
    assert records["cut.json.gz"].error


def test_a_table_the_sink_refuses_stops_the_run_before_any_file(
    pg_url: str, tmp_path: Path
) -> None:
    """An operator's own table with a NOT NULL column no log field fills: one line at the
    start, exit 2, and no file claimed, failed or counted as an attempt (before, every file
    failed after its attempts and each had to be reset)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute('CREATE TABLE logs (id text PRIMARY KEY, "tenantId" text NOT NULL)')
    logs = tmp_path / "logs"
    write_file(logs / "a.json.gz", range(0, 100))
    write_file(logs / "b.json.gz", range(100, 200), file=1)
    result = ingest(pg_url, logs, tmp_path)
    assert result.returncode == 2, result.stderr
    assert '"tenantId"' in result.stderr and "NOT NULL" in result.stderr, result.stderr
    migrate(pg_url)  # the run stopped before it touched tailrace's own tables
    with ReprocessingStore(pg_url) as store:
        assert store.processed_files() == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (0,)


def _kill_workers_at_random(cli: subprocess.Popen[str], cwd: Path, kills: int, seed: int) -> int:
    """SIGKILL a running worker `kills` times, each after a random delay (a random point in
    its file, not in step with checkpoints: the delay is the fault, not a synchronisation);
    returns how many kills landed before the run ended."""
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        wait_until(lambda: worker_pids(cwd) or cli.poll() is not None, 60, "no worker started")
        time.sleep(rng.uniform(0.2, 1.5))
        pids = worker_pids(cwd)
        if cli.poll() is not None or not pids:
            break
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
            landed += 1
        except ProcessLookupError:
            pass
    return landed


@pytest.mark.slow
def test_reprocess_into_postgres_survives_random_sigkills(pg_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for index in range(3):
        write_file(logs / f"api-{index}.json.gz", range(index * 40_000, (index + 1) * 40_000))
    oracle = distinct_ids(logs)
    args = ["reprocess", str(logs), "--sink", f"{pg_url}&table=logs", "--json"]
    cli = start_cli([*args, "--checkpoint-every", "0.2"], pg_url, tmp_path)
    try:
        landed = _kill_workers_at_random(cli, tmp_path, kills=3, seed=11)
        stdout, stderr = cli.communicate(timeout=300)
    finally:
        stop_cli(cli)
    assert cli.returncode == 0, stderr
    assert landed >= 1
    report = summary(stdout)
    assert report["status"] == "completed" and report["balanced"] is True
    assert report["sent"] == len(oracle)
    assert table_counts(pg_url) == (len(oracle), len(oracle))  # none lost, none twice


@pytest.mark.slow
def test_ingest_into_postgres_survives_random_sigkills(pg_url: str, tmp_path: Path) -> None:
    """`tailrace ingest` reads its files in its own process: SIGKILL it mid-file, let its
    files go stale (their heartbeat stopped: the rows are aged as the clock would), and the
    next runs resume them from the sink's marks."""
    logs = tmp_path / "logs"
    for index in range(3):
        write_file(logs / f"api-{index}.json.gz", range(index * 40_000, (index + 1) * 40_000))
    oracle = distinct_ids(logs)
    args = ["ingest", str(logs), "--sink", f"{pg_url}&table=logs", "--json"]
    rng = random.Random(5)
    landed = 0
    for _ in range(3):
        cli = start_cli(args, pg_url, tmp_path)
        try:
            wait_until(lambda: _rows(pg_url) > 0 or cli.poll() is not None, 120, "no rows")  # noqa: B023
            time.sleep(rng.uniform(0.1, 1.0))  # a random point of a file: the fault
            if cli.poll() is None:
                cli.kill()
                landed += 1
            cli.communicate(timeout=60)
        finally:
            stop_cli(cli)
        _age_processing(pg_url)
    final = run_cli(args, pg_url, tmp_path)
    assert final.returncode == 0, final.stderr
    assert landed >= 1
    assert table_counts(pg_url) == (len(oracle), len(oracle))  # none lost, none twice
    with ReprocessingStore(pg_url) as store:
        assert {r.status for r in store.processed_files()} == {IngestStatus.COMPLETED}


def _age_processing(url: str) -> None:
    """What the files of a killed run look like once `--stale-after` has passed."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE tailrace_processed_files SET updated_at = updated_at - interval '1 hour'"
            " WHERE status = 'PROCESSING'"
        )


@pytest.mark.slow
def test_a_worker_that_lost_its_file_to_another_writes_nothing(pg_url: str, tmp_path: Path) -> None:
    """Two real workers on one file: the first stops (SIGSTOP: a paused VM, a long GC) until
    its lease runs out and the second resumes the file; woken, the first must not commit."""
    logs = tmp_path / "logs"
    write_file(logs / "big.json.gz", range(150_000))
    oracle = distinct_ids(logs)
    config = ReprocessingConfig(
        source=str(logs), sink=f"{pg_url}&table=logs", max_workers=2, checkpoint_s=0.2
    )
    with App(pg_url) as app, ReprocessingStore(pg_url) as store:
        job = create_job(app, store, config, source_for(config).list_files())
    first = start_cli(["worker", "--job", job.id, "--index", "0"], pg_url, tmp_path)
    second: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: _rows(pg_url) > 0, 60, "no rows")
        first.send_signal(signal.SIGSTOP)
        second = start_cli(["worker", "--job", job.id, "--index", "1"], pg_url, tmp_path)
        # the second claims the file once the first's lease ran out
        wait_until(lambda: _taken_over(pg_url, job.id), 90, "the file never changed hands")
        first.send_signal(signal.SIGCONT)
        _, first_log = first.communicate(timeout=120)
        second.communicate(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
        stop_cli(first)
        if second is not None:
            stop_cli(second)
    assert table_counts(pg_url) == (len(oracle), len(oracle))  # none lost, none twice
    assert "lost the claim" in first_log


def _taken_over(url: str, job_id: str) -> bool:
    """The second worker started the file, and claimed it in the sink's checkpoints."""
    with ReprocessingStore(url) as store:
        if store.files(job_id)[0].worker_index != 1:
            return False
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute("SELECT max(generation) FROM tailrace_sink_checkpoints").fetchone()
        except psycopg.errors.UndefinedColumn:
            return True  # a sink without claims
    return bool(row and row[0] is not None and row[0] >= 2)


def _rows(url: str) -> int:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM logs").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def test_a_run_stopped_mid_file_leaves_it_for_the_next_run(pg_url: str, tmp_path: Path) -> None:
    """SIGTERM (a pod being evicted) while a file is read: the run checkpoints, records the
    file FAILED as stopped, exits 1 and takes no other file; the next run resumes it."""
    logs = tmp_path / "logs"
    # long enough that the SIGTERM lands mid-file however slow or fast the machine
    write_file(logs / "a.json.gz", range(0, 600_000))
    write_file(logs / "b.json.gz", range(600_000, 600_100), file=1)
    oracle = distinct_ids(logs)
    args = ["ingest", str(logs), "--sink", f"{pg_url}&table=logs", "--json"]
    cli = start_cli(args, pg_url, tmp_path)
    try:
        wait_until(lambda: _rows(pg_url) > 0, 120, "no rows")
        cli.send_signal(signal.SIGTERM)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        stop_cli(cli)
    assert cli.returncode == 1, stderr
    [stopped] = summary(stdout)["failed_files"]
    assert stopped["key"].endswith("a.json.gz") and stopped["error"].startswith("stopped")
    assert 0 < _rows(pg_url) < 600_000
    with ReprocessingStore(pg_url) as store:
        statuses = {Path(r.key).name: r.status for r in store.processed_files()}
    assert statuses == {"a.json.gz": IngestStatus.FAILED, "b.json.gz": IngestStatus.PENDING}

    again = run_cli(args, pg_url, tmp_path)

    assert again.returncode == 0, again.stderr
    assert table_counts(pg_url) == (len(oracle), len(oracle))  # resumed: none lost, none twice
