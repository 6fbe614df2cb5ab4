"""The null sink: counts what it is given and keeps nothing, for measuring the rest."""

from __future__ import annotations

from collections.abc import Sequence

from tailrace.pipeline.sinks.base import FileMark, Keys, Routes, SinkBase


class NullSink(SinkBase):
    """Every event is "delivered" as soon as it is written."""

    name = "null:"

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        counters = self._counters
        counters.events += len(batch)
        counters.bytes += sum(map(len, batch))

    def flush(self, mark: FileMark | None = None) -> None:
        self._check_open()

    def close(self) -> None:
        self._closed = True
