"""One file through the pipeline: read, decode, filter, route, write; checkpoint as it goes.

The file comes in batches (a chunk of lines each, see `read_batches`): lines of streams the
filter does not keep are only counted, and the loop per event is kept to a type check, the
filter, a route lookup and three list appends. Everything periodic (status writes, cancel
checks, checkpoints) happens between batches, once `check_every` lines have passed, after a
clock read.

Checkpoints follow the sink's promise: `flush()` first, then the checkpoint, so a checkpoint
never covers an event that could still be lost. A sink that is exactly once stores the mark
in its own transaction, and a resumed file starts from the sink's mark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from tailrace.pipeline.decoders.framing import BadLine, Checkpoint
from tailrace.pipeline.events import Event, EventFields, read_batches
from tailrace.pipeline.filters import EventFilter
from tailrace.pipeline.jobs.model import BATCH_SIZE, UNREADABLE, Counters
from tailrace.pipeline.routing import ConnectionRouter
from tailrace.pipeline.sinks.base import FileMark, Sink
from tailrace.pipeline.sinks.deadletter import DeadLetterWriter
from tailrace.pipeline.sources import Source, SourceFile


@dataclass(frozen=True, slots=True)
class RunSettings:
    batch_size: int = BATCH_SIZE  # events handed to the sink at once
    check_every: int = 1_000  # lines between looks at the clock
    status_s: float = 0.25  # at most this often a status write
    checkpoint_s: float = 1.0  # flush and checkpoint at least this often
    max_line_bytes: int = 1 << 20


class FileHooks(Protocol):
    """What the worker does around a file: report status, store checkpoints, say stop."""

    def status(self, line: int, event_time: str | None, counters: Counters) -> None: ...

    def checkpoint(
        self, checkpoint: Checkpoint, counters: Counters, skip_reasons: dict[str, int]
    ) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass(slots=True)
class FileState:
    """Where a file stands: its position and its counters at that position."""

    key: str
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    counters: Counters = field(default_factory=Counters)
    skip_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileResult:
    state: FileState
    cancelled: bool
    fatal: BadLine | None = None
    """The record where the reader gave up on the file (a truncated or corrupt stream): the
    rest of the file is unread, so the file is not a clean success. It was dead-lettered and
    counted like any bad line."""

    @property
    def error(self) -> str | None:
        """Why the file did not complete, in words for its status; None when it did."""
        return unreadable_reason(self.fatal) if self.fatal is not None else None


def unreadable_reason(bad: BadLine) -> str:
    return (
        f"{UNREADABLE} {bad.reason} at line {bad.line}, byte {bad.offset:,} of the "
        "decompressed stream; the rest of the file was not read"
    )


class FileRun:
    """Streams one file into a sink, resuming from `state` and updating it as it goes."""

    def __init__(
        self,
        *,
        sink: Sink,
        deadletters: DeadLetterWriter,
        event_filter: EventFilter,
        router: ConnectionRouter | None = None,
        fields: EventFields | None = None,
        hooks: FileHooks | None = None,
        settings: RunSettings | None = None,
    ) -> None:
        self.sink = sink
        self.deadletters = deadletters
        self.event_filter = event_filter
        self.router = router
        self.fields = fields
        self.hooks = hooks
        self.settings = settings or RunSettings()

    def run(self, source: Source, file: SourceFile, state: FileState) -> FileResult:
        settings = self.settings
        sink, hooks = self.sink, self.hooks
        counters = state.counters
        skip_reasons = state.skip_reasons
        with source.open(file) as raw:
            batches = read_batches(
                raw,
                file=file.url,
                fields=self.fields,
                start=state.checkpoint,
                max_line_bytes=settings.max_line_bytes,
                extra_paths=self.event_filter.paths,
                stream_ids=self.event_filter.stream_ids,
            )
            check = None if self.event_filter.selects_all else self.event_filter.check
            route: Callable[[str | None], str | None] | None = (
                self.router.route if self.router is not None else None
            )
            raws: list[bytes] = []
            keys: list[str | None] = []
            routes: list[str | None] = []
            bad: list[BadLine] = []
            # Local counts, folded into `counters` at each checkpoint.
            lines = filtered = skipped = unflushed = 0
            last: Event | None = None  # for the event time a status shows
            done: Checkpoint | None = None  # past the last line read whole: a checkpoint's place
            batch_size, check_every = settings.batch_size, settings.check_every
            next_check = check_every
            now = time.monotonic()
            next_status = now + settings.status_s
            next_checkpoint = now + settings.checkpoint_s
            cancelled = False
            fatal: BadLine | None = None

            def write() -> None:
                nonlocal unflushed
                if raws:
                    sink.write(raws, keys=keys, routes=routes if route is not None else None)
                    unflushed += len(raws)
                    raws.clear()
                    keys.clear()
                    routes.clear()

            def checkpoint(at: Checkpoint, final: bool) -> None:
                nonlocal lines, filtered, skipped, unflushed, next_check
                write()
                counters.lines += lines
                counters.filtered += filtered
                counters.skipped += skipped
                # `lines` counts from here on: so does the next look at the clock (else each
                # checkpoint came `check_every` lines later than the last, whatever the time)
                next_check -= lines
                lines = filtered = skipped = 0
                if bad:
                    self.deadletters.write(bad)
                    counters.deadlettered += len(bad)
                    bad.clear()
                # Dead letters first: a crash between the two repeats some, loses none.
                self.deadletters.flush()
                counters.processed_bytes = file.size if final else _position(raw, file.size)
                committed = counters.copy()
                committed.sent += unflushed
                sink.flush(FileMark(state.key, at, mark_counters(committed, skip_reasons)))
                failed = [
                    BadLine(file.url, 0, 0, f"delivery failed: {f.error}", f.value)
                    for f in sink.take_failed()
                ]
                if failed:
                    self.deadletters.write(failed)
                    self.deadletters.flush()
                # Records the sink found already stored (written once) are skipped, not sent.
                dropped = sink.take_skipped()
                for reason, count in dropped.items():
                    skip_reasons[reason] = skip_reasons.get(reason, 0) + count
                    counters.skipped += count
                counters.sent += unflushed - len(failed) - sum(dropped.values())
                counters.deadlettered += len(failed)
                unflushed = 0
                state.checkpoint = at
                if hooks is not None:
                    hooks.checkpoint(at, counters, skip_reasons)

            for batch in batches:
                lines += batch.records
                filtered += batch.filtered  # lines of streams the filter does not keep
                for item in batch.items:
                    if type(item) is not Event:
                        bad_line = cast(BadLine, item)
                        bad.append(bad_line)
                        if bad_line.fatal:  # the reader's last: the rest is unread
                            fatal = bad_line
                        continue
                    last = item
                    if check is not None and check(item) is not None:
                        filtered += 1
                        continue
                    target = None
                    if route is not None:
                        target = route(item.stream_id)
                        if target is None:
                            skipped += 1
                            reason = self.router.skip_reason(item.stream_id)  # type: ignore[union-attr]
                            skip_reasons[reason] = skip_reasons.get(reason, 0) + 1
                            continue
                    raws.append(item.raw)
                    keys.append(item.message_id)
                    routes.append(target)
                    if len(raws) >= batch_size:
                        write()
                if batch.done is not None:
                    done = batch.done
                if lines < next_check:
                    continue
                next_check = lines + check_every
                now = time.monotonic()
                if hooks is not None and now >= next_status:
                    next_status = now + settings.status_s
                    live = counters.copy()
                    live.lines += lines
                    live.filtered += filtered
                    live.skipped += skipped
                    hooks.status(live.lines, _event_time(last), live)
                    if hooks.cancelled():
                        cancelled = True
                # Only where the batch ends with a line read whole, as a resume starts there.
                if (now >= next_checkpoint or cancelled) and batch.ends_done:
                    assert done is not None
                    checkpoint(done, final=False)
                    next_checkpoint = time.monotonic() + settings.checkpoint_s
                    if cancelled:
                        return FileResult(state, cancelled=True)
            checkpoint(done or state.checkpoint, final=True)
        if hooks is not None:
            hooks.status(counters.lines, _event_time(last), counters)
        return FileResult(state, cancelled=False, fatal=fatal)


SKIP_PREFIX = "skip:"


def mark_counters(counters: Counters, skip_reasons: dict[str, int]) -> dict[str, int]:
    """Counters and skip reasons as one flat mapping, the form a `FileMark` stores."""
    flat = counters.as_dict()
    flat.update({SKIP_PREFIX + reason: count for reason, count in skip_reasons.items()})
    return flat


def state_from_mark(mark: FileMark) -> FileState:
    """The file state a sink's mark records (see `mark_counters`)."""
    counts = {k: v for k, v in mark.counters.items() if not k.startswith(SKIP_PREFIX)}
    reasons = {
        k.removeprefix(SKIP_PREFIX): v
        for k, v in mark.counters.items()
        if k.startswith(SKIP_PREFIX)
    }
    return FileState(mark.key, mark.checkpoint, Counters.from_dict(counts), reasons)


def _position(raw: object, size: int) -> int:
    """How far into the stored file the reading is (bytes), for progress."""
    try:
        return min(int(raw.tell()), size)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return 0


def _event_time(event: Event | None) -> str | None:
    if event is None or event.time is None:
        return None
    return event.time.isoformat()
