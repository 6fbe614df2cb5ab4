"""The sink protocol: where events go once they have been read, filtered and routed.

As in Vector, a sink acknowledges only after delivery: when `flush()` returns, everything
given to `write()` so far is durable (a file: written and fsync'd) or acknowledged (a broker,
a database). The worker takes its checkpoint after `flush()`, so a checkpoint never covers
an event that could still be lost.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from tailrace.errors import TailraceError
from tailrace.pipeline.decoders.framing import Checkpoint


class SinkError(TailraceError):
    """A sink could not deliver (disk full, closed pipe, write after close); names the sink."""


@dataclass(slots=True)
class SinkCounters:
    """What a sink has delivered: events and their bytes (original bytes, without the newline
    a line-oriented sink adds). Events written but not yet flushed are not counted."""

    events: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class FileMark:
    """A checkpoint of one file of a job, as a sink may store it with the events.

    `key` names the file within its job (``"<job id>/<file index>"``); `counters` are the
    file's counters (lines, sent, filtered, skipped, dead-lettered, bytes) at `checkpoint`.
    """

    key: str
    checkpoint: Checkpoint
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """An event the destination refused for itself (too large, an invalid record): bad
    input, to be dead-lettered, not dropped. Never an event that could not be delivered
    because the destination was unavailable: that is a `SinkError`, and the file resumes
    from its checkpoint."""

    value: bytes
    key: str | None
    route: str | None
    error: str


# The skip reason of a record a sink found already stored (see `Sink.take_skipped`).
DUPLICATE_RECORD = "duplicate record"

Keys = Sequence[str | None]
Routes = Sequence[str | None]


@runtime_checkable
class Sink(Protocol):
    """Takes batches of events as their original bytes, one item per event, no newline.

    `keys` (the message ids) and `routes` (the connection ids, comma-separated), when given,
    run parallel to `batch`; sinks without keys or headers (files) ignore them.

    A sink with `exactly_once` stores the `FileMark` given to `flush()` in the same
    transaction as the events, and `committed()` reads it back: a worker resuming a file
    starts from there, so nothing is written twice. Other sinks ignore the mark and
    `committed()` returns None; the worker's own checkpoint (taken after `flush()`) bounds
    their duplicates.
    """

    exactly_once: bool

    @property
    def counters(self) -> SinkCounters:
        """Events and bytes delivered so far."""
        ...

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        """Accept a batch; it may stay buffered until `flush()`."""
        ...

    def flush(self, mark: FileMark | None = None) -> None:
        """Deliver everything written so far; return only once it is durable."""
        ...

    def committed(self, key: str) -> FileMark | None:
        """The last mark stored with the events for file `key` (exactly-once sinks only)."""
        ...

    def take_failed(self) -> list[FailedDelivery]:
        """Events refused for themselves (bad input, never an unavailable destination)
        since the last call, each handed over once; a sink that either delivers or raises
        never has any."""
        ...

    def stop_when(self, event: threading.Event) -> None:
        """Once `event` is set (the worker is stopping), a wait that is making no progress
        (a broker outage) ends in `SinkError` instead of holding the worker."""
        ...

    def take_skipped(self) -> dict[str, int]:
        """Events the flushes since the last call did not write on purpose, by reason (a
        sink that stores each record once skips `DUPLICATE_RECORD`s); they count as skipped,
        not sent, and each is handed over once."""
        ...

    def close(self) -> None:
        """Flush, then release the sink. Closing twice is allowed."""
        ...


class SinkBase:
    """Shared plumbing: counters, the closed state, and use as a context manager.

    Leaving the `with` block closes the sink, which flushes even when an exception is
    propagating: events delivered past the last checkpoint are duplicates at worst, never
    losses.
    """

    name = "sink"
    exactly_once = False

    def __init__(self) -> None:
        self._counters = SinkCounters()
        self._unacked = SinkCounters()  # written, not yet delivered
        self._closed = False
        self._stop: threading.Event | None = None

    def _written(self, events: int, event_bytes: int) -> None:
        self._unacked.events += events
        self._unacked.bytes += event_bytes

    def _acknowledge(self) -> None:
        """Everything written so far is delivered: count it."""
        self._counters.events += self._unacked.events
        self._counters.bytes += self._unacked.bytes
        self._unacked = SinkCounters()

    @property
    def counters(self) -> SinkCounters:
        return self._counters

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SinkError(f"{self.name}: write after close")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def flush(self, mark: FileMark | None = None) -> None:  # pragma: no cover - per sink
        raise NotImplementedError

    def committed(self, key: str) -> FileMark | None:
        return None

    def take_failed(self) -> list[FailedDelivery]:
        return []

    def take_skipped(self) -> dict[str, int]:
        return {}

    def stop_when(self, event: threading.Event) -> None:
        self._stop = event

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def close(self) -> None:
        """Flush, then release the sink's resources even if the flush failed."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Free what the sink holds (a file descriptor…); nothing by default."""


def frame_lines(batch: Sequence[bytes]) -> bytes:
    """The batch as NDJSON: each item followed by a newline, in one buffer.

    An item holding a newline (a pretty-printed element of a JSON-array file) would split
    into several lines, so its newlines become spaces: outside strings they are JSON
    whitespace, and a valid JSON string cannot hold a raw newline, so the value is unchanged.
    Counting newlines is one C-level scan; items are only looked at one by one when it fails.
    """
    if not batch:
        return b""
    joined = b"\n".join(batch)
    if joined.count(b"\n") != len(batch) - 1:
        joined = b"\n".join(item.replace(b"\n", b" ") for item in batch)
    return joined + b"\n"
