"""The log lines of real processes, parsed: a worker's (JSON in a pipe, text when asked) with
the application's own lines carrying the job id, and `serve`'s access lines as fields."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

from tailrace import JobState
from tests.services import free_port

from .support import CLI, REPO_ROOT, Harness, wait_until

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) +(?P<logger>[\w.]+): (?P<rest>.*)$"
)


def test_a_workers_lines_are_json_with_the_job_id_on_the_applications_lines(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    job_id = h.app.enqueue("say", {"text": "hello from a job"})
    w = h.start_worker("--burst", "--poll", "0.1")
    assert w.wait_exit(30) == 0, w.tail()
    assert h.job(job_id).state is JobState.SUCCEEDED
    entries = [json.loads(line) for line in w.text().splitlines()]  # every line is JSON
    for entry in entries:
        assert {"timestamp", "level", "service", "message", "logger"} <= set(entry), entry
        assert entry["service"] == "tailrace-worker"
    (said,) = [e for e in entries if e["logger"] == "e2e.application"]
    assert (said["message"], said["job_id"], said["chars"]) == ("hello from a job", job_id, 16)
    assert "\x1b[" not in w.text()


def test_text_format_when_asked(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.app.enqueue("say", {"text": "plain words"})
    w = h.start_worker("--burst", "--poll", "0.1", env={"TAILRACE_LOG_FORMAT": "text"})
    assert w.wait_exit(30) == 0, w.tail()
    parsed = [TEXT_LINE.match(line) for line in w.text().splitlines()]
    assert all(parsed), w.text()
    said = [m for m in parsed if m and m["logger"] == "e2e.application"]
    assert said and said[0]["rest"].startswith("plain words  ") and "job_id=" in said[0]["rest"]
    assert "\x1b[" not in w.text()  # not a terminal: no colours


def test_serve_access_lines_are_json_fields(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.stderr"
    env = {
        "PATH": "/usr/bin:/bin",
        "TAILRACE_DATA_DIR": str(tmp_path / "data"),
        "TAILRACE_API_TOKENS": "a-token-of-at-least-thirty-two-characters",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*CLI, "--database-url", f"sqlite:///{tmp_path}/t.db", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def healthy() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?token=s3cr3t"):
                        return True
                except OSError:
                    return server.poll() is not None

            wait_until(healthy, 30, lambda: log_path.read_text())
            assert server.poll() is None, log_path.read_text()

            def access() -> list[dict[str, object]]:
                lines = [
                    json.loads(line)
                    for line in log_path.read_text().splitlines()
                    if line.startswith("{")
                ]
                return [e for e in lines if e.get("logger") == "uvicorn.access"]

            (line, *_) = wait_until(access, 10, lambda: log_path.read_text())
        finally:
            server.terminate()
            server.wait(15)
    text = log_path.read_text()
    assert "\x1b[" not in text and "s3cr3t" not in text
    assert all(line.startswith("{") for line in text.splitlines() if line), text
    assert line["method"] == "GET" and line["status"] == 200
    assert line["path"] == "/healthz?token=[redacted]" and line["service"] == "tailrace-serve"
