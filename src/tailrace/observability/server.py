"""The small HTTP server of the processes that are not the admin service (`tailrace worker`,
`consume`, `outbox relay`): Prometheus metrics on ``/metrics`` (and ``/q/metrics``, where
Quarkus serves them), the probe paths of `health`, and 404 for anything else.

It runs in daemon threads beside the process's work: a slow scrape or probe never holds the
work up, and the work never holds up a liveness probe.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .health import Health

log = logging.getLogger("tailrace.observability.server")

METRICS_PATHS = frozenset({"/metrics", "/q/metrics"})


class ProbeServer:
    """Serves `registries` (each rendered in turn: their names must not collide) and
    `health` on ``host:port`` (port 0: any free port, see `port`)."""

    def __init__(
        self,
        registries: Sequence[CollectorRegistry],
        health: Health | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.registries = list(registries)
        self.health = health or Health()
        handler = type("Handler", (_Handler,), {"server_of": self})
        self._http = ThreadingHTTPServer((host, port), handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="probe-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def metrics(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return b"".join(encoder(registry) for registry in self.registries), content_type


def serve(
    registries: Sequence[CollectorRegistry],
    health: Health | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> ProbeServer:
    """Start a `ProbeServer` in the background and return it."""
    server = ProbeServer(registries, health, host=host, port=port).start()
    log.info("metrics and probes on http://%s:%d/", host, server.port)
    return server


class _Handler(BaseHTTPRequestHandler):
    server_of: ProbeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        owner = self.server_of
        if path in METRICS_PATHS:
            try:
                body, content_type = owner.metrics(self.headers.get("Accept"))
            except Exception as exc:  # a collector's store is away: say so, stay up
                log.warning("a metrics scrape failed", exc_info=True)
                self._json(500, {"detail": f"collecting metrics failed: {exc}"})
                return
            self._send(200, body, content_type)
            return
        answer = owner.health.answer(path)
        if answer is None:
            self._json(404, {"detail": f"not found: {path}"})
            return
        self._json(*answer)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # probes come every few seconds: their access lines would drown the process's own
        pass
