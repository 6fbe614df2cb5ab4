"""Recording checkpoints' done offsets in the dedup store on threads of their own, so that
the next messages are handled while the store writes.

Several writes may be in flight (`depth`), each on its own connection. Their commit points
come back in the order the writes were started, each once its write and every earlier one
are durable: only then may they be committed to the broker.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from ..dedup import Dedup

Points = dict[int, int]


class Marker:
    def __init__(self, dedup: Dedup, topic: str, depth: int = 1) -> None:
        self._dedup = dedup
        self._topic = topic
        self.depth = depth
        self._executor: ThreadPoolExecutor | None = None  # started by the first mark
        self._flight: deque[Future[Points]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    def submit(self, points: Points) -> Points:
        """Start recording `points` as done, after waiting for the oldest write if `depth`
        are in flight; the commit points of the writes that are done."""
        done = self._collect(block=len(self._flight) >= self.depth)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.depth, thread_name_prefix="tailrace-dedup")
        self._flight.append(self._executor.submit(self._mark, points))
        return done

    def _mark(self, points: Points) -> Points:
        self._dedup.done(self._topic, points)
        return points

    def ready(self) -> Points:
        """The commit points of the writes done so far (in order), without waiting."""
        return self._collect(block=False)

    def _collect(self, *, block: bool) -> Points:
        points: Points = {}
        flight = self._flight
        while flight and (block or flight[0].done()):
            future = flight.popleft()
            block = False
            points.update(future.result())  # a failed write raises: nothing after it counts
        return points

    def wait(self) -> Points:
        """The commit points of every write in flight, once all are done; the first error
        of any, after all have ended."""
        points: Points = {}
        error: BaseException | None = None
        while self._flight:
            future = self._flight.popleft()
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
