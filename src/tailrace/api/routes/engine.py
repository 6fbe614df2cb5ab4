"""The engine's queues and jobs (reference 002's operations): statistics by queue and
priority, jobs by state, replay or discard of dead jobs, pause and resume, enqueue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ...engine.inspection import JobSearch, with_internal
from ...engine.jobs import Job, JobFilter
from ...engine.states import JobState, Priority
from ..errors import ApiError
from ..schemas import (
    INTERNAL,
    NO_NUL,
    Count,
    DeadFilter,
    Discarded,
    EngineJobOut,
    EngineJobPage,
    EngineStateName,
    Enqueue,
    ErrorBody,
    PoolsOut,
    PriorityName,
    QueueOut,
    QueuesOut,
    QueueState,
    error_responses,
)
from ..services import Svc, authenticated

router = APIRouter(
    prefix="/api/admin",
    tags=["queues"],
    dependencies=[Depends(authenticated)],
    responses=error_responses(400, 401, 404, 422, 503),
)

_QUEUE_NAME = Path(min_length=1, max_length=200, pattern=NO_NUL)


@router.get("/queues", response_model=QueuesOut)
def queue_stats(svc: Svc) -> QueuesOut:
    """Every queue with its jobs counted by state, and by priority and state."""
    with svc.db() as db:
        infos = {q.name: q for q in db.app.queues()}
        stats = db.app.stats()
    queues: dict[str, QueueOut] = {}

    def entry(name: str) -> QueueOut:
        if name not in queues:
            info = infos.get(name)
            queues[name] = QueueOut(
                name=name,
                paused=bool(info and info.paused),
                capacity=info.capacity if info else None,
                capacity_by_priority={p.name: n for p, n in info.capacities.items()}
                if info
                else {},
                counts={s.value: 0 for s in JobState},
                by_priority={},
            )
        return queues[name]

    for name in infos:
        entry(name)
    for s in stats:
        q = entry(s.queue)
        q.counts[s.state.value] += s.count
        by_state = q.by_priority.setdefault(s.priority.name, {})
        by_state[s.state.value] = by_state.get(s.state.value, 0) + s.count
    return QueuesOut(queues=[queues[name] for name in sorted(queues)])


@router.post("/queues/{name}/pause", response_model=QueueState)
def pause(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> QueueState:
    """Workers stop claiming from the queue; running jobs finish."""
    with svc.db() as db:
        db.app.queue_pause(name)
    return QueueState(name=name, paused=True)


@router.post("/queues/{name}/resume", response_model=QueueState)
def resume(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> QueueState:
    with svc.db() as db:
        db.app.queue_resume(name)
    return QueueState(name=name, paused=False)


@router.get("/pools", response_model=PoolsOut)
def pools(svc: Svc) -> PoolsOut:
    """The worker pools (of workers started with ``--pool``, or paused or resumed) and their
    state."""
    with svc.db() as db:
        found = db.app.pools()
    return PoolsOut(pools=[QueueState(name=p.name, paused=p.paused) for p in found])


@router.post("/pools/{name}/pause", response_model=QueueState)
def pause_pool(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> QueueState:
    """The workers started with ``--pool NAME`` stop claiming jobs and firing schedules
    (running jobs finish), without a restart."""
    with svc.db() as db:
        db.app.pool_pause(name)
    return QueueState(name=name, paused=True)


@router.post("/pools/{name}/resume", response_model=QueueState)
def resume_pool(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> QueueState:
    with svc.db() as db:
        db.app.pool_resume(name)
    return QueueState(name=name, paused=False)


@router.get("/jobs", response_model=EngineJobPage)
def list_jobs(
    svc: Svc,
    state: EngineStateName | None = None,
    queue: str | None = Query(None, max_length=200, pattern=NO_NUL),
    task: str | None = Query(None, max_length=200, pattern=NO_NUL),
    priority: PriorityName | None = None,
    q: str | None = Query(
        None, max_length=200, pattern=NO_NUL, description="a job id, a dedup key, part of a task"
    ),
    after: int | None = Query(
        None, ge=1, le=2**63 - 1, description="the `next_after` of the previous page"
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(
        0, ge=0, le=10_000_000, description="deprecated: use `after` (OFFSET reads every row)"
    ),
    internal: bool = INTERNAL,
) -> EngineJobPage:
    """Jobs newest first, one keyset page at a time: each page costs the same however deep.
    The jobs of the reprocessing jobs' own queues (``reprocess:<id>``) are left out unless
    `internal`, or `queue` (or `q`) names such a queue."""
    prio = Priority[priority] if priority else None
    shown = with_internal(internal, queue, q)
    if offset:
        where = JobFilter(JobState(state) if state else None, queue, task, prio, internal=shown)
        with svc.db() as db:
            jobs = db.app.jobs(where, limit, offset)
        return EngineJobPage(jobs=[_job_out(j) for j in jobs], limit=limit, offset=offset)
    search = JobSearch(state, queue, task, prio, q, after, limit, internal=shown)
    with svc.db() as db:
        page = db.app.store.jobs_search(search)
    return EngineJobPage(
        jobs=[_job_out(j) for j in page.jobs], limit=limit, offset=0, next_after=page.next_after
    )


@router.post("/jobs", status_code=201, response_model=EngineJobOut)
def enqueue(body: Enqueue, svc: Svc) -> EngineJobOut:
    """Enqueue a job for a task (the workers that run it register the task)."""
    with svc.db() as db:
        job_id = db.app.enqueue(
            body.task,
            body.args,
            queue=body.queue,
            priority=body.priority,
            delay=body.delay,
            max_attempts=body.max_attempts,
            timeout=body.timeout,
            dedup_key=body.dedup_key,
        )
        return _job_out(db.app.job(job_id))


@router.post("/jobs/replay", response_model=Count)
def replay_dead(body: DeadFilter, svc: Svc) -> Count:
    """Put every dead job matching the filter back to pending."""
    with svc.db() as db:
        return Count(count=db.app.replay(_dead(body)))


@router.post("/jobs/discard", response_model=Count)
def discard_dead(body: DeadFilter, svc: Svc) -> Count:
    """Delete every dead job matching the filter."""
    with svc.db() as db:
        return Count(count=db.app.discard(_dead(body)))


def _dead(body: DeadFilter) -> JobFilter:
    return JobFilter(
        state=JobState.DEAD,
        queue=body.queue,
        task=body.task,
        priority=Priority[body.priority] if body.priority else None,
    )


_JOB_ID = Path(ge=1, le=2**63 - 1)


@router.get("/jobs/{job_id:int}", response_model=EngineJobOut)
def get_job(job_id: Annotated[int, _JOB_ID], svc: Svc) -> EngineJobOut:
    """One job with its timings: waited (due to started) and ran (started to finished)."""
    with svc.db() as db:
        job = db.app.job(job_id)
    return _job_out(job, timings(job))


def _job_out(job: Job, timed: dict[str, float | None] | None = None) -> EngineJobOut:
    return EngineJobOut.model_validate({**job.to_dict(), "timings": timed})


def timings(job: Job) -> dict[str, float | None]:
    def span(start: datetime | None, end: datetime | None) -> float | None:
        return max(0.0, (end - start).total_seconds()) if start and end else None

    return {
        "waited_s": span(job.run_at, job.started_at),
        "ran_s": span(job.started_at, job.finished_at),
    }


@router.post(
    "/jobs/{job_id:int}/replay", response_model=EngineJobOut, responses={409: {"model": ErrorBody}}
)
def replay_one(job_id: Annotated[int, _JOB_ID], svc: Svc) -> EngineJobOut:
    """Put one dead (or cancelled) job back to pending."""
    with svc.db() as db:
        job = db.app.job(job_id)
        if job.state not in (JobState.DEAD, JobState.CANCELLED):
            raise ApiError(
                409,
                "conflict",
                f"job {job_id} is {job.state}: only a dead or cancelled job can be replayed",
            )
        db.app.replay(JobFilter(state=job.state, ids=(job_id,)))
        return _job_out(db.app.job(job_id))


@router.post(
    "/jobs/{job_id:int}/discard", response_model=Discarded, responses={409: {"model": ErrorBody}}
)
def discard_one(job_id: Annotated[int, _JOB_ID], svc: Svc) -> Discarded:
    """Delete one dead job."""
    with svc.db() as db:
        job = db.app.job(job_id)
        if job.state is not JobState.DEAD:
            raise ApiError(
                409, "conflict", f"job {job_id} is {job.state}: only a dead job can be discarded"
            )
        db.app.discard(JobFilter(state=JobState.DEAD, ids=(job_id,)))
    return Discarded(id=job_id, discarded=True)


@router.post("/jobs/{job_id:int}/cancel", response_model=EngineJobOut)
def cancel(job_id: Annotated[int, _JOB_ID], svc: Svc) -> EngineJobOut:
    """Cancel a job: a waiting one at once, a running one at its worker's next heartbeat."""
    with svc.db() as db:
        return _job_out(db.app.cancel(job_id))
