"""Reprocessing jobs: their records and where they are stored."""

from tailrace.pipeline.jobs.model import (
    Counters,
    FileRecord,
    ReprocessingConfig,
    ReprocessingJob,
    ReprocessingStatus,
    WorkerRecord,
)
from tailrace.pipeline.jobs.store import ReprocessingJobNotFoundError, ReprocessingStore

__all__ = [
    "Counters",
    "FileRecord",
    "ReprocessingConfig",
    "ReprocessingJob",
    "ReprocessingJobNotFoundError",
    "ReprocessingStatus",
    "ReprocessingStore",
    "WorkerRecord",
]
