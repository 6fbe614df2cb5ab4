"""Prometheus metrics of the circuit-broken producers (`producer.BreakerProducer`) alive in
this process: each one's circuit state and how many messages its spool holds, read at
scrape time. In a registry of their own, served by `tailrace consume --metrics-port`, or
beside an application's own metrics (``generate_latest(producer_metrics.REGISTRY)``).

``tailrace_spool_depth{kind="redis"}`` is what the Kafka workers' ``redis_fallback_queue_length``
measured (see the recording rules in deploy/kubernetes/monitoring)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .spool.circuit import CircuitState

if TYPE_CHECKING:
    from .producer import BreakerProducer

log = logging.getLogger("tailrace.producer.metrics")

_LIVE: weakref.WeakSet[BreakerProducer] = weakref.WeakSet()
_LOCK = threading.Lock()


def track(producer: BreakerProducer) -> None:
    """Report `producer` while it lives (the producer calls this itself)."""
    with _LOCK:
        _LIVE.add(producer)


def forget(producer: BreakerProducer) -> None:
    with _LOCK:
        _LIVE.discard(producer)


def spool_kind(spool: object) -> str:
    """``redis``, ``postgres``, ``disk`` (by the spool's class: any Redis spool is ``redis``),
    or the class name of another spool."""
    name = type(spool).__name__.lower()
    return next((kind for kind in ("redis", "postgres", "disk") if kind in name), name)


class ProducerCollector(Collector):
    """One series per state (1 for the current one, 0 for the others: a state never seen
    still has its series) and the spool's depth, per live producer."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "tailrace_producer_circuit_state",
            "The circuit of a producer: 1 for its current state (closed: to the broker; "
            "open: to the spool; half_open: probing; draining: the spool empties)",
            labels=["spool", "kind", "state"],
        )
        depth = GaugeMetricFamily(
            "tailrace_spool_depth",
            "Messages waiting in a producer's spool for the broker",
            labels=["spool", "kind"],
        )
        with _LOCK:
            producers = list(_LIVE)
        for producer in producers:
            spool = producer.spool
            labels = [spool.name, spool_kind(spool)]
            current = producer.state
            for s in CircuitState:
                state.add_metric([*labels, s.value], 1.0 if s is current else 0.0)
            try:
                depth.add_metric(labels, spool.count())
            except Exception:  # the spool's store is away: the circuit state still tells
                log.warning("reading the depth of spool %s failed", spool.name, exc_info=True)
        yield state
        yield depth


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ProducerCollector())
