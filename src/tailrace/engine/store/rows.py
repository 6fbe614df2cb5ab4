"""Turning stored rows into job objects, and filters and searches into query parameters:
shared by both stores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ..inspection import JobSearch, hidden_queues
from ..jobs import ClaimedJob, Job, JobFilter, QueueInfo
from ..states import JobState, Priority


def _json(value: Any) -> Any:
    """JSON stored as text (SQLite) to its value."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def as_stored(value: Any) -> Any:
    """JSON the driver already decoded (psycopg and jsonb). Parsing it again would break
    arguments that are a bare JSON string: ``"abc"`` comes back as ``abc``."""
    return value


def _epoch(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)


def job_from_row(
    row: Sequence[Any],
    to_time: Callable[[Any], datetime | None] = _epoch,
    decode: Callable[[Any], Any] = _json,
) -> Job:
    run_at = to_time(row[8])
    created_at = to_time(row[9])
    assert run_at is not None and created_at is not None
    return Job(
        id=row[0],
        task=row[1],
        args=decode(row[2]),
        queue=row[3],
        priority=Priority(row[4]),
        state=JobState(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        run_at=run_at,
        created_at=created_at,
        started_at=to_time(row[10]),
        finished_at=to_time(row[11]),
        worker_id=row[12],
        dedup_key=row[13],
        timeout_s=row[14],
        cancel_requested=bool(row[15]),
        errors=decode(row[16]),
    )


def claimed_from_row(row: Sequence[Any], decode: Callable[[Any], Any] = _json) -> ClaimedJob:
    return ClaimedJob(
        id=row[0],
        task=row[1],
        args=decode(row[2]),
        queue=row[3],
        priority=Priority(row[4]),
        attempt=row[5],
        max_attempts=row[6],
        timeout_s=row[7],
        # a claim returns it (the wait-time histogram); an adoption after a reconnect not
        run_at=_epoch(row[8]) if len(row) > 8 else None,
    )


def filter_params(where: JobFilter) -> dict[str, Any]:
    return {
        "state": where.state.value if where.state else None,
        "queue": where.queue,
        "task": where.task,
        "priority": int(where.priority) if where.priority is not None else None,
        "ids": list(where.ids) if where.ids is not None else None,
        "hidden": hidden_queues(where.internal),
    }


#: The keyset cursor of a search's first page: past every job id.
NO_BOUND = 2**63 - 1


def search_params(search: JobSearch) -> dict[str, Any]:
    """A dashboard search's parameters, as both stores' ``jobs_search`` queries take them."""
    text = search.text.strip() if search.text else None
    return {
        "state": search.state,
        "queue": search.queue,
        "task": search.task,
        "priority": int(search.priority) if search.priority is not None else None,
        "text": text or None,
        "text_id": int(text) if text and text.isdigit() and len(text) < 19 else None,
        "pattern": "%" + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        if text
        else None,
        "after": search.after if search.after is not None else NO_BOUND,
        # one more than asked: whether a next page exists, without counting
        "limit": search.limit + 1,
        "hidden": hidden_queues(search.internal),
    }


def queue_infos(rows: Sequence[Any], caps: Sequence[Any]) -> list[QueueInfo]:
    """(name, paused, capacity) rows and (queue, priority, capacity) rows to `QueueInfo`s;
    a queue with only caps per priority is listed too."""
    per: dict[str, dict[Priority, int]] = {}
    for queue, priority, capacity in caps:
        per.setdefault(queue, {})[Priority(priority)] = capacity
    infos = {r[0]: QueueInfo(r[0], bool(r[1]), r[2], per.get(r[0], {})) for r in rows}
    for name in per.keys() - infos.keys():
        infos[name] = QueueInfo(name, False, None, per[name])
    return [infos[name] for name in sorted(infos)]
