"""The record of files `tailrace ingest` keeps: list them by status, reset FAILED ones so the
next run takes them again (reference 003's ProcessedFile statuses)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, StringConstraints

from ...pipeline.ingest import scope_of
from ...pipeline.jobs.model import IngestStatus, ProcessedFile
from ..errors import ApiError
from ..schemas import NO_NUL, error_responses
from ..services import Svc, authenticated

router = APIRouter(
    prefix="/api/admin/ingest",
    tags=["ingest"],
    dependencies=[Depends(authenticated)],
    responses=error_responses(401, 422, 503),
)

SourceText = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class IngestFileOut(BaseModel):
    bucket: str
    key: str
    version: str
    size: int
    status: str
    attempts: int
    job_id: str | None
    error: str | None


class IngestFilesOut(BaseModel):
    files: list[IngestFileOut]
    total: int


class ResetFiles(BaseModel):
    """Which FAILED files to reset: those under `source` (``s3://bucket/prefix``, a local
    path, or one file), or with `all`, every one."""

    source: SourceText | None = None
    all: bool = False


@router.get("/files", response_model=IngestFilesOut)
def list_files(
    svc: Svc,
    status: Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"] = "FAILED",
    source: Annotated[SourceText | None, Query()] = None,
) -> IngestFilesOut:
    """The files in `status` (default FAILED), of one source or of all, in log order."""
    with svc.db() as db:
        files = db.store.processed_by_status(
            IngestStatus(status), scope_of(source) if source else None
        )
    return _files_out(files)


@router.post("/files/reset", response_model=IngestFilesOut)
def reset_files(body: ResetFiles, svc: Svc) -> IngestFilesOut:
    """FAILED files back to PENDING, their attempts at zero; returns those reset."""
    if (body.source is None) == (not body.all):
        raise ApiError(422, "invalid_request", "give either source or all: true")
    with svc.db() as db:
        files = db.store.processed_reset(scope_of(body.source) if body.source else None)
    return _files_out(files)


def _files_out(files: list[ProcessedFile]) -> IngestFilesOut:
    return IngestFilesOut(files=[IngestFileOut(**f.as_dict()) for f in files], total=len(files))
