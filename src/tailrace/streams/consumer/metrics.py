"""Prometheus metrics of stream consumers, in a registry of their own (served by
`tailrace consume --metrics-port`, with the consumer's probes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ...observability import server
from ...observability.health import Check, CheckFailed, Health

if TYPE_CHECKING:
    from .loop import Consumer

REGISTRY = CollectorRegistry(auto_describe=True)
_LABELS = ["topic", "group"]

HANDLED = Counter(
    "tailrace_stream_messages_handled",
    "Messages the handler succeeded on",
    _LABELS,
    registry=REGISTRY,
)
FAILED = Counter(
    "tailrace_stream_messages_failed",
    "Handler attempts that raised (retried or dead-lettered)",
    _LABELS,
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "tailrace_stream_messages_dead_lettered",
    "Messages sent to the dead-letter topic after their last attempt",
    _LABELS,
    registry=REGISTRY,
)
DEDUPLICATED = Counter(
    "tailrace_stream_messages_deduplicated",
    "Messages skipped because their id was handled within the window",
    _LABELS,
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "tailrace_stream_handler_seconds",
    "Time one handler call took (a batch, with --batch)",
    _LABELS,
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
    registry=REGISTRY,
)
LAG = Gauge(
    "tailrace_stream_consumer_lag",
    "Messages in the partition past what this consumer has read",
    [*_LABELS, "partition"],
    registry=REGISTRY,
)


def observe_many(histogram: Any, seconds: float, count: int) -> None:
    """`count` observations of `seconds` each in one labelled `Histogram` child: what a run
    of fast handler calls timed together adds. One `observe` per call cost more than a
    no-op handler; the client has no bulk call, so this updates its sum and bucket as
    `observe` does (falling back to it if a client version lays them out otherwise)."""
    if count <= 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for _ in range(count):
            histogram.observe(seconds)
        return
    total.inc(seconds * count)
    for i, bound in enumerate(bounds):
        if seconds <= bound:
            buckets[i].inc(count)
            break


def readiness(consumer: Consumer) -> Check:
    """Ready while the consumer holds partitions, or (none assigned: more members than
    partitions, or a rebalance under way) while a broker answers."""

    def probe() -> dict[str, Any]:
        assigned = consumer.assigned()
        if assigned is None:
            raise CheckFailed("the consumer is not running")
        if assigned:
            return {"assigned_partitions": assigned}
        if not consumer.broker_answers():
            raise CheckFailed("no partition assigned and no broker answers")
        return {"assigned_partitions": 0, "broker": "reachable"}

    return Check("kafka", probe, cache_s=2.0)


def serve(
    port: int, addr: str = "127.0.0.1", consumer: Consumer | None = None
) -> server.ProbeServer:
    """Expose the consumer metrics (and the producers' and spools' of this process) on
    ``http://addr:port/metrics``, and the consumer's probes, from background threads."""
    from ..producer_metrics import REGISTRY as PRODUCERS

    health = Health(ready=[readiness(consumer)] if consumer is not None else [])
    return server.serve([REGISTRY, PRODUCERS], health, host=addr, port=port)
