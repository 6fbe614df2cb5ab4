"""The operator's views of the engine: queue lines (due apart from scheduled, wait
percentiles, throughput) and their history, the live worker processes, and bulk actions
on jobs selected by a filter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from ...engine.inspection import QueueLine, internal_queue, with_internal
from ...engine.jobs import JobFilter
from ...engine.states import JobState, Priority
from ...pipeline.jobs import ReprocessingStatus
from ..errors import ApiError
from ..operator_schemas import (
    BulkOut,
    BulkRequest,
    HistoryOut,
    JobCountOut,
    ProcessesOut,
    QueuesLinesOut,
)
from ..schemas import INTERNAL, NO_NUL, EngineStateName, PriorityName, error_responses
from ..services import Svc, authenticated

router = APIRouter(
    prefix="/api/admin",
    tags=["queues"],
    dependencies=[Depends(authenticated)],
    responses=error_responses(400, 401, 422, 503),
)

COUNT_CAP = 100_000
REPROCESSING_JOBS_SHOWN = 50
# which states each bulk action applies to, and the one it takes when none is given
BULK_STATES: dict[str, tuple[tuple[JobState, ...], JobState | None]] = {
    "retry": ((JobState.DEAD, JobState.CANCELLED, JobState.FAILED), JobState.DEAD),
    "discard": ((JobState.DEAD, JobState.CANCELLED, JobState.SUCCEEDED), JobState.DEAD),
    "cancel": ((JobState.PENDING, JobState.FAILED, JobState.RUNNING), None),
}


def _line(line: QueueLine, window_s: float) -> dict[str, Any]:
    return {
        "priority": line.priority.name if line.priority is not None else None,
        "pending": line.pending,
        "scheduled": line.scheduled,
        "running": line.running,
        "dead": line.dead,
        "oldest_wait_s": line.oldest_wait_s,
        "wait_p50_s": line.wait_p50_s,
        "wait_p95_s": line.wait_p95_s,
        "succeeded": line.succeeded,
        "died": line.died,
        "throughput_per_min": round(line.succeeded * 60.0 / window_s, 3),
    }


@router.get("/queues/lines", response_model=QueuesLinesOut)
def queue_lines(svc: Svc, window_s: float = Query(300.0, ge=10.0, le=3600.0)) -> dict[str, Any]:
    """Every queue by priority: due, scheduled, running and dead jobs, the oldest due job's
    wait, wait p50/p95 and throughput of the jobs finished in the last ``window_s``.
    A reprocessing job's own queue is listed apart, under ``internal``."""
    with svc.db() as db:
        infos = {q.name: q for q in db.app.queues()}
        lines = db.app.store.queue_lines(window_s)
    grouped: dict[str, dict[str, Any]] = {}
    for name in infos:
        grouped[name] = {"total": None, "priorities": []}
    for line in lines:
        entry = grouped.setdefault(line.queue, {"total": None, "priorities": []})
        if line.priority is None:
            entry["total"] = _line(line, window_s)
        else:
            entry["priorities"].append(_line(line, window_s))
    queues: list[dict[str, Any]] = []
    internal: list[dict[str, Any]] = []
    for name in sorted(grouped):
        info = infos.get(name)
        entry = grouped[name]
        out = {
            "name": name,
            "paused": bool(info and info.paused),
            "capacity": info.capacity if info else None,
            "reprocessing_job": name.split(":", 1)[1] if internal_queue(name) else None,
            "total": entry["total"] or _line(QueueLine(name, None), window_s),
            "priorities": entry["priorities"],
        }
        (internal if internal_queue(name) else queues).append(out)
    return {"window_s": window_s, "queues": queues, "internal": internal}


@router.get("/queues/history", response_model=HistoryOut)
def queue_history(
    svc: Svc,
    since_s: float = Query(6 * 3600.0, ge=60.0, le=24 * 3600.0),
    queue: str | None = Query(None, max_length=200, pattern=NO_NUL),
) -> dict[str, Any]:
    """One point a minute per queue, written by the workers' maintenance and kept a day."""
    with svc.db() as db:
        points = db.app.store.history_read(since_s, queue)
    return {"points": [p.to_dict() for p in points if not internal_queue(p.queue)]}


@router.get("/workers", response_model=ProcessesOut)
def workers(svc: Svc) -> dict[str, Any]:
    """The engine's worker processes as they last beat, and the workers of the running
    reprocessing jobs."""
    with svc.db() as db:
        engine = [w.to_dict() for w in db.app.store.workers_list()]
        active, _ = db.store.jobs_page(ReprocessingStatus.RUNNING, limit=REPROCESSING_JOBS_SHOWN)
        reprocessing = [
            {
                "job_id": job.id,
                "worker_index": w.worker_index,
                "status": str(w.status),
                "started_at": w.started_at,
                "updated_at": w.updated_at,
                "current_file": w.current_file,
                "processed_files": w.processed_files,
                "assigned_files": w.assigned_files,
                "lines": w.counters.lines,
            }
            for job in active
            for w in db.store.workers(job.id)
        ]
    return {"engine": engine, "reprocessing": reprocessing}


def _where(
    state: str | None,
    queue: str | None,
    task: str | None,
    priority: str | None,
    internal: bool,
) -> JobFilter:
    return JobFilter(
        state=JobState(state) if state else None,
        queue=queue,
        task=task,
        priority=Priority[priority] if priority else None,
        internal=with_internal(internal, queue),
    )


@router.get("/jobs/count", response_model=JobCountOut)
def count_jobs(
    svc: Svc,
    state: EngineStateName | None = None,
    queue: str | None = Query(None, max_length=200, pattern=NO_NUL),
    task: str | None = Query(None, max_length=200, pattern=NO_NUL),
    priority: PriorityName | None = None,
    internal: bool = INTERNAL,
) -> dict[str, Any]:
    """How many jobs a filter selects (what a bulk action would touch), up to 100,000."""
    where = _where(state, queue, task, priority, internal)
    with svc.db() as db:
        n = db.app.store.jobs_count_capped(where, COUNT_CAP)
    return {"count": n, "capped": n >= COUNT_CAP}


@router.post("/jobs/bulk", response_model=BulkOut)
def bulk(body: BulkRequest, svc: Svc) -> dict[str, Any]:
    """Retry, cancel or discard every job a filter selects. ``confirm`` must be true."""
    allowed, default = BULK_STATES[body.action]
    state = JobState(body.state) if body.state else default
    if state is not None and state not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise ApiError(
            400, "bad_request", f"{body.action} applies to jobs that are {names}, not {state}"
        )
    if not body.confirm:
        raise ApiError(
            400,
            "confirmation_required",
            f"{body.action} by filter changes every matching job: send confirm=true",
        )
    where = _where(
        state.value if state else None, body.queue, body.task, body.priority, body.internal
    )
    with svc.db() as db:
        if body.action == "cancel":
            n = db.app.store.jobs_cancel_where(where)
        elif body.action == "retry":
            n = db.app.replay(where)
        else:
            n = db.app.discard(where)
    return {"action": body.action, "count": n}
