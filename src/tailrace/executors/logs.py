"""Reading the local workers' logs back: the last lines of each worker, or those of the
last seconds, in the two shapes of reference 000 (per worker, and merged by time).

Each worker writes JSON lines with a ``ts`` field (`tailrace.observability.logs`); a line
that is not JSON (a traceback printed by a dying interpreter) takes the time of the line
before it, so that sorting keeps it where it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

_BLOCK = 64 * 1024
_WORKER_FILE = re.compile(r"worker-(\d+)\.log")


@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: str  # RFC 3339, UTC, as Kubernetes prefixes pod log lines
    worker_index: int
    pod_name: str
    message: str
    level: str | None


@dataclass(frozen=True, slots=True)
class WorkerLog:
    worker_index: int
    pod_name: str
    lines: list[LogLine]
    error: str | None = None


def pod_name(job_id: str, worker_index: int) -> str:
    """What the local executor calls a worker where Kubernetes would name its pod."""
    return f"local-{job_id}-{worker_index}"


def read_job_logs(
    log_dir: Path,
    job_id: str,
    *,
    tail: int | None = None,
    since_s: float | None = None,
    now: datetime | None = None,
) -> list[WorkerLog]:
    """Each worker's last `tail` lines (all, if None) written in the last `since_s` seconds
    (any time, if None), in worker order."""
    if not log_dir.is_dir():
        return []
    cutoff = (now or datetime.now(UTC)).timestamp() - since_s if since_s is not None else None
    logs = []
    for path in log_dir.iterdir():
        match = _WORKER_FILE.fullmatch(path.name)
        if match is None:
            continue
        index = int(match.group(1))
        name = pod_name(job_id, index)
        try:
            lines = _read_tail(path, index, name, tail, cutoff)
        except OSError as exc:
            logs.append(WorkerLog(index, name, [], f"cannot read {path.name}: {exc.strerror}"))
            continue
        logs.append(WorkerLog(index, name, lines))
    return sorted(logs, key=lambda log: log.worker_index)


def merge_by_time(logs: list[WorkerLog], tail: int | None = None) -> list[LogLine]:
    """Every worker's lines in one list, oldest first (stable: a worker's own order holds)."""
    merged = sorted((line for log in logs for line in log.lines), key=lambda line: line.timestamp)
    return merged[-tail:] if tail else merged


def _read_tail(
    path: Path, index: int, name: str, tail: int | None, cutoff: float | None
) -> list[LogLine]:
    """Read `path` backwards a block at a time, only as far as the lines asked for go."""
    raw: list[bytes] = []
    with path.open("rb") as f:
        position = f.seek(0, 2)
        partial = b""
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            f.seek(position)
            pieces = (f.read(step) + partial).split(b"\n")
            partial = pieces[0]
            raw[:0] = [p for p in pieces[1:] if p.strip()]
            if _enough(raw, tail, cutoff):
                break
        if position == 0 and partial.strip():
            raw.insert(0, partial)
    lines = _parse(raw, index, name, fallback=path.stat().st_mtime)
    if cutoff is not None:
        lines = [line for line in lines if _epoch(line.timestamp) >= cutoff]
    return lines[-tail:] if tail else lines


def _enough(raw: list[bytes], tail: int | None, cutoff: float | None) -> bool:
    if tail is not None and len(raw) > tail:
        return True  # only the last `tail` lines are kept, whatever `since` says
    if cutoff is None:
        return False
    # the oldest whole line read so far is already older than the window: stop
    for line in raw:
        stamp = _stamp(line)
        if stamp is not None:
            return _epoch(stamp) < cutoff
    return False


def _parse(raw: list[bytes], index: int, name: str, fallback: float) -> list[LogLine]:
    lines: list[LogLine] = []
    previous = _rfc3339(datetime.fromtimestamp(fallback, UTC))
    # lines before the first timestamped one take the first timestamp found
    for line in raw:
        stamp = _stamp(line)
        if stamp is not None:
            previous = stamp
            break
    for line in raw:
        text = line.decode("utf-8", "replace").rstrip("\r")
        level = None
        stamp = None
        if text.startswith("{"):
            try:
                entry = orjson.loads(text)
            except orjson.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                stamp = _normalise(entry.get("timestamp", entry.get("ts")))
                level = entry.get("level") if isinstance(entry.get("level"), str) else None
        previous = stamp or previous
        lines.append(LogLine(previous, index, name, text, level))
    return lines


def _stamp(line: bytes) -> str | None:
    if not line.startswith(b"{"):
        return None
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    return _normalise(entry.get("timestamp", entry.get("ts")))  # `ts` before 2026-12


def _normalise(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _rfc3339(parsed)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
