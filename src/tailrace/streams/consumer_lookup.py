"""Looking a consumed batch's ids up in the dedup store slice by slice, the next slice on a
thread of its own while the consumer handles the current one: at 5,000 ids a batch the
look-up alone took as long as handling the batch, and the consumer waited for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain

from .dedup import Dedup

# (start, stop, ids of the slice marked already) per slice of a batch
Slice = tuple[int, int, set[str]]


class Lookups:
    def __init__(self, dedup: Dedup) -> None:
        self._dedup = dedup
        self._executor: ThreadPoolExecutor | None = None  # started by the first look-up

    def slices(
        self,
        ids: list[str | None],
        size: int,
        in_flight: Callable[[], Iterable[list[str]]],
    ) -> Iterator[Slice]:
        """`ids` in slices of `size`, each with its ids that the store has or that marks in
        flight (`in_flight()`, read when its look-up starts) are writing: a mark that ends
        while the look-up runs may be missed by it. Ids repeated within the batch, or
        handled while a look-up runs, are the caller's to catch."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tailrace-lookup")
        bounds = [(start, min(len(ids), start + size)) for start in range(0, len(ids), size)]
        future: Future[set[str]] | None = None
        for index, (start, stop) in enumerate(bounds):
            if future is None:
                future = self._submit(ids, start, stop, in_flight)
            found = future.result()
            future = None
            if index + 1 < len(bounds):
                future = self._submit(ids, *bounds[index + 1], in_flight)
            yield start, stop, found

    def _submit(
        self,
        ids: list[str | None],
        start: int,
        stop: int,
        in_flight: Callable[[], Iterable[list[str]]],
    ) -> Future[set[str]]:
        assert self._executor is not None
        flying = set(chain.from_iterable(in_flight()))
        return self._executor.submit(self._look, ids[start:stop], flying)

    def _look(self, ids: list[str | None], flying: set[str]) -> set[str]:
        present = [i for i in ids if i is not None]
        found = self._dedup.seen(present) if present else set()
        if flying:
            found.update(flying.intersection(present))
        return found

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
