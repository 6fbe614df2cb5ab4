"""Routing and field paths end to end: streams' destinations from a real repository service
(an HTTP server started here), event fields at paths of the user's choosing."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .reprocess_support import output_lines, run_cli, summary

TOKEN = "repo-token-Hq2"
STREAMS = [
    {"id": "a", "destinations": [{"id": "d1", "connectionId": "conn-1"}]},
    {"id": "b", "destinations": []},
]


class _Repository(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(STREAMS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def repository() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Repository)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/streams"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_streams_route_by_the_repository_and_fields_follow_their_paths(
    repository: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"meta": {"stream": stream}, "at": f"2026-11-20T10:00:0{n}Z", "uid": n})
        for n, stream in enumerate(["a", "b", "c", "a", "a"])
    ]
    lines.append(json.dumps({"meta": {"stream": "a"}, "at": "2026-11-21T00:00:00Z"}))
    (tmp_path / "in.ndjson").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.ndjson"
    args = ["reprocess", str(tmp_path / "in.ndjson"), "--sink", f"file://{out}", "--json"]
    args += ["--stream-id-field", "meta.stream", "--time-field", "at", "--to", "2026-11-20T23:59"]

    result = run_cli(
        args,
        f"sqlite:///{tmp_path}/t.db",
        tmp_path,
        REPOSITORY_URL=repository,
        REPOSITORY_AUTH_TOKEN=TOKEN,
    )

    assert result.returncode == 0, result.stderr
    report = summary(result.stdout)
    assert set(output_lines(out)) == {lines[0].encode(), lines[3].encode(), lines[4].encode()}
    assert (report["sent"], report["skipped"], report["filtered"]) == (3, 2, 1)
    assert report["skip_reasons"] == {
        "stream 'b' has no destinations": 1,
        "stream 'c' unknown to the repository": 1,
    }
    assert report["balanced"] is True
    assert TOKEN not in result.stdout + result.stderr


class _Switchable(BaseHTTPRequestHandler):
    """A repository that answers as `server.answer` says ("ok", 401, 503), counting requests."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests += 1
        if server.answer != "ok":
            self.send_response(int(server.answer))
            self.end_headers()
            return
        body = json.dumps(STREAMS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serve(port: int, answer: str) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", port), _Switchable)
    server.answer, server.requests = answer, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _routed_inputs(tmp_path: Path) -> list[bytes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    every = []
    for f in range(3):
        lines = [
            json.dumps({"origin": {"sourceId": stream}, "messageId": f"{f}-{n}"}).encode()
            for n, stream in enumerate(["a", "b", "c"] * 200)
        ]
        (logs / f"{f}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        every += lines
    return every


@pytest.mark.parametrize("fault", ["401", "503", "closed port"])
def test_a_repository_that_cannot_be_read_sends_nothing_and_fails_the_job_resumably(
    tmp_path: Path, fault: str
) -> None:
    every = _routed_inputs(tmp_path)
    port = _free_port()
    url = f"sqlite:///{tmp_path}/t.db"
    out = tmp_path / "out.ndjson"
    env = {
        "REPOSITORY_URL": f"http://127.0.0.1:{port}/api/streams",
        "REPOSITORY_AUTH_TOKEN": TOKEN,
        "TAILRACE_REPOSITORY_RETRIES": "2",
        "TAILRACE_REPOSITORY_BACKOFF_S": "0.05",
    }
    args = ["reprocess", str(tmp_path / "logs"), "--sink", f"file://{out}", "--json"]
    with contextlib.ExitStack() as stack:
        server = None if fault == "closed port" else stack.enter_context(_serve(port, fault))
        result = run_cli([*args, "--workers", "1"], url, tmp_path, environ=env)

    assert result.returncode == 1, result.stdout + result.stderr
    report = summary(result.stdout)
    assert report["status"] == "failed"
    assert report["error"].startswith("routing: "), report["error"]
    assert "nothing was sent unrouted" in report["error"]
    assert (report["sent"], report["lines"]) == (0, 0)
    assert output_lines(out) == Counter(), "an event went out without its route"
    [failed] = report["failed_files"]
    assert failed["error"].startswith("routing: ")
    assert f"repository http://127.0.0.1:{port}/api/streams" in failed["error"]
    assert report["files"].get("completed", 0) == 0
    if fault == "401":
        assert "rejected the token" in failed["error"]
        assert server is not None and server.requests == 1  # a refused token is not retried
    elif fault == "503":
        assert "(3 attempts): HTTP 503" in failed["error"]
        assert server is not None and server.requests == 3  # the first try and 2 retries
    else:
        assert "(3 attempts)" in failed["error"]
    assert TOKEN not in result.stdout + result.stderr

    # the repository answers again: the job resumes and routes every event
    with _serve(port, "ok"):
        resumed = run_cli(
            ["reprocessing", "resume", report["job_id"], "--json"], url, tmp_path, environ=env
        )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = summary(resumed.stdout)
    assert final["status"] == "completed"
    assert (final["sent"], final["skipped"], final["lines"]) == (600, 1200, 1800)
    assert output_lines(out) == Counter(line for line in every if b'"sourceId": "a"' in line)
