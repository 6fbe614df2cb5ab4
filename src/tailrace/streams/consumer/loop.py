"""A Kafka consumer that calls a handler once per message id, with retries, dead letters,
routing and commits that never run ahead of what is done.

One step of the loop: consume a batch; take its ids in the dedup store, which drops the
duplicates; call the handler on the rest (a failing message waits for its retry, and only
the later messages of its key wait behind it); retry what is due; then acknowledge outputs
and dead letters (`TopicRouter.flush`), record per partition the lowest offset not done in the
dedup store, and commit it. A consumer killed at any point therefore loses nothing, and
what it repeats after a restart was handled after the last recorded checkpoint.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from ...errors import StoreClosedError
from ...observability import tracing
from ..broker_probe import BrokerProbe
from ..dedup import Dedup, NoDedup, PostgresDedup
from ..dlq import dead_letter, describe
from ..router import TopicRouter
from . import metrics
from .config import ConsumerConfig, kafka_consumer
from .lookup import Lookups, Slice
from .marking import Marker
from .message import UNSET, Message, Output, message_ids
from .offsets import Offsets
from .waiting import Lane, Waiting, lane_of

log = logging.getLogger("tailrace.streams.consumer")

Handler = Callable[[Message], Iterable[Output] | None]
BatchHandler = Callable[[list[Message]], Iterable[Output] | None]

LAG_EVERY_S = 5.0
# A handler whose calls took less than this on average is timed per run of calls (the
# calls between two checkpoints): two clock reads and a histogram update per call cost more
# than a no-op handler. A slower one is timed call by call, the checkpoint's clock checked
# after each call.
FAST_CALL_S = 50e-6
MARKS_IN_FLIGHT = 3
LOOKUP_SLICE = 1000  # ids taken at once, the next slices while one is handled
# Slices taken side by side, each on a connection of its own: per id, the store's index work,
# not the round trip, is what a take costs, and a store with more than one core does it
# faster side by side.
LOOKUPS_AHEAD = 3
PRUNE_EVERY_S = 300.0


@dataclass
class ConsumerStats:
    """What this consumer did since it started (the metrics, without labels)."""

    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    deduplicated: int = 0


class Consumer:
    """Consumes `config.topic` in `config.group`, calling `handler` per message (or
    `batch_handler` per batch: a batch that fails is retried message by message).

    `run()` loops until `stop()` (from any thread or a signal handler). The consumer owns
    `dedup` and closes it.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        dedup: Dedup | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("give exactly one of handler and batch_handler")
        self.config = config
        self.stats = ConsumerStats()
        self._handler = handler
        self._batch_handler = batch_handler
        self._dedup = dedup or NoDedup()
        self._dedup_on = not isinstance(self._dedup, NoDedup)  # ids are needed at all
        self._per_call = True  # time calls one by one until they prove fast
        self._stop = threading.Event()
        self._offsets = Offsets()
        self._waiting = Waiting()
        self._waiting_ids: set[str] = set()
        self._released: list[tuple[int, int]] = []  # held offsets done since then
        self._paused = False
        self._partitions = 0  # assigned at the last consume: how far `_deliver` looks
        self._since_checkpoint = 0  # messages stepped over since the last checkpoint
        self._checkpoint_due = 0.0
        labels = (config.topic, config.group)
        self._latency = metrics.HANDLER_SECONDS.labels(*labels)
        self._counters = (
            metrics.HANDLED.labels(*labels),
            metrics.FAILED.labels(*labels),
            metrics.DEAD_LETTERED.labels(*labels),
            metrics.DEDUPLICATED.labels(*labels),
        )
        self._reported = ConsumerStats()
        self._kafka: KafkaConsumer | None = None
        self._router: TopicRouter | None = None
        # Checkpoints in flight while the next messages are handled, and the checkpoint
        # spacing that keeps what a kill can repeat (the messages handled but not yet
        # recorded done: those in flight and those being handled) within 2 x commit_every.
        depth = MARKS_IN_FLIGHT if handler is not None and self._dedup_on else 1
        self._marker = Marker(self._dedup, config.topic, depth)
        self._lookups = Lookups(self._dedup, config.topic, LOOKUPS_AHEAD)
        self._every = max(1, 2 * config.commit_every // (depth + 1))
        self._interval_s = 2 * config.commit_interval_s / (depth + 1)
        # A stop during an outage of the dedup store ends the wait for it (see `run`).
        if isinstance(self._dedup, PostgresDedup):
            self._dedup.stop_on(self._stop)
        self._abandoned = False  # stopped with marks not durable: commit nothing more
        self._assigned = 0  # partitions held at the last look (for readiness)
        self._probe: BrokerProbe | None = None  # `broker_answers`'s own client

    def stop(self) -> None:
        """Finish the current step, commit, and return from `run()`."""
        self._stop.set()

    # -- readiness (asked from the probe server's threads) ----------------------------------

    def assigned(self) -> int | None:
        """How many partitions this consumer held at its last look (every `LAG_EVERY_S`);
        None while it is not running. Counted by the loop: a call into the consumer from
        another thread would wait for its `consume`."""
        return None if self._kafka is None else self._assigned

    def broker_answers(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request for the topic within `timeout_s`
        (through a client of its own, for the reason above)."""
        if self._probe is None:
            self._probe = BrokerProbe(self.config.consumer_settings())
        return self._probe.answers(self.config.topic, timeout_s)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Consume until `stop()` (or until `until()` is true, checked after each step)."""
        config = self.config
        self._router = TopicRouter(config.producer_settings(), config.routes)
        self._kafka = kafka = kafka_consumer(
            {
                **config.consumer_settings(),
                "logger": log,
                "error_cb": _on_error,
                "on_commit": _on_commit,
            }
        )
        log.info(
            "consumer started",
            extra={"topic": config.topic, "group": config.group, "partitions": config.partitions},
        )
        if config.partitions is not None:
            # Committed offsets, else auto.offset.reset: as a group member would start.
            kafka.assign([TopicPartition(config.topic, p) for p in config.partitions])
        else:
            kafka.subscribe(
                [config.topic],
                on_assign=_log_partitions("partitions assigned"),
                on_revoke=_log_partitions("partitions revoked", self._revoked),
                on_lost=_log_partitions("partitions lost", self._lost),
            )
        # The objects alive now (modules, settings: tens of thousands) are set aside from the
        # garbage collector for the run: each batch makes thousands of `Message`s, and the
        # full collections they set off walked all of those again (half the run's time
        # without a dedup store).
        gc.freeze()
        try:
            self._loop(kafka, until)
        except StoreClosedError:
            if not self._stop.is_set():
                raise
            # Stopped while the dedup store was away: what was handled since the last
            # durable mark stays uncommitted, and comes again to the next consumer.
            self._abandoned = True
            try:
                self._marker.wait()
            except StoreClosedError:
                pass
            log.warning(
                "stopped while the dedup store was unreachable: "
                "the offsets handled since its last mark are not committed"
            )
        finally:
            gc.unfreeze()
            self._report()
            self._marker.close()
            self._lookups.close()
            kafka.close()
            self._router.close()
            self._kafka = None
            log.info("consumer stopped", extra={"topic": config.topic, "group": config.group})

    def _loop(self, kafka: KafkaConsumer, until: Callable[[], bool] | None) -> None:
        config = self.config
        next_lag = next_prune = time.monotonic()
        while not self._stop.is_set():
            self._pause_when_full(kafka)
            raw = kafka.consume(config.batch_size, self._timeout())
            self._step(raw)
            now = time.monotonic()
            if now >= next_lag:
                next_lag = now + LAG_EVERY_S
                self._assigned = len(kafka.assignment())
                self._report_lag(kafka)
            if now >= next_prune:
                # A full batch pruned: more may be due, so again next round.
                full = self._dedup.prune() >= 10_000
                next_prune = now if full else now + PRUNE_EVERY_S
            if until is not None and until():
                break
        # Everything is checkpointed: once all of it is recorded done, commit it and wait
        # for the broker (earlier commits were asynchronous).
        points = self._offsets.points()
        if self._dedup_on and points:
            self._marker.submit(points)
        self._marker.wait()
        self._commit(kafka, points, asynchronous=False)

    def _timeout(self) -> float:
        due = self._waiting.next_due()
        if due is None:
            return self.config.poll_timeout_s
        return max(0.0, min(self.config.poll_timeout_s, due - time.monotonic()))

    def _step(self, raw: list[KafkaMessage]) -> None:
        messages, ids = self._take(raw)
        count = len(messages)
        if ids is None:
            slices: Iterable[Slice] = [(0, count, set())]
        else:
            # A batch handler gets the batch whole; a plain one starts on the first slice
            # while the next is looked up.
            size = count if self._batch_handler is not None else LOOKUP_SLICE
            slices = self._lookups.slices(messages, ids, size)
        handled_ids: set[str | None] = set()  # of this batch so far
        for start, stop, found in slices:
            duplicates = self._duplicates(ids, start, stop, found, handled_ids)
            if self._batch_handler is not None:
                fresh = [m for i, m in enumerate(messages) if i not in duplicates]
                self._handle_batch([m for m in fresh if not self._queued(m)])
                self._deliver(messages, 0, count)
            else:
                self._handle_slice(messages, ids, duplicates, start, stop)
        if self._waiting:
            self._retry_due()
        self._checkpoint()

    def _handle_slice(
        self,
        messages: list[Message],
        ids: list[str | None] | None,
        duplicates: set[int],
        start: int,
        stop: int,
    ) -> None:
        # A checkpoint every `_every` messages or `_interval_s`, inside the batch: what a
        # kill repeats is bounded by those, not by the batch size.
        every = self._every
        each = self._per_call or tracing.enabled()
        while start < stop:
            end = min(stop, start + every - self._since_checkpoint)
            if each:
                end = self._run_each(messages, duplicates, start, end)
            else:
                self._run_fast(messages, ids, duplicates, start, end)
            self._deliver(messages, start, end)
            self._since_checkpoint += end - start
            start = end
            if self._since_checkpoint >= every or time.monotonic() >= self._checkpoint_due:
                self._checkpoint()

    def _duplicates(
        self,
        ids: list[str | None] | None,
        start: int,
        stop: int,
        found: set[str],
        handled: set[str | None],
    ) -> set[int]:
        """Indexes of `ids[start:stop]` that are duplicates: `found` marked, waiting on a
        retry, or earlier in the batch (`handled`, to which the others are added)."""
        if ids is None:
            return set()
        part = ids[start:stop]
        unique = set(part)
        seen = found.union(self._waiting_ids) if self._waiting_ids else found
        if not seen and len(unique) == len(part) and handled.isdisjoint(unique):
            handled.update(unique)  # the usual case: nothing to skip
            return set()
        duplicates: set[int] = set()
        for index in range(start, stop):
            mid = ids[index]
            if mid is not None:
                if mid in seen or mid in handled:
                    duplicates.add(index)
                else:
                    handled.add(mid)
        self.stats.deduplicated += len(duplicates)
        return duplicates

    def _run_each(
        self, messages: list[Message], duplicates: set[int], start: int, stop: int
    ) -> int:
        """Handle `messages[start:stop]` call by call (timed, traced); returns where it
        stopped: `stop`, or earlier when the checkpoint's time came."""
        due = self._checkpoint_due
        calls = 0
        began = time.perf_counter()
        for index in range(start, stop):
            if index in duplicates:
                continue
            message = messages[index]
            if not self._queued(message):
                self._settle(message, self._attempt(message), None, held=False)
                calls += 1
            if time.monotonic() >= due:
                stop = index + 1
                break
        self._calls_took(time.perf_counter() - began, calls)
        return stop

    def _run_fast(
        self,
        messages: list[Message],
        ids: list[str | None] | None,
        duplicates: set[int],
        start: int,
        stop: int,
    ) -> None:
        """Handle `messages[start:stop]` with a handler known to be fast: the same as
        `_run_each` without the per-call clock, whose time is observed for the run."""
        handler, router, waiting = self._handler, self._router, self._waiting
        assert handler is not None and router is not None
        aside: list[int] = []  # queued behind a failure, or failed: not done here
        queued = failed = 0
        began = time.perf_counter()
        for index in range(start, stop):
            if duplicates and index in duplicates:
                continue
            message = messages[index]
            if waiting.count and self._queued(message):
                aside.append(index)
                queued += 1
                continue
            try:
                result = handler(message)
                outputs = None if result is None else list(result)
            except Exception as exc:
                self._settle(message, exc, None, held=False)
                aside.append(index)
                failed += 1
                continue
            if outputs:
                router.send(outputs)
        elapsed = time.perf_counter() - began
        skipped = sum(1 for i in duplicates if start <= i < stop) if duplicates else 0
        calls = stop - start - skipped - queued
        self.stats.handled += calls - failed
        self._calls_took(elapsed, calls, observe=True)

    def _calls_took(self, seconds: float, calls: int, *, observe: bool = False) -> None:
        """`calls` handler calls took `seconds`: choose how the next ones are timed."""
        if calls:
            if observe:  # a fast run's calls count each as its mean
                metrics.observe_many(self._latency, seconds / calls, calls)
            self._per_call = seconds / calls >= FAST_CALL_S

    def _deliver(self, messages: list[Message], start: int, stop: int) -> None:
        """Offsets `start..stop` of `messages` came from the broker: the last one of each
        partition says it (a batch holds a partition's messages in order)."""
        offsets, found = self._offsets, set()
        partitions = self._partitions
        for index in range(stop - 1, start - 1, -1):
            raw = messages[index].raw
            partition = raw.partition() or 0
            if partition not in found:
                found.add(partition)
                offsets.delivered(partition, raw.offset() or 0)
                if len(found) >= partitions:
                    break

    def _queued(self, message: Message) -> bool:
        """Queue `message` behind its key's failed message, if there is one waiting."""
        waiting = self._waiting
        if not waiting:
            return False
        lane = lane_of(message)
        if not waiting.blocked(lane):
            return False
        waiting.queue(lane, message)
        self._hold(message)
        return True

    def _take(self, raw: list[KafkaMessage]) -> tuple[list[Message], list[str | None] | None]:
        """The messages of `raw` in order, and their ids (None without a dedup store)."""
        if any(record.error() is not None for record in raw):
            for record in raw:
                error = record.error()
                if error is not None:
                    _on_error(error)
            raw = [record for record in raw if record.error() is None]
        source, field = self.config.id_source, self.config.id_field
        self._partitions = len(self._kafka.assignment()) if raw and self._kafka else 0
        if not self._dedup_on:
            return [Message(record, UNSET, source, field) for record in raw], None
        ids = message_ids(raw, source, field)
        return [Message(record, mid) for record, mid in zip(raw, ids, strict=True)], ids

    # -- handling ---------------------------------------------------------------------------

    def _attempt(self, message: Message) -> Exception | None:
        """Call the handler on `message` and send its outputs; the error if it raised."""
        # the producer's trace goes on here, and into the outputs' headers
        span: AbstractContextManager[Any] = nullcontext()
        if tracing.enabled():
            span = tracing.message_span(message.raw, message_id=message.id)
        with span:
            started = time.perf_counter()
            tracing.current_message(message.id)  # its id on the handler's log lines
            try:
                if self._handler is not None:
                    result = self._handler(message)
                else:
                    assert self._batch_handler is not None
                    result = self._batch_handler([message])
                outputs = None if result is None else list(result)
            except Exception as exc:
                return exc
            finally:
                tracing.current_message(None)
                self._latency.observe(time.perf_counter() - started)
            if outputs:
                assert self._router is not None
                self._router.send(outputs)
        return None

    def _handle_batch(self, messages: list[Message]) -> None:
        assert self._batch_handler is not None and self._router is not None
        if not messages:
            return
        started = time.perf_counter()
        try:
            result = self._batch_handler(messages)
            outputs = None if result is None else list(result)
        except Exception as exc:
            # Which message broke it is unknown: each is retried alone (keeping key order).
            for message in messages:
                if not self._queued(message):
                    self._settle(message, exc, None, held=False)
            return
        finally:
            self._latency.observe(time.perf_counter() - started)
        if outputs:
            self._router.send(outputs)
        for message in messages:
            self._done(message, held=False)
        self.stats.handled += len(messages)

    def _settle(
        self, message: Message, error: Exception | None, lane: Lane | None, *, held: bool
    ) -> bool:
        """After an attempt: done (handled or dead-lettered: True), or waiting for a retry."""
        if error is None:
            self.stats.handled += 1
            self._done(message, held)
            return True
        self.stats.failed += 1
        fields = _fields(message)
        if message.attempt >= self.config.attempts:
            text = describe(error)
            assert self._router is not None
            dead_letter(
                self._router,
                self.config.dead_letter_topic,
                message,
                text,
                message.attempt,
                self.config.group,
            )
            self.stats.dead_lettered += 1
            log.error(
                "message dead-lettered",
                extra={**fields, "attempts": message.attempt, "error": text},
            )
            self._done(message, held)
            return True
        delay = self.config.retry.delay(message.attempt)
        log.warning(
            "handler failed, will retry",
            extra={**fields, "attempt": message.attempt, "retry_in_s": round(delay, 3)},
            exc_info=error,
        )
        message.attempt += 1
        self._waiting.retry_later(lane or lane_of(message), message, time.monotonic() + delay)
        if not held:
            self._hold(message)
        return False

    def _retry_due(self) -> None:
        waiting = self._waiting
        for lane in list(waiting.due(time.monotonic())):
            while waiting.blocked(lane):
                message = waiting.lane(lane)[0]
                if not self._settle(message, self._attempt(message), lane, held=True):
                    break
                waiting.pop(lane)

    def _hold(self, message: Message) -> None:
        self._offsets.hold(message.partition, message.offset)
        if self._dedup_on and message.id is not None:
            self._waiting_ids.add(message.id)

    def _done(self, message: Message, held: bool) -> None:
        if held:
            self._released.append((message.partition, message.offset))
            if self._dedup_on and message.id is not None:
                self._waiting_ids.discard(message.id)

    # -- the end of a step ------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Outputs acknowledged, then the offsets recorded done in the dedup store, then
        committed: in this order.

        The record runs on a thread of its own while the next messages are handled (up to
        `MARKS_IN_FLIGHT` at once for a plain handler, one for a batch handler); its
        offsets are committed at a later checkpoint (or at a stop or revocation), once it
        and every earlier one have returned. Without a dedup store the offsets are
        committed at once. Checkpoints come every `_every` messages or `_interval_s`: at
        any instant the handled messages not yet recorded done (or committed), which a
        SIGKILL can make run again, are at most `depth + 1` checkpoints' worth,
        2 x commit_every (or what is handled in 2 x commit_interval_s).
        """
        assert self._router is not None and self._kafka is not None
        self._since_checkpoint = 0
        self._checkpoint_due = time.monotonic() + self._interval_s
        self._router.flush()
        for partition, offset in self._released:
            self._offsets.release(partition, offset)
        self._released.clear()
        points = self._offsets.commit_points()
        if not self._dedup_on:
            self._commit(self._kafka, points, asynchronous=True)
        elif points:
            self._commit(self._kafka, self._marker.submit(points), asynchronous=True)
        else:
            self._commit(self._kafka, self._marker.ready(), asynchronous=True)
        self._report()

    def _commit(self, kafka: KafkaConsumer, points: dict[int, int], *, asynchronous: bool) -> None:
        if not points:
            return
        topic = self.config.topic
        offsets = [TopicPartition(topic, p, o) for p, o in points.items()]
        try:
            if asynchronous:
                kafka.commit(offsets=offsets, asynchronous=True)
            else:
                kafka.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the messages come again and the dedup store drops them.
            log.warning("offset commit failed", extra={"topic": topic, "error": str(exc)})
            return
        self._offsets.committed(points)

    def _report(self) -> None:
        """Add this step's counts to the metrics (in bulk: per message would cost)."""
        stats, reported = self.stats, self._reported
        handled, failed, dead, dedup = self._counters
        handled.inc(stats.handled - reported.handled)
        failed.inc(stats.failed - reported.failed)
        dead.inc(stats.dead_lettered - reported.dead_lettered)
        dedup.inc(stats.deduplicated - reported.deduplicated)
        self._reported = ConsumerStats(**vars(stats))

    def _report_lag(self, kafka: KafkaConsumer) -> None:
        topic, group = self.config.topic, self.config.group
        for tp in kafka.assignment():
            position = self._offsets.position(tp.partition)
            try:
                _, high = kafka.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if position is not None and high >= 0:
                metrics.LAG.labels(topic, group, str(tp.partition)).set(max(0, high - position))

    def _pause_when_full(self, kafka: KafkaConsumer) -> None:
        """Stop fetching while too many messages wait on retries; resume at half."""
        count, limit = self._waiting.count, self.config.max_waiting
        if not self._paused and count >= limit:
            kafka.pause(kafka.assignment())
            self._paused = True
            log.warning("too many messages waiting on retries: paused", extra={"waiting": count})
        elif self._paused and count <= limit // 2:
            kafka.resume(kafka.assignment())
            self._paused = False

    # -- rebalancing ------------------------------------------------------------------------

    def _revoked(self, kafka: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Called inside consume(), between steps: what is done in the partitions going is
        # recorded so, then committed.
        if self._abandoned:
            self._lost(kafka, partitions)
            return
        gone = {tp.partition for tp in partitions}
        points = {p: o for p, o in self._offsets.commit_points().items() if p in gone}
        flushed = self._marker.submit(points) if self._dedup_on and points else {}
        flushed.update(self._marker.wait())
        self._commit(kafka, flushed, asynchronous=False)
        self._commit(kafka, points, asynchronous=False)
        self._lost(kafka, partitions)

    def _lost(self, kafka: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Whatever waits on these partitions is the new owner's now.
        gone = {tp.partition for tp in partitions}
        self._waiting.drop(gone)
        self._offsets.forget(gone)
        self._waiting_ids = self._waiting.ids()
        self._paused = False

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self._dedup.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fields(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
    }


def _on_error(error: KafkaError) -> None:
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka: %s", error.str())


def _on_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if error is not None:
        log.warning("offset commit failed: %s", error.str())


def _log_partitions(
    what: str, then: Callable[[KafkaConsumer, list[TopicPartition]], None] | None = None
) -> Callable[[KafkaConsumer, list[TopicPartition]], None]:
    """A rebalance callback that logs ``what`` with the partitions, then calls ``then``."""

    def callback(kafka: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        log.info(
            what,
            extra={
                "topic": partitions[0].topic if partitions else None,
                "partitions": sorted(tp.partition for tp in partitions),
            },
        )
        if then is not None:
            then(kafka, partitions)

    return callback
