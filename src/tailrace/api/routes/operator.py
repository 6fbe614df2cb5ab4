"""The operator's views of the engine: queue lines (due apart from scheduled, wait
percentiles, throughput) and their history, the live worker processes, and bulk actions
on jobs selected by a filter."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends, Query

from ...engine.inspection import QueueLine, internal_queue, with_internal
from ...engine.jobs import JobFilter
from ...engine.states import JobState, Priority
from ...pipeline.jobs import ReprocessingStatus
from ..errors import ApiError
from ..operator_schemas import (
    BulkOut,
    BulkRequest,
    EngineWorkerOut,
    HistoryOut,
    JobCountOut,
    ProcessesOut,
    QueueLineOut,
    QueueLinesOut,
    QueuesLinesOut,
    ReprocessingWorkerOut,
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


def _line(line: QueueLine, window_s: float) -> QueueLineOut:
    return QueueLineOut(
        # the schema's names are Priority's member names
        priority=cast(PriorityName, line.priority.name) if line.priority is not None else None,
        pending=line.pending,
        scheduled=line.scheduled,
        running=line.running,
        dead=line.dead,
        oldest_wait_s=line.oldest_wait_s,
        wait_p50_s=line.wait_p50_s,
        wait_p95_s=line.wait_p95_s,
        succeeded=line.succeeded,
        died=line.died,
        throughput_per_min=round(line.succeeded * 60.0 / window_s, 3),
    )


@router.get("/queues/lines", response_model=QueuesLinesOut)
def queue_lines(svc: Svc, window_s: float = Query(300.0, ge=10.0, le=3600.0)) -> QueuesLinesOut:
    """Every queue by priority: due, scheduled, running and dead jobs, the oldest due job's
    wait, wait p50/p95 and throughput of the jobs finished in the last ``window_s``.
    A reprocessing job's own queue is listed apart, under ``internal``."""
    with svc.db() as db:
        infos = {q.name: q for q in db.app.queues()}
        lines = db.app.store.queue_lines(window_s)
    totals: dict[str, QueueLineOut | None] = dict.fromkeys(infos)
    by_priority: dict[str, list[QueueLineOut]] = {name: [] for name in infos}
    for line in lines:
        totals.setdefault(line.queue, None)
        if line.priority is None:
            totals[line.queue] = _line(line, window_s)
        else:
            by_priority.setdefault(line.queue, []).append(_line(line, window_s))
    queues: list[QueueLinesOut] = []
    internal: list[QueueLinesOut] = []
    for name in sorted(totals):
        info = infos.get(name)
        out = QueueLinesOut(
            name=name,
            paused=bool(info and info.paused),
            capacity=info.capacity if info else None,
            reprocessing_job=name.split(":", 1)[1] if internal_queue(name) else None,
            total=totals[name] or _line(QueueLine(name, None), window_s),
            priorities=by_priority.get(name, []),
        )
        (internal if internal_queue(name) else queues).append(out)
    return QueuesLinesOut(window_s=window_s, queues=queues, internal=internal)


@router.get("/queues/history", response_model=HistoryOut)
def queue_history(
    svc: Svc,
    since_s: float = Query(6 * 3600.0, ge=60.0, le=24 * 3600.0),
    queue: str | None = Query(None, max_length=200, pattern=NO_NUL),
) -> HistoryOut:
    """One point a minute per queue, written by the workers' maintenance and kept a day."""
    with svc.db() as db:
        points = db.app.store.history_read(since_s, queue)
    shown = [p.to_dict() for p in points if not internal_queue(p.queue)]
    return HistoryOut.model_validate({"points": shown})


@router.get("/workers", response_model=ProcessesOut)
def workers(svc: Svc) -> ProcessesOut:
    """The engine's worker processes as they last beat, and the workers of the running
    reprocessing jobs."""
    with svc.db() as db:
        engine = [EngineWorkerOut.model_validate(w.to_dict()) for w in db.app.store.workers_list()]
        active, _ = db.store.jobs_page(ReprocessingStatus.RUNNING, limit=REPROCESSING_JOBS_SHOWN)
        reprocessing = [
            ReprocessingWorkerOut(
                job_id=job.id,
                worker_index=w.worker_index,
                status=str(w.status),
                started_at=w.started_at,
                updated_at=w.updated_at,
                current_file=w.current_file,
                processed_files=w.processed_files,
                assigned_files=w.assigned_files,
                lines=w.counters.lines,
            )
            for job in active
            for w in db.store.workers(job.id)
        ]
    return ProcessesOut(engine=engine, reprocessing=reprocessing)


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
) -> JobCountOut:
    """How many jobs a filter selects (what a bulk action would touch), up to 100,000."""
    where = _where(state, queue, task, priority, internal)
    with svc.db() as db:
        n = db.app.store.jobs_count_capped(where, COUNT_CAP)
    return JobCountOut(count=n, capped=n >= COUNT_CAP)


@router.post("/jobs/bulk", response_model=BulkOut)
def bulk(body: BulkRequest, svc: Svc) -> BulkOut:
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
    return BulkOut(action=body.action, count=n)
