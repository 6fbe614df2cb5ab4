"""Taking a consumed batch's ids in the dedup store slice by slice, the next slice on a
thread of its own while the consumer handles the current one: at 5,000 ids a batch the
store's work alone took as long as handling the batch, and the consumer waited for it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ..dedup import Dedup
from .message import Message

# (start, stop, ids of the slice that are duplicates) per slice of a batch
Slice = tuple[int, int, set[str]]


class Lookups:
    def __init__(self, dedup: Dedup, topic: str, depth: int = 1) -> None:
        self._dedup = dedup
        self._topic = topic
        self.depth = depth  # slices taken ahead of the one handled, each on its own thread
        self._executor: ThreadPoolExecutor | None = None  # started by the first look-up

    def slices(self, messages: list[Message], ids: list[str | None], size: int) -> Iterator[Slice]:
        """`ids` (those of `messages`) in slices of `size`, each taken in the store with
        the ids it found taken already. An id repeated within the batch is taken once, by
        its first message, and counted found for the later slices: taken side by side, a
        later slice could otherwise win the race and run the later copy, out of key order.
        Later copies within a slice are the caller's to catch."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.depth, thread_name_prefix="tailrace-lookup")
        bounds = [(start, min(len(ids), start + size)) for start in range(0, len(ids), size)]
        ahead: deque[Future[set[str]]] = deque()
        earlier: set[str] = set()  # ids of the slices submitted so far
        for index, (start, stop) in enumerate(bounds):
            while len(ahead) < self.depth and index + len(ahead) < len(bounds):
                ahead.append(self._submit(messages, ids, *bounds[index + len(ahead)], earlier))
            found = ahead.popleft().result()
            yield start, stop, found

    def _submit(
        self,
        messages: list[Message],
        ids: list[str | None],
        start: int,
        stop: int,
        earlier: set[str],
    ) -> Future[set[str]]:
        assert self._executor is not None
        taken: dict[str, tuple[str, int, int]] = {}
        repeated: set[str] = set()
        for index in range(start, stop):
            mid = ids[index]
            if mid is None or mid in taken:
                continue
            if mid in earlier:
                repeated.add(mid)
            else:
                raw = messages[index].raw
                taken[mid] = (mid, raw.partition() or 0, raw.offset() or 0)
        earlier.update(taken)
        return self._executor.submit(self._take, list(taken.values()), repeated)

    def _take(self, taken: list[tuple[str, int, int]], repeated: set[str]) -> set[str]:
        found = self._dedup.take(self._topic, taken) if taken else set()
        return found | repeated if repeated else found

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
