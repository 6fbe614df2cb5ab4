"""Housekeeping that every worker runs: reap expired leases, fire cron ticks, prune, vacuum.

Every step is safe to run from many workers at once: the reaper skips rows another worker
has locked, a cron tick is fired by whichever worker inserts its row first, and pruning
deletes in batches.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from .app import App
from .inspection import HISTORY_KEEP_S, WORKER_FORGET_S
from .states import JobState
from .store import Store

log = logging.getLogger("tailrace.maintenance")

CRON_TICK_RETENTION_S = 7 * 86400.0
VACUUM_EVERY_S = 10.0
UPKEEP_EVERY_S = 5.0
LEASE_GRACE_EXTRA_S = 10.0
LEASE_GAP_SLACK_S = 2.0


class Maintenance:
    def __init__(
        self,
        app: App,
        store: Store,
        retention_s: float,
        prune_every_s: float = 60.0,
        lease_s: float | None = None,
        every_s: float = 1.0,
        pool: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.pool = pool
        self.enabled = enabled
        self._paused = False  # the pool's state at the last pass, to log its changes
        # With the workers' lease: after an outage, live workers get a lease and 10 s to
        # renew before any reap; a pass that finds the server's clock half a lease past the
        # last one (a freeze: leases may have expired under their live workers) counts as one.
        # Passes come every `every_s` plus the tick's own time, longer on a loaded machine:
        # a gap shorter than a few of them would take every pass for a freeze and never reap.
        self.lease_grace_s = lease_s + LEASE_GRACE_EXTRA_S if lease_s is not None else 0.0
        self.lease_gap_s = (
            max(lease_s / 2, 3 * every_s + LEASE_GAP_SLACK_S) if lease_s is not None else None
        )
        self.store = store
        self.retention_s = retention_s
        self.prune_every_s = prune_every_s
        # ticks at or before this instant are not ours to fire: a worker that starts late
        # does not replay a schedule's past
        self._cron_since = datetime.now(UTC)
        self._next_prune = time.monotonic() + prune_every_s
        self._next_vacuum = time.monotonic() + VACUUM_EVERY_S
        self._next_upkeep = time.monotonic()

    def tick(self) -> None:
        self.reap()
        self.fire_schedules(self.pool_paused())
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_every_s
            self.prune()
        if time.monotonic() >= self._next_upkeep:
            self._next_upkeep = time.monotonic() + UPKEEP_EVERY_S
            self.keep_books()
        if time.monotonic() >= self._next_vacuum:
            self._next_vacuum = time.monotonic() + VACUUM_EVERY_S
            if self.store.jobs_vacuum():
                log.info("vacuumed the job table")

    def reap(self) -> int:
        reaped = self.store.leases_reap(self.lease_grace_s, self.lease_gap_s)
        for job_id, state in reaped:
            log.warning(
                "lease expired; job returned", extra={"job_id": job_id, "state": state.value}
            )
        return len(reaped)

    def pool_paused(self) -> bool:
        """Is this worker's pool paused (or its processing disabled at start)? Logs changes."""
        if not self.enabled:
            return True
        if self.pool is None:
            return False
        paused = any(p.name == self.pool and p.paused for p in self.store.pools_list())
        if paused != self._paused:
            self._paused = paused
            log.info(
                "worker pool paused" if paused else "worker pool resumed", extra={"pool": self.pool}
            )
        return paused

    def fire_schedules(self, paused: bool | None = None) -> int:
        """Fire the ticks due since the last pass. Ticks that fall while this worker's pool
        is paused, or for a schedule whose queue is paused, are held back: skipped, not
        saved up, so a resume brings the next tick rather than a pile of missed ones."""
        now = datetime.now(UTC)
        since, self._cron_since = self._cron_since, now
        if not self.app.schedules:
            return 0
        if self.pool_paused() if paused is None else paused:
            return 0
        paused_queues = {q.name for q in self.store.queues_list() if q.paused}
        fired = held = 0
        for schedule in self.app.schedules.values():
            for tick in schedule.cron.ticks_between(since, now):
                job = self.app.new_job(
                    schedule.task,
                    schedule.args,
                    queue=schedule.queue,
                    priority=schedule.priority,
                    run_at=tick,
                )
                if job.queue in paused_queues:
                    held += 1
                    continue
                job_id = self.store.cron_fire(
                    schedule.name, tick, job, self.app.queue_capacity_defaults
                )
                if job_id is not None:
                    fired += 1
                    log.info(
                        "schedule fired",
                        extra={
                            "schedule": schedule.name,
                            "tick": tick.isoformat(),
                            "job_id": job_id,
                        },
                    )
        if held:
            log.info("schedule ticks held back: their queue is paused", extra={"count": held})
        return fired

    def keep_books(self) -> None:
        """What the dashboard and /metrics read: known queues, the per-minute history,
        and forgetting the worker processes that stopped beating long ago."""
        # once a minute, by one worker: both walk every live job
        if self.store.history_roll(HISTORY_KEEP_S):
            self.store.queues_remember()
        self.store.workers_forget(WORKER_FORGET_S)

    def prune(self) -> int:
        n = self.store.jobs_prune(self.retention_s, [JobState.SUCCEEDED, JobState.CANCELLED])
        self.store.cron_ticks_prune(CRON_TICK_RETENTION_S)
        if n:
            log.info("pruned finished jobs", extra={"count": n})
        return n
