"""The JSON shapes of the operator's views: queue lines and history, worker processes,
bulk actions on engine jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from .schemas import EngineStateName, Name, PriorityName, _Strict

BulkAction = Literal["retry", "cancel", "discard"]


class QueueLineOut(BaseModel):
    priority: PriorityName | None  # None: the queue's total
    pending: int
    scheduled: int
    running: int
    dead: int
    oldest_wait_s: float | None
    wait_p50_s: float | None
    wait_p95_s: float | None
    succeeded: int
    died: int
    throughput_per_min: float


class QueueLinesOut(BaseModel):
    name: str
    paused: bool
    capacity: int | None
    reprocessing_job: str | None  # set for a reprocessing job's own queue
    total: QueueLineOut
    priorities: list[QueueLineOut]


class QueuesLinesOut(BaseModel):
    window_s: float
    queues: list[QueueLinesOut]
    internal: list[QueueLinesOut]  # `reprocess:<id>` queues, shown under their job


class HistoryPointOut(BaseModel):
    at: datetime
    queue: str
    pending: int
    scheduled: int
    running: int
    dead: int
    succeeded: int
    failed: int
    wait_p50_s: float | None
    wait_p95_s: float | None


class HistoryOut(BaseModel):
    points: list[HistoryPointOut]


class EngineWorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str] | None
    priorities: list[PriorityName]
    concurrency: int
    in_flight: int
    processed: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    alive: bool
    pool: str | None = None  # `tailrace worker --pool NAME`


class ReprocessingWorkerOut(BaseModel):
    job_id: str
    worker_index: int
    status: str
    started_at: datetime | None
    updated_at: datetime | None
    current_file: str | None
    processed_files: int
    assigned_files: int
    lines: int


class ProcessesOut(BaseModel):
    engine: list[EngineWorkerOut]
    reprocessing: list[ReprocessingWorkerOut]


class JobCountOut(BaseModel):
    count: int
    capped: bool  # True: at least `count` jobs match (counting stops there)


class BulkRequest(_Strict):
    action: BulkAction
    state: EngineStateName | None = None
    queue: Name | None = None
    task: Name | None = None
    priority: PriorityName | None = None
    # the reprocessing jobs' own queues (`reprocess:<id>`) too; a `queue` naming one is enough
    internal: bool = False
    confirm: bool = False  # must be true: the client showed the count and the operator agreed


class BulkOut(BaseModel):
    action: BulkAction
    count: int
