"""The worker contract of reference 001: a worker started with ``JOB_ID``, ``WORKER_INDEX``,
``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS`` and ``KAFKA_DESTINATIONS_TOPIC``, with the
file list at ``/config/files/files.json`` and the job's settings at
``/config/job/config.json`` (Jitsu's ConfigMaps, or files made by hand as in its "Local
Testing" recipe), works a job nobody planned in the database: the first worker of the job
to start stores it from those files, and every worker then claims its files as usual.

``TAILRACE_WORKER_CONFIG_DIR`` moves ``/config`` (the recipe writes to ``/tmp/config``).
``files.json`` is a JSON array of ``{"path": ..., "size": ...}`` (or of paths), plain or
gzipped as Jitsu's admin stores it; ``worker_count`` beside it (or ``TOTAL_WORKERS``) says
how many workers share the job.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tailrace.db import DEFAULT, migrate
from tailrace.db.connection import connect
from tailrace.engine.app import App
from tailrace.errors import ConfigurationError
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStore
from tailrace.pipeline.jobs.model import BATCH_SIZE
from tailrace.pipeline.jobs.store import ReprocessingJobNotFoundError
from tailrace.pipeline.plan import create_job, listed_files, start_from
from tailrace.pipeline.sources import SourceFile
from tailrace.settings import current

_CREATE_LOCK = 0x7A11_0001  # serialises the workers of one job that all start at once


@dataclass(frozen=True)
class Mounted:
    """What the worker found mounted: the files, the job's settings and the worker count."""

    files: list[SourceFile]
    source: str
    settings: dict[str, Any]
    workers: int


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    return Path(current(environ).worker_config_dir)


def read_mounted(directory: Path, environ: Mapping[str, str] | None = None) -> Mounted | None:
    """The mounted job, or None when no files.json is there."""
    listing = directory / "files" / "files.json"
    if not listing.is_file():
        return None
    items = _json(listing)
    if not isinstance(items, list) or not items:
        raise ConfigurationError(f"{listing}: expected a non-empty JSON array of files")
    entries: list[tuple[str, int | None]] = []
    for position, item in enumerate(items):
        if isinstance(item, str):
            entries.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("path") or item.get("url"), str):
            size = item.get("size")  # "url": the files.json of tailrace's own ConfigMap
            entries.append(
                (item.get("path") or item["url"], size if isinstance(size, int) else None)
            )
        else:
            raise ConfigurationError(f"{listing}: item {position} has no path")
    settings_file = directory / "job" / "config.json"
    settings = _json(settings_file) if settings_file.is_file() else {}
    if not isinstance(settings, dict):
        raise ConfigurationError(f"{settings_file}: expected a JSON object")
    source, files = listed_files(entries, settings.get("s3_endpoint_url"))
    count = directory / "files" / "worker_count"
    workers = current(environ).total_workers
    if workers is None:
        raw = count.read_text().strip() if count.is_file() else ""
        workers = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    return Mounted(files, source, settings, workers)


def _json(path: Path) -> Any:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid JSON: {exc}") from None


def job_config(mounted: Mounted, environ: Mapping[str, str] | None = None) -> ReprocessingConfig:
    """The job the mounted settings describe (Jitsu's field names), sending to the
    destinations topic of KAFKA_BOOTSTRAP_SERVERS unless config.json names a sink."""
    settings = current(environ)
    s = mounted.settings
    sink = s.get("sink")
    if s.get("dry_run"):
        sink = "null:"
    if not sink:
        servers = settings.kafka_bootstrap_servers
        if not servers:
            raise ConfigurationError(
                "no sink for the mounted job: set KAFKA_BOOTSTRAP_SERVERS (and "
                'KAFKA_DESTINATIONS_TOPIC), or give "sink" in config.json'
            )
        sink = f"kafka://{servers}/{settings.kafka_destinations_topic}"
    return ReprocessingConfig(
        source=mounted.source,
        sink=str(sink),
        stream_ids=tuple(s.get("stream_ids") or ()),
        connection_ids=tuple(s.get("connection_ids") or ()),
        date_from=s.get("date_from"),
        date_to=s.get("date_to"),
        max_workers=mounted.workers,
        batch_size=int(s.get("batch_size") or BATCH_SIZE),
        s3_endpoint_url=s.get("s3_endpoint_url"),
        dry_run=bool(s.get("dry_run")),
        start_file=s.get("start_file") or None,
        start_line=int(s.get("start_line") or 0),
        limit=int(s["limit"]) if s.get("limit") else None,
        retry_attempts=int(s["retry_attempts"]) if s.get("retry_attempts") else None,
    )


def ensure_job(database_url: str, job_id: str, environ: Mapping[str, str] | None = None) -> bool:
    """Store job `job_id` from the mounted files if the database has no such job; True if
    this worker stored it. Without files.json, nothing is done (the job must exist)."""
    directory = config_dir(environ)
    if not (directory / "files" / "files.json").is_file():
        return False
    migrate(database_url)  # a fresh database: the job tables first
    with ReprocessingStore(database_url) as store:
        if _exists(store, job_id):  # planned by an admin: the database is the truth
            return False
        mounted = read_mounted(directory, environ)
        if mounted is None:
            return False
        config = job_config(mounted, environ)
        files = mounted.files
        if config.start_file:
            files = start_from(files, config.start_file)
        if not database_url.startswith(("postgresql://", "postgres://")):
            return _create(database_url, store, job_id, config, files, mounted.workers)
        with connect(database_url, DEFAULT) as conn:
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_CREATE_LOCK, job_id))
            try:
                if _exists(store, job_id):  # another worker stored it meanwhile
                    return False
                return _create(database_url, store, job_id, config, files, mounted.workers)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_CREATE_LOCK, job_id))


def _exists(store: ReprocessingStore, job_id: str) -> bool:
    try:
        store.job_status(job_id)
    except ReprocessingJobNotFoundError:
        return False
    return True


def _create(
    database_url: str,
    store: ReprocessingStore,
    job_id: str,
    config: ReprocessingConfig,
    files: list[SourceFile],
    workers: int,
) -> bool:
    with App(database_url) as app:
        create_job(app, store, config, files, job_id=job_id, workers=workers)
    return True
