"""Reprocessing jobs: their records and where they are stored."""

from tailrace.pipeline.jobs.model import (
    Counters,
    FileRecord,
    FileStatus,
    JobConfig,
    JobRecord,
    JobStatus,
    WorkerRecord,
    WorkerStatus,
)
from tailrace.pipeline.jobs.store import JobStore, ReprocessingJobNotFoundError

__all__ = [
    "Counters",
    "FileRecord",
    "FileStatus",
    "JobConfig",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "ReprocessingJobNotFoundError",
    "WorkerRecord",
    "WorkerStatus",
]
