"""The engine's queues and jobs (reference 002's operations): statistics by queue and
priority, jobs by state, replay or discard of dead jobs, pause and resume, enqueue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from ...engine.jobs import JobFilter
from ...engine.states import JobState, Priority
from ..errors import ApiError
from ..schemas import (
    NO_NUL,
    Count,
    DeadFilter,
    Discarded,
    EngineJobOut,
    EngineJobPage,
    EngineStateName,
    Enqueue,
    ErrorBody,
    PriorityName,
    QueuesOut,
    QueueState,
)
from ..services import Svc, authenticated

router = APIRouter(
    prefix="/api/admin",
    tags=["queues"],
    dependencies=[Depends(authenticated)],
    responses={
        400: {"model": ErrorBody, "description": "The request cannot be carried out"},
        401: {"model": ErrorBody, "description": "No valid token or session"},
        404: {"model": ErrorBody, "description": "No such job"},
        422: {"model": ErrorBody, "description": "The request is invalid"},
        503: {"model": ErrorBody, "description": "The database is unreachable"},
    },
)

_QUEUE_NAME = Path(min_length=1, max_length=200, pattern=NO_NUL)


@router.get("/queues", response_model=QueuesOut)
def queue_stats(svc: Svc) -> dict[str, Any]:
    """Every queue with its jobs counted by state, and by priority and state."""
    with svc.db() as db:
        infos = {q.name: q for q in db.app.queues()}
        stats = db.app.stats()
    queues: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        if name not in queues:
            info = infos.get(name)
            queues[name] = {
                "name": name,
                "paused": bool(info and info.paused),
                "capacity": info.capacity if info else None,
                "counts": {s.value: 0 for s in JobState},
                "by_priority": {},
            }
        return queues[name]

    for name in infos:
        entry(name)
    for s in stats:
        q = entry(s.queue)
        q["counts"][s.state.value] += s.count
        by_state = q["by_priority"].setdefault(s.priority.name, {})
        by_state[s.state.value] = by_state.get(s.state.value, 0) + s.count
    return {"queues": [queues[name] for name in sorted(queues)]}


@router.post("/queues/{name}/pause", response_model=QueueState)
def pause(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> dict[str, Any]:
    """Workers stop claiming from the queue; running jobs finish."""
    with svc.db() as db:
        db.app.queue_pause(name)
    return {"name": name, "paused": True}


@router.post("/queues/{name}/resume", response_model=QueueState)
def resume(name: Annotated[str, _QUEUE_NAME], svc: Svc) -> dict[str, Any]:
    with svc.db() as db:
        db.app.queue_resume(name)
    return {"name": name, "paused": False}


@router.get("/jobs", response_model=EngineJobPage)
def list_jobs(
    svc: Svc,
    state: EngineStateName | None = None,
    queue: str | None = Query(None, max_length=200, pattern=NO_NUL),
    task: str | None = Query(None, max_length=200, pattern=NO_NUL),
    priority: PriorityName | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> dict[str, Any]:
    where = JobFilter(
        state=JobState(state) if state else None,
        queue=queue,
        task=task,
        priority=Priority[priority] if priority else None,
    )
    with svc.db() as db:
        jobs = db.app.jobs(where, limit, offset)
    return {"jobs": [j.to_dict() for j in jobs], "limit": limit, "offset": offset}


@router.post("/jobs", status_code=201, response_model=EngineJobOut)
def enqueue(body: Enqueue, svc: Svc) -> dict[str, Any]:
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
        return db.app.job(job_id).to_dict()


@router.post("/jobs/replay", response_model=Count)
def replay_dead(body: DeadFilter, svc: Svc) -> dict[str, int]:
    """Put every dead job matching the filter back to pending."""
    with svc.db() as db:
        return {"count": db.app.replay(_dead(body))}


@router.post("/jobs/discard", response_model=Count)
def discard_dead(body: DeadFilter, svc: Svc) -> dict[str, int]:
    """Delete every dead job matching the filter."""
    with svc.db() as db:
        return {"count": db.app.discard(_dead(body))}


def _dead(body: DeadFilter) -> JobFilter:
    return JobFilter(
        state=JobState.DEAD,
        queue=body.queue,
        task=body.task,
        priority=Priority[body.priority] if body.priority else None,
    )


_JOB_ID = Path(ge=1, le=2**63 - 1)


@router.get("/jobs/{job_id:int}", response_model=EngineJobOut)
def get_job(job_id: Annotated[int, _JOB_ID], svc: Svc) -> dict[str, Any]:
    with svc.db() as db:
        return db.app.job(job_id).to_dict()


@router.post(
    "/jobs/{job_id:int}/replay", response_model=EngineJobOut, responses={409: {"model": ErrorBody}}
)
def replay_one(job_id: Annotated[int, _JOB_ID], svc: Svc) -> dict[str, Any]:
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
        return db.app.job(job_id).to_dict()


@router.post(
    "/jobs/{job_id:int}/discard", response_model=Discarded, responses={409: {"model": ErrorBody}}
)
def discard_one(job_id: Annotated[int, _JOB_ID], svc: Svc) -> dict[str, Any]:
    """Delete one dead job."""
    with svc.db() as db:
        job = db.app.job(job_id)
        if job.state is not JobState.DEAD:
            raise ApiError(
                409, "conflict", f"job {job_id} is {job.state}: only a dead job can be discarded"
            )
        db.app.discard(JobFilter(state=JobState.DEAD, ids=(job_id,)))
    return {"id": job_id, "discarded": True}


@router.post("/jobs/{job_id:int}/cancel", response_model=EngineJobOut)
def cancel(job_id: Annotated[int, _JOB_ID], svc: Svc) -> dict[str, Any]:
    """Cancel a job: a waiting one at once, a running one at its worker's next heartbeat."""
    with svc.db() as db:
        return db.app.cancel(job_id).to_dict()
