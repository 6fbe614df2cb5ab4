"""The outbox relay: publishes pending outbox events to Kafka, in order per key.

Keys hash into buckets; a relay publishes only the buckets its database session holds the
advisory locks of (`buckets`), so no two relays send a key at once and claiming an
event writes nothing to its row. A round:

1. Claim (a read): the next pending events of the relay's buckets by id, leaving out events
   held behind an earlier event of their key that is dead or backing off, and buckets named
   by another session's batch (a dead relay's, not yet reconciled). A key's event that failed
   before goes alone: its later events are left for a later batch.
2. Open (one row, committed durably before anything is sent): the batch's event ids, the
   relay's session, its buckets and the partitions' next offsets.
3. Publish through an idempotent producer.
4. Mark (``synchronous_commit = off``: a mark lost in a crash leaves the batch to step 5):
   the batch row deleted (if it is already gone, a reconciler settled it: nothing is
   marked), acknowledged events deleted and counted, failed ones back off (or are dead after
   ``max_attempts``, unless the broker rather than the event failed: an outage never kills
   an event), the partitions' next offsets advanced.
5. Reconcile: a batch whose session is gone (its relay died between 2 and 4) is read back
   from the topic after a grace period (`reconcile`): events found are published,
   the rest stay pending with an attempt counted. Its buckets wait until then, so order holds.

Pipelined: the next batch is claimed while the broker acknowledges this one, sent once this
one is acknowledged whole, and this one is marked while the broker takes the next. A failure
in a batch drops the next unsent (its events are still pending, untouched) and the claim
starts again from the lowest pending id. So the database and the broker work at once, and a
key's events reach the broker in id order, one batch after the other, as from one batch.

Events are ordered by id, i.e. by insertion: two transactions writing the same key at once
have no order between them, and the one that commits later may carry the smaller id (it is
published after the key's later events already claimed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ...db import migrate
from ...db.connection import PATIENT, Reconnecting
from ...engine.retry import RetryPolicy
from ...errors import StoreClosedError
from . import Q, metrics
from .buckets import BUCKETS, Buckets
from .mirror import RedisMirror
from .publish import BatchPublisher, BatchResult, Claimed, producer_config
from .reconcile import events_on_topics

log = logging.getLogger("tailrace.outbox.relay")

CHANNEL = "tailrace_outbox"


@dataclass(frozen=True)
class RelaySettings:
    """How a relay batches, retries and watches for dead relays."""

    batch_size: int = 5000
    max_attempts: int = 5
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(base_s=1.0, max_s=300.0))
    idle_wait_s: float = 1.0  # longest wait for a NOTIFY before looking again
    reconcile_every_s: float = 5.0
    orphan_grace_s: float = 5.0  # lets a dead relay's last requests land before reading back
    broker_backoff_max_s: float = 30.0
    producer: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    reconciled: int = 0
    batches: int = 0
    # Events that failed for the broker's sake (an outage), and whether the last batch did.
    transient_failures: int = 0
    in_outage: bool = False


@dataclass
class _Flight:
    """A batch sent and not yet marked."""

    id: int
    events: list[Claimed]
    result: BatchResult
    # holds a key's event that failed before: nothing is claimed past it until it settles
    solo: bool
    # the buckets its claim could use: the only ones a claim after it may use
    usable: list[int]
    sent_at: float = 0.0  # monotonic, for tailrace_outbox_batch_seconds


# What the database thread's part of a round returns: events marked, and the batch claimed
# (its id, events and usable buckets).
_Step = tuple[int, int | None, list[Claimed], list[int]]


class Relay:
    """One relay process's loop; run several against one database to share the work."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        settings: RelaySettings | None = None,
        *,
        mirror: RedisMirror | None = None,
    ) -> None:
        self.settings = settings or RelaySettings()
        self.bootstrap_servers = bootstrap_servers
        self.stats = RelayStats()
        self._mirror = mirror
        migrate(database_url)  # the streams line's tables (and every other line's)
        # Both connections ride out restarts and outages of the server, however long: each
        # step below is safe to run again on a new connection (see `_claim`, `_mark`).
        self._buckets = Buckets()
        self._db = Reconnecting(database_url, PATIENT, "outbox relay", setup=self._setup)
        self._listener = Reconnecting(database_url, PATIENT, "outbox relay listener", setup=_listen)
        # LISTEN before the first claim: a commit between an empty claim and a lazy LISTEN
        # would wake nobody, and the relay would sleep out its idle wait.
        self._listener.connection()
        self._db.connection()  # present now: relays started together share the buckets at once
        self._config = producer_config(bootstrap_servers, self.settings.producer)
        self._publisher = BatchPublisher(self._config)
        self._next_tick = 0.0
        self._backoff = 0.0
        # The database work of a round (mark the last batch, claim the next) runs on this
        # thread while the loop's thread waits for the broker and sends.
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="outbox-relay-db")
        self._flight: _Flight | None = None  # sent, reports awaited
        self._acked: _Flight | None = None  # reports in, to be marked
        self._dropped: list[int] = []  # batches claimed, never sent
        self._next: Future[_Step] | None = None  # the claim made ahead

    def _setup(self, conn: psycopg.Connection[Any]) -> None:
        # Compiling these short statements cost more than running them (JIT on a large table).
        conn.execute("SET jit = off")
        # The claim must walk the pending index in id order and stop at its limit; on a
        # table that grew since it was analyzed, the planner guessed few rows and fetched
        # every pending one by bitmap, then sorted them (50 ms against 10 for 5,000).
        conn.execute("SET enable_bitmapscan = off")
        conn.execute("SET enable_sort = off")
        self._buckets.on_connect(conn)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> RelayStats:
        """Relay until `stop` is set (or, with `until_idle`, until nothing is left to do)."""
        stop = stop or threading.Event()
        self._db.stop = self._listener.stop = stop
        try:
            self._loop(stop, until_idle)
        except StoreClosedError:
            if not stop.is_set():
                raise
            # Stopped during a database outage: a batch claimed and not marked is left to
            # the reconciling of the next relay (what it finds on the topic is published).
            log.warning("stopped while the database was unreachable")
        return self.stats

    def _loop(self, stop: threading.Event, until_idle: bool) -> None:
        while not stop.is_set():
            if self._backoff and stop.wait(self._backoff):
                break
            if self.run_once():
                continue
            if until_idle and not self._unsettled():
                break
            self._wait_for_events(stop)
        self._land()

    def run_once(self) -> int:
        """One round: reconcile orphans and balance the buckets when due; then, on the
        database thread, mark the last batch acknowledged and claim the next, while this
        thread waits for the reports of the batch in flight; then send the claimed batch.
        Returns how many events the round claimed, saw acknowledged, and marked."""
        if time.monotonic() >= self._next_tick:
            self._land()  # the buckets change hands only with nothing in flight
            self._db_thread.submit(self._tick).result()
        return self._round(claim=True)

    def _round(self, claim: bool) -> int:
        flight, self._flight = self._flight, None
        if self._next is None:  # no claim made ahead: make it now, after the flight's events
            # Past a retried head nothing is claimed until it settles (`_cut_behind_retries`).
            ahead = claim and not (flight is not None and flight.solo)
            if flight is None:
                self._next = self._submit(ahead, 0, None)
            else:
                self._next = self._submit(ahead, flight.events[-1].id, flight.usable)
        result = None if flight is None else self._publisher.wait(flight.result)
        if flight is not None:
            metrics.BATCH_SECONDS.observe(time.monotonic() - flight.sent_at)
        marked, batch_id, batch, usable = self._next.result()
        self._next = None
        # Not idle while a batch waits for its mark: the next round marks it.
        done = marked + len(batch) + (0 if flight is None else len(flight.events))
        if flight is not None and result is not None:
            self._acked = flight
            self._backoff = self._next_backoff(result)
            if result.broken is not None:
                log.warning("producer broken (%s): settling batch %d", result.broken, flight.id)
                self._publisher.close()
                self._publisher = BatchPublisher(self._config)
            if result.failed or result.unsent or result.broken is not None:
                # The claimed batch may hold later events of a failed key: dropped unsent,
                # its events are claimed again, in order, once the failures are marked.
                claim = False
        if batch_id is not None and not claim:
            self._dropped.append(batch_id)
        elif batch_id is not None and batch:
            sending = _cut_behind_retries(batch)
            solo = len(sending) < len(batch) or any(e.attempts for e in sending)
            if not solo:
                # The database marks the last batch and claims the one after this, while
                # this thread sends this one and the broker acknowledges it.
                self._next = self._submit(True, batch[-1].id, usable)
            self.stats.batches += 1
            sent_at = time.monotonic()
            sent = self._publisher.send(sending)
            flight = _Flight(batch_id, sending, sent, solo, usable, sent_at)
            self._flight = flight
        return done

    def _submit(self, claim: bool, after: int, usable: list[int] | None) -> Future[_Step]:
        acked, self._acked = self._acked, None
        dropped, self._dropped = self._dropped, []
        return self._db_thread.submit(self._step, acked, dropped, claim, after, usable)

    def _land(self) -> None:
        """Wait for the batch in flight and mark everything: nothing left in the air."""
        while self._flight or self._acked or self._dropped or self._next:
            self._round(claim=False)

    def _step(
        self,
        acked: _Flight | None,
        dropped: list[int],
        claim: bool,
        after: int,
        usable: list[int] | None,
    ) -> _Step:
        """The database thread's part of a round: mark `acked`, forget `dropped`, claim."""
        marked = 0
        if acked is not None:
            self._mark(acked.id, acked.events, acked.result)
            if acked.result.broken is not None:
                self._settle_own(acked.id)
            if self._mirror is not None:
                done = set(acked.result.acked)
                self._mirror.publish([e for e in acked.events if e.id in done])
            marked = len(acked.events)
        if dropped:
            self._db.run(lambda conn: conn.execute(Q["drop_batches"], {"batches": dropped}))
        if not claim:
            return marked, None, [], []
        batch_id, batch, usable = self._claim(after, usable)
        return marked, batch_id, batch, usable

    def _tick(self) -> None:
        try:
            self.reconcile()
        except Exception:
            # reading a dead relay's batch back failed (a slow topic, a timeout): its
            # buckets wait until the next try; this relay goes on with the others
            log.exception("reconciling dead relays' batches failed; will retry")
        self._db.run(self._buckets.balance)
        self._next_tick = time.monotonic() + self.settings.reconcile_every_s

    def _next_backoff(self, result: BatchResult) -> float:
        stats = self.stats
        if not result.failed and result.broken is None:
            if stats.in_outage:
                stats.in_outage = False
                log.warning("broker reachable again: the relay goes on")
            return 0.0
        stats.failed += len(result.failed)
        metrics.FAILED.inc(len(result.failed))
        stats.transient_failures += len(result.transient)
        backoff = min(self.settings.broker_backoff_max_s, max(0.5, self._backoff * 2))
        if result.transient or result.broken is not None:
            # Visible while it lasts: one line per failed round, with what waits.
            stats.in_outage = True
            log.warning(
                "broker outage: %d events failed, backing off %.1f s; their keys wait",
                len(result.transient),
                backoff,
                extra={"outage": True, "backoff_s": backoff, "failed": len(result.failed)},
            )
        return backoff

    def _wait_for_events(self, stop: threading.Event) -> None:
        # Bounded by idle_wait_s: a stop asked from another thread cannot wake a NOTIFY wait.
        # A NOTIFY sent while the listener was reconnecting is lost: the bound covers it.
        wait = self.settings.idle_wait_s
        self._listener.run(lambda conn: list(conn.notifies(timeout=wait, stop_after=1)))

    def _unsettled(self) -> bool:
        # Events held behind a dead one wait for a requeue, not for this relay.
        row = self._db.run(lambda conn: conn.execute(Q["unsettled"]).fetchone())
        return bool(row and row[0])

    # -- claim and mark -----------------------------------------------------------------------

    def _claim(
        self, after: int, usable: list[int] | None
    ) -> tuple[int | None, list[Claimed], list[int]]:
        """Claim the next events of the owned buckets after id `after` (after a batch in
        flight: of the buckets its claim could use, `usable`), opening their batch; returns
        its id (None if nothing was claimed), its events and the buckets it could use."""
        buckets = self._buckets

        def claim(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            if not buckets.owned or not buckets.current(conn):
                self._next_tick = 0.0  # a new session: it takes its buckets at the next tick
                return []
            params = {
                "mine": buckets.owned if usable is None else usable,
                "started": buckets.started,
                "after": after,
                "limit": self.settings.batch_size,
                "total": BUCKETS,
            }
            return conn.execute(Q["claim"], params, binary=True).fetchall()

        # Run again after a lost connection: a claim whose commit the server made before
        # the connection dropped is a batch of a session that is gone, reconciled like a
        # dead relay's (nothing of it was sent: its events stay pending, in order).
        rows = self._db.run(claim)
        if not rows:
            return None, [], []
        return int(rows[0][6]), [Claimed._make(row[:6]) for row in rows], list(rows[0][7])

    def _mark(self, batch_id: int, batch: list[Claimed], result: BatchResult) -> None:
        settled = set(result.acked) | result.failed.keys() | set(result.unsent)
        in_doubt = [e.id for e in batch if e.id not in settled]
        if in_doubt and result.broken is None:
            # Every report arrived, yet some event had none: count it failed, to be retried.
            for event_id in in_doubt:
                result.failed[event_id] = "no delivery report"
        attempts = {e.id: e.attempts for e in batch}

        # Run again after a lost connection: the batch row is deleted (or, for a broken
        # producer, locked) first, so a repeat finds it gone and marks nothing twice.
        def mark(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                params = {"batch": batch_id}
                # A broken producer leaves its batch to `_settle_own`, which reads back the
                # events in doubt; those settled here are no longer pending there.
                query = Q["close_batch"] if result.broken is None else Q["lock_batch"]
                if conn.execute(query, params).fetchone() is None:
                    return False
                if result.acked:
                    _mark_published(conn, result.acked)
                if result.failed:
                    self._mark_failed(conn, result.failed, attempts, result.transient)
                if result.next_offsets:
                    where = sorted(result.next_offsets)
                    conn.execute(
                        Q["advance_offsets"],
                        {
                            "topics": [t for t, _ in where],
                            "partitions": [p for _, p in where],
                            "offsets": [result.next_offsets[w] for w in where],
                        },
                    )
            return True

        if self._db.run(mark):
            self.stats.published += len(result.acked)
            metrics.PUBLISHED.inc(len(result.acked))
        else:
            log.warning("batch %d was reconciled by another relay before its mark", batch_id)

    def _mark_failed(
        self,
        conn: psycopg.Connection[Any],
        failed: dict[int, str],
        attempts: dict[int, int],
        transient: set[int],
    ) -> None:
        ids = sorted(failed)
        retry = self.settings.retry
        conn.execute(
            Q["mark_failed"],
            {
                "ids": ids,
                "errors": [failed[i] for i in ids],
                "delays": [retry.delay(attempts[i] + 1) for i in ids],
                "transient": [i in transient for i in ids],
                "max_attempts": self.settings.max_attempts,
            },
        )
        log.warning("%d outbox events failed, first: %s", len(ids), failed[ids[0]])

    # -- reconciling --------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Settle the batches of dead relays whose grace period is over; returns how many."""

        # Run again after a lost connection: a batch settled before is gone from the list.
        def reconcile(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            settled = events = 0
            with conn.transaction():
                orphans = conn.execute(
                    Q["orphans"], {"grace": self.settings.orphan_grace_s}
                ).fetchall()
                fresh = [batch for batch, _, due in orphans if not due]
                if fresh:
                    conn.execute(Q["orphan_seen"], {"batches": fresh})
                for batch, offsets, due in orphans:
                    if due:
                        events += self._settle(conn, batch, offsets)
                        settled += 1
            return settled, events

        settled, events = self._db.run(reconcile)
        self.stats.reconciled += events
        return settled

    def _settle_own(self, batch_id: int) -> None:
        def settle(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                row = conn.execute(
                    "SELECT offsets FROM tailrace_outbox_batches WHERE id = %s FOR UPDATE",
                    (batch_id,),
                ).fetchone()
                # The producer broke (fenced, fatal), not the events: no attempt counted,
                # so an outage never kills an event.
                return 0 if row is None else self._settle(conn, batch_id, row[0], counts=False)

        self.stats.reconciled += self._db.run(settle)

    def _settle(
        self,
        conn: psycopg.Connection[Any],
        batch_id: int,
        offsets: Mapping[str, int],
        *,
        counts: bool = True,
    ) -> int:
        """Mark what the topic holds of a batch, the rest pending; returns how many events
        it held (counted by the caller once the transaction committed). With `counts`, a
        relay died with the batch: the rest's attempts go up (a poison event ends dead)."""
        wanted: dict[str, list[int]] = defaultdict(list)
        for event_id, topic in conn.execute(Q["batch_events"], {"batch": batch_id}):
            wanted[topic].append(event_id)
        found = events_on_topics(self.bootstrap_servers, wanted, offsets, self.settings.producer)
        conn.execute(
            Q["reconciled"],
            {
                "found": sorted(found),
                "batch": batch_id,
                "max_attempts": self.settings.max_attempts,
                "counts": counts,
                "reason": "the relay stopped before the broker acknowledged"
                if counts
                else "the producer broke before the broker acknowledged",
            },
        )
        conn.execute(Q["delete_batch"], {"batch": batch_id})
        total = sum(map(len, wanted.values()))
        log.warning(
            "reconciled batch %d (%s): %d of %d events were on the topic",
            batch_id,
            "a relay that stopped" if counts else "its producer broke",
            len(found),
            total,
        )
        return total

    def close(self) -> None:
        self._db_thread.shutdown()
        self._publisher.close()
        self._db.close()
        self._listener.close()
        if self._mirror is not None:
            self._mirror.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mark_published(conn: psycopg.Connection[Any], acked: list[int]) -> None:
    low, high = min(acked), max(acked)
    if high - low + 1 == len(acked):  # distinct ids: so every id of the range is acked
        conn.execute(Q["mark_published_range"], {"low": low, "high": high})
    else:
        conn.execute(Q["mark_published"], {"ids": acked})


def _cut_behind_retries(batch: list[Claimed]) -> list[Claimed]:
    """A key's event that failed before goes alone: sent with its key's later events, it
    could fail again while they are acknowledged, ahead of it."""
    if not any(e.attempts for e in batch):
        return batch
    retrying: set[str] = set()
    kept = []
    for event in batch:
        if event.key is not None:
            if event.key in retrying:
                continue
            if event.attempts:
                retrying.add(event.key)
        kept.append(event)
    return kept


def _listen(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"LISTEN {CHANNEL}")
