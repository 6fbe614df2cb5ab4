"""What can go wrong in an object job; each error names the bucket and key it is about."""

from __future__ import annotations

from ..errors import TailraceError


class ObjectJobError(TailraceError):
    """Base of the object jobs' errors."""


class ChunkMissingError(ObjectJobError):
    """A chunk named in a compose request is not in the bucket. Nothing was written or deleted."""

    def __init__(self, bucket: str, key: str, missing: int = 1) -> None:
        more = f" (and {missing - 1} more)" if missing > 1 else ""
        super().__init__(f"chunk s3://{bucket}/{key} does not exist{more}; nothing was deleted")
        self.bucket = bucket
        self.key = key


class ComposeError(ObjectJobError):
    """The store refused the compose (the multipart upload was aborted); chunks are kept."""


class VerificationError(ObjectJobError):
    """The composed object is not what its chunks add up to: it was deleted, chunks are kept."""
