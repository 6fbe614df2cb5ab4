"""Running `tailrace reprocess` as a user would, and an oracle for what it should send:
the sample files read back with the standard library (gzip, json), filtered by hand."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore

from .support import CLI, REPO_ROOT, wait_until


def expected_events(
    files: list[Path],
    *,
    stream_ids: set[str] | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> Counter[bytes]:
    """Every line that parses as a JSON object and passes the filter, as its bytes."""
    kept: Counter[bytes] = Counter()
    for path in files:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except EOFError:  # truncated on purpose: keep what decompresses
                data = _partial_gunzip(data)
        for line in data.split(b"\n"):
            line = line.rstrip(b"\r")
            try:
                event = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            if not isinstance(event, dict):
                continue
            stream = stream_of(event)
            if stream_ids is not None and stream not in stream_ids:
                continue
            if date_from is not None or date_to is not None:
                raw_time = (
                    event.get("messageCreated") or event.get("timestamp") or event.get("receivedAt")
                )
                if not isinstance(raw_time, str):
                    continue
                moment = datetime.fromisoformat(raw_time)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                if (date_from and moment < date_from) or (date_to and moment > date_to):
                    continue
            kept[line] += 1
    return kept


def stream_of(event: dict[str, Any]) -> str | None:
    origin = event.get("origin") or {}
    stream = origin.get("sourceId") or origin.get("source_id") or origin.get("slug")
    return stream if isinstance(stream, str) else None


def _partial_gunzip(data: bytes) -> bytes:
    import zlib

    inflater = zlib.decompressobj(wbits=31)
    return inflater.decompress(data)


def output_lines(path: Path) -> Counter[bytes]:
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_bytes().split(b"\n") if line)


def run_cli(
    args: list[str],
    database_url: str,
    cwd: Path,
    timeout: float = 120,
    environ: Mapping[str, str] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**os.environ, "TAILRACE_DATABASE_URL": database_url, **(environ or {}), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], database_url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env={
            **os.environ,
            "TAILRACE_DATABASE_URL": database_url,
            # the tree under test, not whichever tailrace is installed
            "PYTHONPATH": os.pathsep.join(
                p
                for p in (str(REPO_ROOT / "src"), str(REPO_ROOT), os.environ.get("PYTHONPATH"))
                if p
            ),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def job_id_of(store: ReprocessingStore) -> str | None:
    """The newest job's id, once the CLI under test has created it."""
    try:
        jobs = store.jobs(1)
    except Exception:  # the tables may not exist yet
        return None
    return jobs[0].id if jobs else None


def wait_for_checkpoint(store: ReprocessingStore, *, running: bool = False) -> str:
    """Wait until the job exists and one of its files has a checkpoint (and, with
    `running`, is still being read); returns the job's id."""
    job_id: str = wait_until(lambda: job_id_of(store), 30, "the job was never created")
    wait_until(
        lambda: any(
            f.line > 0 and (not running or f.status is ReprocessingStatus.RUNNING)
            for f in store.files(job_id)
        ),
        60,
        "no file reached a checkpoint",
    )
    return job_id


def worker_pids(cwd: Path) -> list[int]:
    """Worker processes started by the CLI under test (their command line names the job)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            where = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"--job" in cmdline and where == str(cwd):
            pids.append(int(entry.name))
    return pids


def run_killing_a_worker(
    args: list[str], database_url: str, cwd: Path, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; once a file has a checkpoint and is still being read, SIGKILL a worker
    (the executor starts another); return how the run ended."""
    cli = start_cli(args, database_url, cwd)
    try:
        with ReprocessingStore(database_url) as store:
            wait_for_checkpoint(store, running=True)
            pids = worker_pids(cwd)
            assert pids, "no worker process found"
            os.kill(pids[0], signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=timeout)
    finally:
        stop_cli(cli)
    return subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr)


def stop_cli(cli: subprocess.Popen[str]) -> None:
    """However the test went: the process gone and its pipes closed."""
    if cli.poll() is None:
        cli.kill()
    for stream in (cli.stdout, cli.stderr):
        if stream is not None and not stream.closed:
            stream.close()
    cli.wait()


def summary(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data
