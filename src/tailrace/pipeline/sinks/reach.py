"""Is a sink's server there at all? Asked once when a job is planned, so that a broker that is
down or a mistyped host fails the command in seconds with one clear line, rather than each
worker waiting out its delivery timeout on every attempt."""

from __future__ import annotations

import socket

from tailrace.pipeline.sinks.base import SinkError
from tailrace.pipeline.sinks.url import SinkKind, SinkSpec

REACH_TIMEOUT_S = 5.0


class SinkUnreachableError(SinkError):
    """No server of a sink accepted a connection."""


def check_reachable(spec: SinkSpec, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """For a Kafka sink: one of its bootstrap servers accepts a TCP connection, else
    `SinkUnreachableError` naming each server and why. (A connection only: credentials and
    the topic are the producer's to check; other sinks are checked when they open.)"""
    if spec.kind is not SinkKind.KAFKA or not spec.hosts:
        return
    failures = []
    for host, port in spec.hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            failures.append(f"{host}:{port} ({exc.strerror or type(exc).__name__})")
    raise SinkUnreachableError(
        f"kafka sink {spec.display}: no broker reachable: {', '.join(failures)}; start the "
        "broker or fix the host in --sink (nothing was started)"
    )
