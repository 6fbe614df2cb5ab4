"""The engine worker's metrics and probe server: its counters and the queue gauges on
``/metrics``, and probes that stay prompt while the database is away."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..engine.metrics import REGISTRY, QueueCollector
from ..engine.store import Store
from . import server
from .health import Check, CheckFailed, Health
from .server import ProbeServer

if TYPE_CHECKING:
    from .child_metrics import ChildMetrics

log = logging.getLogger("tailrace.metrics")
T = TypeVar("T")


class PromptStore:
    """A store opened on first use with a prompt policy and opened again after a failure:
    a scrape or a probe must answer within its timeout however long an outage lasts (the
    worker's own store waits outages out)."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None
        self._lock = threading.Lock()

    def run(self, op: Callable[[Store], T]) -> T:
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._open()
                return op(self._store)
            except Exception:
                if self._store is not None:
                    self._store.close()
                self._store = None
                raise


class _OutageTolerantQueueCollector(Collector):
    """The queue gauges through a `PromptStore`; while the database is away they are left
    out of the scrape, and the worker's counters are still served."""

    def __init__(self, store: PromptStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depths, known = self.store.run(
                lambda s: (s.queue_depths(), [q.name for q in s.queues_list()])
            )
        except Exception as exc:
            log.warning("the queue gauges are left out of this scrape: %s", exc)
            return
        yield from QueueCollector.render(depths, known)


def serve(
    port: int,
    open_store: Callable[[], Store],
    addr: str = "127.0.0.1",
    *,
    pool: Mapping[str, Any] | None = None,
    pool_name: str | None = None,
    children: ChildMetrics | None = None,
) -> ProbeServer:
    """Expose the worker's metrics (its own, and the object jobs' it runs) on
    ``http://addr:port/metrics`` and its probes beside them (ready while the database
    answers), from background threads. `open_store` opens a store with a prompt policy.
    `pool` (queues, priorities, concurrency…) is shown by the liveness check ``scheduler``,
    where the priority-job framework's runbooks look (``.checks[] | select(.name |
    contains("scheduler"))``); with `pool_name`, whether that pool is paused now (read at
    each probe, left out while the database is away: liveness does not hang on it).
    With `children` (``worker -p N``), the counters are those of every child process, added
    up at each scrape (the parent runs no job)."""
    store = PromptStore(open_store)
    # beside the counters, not among them: a child's snapshot of its counters must not
    # read the queues from the database
    gauges = CollectorRegistry(auto_describe=True)
    gauges.register(_OutageTolerantQueueCollector(store))

    def scheduler() -> dict[str, Any]:
        data = dict(pool or {})
        if pool_name is not None:
            try:
                listed = store.run(lambda s: s.pools_list())
            except Exception:  # the readiness check says why
                return data
            data["paused"] = any(p.name == pool_name and p.paused for p in listed)
        return data

    live = [Check("scheduler", scheduler, cache_s=0.0)]
    health = Health(live=live, ready=[database_check(store)])
    counters = [children.registry()] if children is not None else counter_registries()
    if children is not None:
        # bound now (a taken port fails the command before any child starts), served once
        # the children are forked: a thread of ours busy in a lock at the fork would leave
        # that lock held for good in the child (`children.forked` starts it)
        probe = ProbeServer([*counters, gauges], health, host=addr, port=port)
        children.on_forked(probe.start)
        log.info("metrics and probes on http://%s:%d/", addr, probe.port)
        return probe
    return server.serve([*counters, gauges], health, host=addr, port=port)


def counter_registries() -> list[CollectorRegistry]:
    """The registries a worker process counts its jobs in (the engine's and the object
    jobs')."""
    from ..objects import metrics as objects_metrics

    return [REGISTRY, objects_metrics.REGISTRY]


def database_check(store: PromptStore) -> Check:
    """Ready while the database answers and its schema is current."""

    def probe() -> dict[str, Any]:
        pending = store.run(lambda s: s.migrations_pending())
        if pending:
            raise CheckFailed(f"migrations pending: {', '.join(pending)}")
        return {}

    return Check("database", probe, cache_s=2.0)
