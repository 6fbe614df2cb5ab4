"""Object jobs on the S3 API: compose uploaded chunks into one object, and delete the chunks
of abandoned uploads on a schedule."""

from .client import s3_client
from .compose import ComposeResult, compose
from .errors import ChunkMissingError, ComposeError, ObjectJobError, VerificationError
from .merge_requests import MergeRequests, MergeSettings, merge_requests
from .plan import MIN_PART, Chunk, Part, plan_parts
from .retention import RetentionReport, delete_prefix, sweep
from .tasks import COMPOSE_TASK, RETENTION_TASK, register_object_tasks
from .uploads import UploadRecord, UploadStatus, UploadStore

__all__ = [
    "COMPOSE_TASK",
    "MIN_PART",
    "RETENTION_TASK",
    "Chunk",
    "ChunkMissingError",
    "ComposeError",
    "ComposeResult",
    "MergeRequests",
    "MergeSettings",
    "ObjectJobError",
    "Part",
    "RetentionReport",
    "UploadRecord",
    "UploadStatus",
    "UploadStore",
    "VerificationError",
    "compose",
    "delete_prefix",
    "merge_requests",
    "plan_parts",
    "register_object_tasks",
    "s3_client",
    "sweep",
]
