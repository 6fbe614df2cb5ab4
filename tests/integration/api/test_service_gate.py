"""The admin service as deployed: `tailrace serve` (uvicorn) in a subprocess, driven over
real sockets. Who gets past the door before the body is read, how much body anyone may
send, sessions that end at logout, and what the service's own log lines may say."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tailrace.api.auth import Authenticator
from tests.services import free_port, stop_process
from tests.waiting import wait_until

from .conftest import TOKEN

pytestmark = pytest.mark.postgres

OTHER_TOKEN = "another-token-0123456789"
MiB = 1 << 20


@dataclass
class Server:
    base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


def _start(api_env: Path, pg_url: str, log: Path) -> Server:
    port = free_port()
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tailrace", "serve", "--port", str(port)],
            env={**os.environ, "TAILRACE_DATABASE_URL": pg_url},
            cwd=api_env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, log.read_text()
            return False

    wait_until(up, 60, "tailrace serve to be ready")
    return Server(base, port, process, log)


@pytest.fixture
def server(api_env: Path, pg_url: str) -> Iterator[Server]:
    started = _start(api_env, pg_url, api_env / "serve.log")
    try:
        yield started
    finally:
        stop_process(started.process, 10)


def _raw_request(port: int, head: str, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Send a request head and body over a plain socket; return whatever the server
    answered. Sending stops quietly when the server closes its end (it answered early)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answer = bytearray()
        done = threading.Event()

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    answer.extend(chunk)
            except OSError:
                pass
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(head.encode())
            for chunk in body_chunks:
                if done.is_set():
                    break
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed before the body was all sent
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reader.join(30)
        return bytes(answer)


def _status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return status, orjson.loads(body)


def test_a_request_without_a_token_is_refused_before_its_body_is_read(server: Server) -> None:
    """Only the head is sent, announcing 100 MB: the 401 must come without the body."""
    head = (
        "POST /api/admin/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MiB}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status, body = _status_and_json(answer)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"  # type: ignore[index]
    assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")


def test_large_bodies_without_a_token_do_not_grow_the_server(server: Server) -> None:
    """Six clients at once each push 100 MB without a token. Refused at the door, no body
    is buffered: the server's RSS may grow by what six sockets and their 401s cost, far
    below one body (100 MB). The bound, 48 MiB over the resident size before, leaves room
    for allocator noise and the server's own warm-up; reading even one body breaks it."""
    before = server.rss_bytes()
    peak = before
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, server.rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunk = b"x" * MiB
    head = (
        "POST /api/admin/reprocessing/jobs HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * MiB}\r\n\r\n"
    )
    answers: list[bytes] = []

    def client() -> None:
        answers.append(_raw_request(server.port, head, (chunk for _ in range(100))))

    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(120)
    sampling = False
    sampler.join()
    peak = max(peak, server.rss_bytes())
    assert len(answers) == 6
    for answer in answers:
        if answer:  # an answer can be lost to the reset that ends an unread upload
            assert _status_and_json(answer)[0] == 401
    assert any(answers)
    assert peak - before < 48 * MiB, (before, peak)
    # and the service still answers
    assert httpx.get(f"{server.base}/healthz").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused_with_413(server: Server) -> None:
    """No Content-Length to check up front: the limit is counted as the body arrives."""
    head = (
        "POST /api/admin/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunks = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(40))  # 2.5 MiB
    answer = _raw_request(server.port, head, chunks)
    status, body = _status_and_json(answer)
    assert status == 413, answer[:300]
    assert body["error"]["code"] == "too_large"  # type: ignore[index]
    assert "1048576" in body["error"]["message"]  # type: ignore[index]
    # a declared length over the limit is refused before the body is read
    declared = _raw_request(
        server.port,
        "POST /api/admin/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {2 * MiB}\r\n\r\n",
    )
    assert _status_and_json(declared)[0] == 413
    # and a body under the limit still works
    ok = httpx.post(
        f"{server.base}/api/admin/jobs",
        json={"task": "t", "args": {"pad": "y" * 1000}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 201, ok.text


def _signed(payload: bytes) -> str:
    auth = Authenticator((TOKEN, OTHER_TOKEN), 3600)
    encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return encoded + "." + auth._sign(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"exp": "soon"}',
        b'{"exp": null}',
        b'{"exp": 99999999999, "tok": ["a list"]}',
        b'{"exp": 99999999999, "sid": {"x": 1}}',
        b"\xff\xfe",
        b"",
    ],
)
def test_a_signed_but_malformed_session_is_a_401_not_a_500(server: Server, payload: bytes) -> None:
    cookie = {"Cookie": f"tailrace_session={_signed(payload)}"}
    response = httpx.get(f"{server.base}/api/admin/queues", headers=cookie)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    page = httpx.get(f"{server.base}/ui/queues", headers=cookie)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def _login(base: str, token: str) -> httpx.Cookies:
    response = httpx.post(f"{base}/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303 and "tailrace_session" in response.cookies
    return response.cookies


def test_logout_ends_the_session_for_good(server: Server, api_env: Path, pg_url: str) -> None:
    mine, other = _login(server.base, TOKEN), _login(server.base, TOKEN)
    session = {"tailrace_session": mine["tailrace_session"]}
    assert httpx.get(f"{server.base}/api/admin/queues", cookies=session).status_code == 200
    out = httpx.post(
        f"{server.base}/logout",
        cookies=dict(mine),
        headers={"X-CSRF-Token": mine["tailrace_csrf"]},
        follow_redirects=False,
    )
    assert out.status_code == 303
    replayed = httpx.get(f"{server.base}/api/admin/queues", cookies=session)
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "unauthorized"
    page = httpx.get(f"{server.base}/ui/queues", cookies=session, follow_redirects=False)
    assert page.status_code == 303
    other_session = {"tailrace_session": other["tailrace_session"]}
    assert httpx.get(f"{server.base}/api/admin/queues", cookies=other_session).status_code == 200

    # the revocation is in the database: a restarted service (or another process) keeps it
    stop_process(server.process, 10)
    again = _start(api_env, pg_url, api_env / "serve-2.log")
    try:
        assert httpx.get(f"{again.base}/api/admin/queues", cookies=session).status_code == 401
        assert httpx.get(f"{again.base}/api/admin/queues", cookies=other_session).status_code == 200
    finally:
        stop_process(again.process, 10)


def test_the_openapi_document_needs_a_token_as_documented(server: Server) -> None:
    refused = httpx.get(f"{server.base}/openapi.json")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    served = httpx.get(f"{server.base}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200 and "/api/admin/queues" in served.json()["paths"]
    assert httpx.get(f"{server.base}/healthz").status_code == 200
    assert httpx.get(f"{server.base}/readyz").status_code == 200
    assert httpx.get(f"{server.base}/metrics").status_code == 401
    assert httpx.get(f"{server.base}/no/such/path").status_code == 401


def test_secrets_in_urls_never_reach_the_log(server: Server) -> None:
    secrets = ["tok-SECRET-0001", "pw-SECRET-0002", "key-SECRET-0003", "cs-SECRET-0004"]
    httpx.get(f"{server.base}/api/admin/queues?token={secrets[0]}&password={secrets[1]}")
    httpx.get(f"{server.base}/healthz?api_key={secrets[2]}&x=1")
    httpx.get(
        f"{server.base}/api/admin/reprocessing/jobs/abc/logs/view?client_secret={secrets[3]}",
        follow_redirects=False,
    )
    httpx.get(
        f"{server.base}/api/admin/queues?access_token={secrets[0]}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    def logged() -> bool:
        return server.log.read_text().count("/healthz?") >= 1 and "access_token=" in (
            server.log.read_text()
        )

    wait_until(logged, 10, "the access log lines")
    stop_process(server.process, 10)
    text = server.log.read_text()
    for secret in [*secrets, TOKEN]:
        assert secret not in text, text
    assert "token=[redacted]" in text and "api_key=[redacted]" in text
    assert "x=1" in text  # what is not a secret stays readable


def test_the_workers_the_service_starts_run_nicer_than_it(
    client: TestClient, samples: list[object], api_env: Path
) -> None:
    """On a shared machine the service's answers must not queue behind its own workers."""
    started = client.post(
        "/api/admin/reprocessing/jobs",
        json={"path": str(api_env / "logs"), "sink": "null:", "max_workers": 2},
    )
    assert started.status_code == 201, started.text
    executor = client.app.state.services.executor  # type: ignore[attr-defined]
    workers = executor._workers[started.json()["id"]]
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    for pid in workers.pids.values():
        # a worker takes far longer to import than this takes to ask (a zombie answers too)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + 10)


def test_an_ended_session_is_refused_by_every_process_on_either_store(
    database_url: str,
) -> None:
    """Two authenticators on one database stand for two server processes (or a restart)."""
    from tailrace.api.sessions import Revocations
    from tailrace.engine.app import App

    with App(database_url) as app:
        app.store.migrate()
    first = Authenticator((TOKEN,), 3600, Revocations(database_url, refresh_s=0))
    second = Authenticator((TOKEN,), 3600, Revocations(database_url, refresh_s=0))
    try:
        ended, _ = first.open_session(0)
        kept, _ = first.open_session(0)
        second.revocations.refresh()
        assert second.session_valid(ended) and second.session_valid(kept)
        first.end_session(ended)
        assert not first.session_valid(ended)  # at once where it ended
        assert second.session_valid(ended)  # the other has not looked yet
        second.revocations.refresh()
        assert not second.session_valid(ended)
        assert second.session_valid(kept)
    finally:
        first.revocations.close()
        second.revocations.close()
