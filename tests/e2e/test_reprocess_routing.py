"""Routing and field paths end to end: streams' destinations from a real repository service
(an HTTP server started here), event fields at paths of the user's choosing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
