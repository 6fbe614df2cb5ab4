"""A sink that sends at most a number of events (Jitsu's ``limit``), and counts the rest as
skipped for that reason, so that every line read is still accounted for."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tailrace.pipeline.sinks.base import FailedDelivery, FileMark, Keys, Routes, Sink, SinkCounters

LIMIT_REACHED = "limit reached"


class LimitedSink:
    """`inner`, taking the first `budget` events written through it and no more."""

    def __init__(self, inner: Sink, budget: int) -> None:
        self.inner = inner
        self.budget = max(0, budget)
        self.exactly_once = inner.exactly_once
        self._dropped = 0

    @property
    def counters(self) -> SinkCounters:
        return self.inner.counters

    @property
    def exhausted(self) -> bool:
        return self.budget == 0

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        taken = min(len(batch), self.budget)
        self._dropped += len(batch) - taken
        self.budget -= taken
        if taken == len(batch):
            self.inner.write(batch, keys=keys, routes=routes)
        elif taken:
            self.inner.write(
                batch[:taken],
                keys=keys[:taken] if keys is not None else None,
                routes=routes[:taken] if routes is not None else None,
            )

    def flush(self, mark: FileMark | None = None) -> None:
        self.inner.flush(mark)

    def committed(self, key: str) -> FileMark | None:
        return self.inner.committed(key)

    def take_failed(self) -> list[FailedDelivery]:
        return self.inner.take_failed()

    def stop_when(self, event: threading.Event) -> None:
        self.inner.stop_when(event)

    def take_skipped(self) -> dict[str, int]:
        skipped = self.inner.take_skipped()
        if self._dropped:
            skipped[LIMIT_REACHED] = skipped.get(LIMIT_REACHED, 0) + self._dropped
            self._dropped = 0
        return skipped

    def close(self) -> None:
        self.inner.close()
