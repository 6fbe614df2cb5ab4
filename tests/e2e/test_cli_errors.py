"""Mistakes a new user makes at the prompt get one line that says what and what to do:
a database that is not there, a bad log level, a setting that is not a number. And
`queues capacity NAME` shows the capacity; only --clear removes it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tailrace import App

from .support import Harness


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database_is_one_line_without_the_password(
    sqlite_harness: Harness,
) -> None:
    url = f"postgresql://someone:hunter2@127.0.0.1:{_closed_port()}/app"
    for command in (("jobs", "list"), ("queues", "stats"), ("db", "migrate")):
        started = time.monotonic()
        result = sqlite_harness.cli("--database-url", url, *command, timeout=60)
        took = time.monotonic() - started
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert "cannot use the database" in line and "Connection refused" in line, line
        assert "hunter2" not in result.stderr and "someone:***@" in line, line
        assert took < 30, f"{command}: {took:.1f} s to say the database is down"


def test_a_sqlite_directory_that_cannot_be_made_is_one_line(
    sqlite_harness: Harness, tmp_path: Path
) -> None:
    """The embedded database under a path that cannot be a directory (a file in the way,
    as an unwritable or immutable parent is for a user): one line naming it, no traceback."""
    (tmp_path / "afile").write_text("x")
    url = f"sqlite:///{tmp_path}/afile/sub/t.db"
    for command in (("reprocessing", "list"), ("db", "migrate")):
        result = sqlite_harness.cli("--database-url", url, *command, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert f"cannot create the directory {tmp_path}/afile/sub" in line, line


def test_a_metrics_port_in_use_is_one_line(sqlite_harness: Harness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for processes in ("1", "2"):
            result = sqlite_harness.cli(
                "--app", "tests.e2e.tasks_app:app", "worker", "-p", processes,
                "--metrics-port", str(port), timeout=60,
            )  # fmt: skip
            assert result.returncode == 2, result.stdout + result.stderr
            line = _one_error_line(result.stderr)
            assert f"127.0.0.1:{port} (--metrics-port)" in line and "in use" in line, line


def test_bad_log_level_is_one_line(sqlite_harness: Harness) -> None:
    for args, env in ((("--log-level", "LOUD"), None), ((), {"TAILRACE_LOG_LEVEL": "LOUD"})):
        result = sqlite_harness.cli(*args, "jobs", "list", env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert "'LOUD'" in line and "WARNING" in line, line
    ok = sqlite_harness.cli("--log-level", "debug", "jobs", "list")
    assert ok.returncode == 0, ok.stderr


def test_non_numeric_service_setting_is_one_line(sqlite_harness: Harness) -> None:
    for name in ("TAILRACE_API_POOL_SIZE", "TAILRACE_API_STATUS_TTL_MS"):
        result = sqlite_harness.cli("serve", "--port", "0", env={name: "eight"})
        assert result.returncode == 2, result.stdout + result.stderr
        line = _one_error_line(result.stderr)
        assert f"{name}='eight'" in line, line


def test_queue_capacity_shows_sets_and_clears_explicitly(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    shown = h.cli("queues", "capacity", "emails")
    assert (shown.returncode, shown.stdout.strip()) == (0, "queue 'emails' capacity: unlimited")
    assert h.cli("queues", "capacity", "emails", "10").returncode == 0
    shown = h.cli("queues", "capacity", "emails")
    assert shown.stdout.strip() == "queue 'emails' capacity: 10 jobs", shown.stderr

    def capacity() -> int | None:
        with App(h.url) as app:
            return {q.name: q.capacity for q in app.queues()}["emails"]

    assert capacity() == 10, "showing it must not clear it"
    both = h.cli("queues", "capacity", "emails", "5", "--clear")
    assert both.returncode == 2 and capacity() == 10
    cleared = h.cli("queues", "capacity", "emails", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert capacity() is None
    zero = h.cli("queues", "capacity", "emails", "0")
    assert zero.returncode == 2 and capacity() is None
