"""The counters of ``tailrace worker -p N``'s children, served on the parent's ``/metrics``.

The children run the jobs and count them in their own memory; the parent only waits for them.
At each scrape the parent asks every child over a pipe for a snapshot of its counters and adds
them up (a child that does not answer in time, or has exited, is left out of that scrape).
Nothing is written to disk, so nothing is left behind when a worker is killed.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("tailrace.metrics")

Families = list[Metric]


class ChildMetrics(Collector):
    """Made by the parent before it forks `processes` children; each child calls `answer`
    with its index, the parent calls `forked` once every child is started, and serves
    `registry()`. `registries` are the process-local counters (the same objects in every
    process after the fork)."""

    def __init__(
        self,
        processes: int,
        registries: Sequence[CollectorRegistry],
        *,
        timeout_s: float = 2.0,
    ) -> None:
        self._pipes = [multiprocessing.get_context("fork").Pipe() for _ in range(processes)]
        self._registries = list(registries)
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._asked = 0
        self._after_fork: list[Callable[[], object]] = []

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    # -- in a child ----------------------------------------------------------------------

    def answer(self, index: int) -> None:
        """Answer the parent's requests from a daemon thread of child `index`."""
        own = self._pipes[index][1]
        for i, (parent_end, child_end) in enumerate(self._pipes):
            # only the parent may hold a child's far end: its closing is how the parent
            # sees that child exit
            parent_end.close()
            if i != index:
                child_end.close()
        threading.Thread(
            target=self._serve, args=(own,), name="tailrace-metrics-to-parent", daemon=True
        ).start()

    def _serve(self, conn: Connection) -> None:
        while True:
            try:
                asked = conn.recv()
                conn.send((asked, _own(self._registries)))
            except (EOFError, OSError):  # the parent is gone
                return

    # -- in the parent -------------------------------------------------------------------

    def on_forked(self, call: Callable[[], object]) -> None:
        """Have `forked` call `call` (the metrics server's start)."""
        self._after_fork.append(call)

    def forked(self) -> None:
        """Every child is started: close their ends here, then start what waited for it."""
        for _, child_end in self._pipes:
            child_end.close()
        for call in self._after_fork:
            call()

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one scrape at a time: the answers are read in order
            self._asked += 1
            asked = self._asked
            gathered = [_own(self._registries)]
            asking = []
            for parent_end, _ in self._pipes:
                if parent_end.closed:
                    continue
                try:
                    parent_end.send(asked)
                    asking.append(parent_end)
                except OSError:  # that child has exited
                    parent_end.close()
            deadline = time.monotonic() + self._timeout_s
            for parent_end in asking:
                families = self._receive(parent_end, asked, deadline)
                if families is not None:
                    gathered.append(families)
        yield from merge(gathered)

    def _receive(self, conn: Connection, asked: int, deadline: float) -> Families | None:
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not conn.poll(left):
                    log.warning("a worker process did not send its metrics in time")
                    return None
                got, families = conn.recv()
            except (EOFError, OSError):  # that child has exited
                conn.close()
                return None
            if got == asked:  # older answers came too late for their scrape
                return list(families)


def _own(registries: Iterable[CollectorRegistry]) -> Families:
    return [family for registry in registries for family in registry.collect()]


def merge(processes: Iterable[Families]) -> Iterator[Metric]:
    """One family per name, each series the sum over the processes (``_created``: the
    earliest)."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in processes:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            series = values[family.name]
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in series:
                    series[key] = s.value
                elif s.name.endswith("_created"):
                    series[key] = min(series[key], s.value)
                else:
                    series[key] += s.value
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        yield family
