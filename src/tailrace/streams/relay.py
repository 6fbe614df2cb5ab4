"""The outbox relay: publishes pending outbox events to Kafka, in order per key.

A round claims a batch, sends it, and marks it:

1. Claim (one transaction, committed durably): the next pending events by id give the
   candidate keys; the relay takes a transaction-scoped advisory lock on each key it can
   (``pg_try_advisory_xact_lock``: another relay claiming the same key right now makes it
   skip the key); then, in a fresh snapshot taken after those locks, it claims each locked
   key's oldest events unless the key has an event in flight (``publishing``, another
   relay's batch) or backing off. Those become ``publishing`` under a batch row naming the
   relay's database session. So a key is in at most one batch at a time and a batch holds a
   prefix of its key's waiting events: no relay can send a key's later event while an earlier
   one is unsettled. (The locks must come before the snapshot: taken in the same statement,
   a snapshot older than another relay's just-committed claim would not see it.)
2. Publish through an idempotent producer and wait for every delivery report.
3. Mark (``synchronous_commit = off``: a mark lost in a crash leaves the batch to step 4):
   acknowledged events published, failed ones back to pending with backoff (or dead after
   ``max_attempts``, unless the broker rather than the event failed: an outage never kills
   an event), the partitions' next offsets advanced, the batch row deleted.
4. Reconcile: a batch whose session is gone (the relay was killed between 1 and 3) is read
   back from the topic after a grace period (`outbox_reconcile`): events found are marked
   published, the rest pending. Its keys stay blocked until then, so order holds.

Events are ordered by id, i.e. by insertion: two transactions writing the same key at once
have no order between them, and the one that commits later may carry the smaller id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..engine.retry import RetryPolicy
from ..engine.store.postgres.connection import PATIENT, Reconnecting
from ..engine.store.postgres.store import PostgresStore
from ..errors import StoreClosedError
from .outbox import Q
from .outbox_mirror import RedisMirror
from .outbox_publish import BatchPublisher, BatchResult, Claimed, producer_config
from .outbox_reconcile import events_on_topics

log = logging.getLogger("tailrace.outbox.relay")

LOCK_CLASS = 0x0B0C_5E7  # first key of the two-key advisory locks on outbox keys
CHANNEL = "tailrace_outbox"
CONTENDED_WAIT_S = 0.02


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
        store = PostgresStore(database_url)
        try:
            store.migrate()
        finally:
            store.close()
        # Both connections ride out restarts and outages of the server, however long: each
        # step below is safe to run again on a new connection (see `_claim`, `_mark`).
        self._db = Reconnecting(database_url, PATIENT, "outbox relay", setup=_no_jit)
        self._listener = Reconnecting(database_url, PATIENT, "outbox relay listener", setup=_listen)
        # LISTEN before the first claim: a commit between an empty claim and a lazy LISTEN
        # would wake nobody, and the relay would sleep out its idle wait.
        self._listener.connection()
        self._config = producer_config(bootstrap_servers, self.settings.producer)
        self._publisher = BatchPublisher(self._config)
        self._next_reconcile = 0.0
        self._backoff = 0.0
        self._contended = False

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
            if self._contended:
                # Events are waiting behind another relay's batch: look again shortly
                # (its mark sends no notification).
                stop.wait(CONTENDED_WAIT_S)
                continue
            if until_idle and not self._unsettled():
                break
            self._wait_for_events(stop)

    def run_once(self) -> int:
        """One round: reconcile orphans when due, then claim, publish and mark one batch.
        Returns how many events the batch held."""
        if time.monotonic() >= self._next_reconcile:
            try:
                self.reconcile()
            except Exception:
                # reading a dead relay's batch back failed (a slow topic, a timeout): its
                # keys wait until the next try; this relay goes on with the others
                log.exception("reconciling dead relays' batches failed; will retry")
            self._next_reconcile = time.monotonic() + self.settings.reconcile_every_s
        batch_id, batch = self._claim()
        if batch_id is None:
            return 0
        result = self._publisher.publish(batch)
        self._mark(batch_id, batch, result)
        if result.broken is not None:
            log.warning("producer broken (%s): settling batch %d", result.broken, batch_id)
            self._publisher.close()
            self._publisher = BatchPublisher(self._config)
            self._settle_own(batch_id)
        if self._mirror is not None:
            acked = set(result.acked)
            self._mirror.publish([e for e in batch if e.id in acked])
        self._backoff = self._next_backoff(result)
        return len(batch)

    def _next_backoff(self, result: BatchResult) -> float:
        stats = self.stats
        if not result.failed and result.broken is None:
            if stats.in_outage:
                stats.in_outage = False
                log.warning("broker reachable again: the relay goes on")
            return 0.0
        stats.failed += len(result.failed)
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

    def _claim(self) -> tuple[int | None, list[Claimed]]:
        # Run again after a lost connection: a claim whose commit the server made before the
        # connection dropped is a batch of a session that is gone, reconciled like a dead
        # relay's (nothing of it was sent: its events go back to pending, in order).
        claimed = self._db.run(self._claim_on)
        if not claimed:
            return None, []
        self._contended = False
        batch = [Claimed(*row[:6]) for row in claimed]
        batch.sort(key=lambda event: event.id)  # RETURNING follows no order
        self.stats.batches += 1
        return int(claimed[0][6]), batch

    def _claim_on(self, conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        self._contended = False
        with conn.transaction():
            rows = conn.execute(Q["candidates"], {"limit": self.settings.batch_size}).fetchall()
            if not rows:
                return []
            self._contended = True  # until the claim below takes something
            keys = list(dict.fromkeys(key for _, key in rows if key is not None))
            locked: set[str] = set()
            if keys:
                params = {"keys": keys, "lock_class": LOCK_CLASS}
                locked = {row[0] for row in conn.execute(Q["lock_keys"], params)}
            mine = [(i, key) for i, key in rows if key is None or key in locked]
            if not mine:
                return []
            params2: dict[str, Any] = {"ids": [i for i, _ in mine], "keys": [k for _, k in mine]}
            return conn.execute(Q["claim"], params2).fetchall()

    def _mark(self, batch_id: int, batch: list[Claimed], result: BatchResult) -> None:
        settled = set(result.acked) | result.failed.keys() | set(result.unsent)
        in_doubt = [e.id for e in batch if e.id not in settled]
        if in_doubt and result.broken is None:
            # Every report arrived, yet some event had none: count it failed, to be retried.
            for event_id in in_doubt:
                result.failed[event_id] = "no delivery report"
        attempts = {e.id: e.attempts for e in batch}

        # Run again after a lost connection: every statement touches only the events still
        # `publishing` in this batch, and offsets only move forward.
        def mark(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                if result.acked:
                    params = {"ids": result.acked, "batch": batch_id}
                    conn.execute(Q["mark_published"], params)
                if result.failed:
                    self._mark_failed(conn, batch_id, result.failed, attempts, result.transient)
                if result.unsent:
                    conn.execute(Q["release"], {"ids": result.unsent, "batch": batch_id})
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
                if result.broken is None:
                    conn.execute(Q["delete_batch"], {"batch": batch_id})

        self._db.run(mark)
        self.stats.published += len(result.acked)

    def _mark_failed(
        self,
        conn: psycopg.Connection[Any],
        batch_id: int,
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
                "delays": [retry.delay(attempts[i]) for i in ids],
                "transient": [i in transient for i in ids],
                "batch": batch_id,
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
                return 0 if row is None else self._settle(conn, batch_id, row[0])

        self.stats.reconciled += self._db.run(settle)

    def _settle(
        self, conn: psycopg.Connection[Any], batch_id: int, offsets: Mapping[str, int]
    ) -> int:
        """Mark what the topic holds of a batch, the rest pending; returns how many events
        it held (counted by the caller once the transaction committed)."""
        wanted: dict[str, list[int]] = defaultdict(list)
        for event_id, topic in conn.execute(Q["batch_events"], {"batch": batch_id}):
            wanted[topic].append(event_id)
        found = events_on_topics(self.bootstrap_servers, wanted, offsets, self.settings.producer)
        conn.execute(
            Q["reconciled"],
            {"found": sorted(found), "batch": batch_id, "max_attempts": self.settings.max_attempts},
        )
        conn.execute(Q["delete_batch"], {"batch": batch_id})
        total = sum(map(len, wanted.values()))
        log.warning(
            "reconciled batch %d of a relay that stopped: %d of %d events were on the topic",
            batch_id,
            len(found),
            total,
        )
        return total

    def close(self) -> None:
        self._publisher.close()
        self._db.close()
        self._listener.close()
        if self._mirror is not None:
            self._mirror.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_jit(conn: psycopg.Connection[Any]) -> None:
    # Compiling these short statements cost more than running them (JIT on a large table).
    conn.execute("SET jit = off")


def _listen(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"LISTEN {CHANNEL}")
