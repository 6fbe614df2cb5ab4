"""A claim retried after its connection was lost takes back what an earlier try of it
claimed: jobs running under the worker's id that the worker does not hold. Nothing is left
running under a worker that does not know it has it (until the lease would expire and the
job be run again)."""

from __future__ import annotations

import psycopg

from tailrace import App, JobSpec, JobState, Priority
from tailrace.db.connection import PATIENT
from tailrace.engine.store.postgres.store import PostgresStore


def _backend_pid(store: PostgresStore) -> int:
    row = store._run(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone())
    assert row is not None
    return int(row[0])


def test_a_retried_claim_adopts_the_jobs_a_lost_reply_claimed(pg_url: str) -> None:
    with App(pg_url) as app:
        ids = app.enqueue_many([JobSpec("t", n) for n in range(6)])
        prios = list(Priority)
        first = PostgresStore(pg_url, PATIENT)
        retried = PostgresStore(pg_url, PATIENT)
        try:
            # a claim that committed but whose reply never came back: the worker knows only
            # the first of the two jobs it got (it held it from an earlier claim)
            lost = first.jobs_claim("w", 2, 30, None, prios)
            known, orphan = lost[0].id, lost[1].id
            # the connection of the claim that retries is cut under it
            pid = _backend_pid(retried)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            got = retried.jobs_claim("w", 3, 30, None, prios, held=[known])
        finally:
            first.close()
            retried.close()
        got_ids = [j.id for j in got]
        assert orphan in got_ids and known not in got_ids, (known, orphan, got_ids)
        assert len(got_ids) == 3 == len(set(got_ids))
        adopted = next(j for j in got if j.id == orphan)
        assert adopted.attempt == 1  # the lost claim's attempt, not a second one
        running = {j.id for j in app.jobs() if j.state is JobState.RUNNING}
        assert running == {known, *got_ids}
        assert len(running) == 4 and running <= set(ids)
