"""Records as the API shows them (its response models): reference 000's field names,
sink URLs without passwords."""

from __future__ import annotations

from ..pipeline.jobs import (
    Counters,
    FileRecord,
    ReprocessingConfig,
    ReprocessingJob,
    WorkerRecord,
)
from ..pipeline.jobs.model import live_counters
from ..pipeline.sinks.url import SinkURLError, parse_sink_url
from .schemas import SHOWN_CONFIG, FileOut, JobConfigOut, JobOut, WorkerOut


def shown_sink(url: str) -> str:
    """A sink as it may be shown: references as they are, URLs with passwords hidden."""
    if url.startswith("@"):
        return url
    try:
        return parse_sink_url(url).display
    except SinkURLError:
        return "(invalid sink URL)"


def reference_counts(c: Counters) -> dict[str, int]:
    """Counters under reference 000's names (and ``filtered_count``, which it lacks)."""
    return {
        "total_lines": c.lines,
        "success_count": c.sent,
        "error_count": c.deadlettered,
        "skipped_count": c.skipped,
        "filtered_count": c.filtered,
        "processed_bytes": c.processed_bytes,
    }


def config_out(config: ReprocessingConfig) -> JobConfigOut:
    """A job's config as shown: the fields of `SHOWN_CONFIG`, the sink's password hidden."""
    shown = {name: getattr(config, name) for name in SHOWN_CONFIG}
    return JobConfigOut(**{**shown, "sink": shown_sink(config.sink)})


def job_out(
    job: ReprocessingJob, workers: list[WorkerRecord] | None = None, abandoned: str | None = None
) -> JobOut:
    counters = job.counters
    if not job.status.finished:
        counters = live_counters(job.counters, [w.counters for w in workers or ()])
    config = job.config
    total = job.total_bytes
    if total:
        progress = min(1.0, counters.processed_bytes / total)
    else:
        progress = 1.0 if job.status.finished else 0.0
    return JobOut(
        id=job.id,
        status=job.status.value,
        config=config_out(config),
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        k8s_job_name=job.k8s_job_name,
        total_files=job.total_files,
        total_workers=job.total_workers,
        total_bytes=total,
        processed_files=job.processed_files,
        files_by_status=dict(job.files_by_status),
        **reference_counts(counters),
        progress=progress,
        skip_reasons=dict(job.skip_reasons),
        # files the listing left out (temporary, markers, not logs...): counts and examples
        skipped_files=dict(config.listing_skipped.get("counts", {})),
        skipped_file_examples=dict(config.listing_skipped.get("examples", {})),
        balanced=counters.balanced,
        error=job.error,
        abandoned=abandoned,
    )


def worker_out(worker: WorkerRecord) -> WorkerOut:
    return WorkerOut(
        worker_index=worker.worker_index,
        status=worker.status.value,
        started_at=worker.started_at,
        updated_at=worker.updated_at,
        completed_at=worker.completed_at,
        current_file=worker.current_file,
        current_line=worker.current_line,
        current_timestamp=worker.current_timestamp,
        assigned_files=worker.assigned_files,
        processed_files=worker.processed_files,
        **reference_counts(worker.counters),
        total_bytes=worker.total_bytes,
        restarts=worker.restarts,
        error=worker.error,
    )


def file_out(file: FileRecord) -> FileOut:
    return FileOut(
        index=file.index,
        url=file.url,
        size=file.size,
        status=file.status.value,
        worker_index=file.worker_index,
        attempts=file.attempts,
        line=file.line,
        **reference_counts(file.counters),
        error=file.error,
        retryable=not file.unreadable,
        started_at=file.started_at,
        completed_at=file.completed_at,
    )
