"""What a new user sees in the first hour with the log pipeline: `sample-logs` names the
stream ids it wrote, a filter that matched nothing says so (and fails with --strict), and
the summary says where the bad lines went."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

from tailrace.pipeline.jobs import ReprocessingStatus, ReprocessingStore
from tailrace.pipeline.samples import write_samples

from .reprocess_support import (
    expected_events,
    run_cli,
    start_cli,
    stop_cli,
    stream_of,
    wait_for_checkpoint,
    worker_pids,
)
from .support import wait_until


def _sample(tmp_path: Path, url: str, *extra: str) -> tuple[list[Path], str]:
    result = run_cli(
        ["sample-logs", "logs", "--files", "3", "--lines", "300", "--streams", "3", *extra],
        url,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return sorted((tmp_path / "logs").iterdir()), result.stdout


def test_sample_logs_prints_the_stream_ids_it_used(tmp_path: Path) -> None:
    paths, stdout = _sample(tmp_path, f"sqlite:///{tmp_path}/t.db")
    match = re.search(r"^Stream ids: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    printed = set(match.group(1).split(", "))
    in_data = {stream_of(json.loads(line)) for line in expected_events(paths)}
    assert printed == in_data, "the ids printed are exactly those in the files"


def test_a_filter_that_matched_nothing_says_so_and_fails_with_strict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    _sample(tmp_path, url)
    args = ["reprocess", "logs", "--sink", "null:", "--stream-id", "no-such-stream"]
    plain = run_cli(args, url, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "the filters matched none of the 900 events read" in plain.stderr, plain.stderr
    assert "--stream-id no-such-stream" in plain.stderr

    strict = run_cli([*args, "--strict", "--json"], url, tmp_path)
    assert strict.returncode == 1, strict.stderr
    report = json.loads(strict.stdout)
    assert report["filters_matched_nothing"] is True
    assert (report["matched"], report["filtered"], report["status"]) == (0, 900, "completed")

    # a filter that matches some events is not an error, even with --strict
    stream = next(
        stream_of(json.loads(line)) for line in expected_events([*tmp_path.glob("logs/*")])
    )
    some = run_cli(
        ["reprocess", "logs", "--sink", "null:", "--stream-id", str(stream), "--strict", "--json"],
        url,
        tmp_path,
    )
    assert some.returncode == 0, some.stderr
    assert json.loads(some.stdout)["filters_matched_nothing"] is False


def test_the_summary_names_the_dead_letter_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    _sample(tmp_path, url, "--bad-lines")
    result = run_cli(["reprocess", "logs", "--sink", "file:out.ndjson"], url, tmp_path)
    assert result.returncode == 0, result.stderr
    deadletter = tmp_path / "out.deadletter.ndjson"
    assert deadletter.stat().st_size > 0
    line = next(x for x in result.stderr.splitlines() if "dead-letter output" in x)
    assert str(deadletter) in line, line

    as_json = run_cli(["reprocess", "logs", "--sink", "file:out2.ndjson", "--json"], url, tmp_path)
    report = json.loads(as_json.stdout)
    assert report["deadletter"] == str(tmp_path / "out2.deadletter.ndjson")

    # the null: sink keeps no bad line: the summary says so instead of naming "null:" as a place
    # with the Kubernetes executor set (for `tailrace serve`), the command says its workers
    # are local rather than letting them pass for pods
    discarded = run_cli(
        ["reprocess", "logs", "--sink", "null:"], url, tmp_path, TAILRACE_EXECUTOR="kubernetes"
    )
    assert discarded.returncode == 0, discarded.stderr
    said = " ".join(discarded.stderr.split())
    assert "dead-letter output" not in said
    assert "bad lines were counted and discarded" in said
    assert "this command starts its workers on this machine" in said
    # the header is one line even in a pipe (rich cut it at 80 columns)
    header = discarded.stderr.splitlines()[0]
    assert header.startswith("job ") and header.endswith(f"(database {url})"), header


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie has exited; only its parent's wait is missing
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def test_sigterm_stops_reprocess_like_ctrl_c_leaving_no_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    write_samples(tmp_path / "logs", 3, 60_000, seed=3)
    args = ["reprocess", "logs", "--sink", "file:out.ndjson", "--json", "--workers", "2"]
    cli = start_cli([*args, "--checkpoint-every", "0.1"], url, tmp_path)
    try:
        with ReprocessingStore(url) as store:
            job_id = wait_for_checkpoint(store, running=True)
        workers = worker_pids(tmp_path)
        assert workers, "no worker process found"
        cli.send_signal(signal.SIGTERM)  # to the CLI alone, as systemd or kill would
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        stop_cli(cli)
    assert cli.returncode == 1, stderr
    report = json.loads(stdout)
    assert (report["job_id"], report["status"], report["balanced"]) == (job_id, "cancelled", True)
    wait_until(lambda: all(_gone(p) for p in workers), 10, f"workers {workers} outlived the CLI")
    assert worker_pids(tmp_path) == []
    with ReprocessingStore(url) as store:
        assert store.job(job_id).status is ReprocessingStatus.CANCELLED


def test_a_kafka_sink_that_cannot_be_reached_fails_the_command_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    _sample(tmp_path, url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = run_cli(
        ["reprocess", "logs", "--sink", f"kafka://127.0.0.1:{port}/events"], url, tmp_path
    )
    took = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"127.0.0.1:{port} (Connection refused)" in lines[0], lines[0]
    assert took < 30, f"took {took:.1f} s"
    with ReprocessingStore(url) as store:
        assert store.jobs(5) == [], "nothing may be started"
