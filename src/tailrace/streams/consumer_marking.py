"""Marking handled ids on a thread of its own, so that the next batch is handled while the
dedup store writes the last one: at 5,000 ids a batch the two round trips to PostgreSQL
took as long as handling the batch."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from .dedup import Dedup

Points = dict[int, int]


class Marker:
    """One mark in flight at a time. A batch's commit points travel with its ids and come
    back from `wait()` once they are marked: only then may they be committed."""

    def __init__(self, dedup: Dedup) -> None:
        self._dedup = dedup
        self._executor: ThreadPoolExecutor | None = None  # started by the first mark
        self._future: Future[Points] | None = None
        self.in_flight: list[str] = []  # ids being marked: duplicates already

    def submit(self, ids: list[str], points: Points) -> None:
        """Start marking `ids`; `wait()` for the previous mark first."""
        assert self._future is None, "one mark at a time"
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tailrace-dedup")
        self.in_flight = ids
        self._future = self._executor.submit(self._mark, ids, points)

    def _mark(self, ids: list[str], points: Points) -> Points:
        if ids:
            self._dedup.mark(ids)
        return points

    def wait(self) -> Points:
        """The commit points of the mark in flight, once it is done (its error if it failed)."""
        future, self._future = self._future, None
        if future is None:
            return {}
        try:
            return future.result()
        finally:
            self.in_flight = []

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
