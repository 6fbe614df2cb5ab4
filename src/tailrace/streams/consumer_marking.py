"""Marking handled ids on threads of their own, so that the next messages are handled while
the dedup store writes the last ones.

Several marks may be in flight (`depth`), each on its own connection: per id, the store's
index work, not the round trip, is what a mark costs, and a store with more than one core
does it faster side by side. Their commit points come back in the order the marks were
started, each once its mark and every earlier one are durable: only then may they be
committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from .dedup import Dedup

Points = dict[int, int]


class Marker:
    def __init__(self, dedup: Dedup, depth: int = 1) -> None:
        self._dedup = dedup
        self.depth = depth
        self._executor: ThreadPoolExecutor | None = None  # started by the first mark
        self._flight: deque[tuple[Future[Points], list[str]]] = deque()

    @property
    def in_flight(self) -> Iterator[list[str]]:
        """The ids being marked (duplicates already), one list per mark."""
        return (ids for _, ids in self._flight)

    def submit(self, ids: list[str], points: Points) -> Points:
        """Start marking `ids`, after waiting for the oldest mark if `depth` are in flight;
        the commit points of the marks that are done."""
        done = self._collect(block=len(self._flight) >= self.depth)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.depth, thread_name_prefix="tailrace-dedup")
        self._flight.append((self._executor.submit(self._mark, ids, points), ids))
        return done

    def _mark(self, ids: list[str], points: Points) -> Points:
        if ids:
            self._dedup.mark(ids)
        return points

    def ready(self) -> Points:
        """The commit points of the marks done so far (in order), without waiting."""
        return self._collect(block=False)

    def _collect(self, *, block: bool) -> Points:
        points: Points = {}
        flight = self._flight
        while flight and (block or flight[0][0].done()):
            future, _ = flight.popleft()
            block = False
            points.update(future.result())  # a failed mark raises: nothing after it counts
        return points

    def wait(self) -> Points:
        """The commit points of every mark in flight, once all are done; the first error
        of any, after all have ended."""
        points: Points = {}
        error: BaseException | None = None
        while self._flight:
            future, _ = self._flight.popleft()
            try:
                found = future.result()
            except BaseException as exc:
                error = error or exc
            else:
                if error is None:
                    points.update(found)
        if error is not None:
            raise error
        return points

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
