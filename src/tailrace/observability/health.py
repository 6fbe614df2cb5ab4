"""Liveness and readiness: named checks, and the answers every tailrace process gives on
its probe paths.

Two shapes, one set of checks: ``/healthz`` and ``/readyz`` answer ``{"status": "ok"}`` (or
503 with ``{"status": "unavailable", "detail": …}``), as the admin service always has;
``/q/health``, ``/q/health/live`` and ``/q/health/ready`` answer as Quarkus's SmallRye Health
does (``{"status": "UP", "checks": [{"name": …, "status": "UP", "data": {…}}]}``, 503 when
DOWN), for operators coming from the priority-job framework whose scripts read that shape.

Liveness says the process should be left running (a failing one is restarted); readiness
says it can do its work now (the database answers, the consumer has partitions or the
broker answers). A check returns its data when up and raises when down; its message is the
reason shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CheckData = Mapping[str, Any] | None
# Answers the probe paths: (status code, JSON body).
Answer = tuple[int, dict[str, Any]]


class CheckFailed(Exception):
    """A check's way to say it is down with a reason of its own (any exception does)."""


@dataclass
class Check:
    """One named check; `probe` returns data when up, raises when down. A result is kept for
    `cache_s`: probes of several kinds (Kubernetes, a scrape, a curl) must not each cost a
    round trip to the database."""

    name: str
    probe: Callable[[], CheckData]
    cache_s: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)

    def run(self) -> dict[str, Any]:
        """The SmallRye entry of this check: name, UP or DOWN, and data."""
        with self._lock:  # one probe at a time; the others take its answer
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.cache_s:
                return self._last[1]
            try:
                data = dict(self.probe() or {})
                result: dict[str, Any] = {"name": self.name, "status": "UP"}
            except Exception as exc:  # any failure means down; the reason is shown
                data = {"error": str(exc) or type(exc).__name__}
                result = {"name": self.name, "status": "DOWN"}
            if data:
                result["data"] = data
            self._last = (time.monotonic(), result)
            return result


@dataclass
class Health:
    """A process's liveness and readiness checks (none: up while the process answers)."""

    live: Sequence[Check] = ()
    ready: Sequence[Check] = ()

    def report(self, kind: str) -> Answer:
        """The SmallRye answer for `kind`: ``live``, ``ready`` or ``all``."""
        checks = {"live": self.live, "ready": self.ready, "all": [*self.live, *self.ready]}[kind]
        entries = [check.run() for check in checks]
        up = all(e["status"] == "UP" for e in entries)
        return (200 if up else 503), {"status": "UP" if up else "DOWN", "checks": entries}

    def plain(self, kind: str) -> Answer:
        """The ``/healthz`` / ``/readyz`` answer for `kind`: ``live`` or ``ready``."""
        code, body = self.report(kind)
        if code == 200:
            return code, {"status": "ok"}
        down = [
            f"{e['name']}: {e.get('data', {}).get('error', 'down')}"
            for e in body["checks"]
            if e["status"] != "UP"
        ]
        return code, {"status": "unavailable", "detail": "; ".join(down)}

    def answer(self, path: str) -> Answer | None:
        """The answer for a probe path, or None when `path` is not one."""
        route = PATHS.get(path.rstrip("/") or "/")
        if route is None:
            return None
        shape, kind = route
        return self.plain(kind) if shape == "plain" else self.report(kind)


# path -> (shape, kind)
PATHS: dict[str, tuple[str, str]] = {
    "/healthz": ("plain", "live"),
    "/readyz": ("plain", "ready"),
    "/q/health": ("smallrye", "all"),
    "/q/health/live": ("smallrye", "live"),
    "/q/health/ready": ("smallrye", "ready"),
}


def check(name: str, cache_s: float = 1.0) -> Callable[[Callable[[], CheckData]], Check]:
    """Decorator: the function as a `Check` named `name`."""

    def wrap(probe: Callable[[], CheckData]) -> Check:
        return Check(name, probe, cache_s)

    return wrap
